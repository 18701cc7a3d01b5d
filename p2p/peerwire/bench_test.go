package peerwire

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkReadPiece reads 16 KiB piece messages, into the Reader's buffer
// and into a caller's buffer, beside a plain io.ReadFull of the same bytes
// as the anchor.
func BenchmarkReadPiece(b *testing.B) {
	block := make([]byte, 16384)
	stream, _ := (&Message{ID: MsgPiece, Index: 1, Block: block}).AppendBinary(nil)
	b.Run("anchor-readfull", func(b *testing.B) {
		r := &loopReader{data: stream}
		buf := make([]byte, len(stream))
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		for b.Loop() {
			io.ReadFull(r, buf)
		}
	})
	b.Run("reader-buffer", func(b *testing.B) {
		r := NewReader(&loopReader{data: stream})
		var m Message
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.ReadMessage(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("caller-buffer", func(b *testing.B) {
		r := NewReader(&loopReader{data: stream})
		piece := make([]byte, 1<<18)
		r.BlockBuffer = func(index, begin uint32, length int) []byte { return piece[begin:] }
		var m Message
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		for b.Loop() {
			if err := r.ReadMessage(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadSmall reads have and request messages.
func BenchmarkReadSmall(b *testing.B) {
	var stream []byte
	stream, _ = (&Message{ID: MsgHave, Index: 7}).AppendBinary(stream)
	stream, _ = (&Message{ID: MsgRequest, Index: 7, Begin: 16384, Length: 16384}).AppendBinary(stream)
	r := NewReader(&loopReader{data: stream})
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		if err := r.ReadMessage(&m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWritePiece writes 16 KiB piece messages with WritePiece and,
// as the anchor, by appending the whole message to one buffer.
func BenchmarkWritePiece(b *testing.B) {
	block := make([]byte, 16384)
	b.Run("anchor-append", func(b *testing.B) {
		var buf []byte
		m := Message{ID: MsgPiece, Index: 1, Block: block}
		b.SetBytes(int64(13 + len(block)))
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = m.AppendBinary(buf[:0])
			io.Discard.Write(buf)
		}
	})
	b.Run("writer", func(b *testing.B) {
		w := NewWriter(io.Discard)
		b.SetBytes(int64(13 + len(block)))
		b.ReportAllocs()
		for b.Loop() {
			if err := w.WritePiece(1, 0, block); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("writer-small", func(b *testing.B) {
		var out bytes.Buffer
		w := NewWriter(&out)
		m := Message{ID: MsgHave, Index: 9}
		b.ReportAllocs()
		for b.Loop() {
			out.Reset()
			if err := w.WriteMessage(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
