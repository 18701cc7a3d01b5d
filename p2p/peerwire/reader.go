package peerwire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// DefaultMaxBlockSize is the largest block a piece, request, cancel or
	// reject may carry or ask for unless Reader.MaxBlockSize says
	// otherwise. Clients request 16 KiB blocks (BEP 3 §request: "All
	// current implementations use 2^14"); this leaves room for the few that
	// use larger ones.
	DefaultMaxBlockSize = 128 << 10
	// DefaultMaxMessageLength is the largest message of any type unless
	// Reader.MaxMessageLength says otherwise. It bounds the bitfield of a
	// torrent whose size is not yet known (8 million pieces) and BEP 10
	// messages.
	DefaultMaxMessageLength = 1 << 20
)

// ProtocolError reports a peer that broke the protocol: a message longer
// or shorter than its type allows, a field out of range, or a bad
// handshake. The caller should close that peer's connection, and only it.
type ProtocolError struct {
	// ID is the type of the offending message, or MsgHandshake.
	ID MessageID
	// Length is the message length from its length prefix, when known.
	Length uint32
	// Msg describes the violation.
	Msg string
}

// Error describes the violation.
func (e *ProtocolError) Error() string { return "peerwire: " + e.Msg }

// A Reader reads peer wire messages from a connection, one at a time,
// checking each message's length against its type before reading its
// payload, so that a peer can never make it allocate more than
// MaxMessageLength bytes.
//
// The configuration fields may be changed between messages, for instance
// to set NumPieces once the metadata is known, or Fast after the
// handshake.
type Reader struct {
	// NumPieces is the number of pieces of the torrent, or 0 if it is not
	// known yet. When it is known, a bitfield must have exactly
	// ceil(NumPieces/8) bytes with the spare bits zero, and piece indexes
	// must be below it.
	NumPieces int
	// MaxBlockSize bounds the block of a piece message and the length a
	// request, cancel or reject asks for; 0 means DefaultMaxBlockSize.
	MaxBlockSize int
	// MaxMessageLength bounds every message; 0 means
	// DefaultMaxMessageLength.
	MaxMessageLength int
	// Fast says the Fast extension is on (BEP 6): both peers set its
	// reserved bit. Without it, its messages are a *ProtocolError, as BEP
	// 6 requires the connection be closed.
	Fast bool
	// BlockBuffer, if not nil, is asked for the memory to read the block
	// of a piece message into, so that the block can go straight into
	// the piece it belongs to. If it returns a slice shorter than length,
	// the Reader uses its own buffer.
	BlockBuffer func(index, begin uint32, length int) []byte

	r   *bufio.Reader
	hdr [13]byte
	buf []byte // payloads; reused, so messages are valid until the next read
}

// NewReader returns a Reader that reads from r, buffered unless r is a
// *bufio.Reader of at least 32 KiB already.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 32<<10)}
}

func (r *Reader) maxBlock() int {
	if r.MaxBlockSize > 0 {
		return r.MaxBlockSize
	}
	return DefaultMaxBlockSize
}

func (r *Reader) maxMessage() int {
	if r.MaxMessageLength > 0 {
		return r.MaxMessageLength
	}
	return DefaultMaxMessageLength
}

// scratch returns n bytes of the Reader's reusable buffer.
func (r *Reader) scratch(n int) []byte {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	return r.buf[:n]
}

func (r *Reader) readFull(p []byte, id MessageID) error {
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("peerwire: reading %s message: %w", id, err)
	}
	return nil
}

func protoErr(id MessageID, n uint32, format string, args ...any) *ProtocolError {
	return &ProtocolError{ID: id, Length: n, Msg: fmt.Sprintf(format, args...)}
}

// ReadMessage reads the next message into m, overwriting all of it.
//
// It returns io.EOF if the connection ended cleanly between messages, a
// *ProtocolError if the peer broke the protocol (the message is then
// left unread, and the connection should be closed), and another error
// if reading failed. A message of a type this package does not know is
// not an error: it is returned with its ID and raw Payload, and the
// caller should ignore it.
//
// m.Bitfield, m.Block and m.Payload share the Reader's buffer (or the
// memory BlockBuffer returned) and are valid only until the next call.
func (r *Reader) ReadMessage(m *Message) error {
	if _, err := io.ReadFull(r.r, r.hdr[:4]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("peerwire: reading message length: %w", err)
	}
	n := binary.BigEndian.Uint32(r.hdr[:4])
	*m = Message{}
	if n == 0 {
		m.ID = MsgKeepAlive // BEP 3 §peer messages: keepalives are a zero length prefix
		return nil
	}
	c, err := r.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("peerwire: reading message ID: %w", err)
	}
	id := MessageID(c)
	m.ID = id
	if int64(n) > int64(r.maxMessage()) {
		return protoErr(id, n, "%s message of length %d exceeds the limit %d", id, n, r.maxMessage())
	}
	if id.isFast() && !r.Fast {
		return protoErr(id, n, "%s message without the fast extension", id)
	}
	want := func(length uint32) error {
		if n != length {
			return protoErr(id, n, "%s message of length %d, want %d", id, n, length)
		}
		return nil
	}
	switch id {
	case MsgChoke, MsgUnchoke, MsgInterested, MsgNotInterested, MsgHaveAll, MsgHaveNone:
		return want(1)

	case MsgHave, MsgSuggest, MsgAllowedFast:
		if err := want(5); err != nil {
			return err
		}
		if err := r.readFull(r.hdr[:4], id); err != nil {
			return err
		}
		m.Index = binary.BigEndian.Uint32(r.hdr[:4])
		return r.checkIndex(id, n, m.Index)

	case MsgRequest, MsgCancel, MsgReject:
		if err := want(13); err != nil {
			return err
		}
		if err := r.readFull(r.hdr[:12], id); err != nil {
			return err
		}
		m.Index = binary.BigEndian.Uint32(r.hdr[0:4])
		m.Begin = binary.BigEndian.Uint32(r.hdr[4:8])
		m.Length = binary.BigEndian.Uint32(r.hdr[8:12])
		if m.Length == 0 || int64(m.Length) > int64(r.maxBlock()) {
			return protoErr(id, n, "%s of length %d, want 1 to %d", id, m.Length, r.maxBlock())
		}
		return r.checkIndex(id, n, m.Index)

	case MsgPiece:
		if n <= 9 || int64(n) > 9+int64(r.maxBlock()) {
			return protoErr(id, n, "piece message of length %d, want 10 to %d", n, 9+r.maxBlock())
		}
		if err := r.readFull(r.hdr[:8], id); err != nil {
			return err
		}
		m.Index = binary.BigEndian.Uint32(r.hdr[0:4])
		m.Begin = binary.BigEndian.Uint32(r.hdr[4:8])
		if err := r.checkIndex(id, n, m.Index); err != nil {
			return err
		}
		size := int(n - 9)
		var block []byte
		if r.BlockBuffer != nil {
			if b := r.BlockBuffer(m.Index, m.Begin, size); len(b) >= size {
				block = b[:size]
			}
		}
		if block == nil {
			block = r.scratch(size)
		}
		if err := r.readFull(block, id); err != nil {
			return err
		}
		m.Block = block
		return nil

	case MsgBitfield:
		size := int(n - 1)
		if r.NumPieces > 0 && size != (r.NumPieces+7)/8 {
			return protoErr(id, n, "bitfield message of length %d for %d pieces, want %d", n, r.NumPieces, 1+(r.NumPieces+7)/8)
		}
		b := r.scratch(size)
		if err := r.readFull(b, id); err != nil {
			return err
		}
		if r.NumPieces == 0 {
			m.Bitfield = Bitfield{bits: b, n: 8 * size}
			return nil
		}
		bf, err := ParseBitfield(b, r.NumPieces)
		if err != nil {
			return err
		}
		m.Bitfield = bf
		return nil

	case MsgPort:
		if err := want(3); err != nil {
			return err
		}
		if err := r.readFull(r.hdr[:2], id); err != nil {
			return err
		}
		m.Port = binary.BigEndian.Uint16(r.hdr[:2])
		return nil

	case MsgExtended:
		if n < 2 {
			return protoErr(id, n, "extended message of length %d, want at least 2", n)
		}
		b := r.scratch(int(n - 1))
		if err := r.readFull(b, id); err != nil {
			return err
		}
		m.ExtendedID = b[0]
		m.Payload = b[1:]
		return nil
	}
	// A type we do not know: hand it over raw.
	b := r.scratch(int(n - 1))
	if err := r.readFull(b, id); err != nil {
		return err
	}
	m.Payload = b
	return nil
}

func (r *Reader) checkIndex(id MessageID, n uint32, index uint32) error {
	if r.NumPieces > 0 && int64(index) >= int64(r.NumPieces) {
		return protoErr(id, n, "%s of piece %d, but the torrent has %d pieces", id, index, r.NumPieces)
	}
	return nil
}
