package peerwire

import (
	"fmt"
	"math/bits"
)

// Bitfield records which pieces a peer has (BEP 3 §bitfield): bit i is
// piece i, the high bit of the first byte being piece 0, and the spare
// bits at the end of the last byte are zero. The zero Bitfield has no
// pieces.
type Bitfield struct {
	bits []byte
	n    int
}

// NewBitfield returns a Bitfield of n pieces, none of them set.
func NewBitfield(n int) Bitfield {
	return Bitfield{bits: make([]byte, (n+7)/8), n: n}
}

// ParseBitfield returns the Bitfield of n pieces whose wire form is b. The
// result shares b's memory. A length other than ceil(n/8) bytes, or a
// spare bit that is set, is a *ProtocolError: BEP 3 says to drop such a
// peer.
func ParseBitfield(b []byte, n int) (Bitfield, error) {
	if n < 0 || len(b) != (n+7)/8 {
		return Bitfield{}, &ProtocolError{ID: MsgBitfield, Length: uint32(1 + len(b)),
			Msg: fmt.Sprintf("bitfield of %d bytes for %d pieces, want %d", len(b), n, (n+7)/8)}
	}
	if n%8 != 0 && b[len(b)-1]&(0xff>>(n%8)) != 0 {
		return Bitfield{}, &ProtocolError{ID: MsgBitfield, Length: uint32(1 + len(b)),
			Msg: fmt.Sprintf("bitfield of %d pieces has spare bits set", n)}
	}
	return Bitfield{bits: b, n: n}, nil
}

// Len returns the number of pieces.
func (b Bitfield) Len() int { return b.n }

// Get reports whether piece i is set; it is false for i out of range.
func (b Bitfield) Get(i int) bool {
	if i < 0 || i >= b.n {
		return false
	}
	return b.bits[i/8]&(0x80>>(i%8)) != 0
}

// Set sets piece i. It panics if i is out of range.
func (b *Bitfield) Set(i int) {
	b.check(i)
	b.bits[i/8] |= 0x80 >> (i % 8)
}

// Clear clears piece i. It panics if i is out of range.
func (b *Bitfield) Clear(i int) {
	b.check(i)
	b.bits[i/8] &^= 0x80 >> (i % 8)
}

func (b *Bitfield) check(i int) {
	if i < 0 || i >= b.n {
		panic(fmt.Sprintf("peerwire: piece %d out of range [0, %d)", i, b.n))
	}
}

// SetAll sets every piece, as a have all message says (BEP 6).
func (b *Bitfield) SetAll() {
	for i := range b.bits {
		b.bits[i] = 0xff
	}
	if r := b.n % 8; r != 0 {
		b.bits[len(b.bits)-1] = 0xff << (8 - r)
	}
}

// Count returns the number of pieces set.
func (b Bitfield) Count() int {
	c := 0
	for _, x := range b.bits {
		c += bits.OnesCount8(x)
	}
	return c
}

// All reports whether every piece is set.
func (b Bitfield) All() bool { return b.Count() == b.n }

// Bytes returns the wire form. It shares the Bitfield's memory.
func (b Bitfield) Bytes() []byte { return b.bits }

// Clone returns a copy that shares no memory with b. Bitfields read by a
// Reader share its buffer until the next message; keep a Clone.
func (b Bitfield) Clone() Bitfield {
	return Bitfield{bits: append([]byte(nil), b.bits...), n: b.n}
}
