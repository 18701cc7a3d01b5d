package peerwire

import (
	"fmt"
	"io"
)

// A Writer writes peer wire messages. It writes the block of a piece
// message straight from the caller's memory, after its header, without
// copying it. Each message takes one or two Write calls, so give it a
// *bufio.Writer to batch small messages, and flush that yourself.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, 64)}
}

// WriteMessage writes m.
func (w *Writer) WriteMessage(m *Message) error {
	if m.ID == MsgPiece {
		return w.WritePiece(m.Index, m.Begin, m.Block)
	}
	b, err := m.AppendBinary(w.buf[:0])
	if err != nil {
		return err
	}
	w.buf = b[:0]
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("peerwire: writing %s message: %w", m.ID, err)
	}
	return nil
}

// WritePiece writes a piece message carrying block (BEP 3 §piece): a
// 13-byte header, then block itself.
func (w *Writer) WritePiece(index, begin uint32, block []byte) error {
	hdr := AppendPieceHeader(w.buf[:0], index, begin, len(block))
	if _, err := w.w.Write(hdr); err != nil {
		return fmt.Errorf("peerwire: writing piece message: %w", err)
	}
	if _, err := w.w.Write(block); err != nil {
		return fmt.Errorf("peerwire: writing piece message: %w", err)
	}
	return nil
}
