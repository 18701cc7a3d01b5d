package origin

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Auth is an auth file: which paths need which users, with bcrypt-hashed
// passwords. Each line is
//
//	PATH USER BCRYPT-HASH
//
// where PATH protects itself and everything below it ("/private" covers
// "/private/a.txt"); several lines may name the same path (any of its
// users may enter). The longest matching path decides. Blank lines and
// lines starting with # are ignored. `appnet web passwd` makes hashes.
type Auth struct {
	rules []authRule // longest path first
}

type authRule struct {
	prefix string
	users  map[string][]byte
}

// ParseAuth reads an auth file; name is used in error messages.
func ParseAuth(r io.Reader, name string) (*Auth, error) {
	byPrefix := map[string]map[string][]byte{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Fields(t)
		if len(f) != 3 {
			return nil, fmt.Errorf("origin: %s:%d: want PATH USER BCRYPT-HASH", name, line)
		}
		if !strings.HasPrefix(f[0], "/") {
			return nil, fmt.Errorf("origin: %s:%d: path %q does not start with /", name, line, f[0])
		}
		if strings.Contains(f[1], ":") {
			return nil, fmt.Errorf("origin: %s:%d: user %q contains a colon (RFC 7617 §2)", name, line, f[1])
		}
		if _, err := bcrypt.Cost([]byte(f[2])); err != nil {
			return nil, fmt.Errorf("origin: %s:%d: %w", name, line, err)
		}
		p := path.Clean(f[0])
		if byPrefix[p] == nil {
			byPrefix[p] = map[string][]byte{}
		}
		byPrefix[p][f[1]] = []byte(f[2])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("origin: %s: %w", name, err)
	}
	a := &Auth{}
	for p, u := range byPrefix {
		a.rules = append(a.rules, authRule{prefix: p, users: u})
	}
	sort.Slice(a.rules, func(i, j int) bool { return len(a.rules[i].prefix) > len(a.rules[j].prefix) })
	return a, nil
}

// Users returns the users who may see the cleaned path p, or nil when p is
// not protected.
func (a *Auth) Users(p string) map[string][]byte {
	for _, r := range a.rules {
		if p == r.prefix || r.prefix == "/" || strings.HasPrefix(p, r.prefix+"/") {
			return r.users
		}
	}
	return nil
}

// Verify reports whether user and password match one of users.
func (a *Auth) Verify(users map[string][]byte, user, password string) bool {
	hash, ok := users[user]
	if !ok {
		// spend the same time as for a known user
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password)) //nolint:errcheck
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("appnet"), bcrypt.DefaultCost)
	return h
})

// HashPassword returns a bcrypt hash for an auth file line; cost 0 is
// bcrypt's default (10).
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("origin: %w", err)
	}
	return string(h), nil
}
