package peerwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadMessage checks that the Reader never panics, never holds a
// buffer larger than MaxMessageLength, fails only with a *ProtocolError
// or a truncated stream, and that every message it returns encodes back
// to exactly the bytes it was read from.
func FuzzReadMessage(f *testing.F) {
	var all []byte
	for _, tt := range allMessages {
		b, _ := tt.m.AppendBinary(nil)
		f.Add(b, uint16(20), true, uint16(16384))
		all = append(all, b...)
	}
	f.Add(all, uint16(20), true, uint16(16384))
	f.Add(all, uint16(0), false, uint16(100))
	f.Add(cat(header(0xffffffff, 7)), uint16(0), false, uint16(0))
	f.Add(cat(header(1+2, 5), []byte{0xff, 0xf0}), uint16(12), false, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, numPieces uint16, fast bool, maxBlock uint16) {
		const maxMessage = 8192
		r := NewReader(bytes.NewReader(data))
		r.NumPieces = int(numPieces % 2048)
		r.Fast = fast
		r.MaxBlockSize = int(maxBlock)
		r.MaxMessageLength = maxMessage
		off := 0
		for range len(data) + 1 {
			var m Message
			err := r.ReadMessage(&m)
			if cap(r.buf) > maxMessage {
				t.Fatalf("buffer of %d bytes, limit %d", cap(r.buf), maxMessage)
			}
			if err != nil {
				_, isProto := errors.AsType[*ProtocolError](err)
				if !isProto && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type: %v", err)
				}
				if err == io.EOF && off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(data))
				}
				return
			}
			_ = m.String()
			enc, err := m.AppendBinary(nil)
			if err != nil {
				t.Fatalf("AppendBinary(%v): %v", m, err)
			}
			if !bytes.HasPrefix(data[off:], enc) {
				t.Fatalf("message %v re-encodes as % x, read from % x", m, enc, data[off:min(len(data), off+len(enc))])
			}
			off += len(enc)
		}
		t.Fatal("more messages than bytes")
	})
}
