package peerwire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHandshakeRoundTrip(t *testing.T) {
	var h Handshake
	h.Reserved.SetFast(true)
	h.Reserved.SetExtended(true)
	copy(h.InfoHash[:], "\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67")
	copy(h.PeerID[:], "-AP0001-\x00\xffabcdefghij")
	var buf bytes.Buffer
	if err := WriteHandshake(&buf, h); err != nil {
		t.Fatal(err)
	}
	want := "\x13BitTorrent protocol" + "\x00\x00\x00\x00\x00\x10\x00\x04" + string(h.InfoHash[:]) + string(h.PeerID[:])
	if buf.String() != want || buf.Len() != HandshakeLength {
		t.Errorf("wire form %q, want %q", buf.String(), want)
	}
	got, err := ReadHandshake(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Errorf("read back %+v, want %+v", got, h)
	}
	if s := got.String(); s != "handshake 0123456789abcdef0123456789abcdef01234567 peer -AP0001-..abcdefghij fast extended" {
		t.Errorf("String() = %q", s)
	}
}

func TestReservedBits(t *testing.T) {
	var r Reserved
	if r.Fast() || r.Extended() || r.DHT() {
		t.Error("zero Reserved has bits set")
	}
	r.SetDHT(true)
	r.SetFast(true)
	r.SetExtended(true)
	if r != (Reserved{0, 0, 0, 0, 0, 0x10, 0, 0x05}) {
		t.Errorf("Reserved = % x", r)
	}
	if !r.Fast() || !r.Extended() || !r.DHT() {
		t.Error("bits not reported")
	}
	r.SetFast(false)
	r.SetDHT(false)
	r.SetExtended(false)
	if r != (Reserved{}) {
		t.Errorf("Reserved = % x after clearing", r)
	}
}

// strictReader fails the test if more than limit bytes are read.
type strictReader struct {
	t     *testing.T
	r     io.Reader
	limit int
}

func (s *strictReader) Read(p []byte) (int, error) {
	if len(p) > s.limit {
		s.t.Errorf("read of %d bytes past the first %d", len(p), s.limit)
		p = p[:s.limit]
	}
	n, err := s.r.Read(p)
	s.limit -= n
	return n, err
}

func TestReadHandshakeErrors(t *testing.T) {
	// Another protocol is refused after its first byte.
	_, err := ReadHandshake(&strictReader{t: t, r: strings.NewReader("GET / HTTP/1.1\r\n\r\n" + strings.Repeat("x", 60)), limit: 1})
	pe, ok := errors.AsType[*ProtocolError](err)
	if !ok || pe.ID != MsgHandshake || !strings.Contains(err.Error(), "protocol name length 71, want 19") {
		t.Errorf("ReadHandshake(HTTP) = %v", err)
	}
	bad := "\x13BitTorrent Protocol" + strings.Repeat("\x00", 48)
	if _, err := ReadHandshake(strings.NewReader(bad)); !strings.Contains(err.Error(), `protocol "BitTorrent Protocol", want "BitTorrent protocol"`) {
		t.Errorf("ReadHandshake(wrong name) = %v", err)
	}
	if _, err := ReadHandshake(strings.NewReader("")); !errors.Is(err, io.EOF) {
		t.Errorf("ReadHandshake(empty) = %v, want io.EOF", err)
	}
	if _, err := ReadHandshake(strings.NewReader("\x13BitTorrent protocol\x00")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadHandshake(truncated) = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestBitfield(t *testing.T) {
	b := NewBitfield(10)
	if b.Len() != 10 || len(b.Bytes()) != 2 || b.Count() != 0 || b.All() {
		t.Fatalf("new bitfield %v", b.Bytes())
	}
	b.Set(0)
	b.Set(9)
	b.Set(9)
	if !b.Get(0) || !b.Get(9) || b.Get(1) || b.Get(10) || b.Get(-1) || b.Count() != 2 {
		t.Errorf("after Set: % x", b.Bytes())
	}
	if !bytes.Equal(b.Bytes(), []byte{0x80, 0x40}) {
		t.Errorf("wire form % x", b.Bytes())
	}
	c := b.Clone()
	b.Clear(0)
	if b.Get(0) || !c.Get(0) {
		t.Error("Clone shares memory")
	}
	b.SetAll()
	if !b.All() || b.Count() != 10 || !bytes.Equal(b.Bytes(), []byte{0xff, 0xc0}) {
		t.Errorf("SetAll: % x", b.Bytes())
	}
	if _, err := ParseBitfield(b.Bytes(), 10); err != nil {
		t.Errorf("ParseBitfield of SetAll: %v", err)
	}
	for _, bad := range []struct {
		b []byte
		n int
	}{{[]byte{0xff, 0xe0}, 10}, {[]byte{0xff}, 10}, {[]byte{0, 0, 0}, 10}, {nil, -1}, {[]byte{1}, 7}} {
		if _, err := ParseBitfield(bad.b, bad.n); err == nil {
			t.Errorf("ParseBitfield(% x, %d): no error", bad.b, bad.n)
		}
	}
	for _, n := range []int{0, 8, 16} {
		b := NewBitfield(n)
		b.SetAll()
		if b.Count() != n {
			t.Errorf("SetAll on %d pieces: %d", n, b.Count())
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Set out of range did not panic")
		}
	}()
	b.Set(10)
}
