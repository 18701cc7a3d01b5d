package peerwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// bitfieldOf returns a Bitfield of n pieces with the given ones set.
func bitfieldOf(n int, set ...int) Bitfield {
	b := NewBitfield(n)
	for _, i := range set {
		b.Set(i)
	}
	return b
}

var cmpBitfield = cmp.Comparer(func(a, b Bitfield) bool {
	return a.Len() == b.Len() && bytes.Equal(a.Bytes(), b.Bytes())
})

// allMessages has one message of every type, with the wire form of each.
var allMessages = []struct {
	m    Message
	wire string // hex
}{
	{Message{ID: MsgKeepAlive}, "00000000"},
	{Message{ID: MsgChoke}, "0000000100"},
	{Message{ID: MsgUnchoke}, "0000000101"},
	{Message{ID: MsgInterested}, "0000000102"},
	{Message{ID: MsgNotInterested}, "0000000103"},
	{Message{ID: MsgHave, Index: 5}, "000000050400000005"},
	{Message{ID: MsgBitfield, Bitfield: bitfieldOf(20, 0, 9, 19)}, "0000000405" + "804010"},
	{Message{ID: MsgRequest, Index: 17, Begin: 32768, Length: 16384}, "0000000d06" + "00000011" + "00008000" + "00004000"},
	{Message{ID: MsgPiece, Index: 17, Begin: 32768, Block: []byte("data")}, "0000000d07" + "00000011" + "00008000" + "64617461"},
	{Message{ID: MsgCancel, Index: 1, Begin: 2, Length: 3}, "0000000d08" + "00000001" + "00000002" + "00000003"},
	{Message{ID: MsgPort, Port: 6881}, "00000003091ae1"},
	{Message{ID: MsgSuggest, Index: 3}, "000000050d00000003"},
	{Message{ID: MsgHaveAll}, "000000010e"},
	{Message{ID: MsgHaveNone}, "000000010f"},
	{Message{ID: MsgReject, Index: 4, Begin: 16384, Length: 16384}, "0000000d10" + "00000004" + "00004000" + "00004000"},
	{Message{ID: MsgAllowedFast, Index: 7}, "000000051100000007"},
	{Message{ID: MsgExtended, ExtendedID: 0, Payload: []byte("de")}, "0000000414" + "00" + "6465"},
	{Message{ID: MsgExtended, ExtendedID: 3, Payload: []byte{}}, "0000000214" + "03"},
	{Message{ID: 42, Payload: []byte{1, 2, 3}}, "000000042a010203"},
}

func TestMessageRoundTrip(t *testing.T) {
	var stream []byte
	var written bytes.Buffer
	w := NewWriter(&written)
	for _, tt := range allMessages {
		b, err := tt.m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("%v: %v", tt.m, err)
		}
		if got := hex.EncodeToString(b); got != tt.wire {
			t.Errorf("%v encodes as %s, want %s", tt.m, got, tt.wire)
		}
		stream = append(stream, b...)
		if err := w.WriteMessage(&tt.m); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(written.Bytes(), stream) {
		t.Errorf("Writer and AppendBinary differ")
	}
	r := NewReader(iotest.HalfReader(bytes.NewReader(stream)))
	r.NumPieces, r.Fast = 20, true
	for _, tt := range allMessages {
		var m Message
		if err := r.ReadMessage(&m); err != nil {
			t.Fatalf("reading %v: %v", tt.m, err)
		}
		if diff := cmp.Diff(tt.m, m, cmpBitfield); diff != "" {
			t.Errorf("read back (-want +got):\n%s", diff)
		}
	}
	var m Message
	if err := r.ReadMessage(&m); err != io.EOF {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
}

func TestMessageString(t *testing.T) {
	want := []string{
		"keep-alive",
		"choke",
		"unchoke",
		"interested",
		"not interested",
		"have 5",
		"bitfield 3/20 pieces",
		"request piece 17 offset 32768 length 16384",
		"piece 17 offset 32768 length 4",
		"cancel piece 1 offset 2 length 3",
		"port 6881",
		"suggest piece 3",
		"have all",
		"have none",
		"reject piece 4 offset 16384 length 16384",
		"allowed fast 7",
		"extended handshake (2 bytes)",
		"extended 3 (0 bytes)",
		"unknown message 42 (3 bytes)",
	}
	for i, tt := range allMessages {
		if got := tt.m.String(); got != want[i] {
			t.Errorf("String() = %q, want %q", got, want[i])
		}
	}
	big := Message{ID: MsgBitfield, Bitfield: bitfieldOf(512)}
	for i := range 120 {
		big.Bitfield.Set(i * 4)
	}
	if got := big.String(); got != "bitfield 120/512 pieces" {
		t.Errorf("String() = %q", got)
	}
	if got := MessageID(99).String(); got != "message 99" {
		t.Errorf("MessageID(99).String() = %q", got)
	}
}

// header returns a length prefix and a message ID, with no payload.
func header(length uint32, id byte) []byte {
	return []byte{byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length), id}
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestReaderLimits checks every per-type limit. Where the length alone
// breaks the limit, the input has no payload at all: the Reader must
// refuse the message before reading it.
func TestReaderLimits(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		setup func(r *Reader)
		id    MessageID
		msg   string
	}{
		{"choke too long", header(2, 0), nil, MsgChoke, "choke message of length 2, want 1"},
		{"interested too long", header(5, 2), nil, MsgInterested, "interested message of length 5, want 1"},
		{"have too long", header(6, 4), nil, MsgHave, "have message of length 6, want 5"},
		{"have too short", header(4, 4), nil, MsgHave, "have message of length 4, want 5"},
		{"have index out of range", cat(header(5, 4), u32(100)), nil, MsgHave, "have of piece 100, but the torrent has 100 pieces"},
		{"request too long", header(14, 6), nil, MsgRequest, "request message of length 14, want 13"},
		{"request too short", header(12, 6), nil, MsgRequest, "request message of length 12, want 13"},
		{"request of zero bytes", cat(header(13, 6), u32(0), u32(0), u32(0)), nil, MsgRequest, "request of length 0, want 1 to 131072"},
		{"request too large", cat(header(13, 6), u32(0), u32(0), u32(128<<10+1)), nil, MsgRequest, "request of length 131073, want 1 to 131072"},
		{"request over a set limit", cat(header(13, 6), u32(0), u32(0), u32(16385)), func(r *Reader) { r.MaxBlockSize = 16384 }, MsgRequest, "request of length 16385, want 1 to 16384"},
		{"request index out of range", cat(header(13, 6), u32(1000), u32(0), u32(16384)), nil, MsgRequest, "request of piece 1000"},
		{"cancel too long", header(14, 8), nil, MsgCancel, "cancel message of length 14, want 13"},
		{"cancel too large", cat(header(13, 8), u32(0), u32(0), u32(1<<20)), nil, MsgCancel, "cancel of length 1048576"},
		{"piece without block", header(9, 7), nil, MsgPiece, "piece message of length 9, want 10 to 131081"},
		{"piece too short", header(5, 7), nil, MsgPiece, "piece message of length 5"},
		{"piece block too large", header(9+128<<10+1, 7), nil, MsgPiece, "piece message of length 131082, want 10 to 131081"},
		{"piece over a set limit", header(9+16385, 7), func(r *Reader) { r.MaxBlockSize = 16384 }, MsgPiece, "want 10 to 16393"},
		{"piece index out of range", cat(header(9+4, 7), u32(100), u32(0)), nil, MsgPiece, "piece of piece 100, but the torrent has 100 pieces"},
		{"bitfield too long", header(1+14, 5), nil, MsgBitfield, "bitfield message of length 15 for 100 pieces, want 14"},
		{"bitfield too short", header(1+12, 5), nil, MsgBitfield, "bitfield message of length 13 for 100 pieces, want 14"},
		{"bitfield spare bits", cat(header(1+13, 5), make([]byte, 12), []byte{0x08}), nil, MsgBitfield, "bitfield of 100 pieces has spare bits set"},
		{"bitfield beyond max length", header(1<<20+1, 5), func(r *Reader) { r.NumPieces = 0 }, MsgBitfield, "bitfield message of length 1048577 exceeds the limit 1048576"},
		{"port too long", header(4, 9), nil, MsgPort, "port message of length 4, want 3"},
		{"extended without ID", header(1, 20), nil, MsgExtended, "extended message of length 1, want at least 2"},
		{"extended too long", header(1<<20+1, 20), nil, MsgExtended, "exceeds the limit"},
		{"extended over a set limit", header(1001, 20), func(r *Reader) { r.MaxMessageLength = 1000 }, MsgExtended, "extended message of length 1001 exceeds the limit 1000"},
		{"unknown too long", header(0xffffffff, 99), nil, 99, "message 99 message of length 4294967295 exceeds the limit"},
		{"have all too long", header(2, 14), nil, MsgHaveAll, "have all message of length 2, want 1"},
		{"suggest index out of range", cat(header(5, 13), u32(100)), nil, MsgSuggest, "suggest of piece 100"},
		{"reject too large", cat(header(13, 16), u32(0), u32(0), u32(1<<18)), nil, MsgReject, "reject of length 262144"},
		{"allowed fast too short", header(4, 17), nil, MsgAllowedFast, "allowed fast message of length 4, want 5"},
		{"have all without fast", header(1, 14), func(r *Reader) { r.Fast = false }, MsgHaveAll, "have all message without the fast extension"},
		{"have none without fast", header(1, 15), func(r *Reader) { r.Fast = false }, MsgHaveNone, "without the fast extension"},
		{"suggest without fast", header(5, 13), func(r *Reader) { r.Fast = false }, MsgSuggest, "without the fast extension"},
		{"reject without fast", header(13, 16), func(r *Reader) { r.Fast = false }, MsgReject, "without the fast extension"},
		{"allowed fast without fast", header(5, 17), func(r *Reader) { r.Fast = false }, MsgAllowedFast, "without the fast extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.in))
			r.NumPieces, r.Fast = 100, true
			if tt.setup != nil {
				tt.setup(r)
			}
			var m Message
			err := r.ReadMessage(&m)
			pe, ok := errors.AsType[*ProtocolError](err)
			if !ok {
				t.Fatalf("ReadMessage = %v, want *ProtocolError", err)
			}
			if pe.ID != tt.id {
				t.Errorf("ID = %v, want %v", pe.ID, tt.id)
			}
			if !strings.Contains(pe.Error(), tt.msg) || !strings.HasPrefix(pe.Error(), "peerwire: ") {
				t.Errorf("error %q does not contain %q", pe, tt.msg)
			}
			if cap(r.buf) > 1<<20 {
				t.Errorf("allocated a %d-byte buffer", cap(r.buf))
			}
		})
	}
}

func TestReaderBitfieldUnknownSize(t *testing.T) {
	r := NewReader(bytes.NewReader(cat(header(3, 5), []byte{0xff, 0x01})))
	var m Message
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	if m.Bitfield.Len() != 16 || m.Bitfield.Count() != 9 {
		t.Errorf("bitfield %d/%d", m.Bitfield.Count(), m.Bitfield.Len())
	}
	// Once the size is known, the caller checks it.
	if _, err := ParseBitfield(m.Bitfield.Bytes(), 10); err == nil {
		t.Error("spare bits not caught")
	}
	if bf, err := ParseBitfield(m.Bitfield.Bytes(), 16); err != nil || bf.Count() != 9 {
		t.Errorf("ParseBitfield = %v, %v", bf, err)
	}
}

func TestReaderIOErrors(t *testing.T) {
	var m Message
	for _, in := range [][]byte{
		{0, 0},
		{0, 0, 0, 5},
		cat(header(5, 4), []byte{0, 0}),
		cat(header(13, 6), u32(0)),
		cat(header(13, 7), u32(0), u32(0), []byte("abc")),
		cat(header(10, 20), []byte("abc")),
		cat(header(10, 99), []byte("abc")),
	} {
		err := NewReader(bytes.NewReader(in)).ReadMessage(&m)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadMessage(% x) = %v, want io.ErrUnexpectedEOF", in, err)
		}
		if _, ok := errors.AsType[*ProtocolError](err); ok {
			t.Errorf("ReadMessage(% x): a truncated stream is not a protocol error", in)
		}
	}
	boom := errors.New("boom")
	if err := NewReader(iotest.ErrReader(boom)).ReadMessage(&m); !errors.Is(err, boom) {
		t.Errorf("ReadMessage = %v, want %v", err, boom)
	}
}

func TestUnknownMessage(t *testing.T) {
	r := NewReader(bytes.NewReader(cat(header(4, 200), []byte("xyz"), header(1, 1))))
	var m Message
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	if m.ID != 200 || m.ID.Known() || string(m.Payload) != "xyz" {
		t.Errorf("got %+v", m)
	}
	// The stream goes on.
	if err := r.ReadMessage(&m); err != nil || m.ID != MsgUnchoke {
		t.Errorf("next message: %v %v", m, err)
	}
	if !MsgExtended.Known() || MsgHandshake.Known() || MessageID(10).Known() {
		t.Error("Known")
	}
	if _, err := (&Message{ID: 256}).AppendBinary(nil); err == nil {
		t.Error("AppendBinary of ID 256: no error")
	}
	if _, err := (&Message{ID: MsgHandshake}).AppendBinary(nil); err == nil {
		t.Error("AppendBinary of MsgHandshake: no error")
	}
}

func TestBlockBuffer(t *testing.T) {
	piece := make([]byte, 64)
	var in []byte
	in, _ = (&Message{ID: MsgPiece, Index: 2, Begin: 16, Block: []byte("0123456789")}).AppendBinary(in)
	in, _ = (&Message{ID: MsgPiece, Index: 2, Begin: 60, Block: []byte("0123456789")}).AppendBinary(in)
	r := NewReader(bytes.NewReader(in))
	var calls []string
	r.BlockBuffer = func(index, begin uint32, length int) []byte {
		calls = append(calls, Message{ID: MsgRequest, Index: index, Begin: begin, Length: uint32(length)}.String())
		return piece[min(int(begin), len(piece)):]
	}
	var m Message
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	if string(piece[16:26]) != "0123456789" || &m.Block[0] != &piece[16] {
		t.Errorf("block not read into the supplied buffer")
	}
	// Too short a buffer: the Reader uses its own.
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	if string(m.Block) != "0123456789" || &m.Block[0] == &piece[60] {
		t.Errorf("short buffer: block %q", m.Block)
	}
	want := []string{"request piece 2 offset 16 length 10", "request piece 2 offset 60 length 10"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("BlockBuffer calls: %s", diff)
	}
}

// loopReader repeats data forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func TestReaderDoesNotAllocate(t *testing.T) {
	var stream []byte
	block := make([]byte, 16384)
	for _, m := range []Message{
		{ID: MsgPiece, Index: 1, Begin: 0, Block: block},
		{ID: MsgHave, Index: 3},
		{ID: MsgRequest, Index: 1, Length: 16384},
		{ID: MsgBitfield, Bitfield: bitfieldOf(100, 1, 2, 3)},
		{ID: MsgExtended, ExtendedID: 1, Payload: []byte("d1:ai1ee")},
		{ID: MsgKeepAlive},
	} {
		stream, _ = m.AppendBinary(stream)
	}
	r := NewReader(&loopReader{data: stream})
	r.NumPieces = 100
	var m Message
	allocs := testing.AllocsPerRun(200, func() {
		if err := r.ReadMessage(&m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadMessage allocates %.1f times per message", allocs)
	}
}

// recordWriter records the slices it is given.
type recordWriter struct{ writes [][]byte }

func (w *recordWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, p)
	return len(p), nil
}

func TestWritePieceDoesNotCopy(t *testing.T) {
	var rec recordWriter
	block := []byte("some block data")
	if err := NewWriter(&rec).WritePiece(1, 2, block); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 2 || &rec.writes[1][0] != &block[0] {
		t.Fatalf("the block was copied: %d writes", len(rec.writes))
	}
	if got := hex.EncodeToString(rec.writes[0]); got != "00000018070000000100000002" {
		t.Errorf("header %s", got)
	}
	boom := errors.New("boom")
	if err := NewWriter(iotestErrWriter{boom}).WriteMessage(&Message{ID: MsgChoke}); !errors.Is(err, boom) {
		t.Errorf("WriteMessage = %v", err)
	}
}

type iotestErrWriter struct{ err error }

func (w iotestErrWriter) Write([]byte) (int, error) { return 0, w.err }
