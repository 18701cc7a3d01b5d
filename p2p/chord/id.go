package chord

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"math/big"
	"strings"
)

// IDBytes is the size of an identifier on the wire and in memory: 160 bits,
// the output of SHA-1.
const IDBytes = 20

// MaxBits is the largest identifier space, m = 160 (SHA-1).
const MaxBits = 8 * IDBytes

// ID is a point on the identifier circle: an unsigned integer below 2^m,
// stored big-endian in 20 bytes (the high bytes are zero when m < 160).
type ID [IDBytes]byte

// Space is an m-bit identifier circle: arithmetic is modulo 2^Bits.
type Space struct {
	Bits int // m, 1 to 160
}

// Valid reports whether the space has between 1 and 160 bits.
func (s Space) Valid() bool { return s.Bits >= 1 && s.Bits <= MaxBits }

// mask clears the bits at and above Bits.
func (s Space) mask(id ID) ID {
	full := (MaxBits - s.Bits) / 8 // whole zero bytes
	for i := 0; i < full; i++ {
		id[i] = 0
	}
	if rem := (MaxBits - s.Bits) % 8; rem != 0 {
		id[full] &= 0xff >> rem
	}
	return id
}

// Contains reports whether id lies in the space (id < 2^m).
func (s Space) Contains(id ID) bool { return s.mask(id) == id }

// Hash maps a name to the circle: SHA-1 of the name, reduced modulo 2^m.
// Node IDs are Hash("IP:port"), keys Hash(object name).
func (s Space) Hash(name []byte) ID {
	return s.mask(ID(sha1.Sum(name)))
}

// HashString is Hash of a string.
func (s Space) HashString(name string) ID { return s.Hash([]byte(name)) }

// Reduce maps a 160-bit value (an info hash) to the circle modulo 2^m.
func (s Space) Reduce(v [IDBytes]byte) ID { return s.mask(ID(v)) }

// FromUint64 returns v modulo 2^m.
func (s Space) FromUint64(v uint64) ID {
	var id ID
	for i := 0; i < 8; i++ {
		id[IDBytes-1-i] = byte(v >> (8 * i))
	}
	return s.mask(id)
}

// Parse reads an identifier written in decimal or, with a 0x prefix, in
// hexadecimal. It must be below 2^m.
func (s Space) Parse(text string) (ID, error) {
	v, ok := new(big.Int).SetString(strings.TrimSpace(text), 0)
	if !ok || v.Sign() < 0 {
		return ID{}, fmt.Errorf("chord: %q is not a non-negative integer", text)
	}
	if v.BitLen() > s.Bits {
		return ID{}, fmt.Errorf("chord: identifier %s does not fit in m = %d bits", text, s.Bits)
	}
	var id ID
	v.FillBytes(id[:])
	return id, nil
}

// Format writes id in decimal when m <= 64, the course's way (N14, K10),
// and in hexadecimal of ceil(m/4) digits otherwise.
func (s Space) Format(id ID) string {
	v := new(big.Int).SetBytes(id[:])
	if s.Bits <= 64 {
		return v.String()
	}
	return fmt.Sprintf("%0*x", (s.Bits+3)/4, v)
}

// Add returns a + b modulo 2^m.
func (s Space) Add(a, b ID) ID {
	var out ID
	carry := 0
	for i := IDBytes - 1; i >= 0; i-- {
		v := int(a[i]) + int(b[i]) + carry
		out[i] = byte(v)
		carry = v >> 8
	}
	return s.mask(out)
}

// Sub returns a - b modulo 2^m: the clockwise distance from b to a.
func (s Space) Sub(a, b ID) ID {
	var out ID
	borrow := 0
	for i := IDBytes - 1; i >= 0; i-- {
		v := int(a[i]) - int(b[i]) - borrow
		borrow = 0
		if v < 0 {
			v += 256
			borrow = 1
		}
		out[i] = byte(v)
	}
	return s.mask(out)
}

// Pow2 returns 2^k modulo 2^m (zero when k >= m).
func (s Space) Pow2(k int) ID {
	var id ID
	if k < 0 || k >= s.Bits {
		return id
	}
	id[IDBytes-1-k/8] = 1 << (k % 8)
	return id
}

// FingerStart returns the start of n's finger i (1-based, as in the paper):
// n + 2^(i-1) modulo 2^m.
func (s Space) FingerStart(n ID, i int) ID { return s.Add(n, s.Pow2(i-1)) }

// Cmp compares a and b as integers.
func Cmp(a, b ID) int { return bytes.Compare(a[:], b[:]) }

// Between reports whether x lies strictly inside the clockwise arc (a, b).
// When a == b the arc is the whole circle but a itself.
func Between(x, a, b ID) bool {
	ab, ax, xb := Cmp(a, b), Cmp(a, x), Cmp(x, b)
	switch {
	case ab < 0:
		return ax < 0 && xb < 0
	case ab > 0:
		return ax < 0 || xb < 0
	default:
		return x != a
	}
}

// BetweenRight reports whether x lies in the half-open clockwise arc
// (a, b]. When a == b the arc is the whole circle.
func BetweenRight(x, a, b ID) bool {
	return a == b || x == b || Between(x, a, b)
}
