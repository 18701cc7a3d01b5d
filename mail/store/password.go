package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Password hashing: argon2id (RFC 9106) with OWASP's smallest recommended
// cost (19 MiB, 2 passes, 1 lane), stored in the PHC string format that
// libargon2 and Dovecot's ARGON2ID scheme use:
// $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH (unpadded base64). Verification
// reads the cost from the stored string, so it can be raised later.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	// Bounds on the cost a stored hash may ask for, so a tampered row
	// cannot make a login take gigabytes.
	maxArgonMemory = 256 * 1024
	maxArgonTime   = 16
)

var b64 = base64.RawStdEncoding

// HashPassword returns the PHC string of an argon2id hash of pw with a
// fresh random salt.
func HashPassword(pw string) (string, error) { return hashPassword(pw, argonMemory, argonTime) }

// HashPasswordWith hashes as Options say: the default cost, or the cheap
// one of Options.WeakPasswordHash.
func HashPasswordWith(opt Options, pw string) (string, error) {
	if opt.WeakPasswordHash {
		return hashPassword(pw, 64, 1)
	}
	return HashPassword(pw)
}

func hashPassword(pw string, memory, passes uint32) (string, error) {
	if err := CheckPassword(pw); err != nil {
		return "", err
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("store: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, passes, memory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memory, passes, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// dummyHash is what VerifyPassword checks against when there is no user,
// so an unknown user costs the same time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("appnet: no such user")
	if err != nil {
		panic(err)
	}
	return h
})

// VerifyPassword reports whether pw matches the PHC string hash, comparing
// in constant time. An empty hash (no such user) is checked against a dummy
// hash and never matches, after the same work.
func VerifyPassword(hash, pw string) bool {
	ok := hash != ""
	if !ok {
		hash = dummyHash()
	}
	// $argon2id$v=19$m=..,t=..,p=..$salt$key
	f := strings.Split(hash, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil ||
		m == 0 || m > maxArgonMemory || t == 0 || t > maxArgonTime || p == 0 {
		return false
	}
	salt, err1 := b64.DecodeString(f[4])
	key, err2 := b64.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(key) == 0 || len(key) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1 && ok
}
