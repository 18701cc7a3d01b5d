package peerwire

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// MessageID is the type of a peer wire message: the byte that follows the
// length prefix, or one of the pseudo-IDs MsgKeepAlive and MsgHandshake,
// which have no ID byte on the wire.
type MessageID int

// Message IDs. BEP 3 §peer messages defines 0 to 8, BEP 5 the port
// message, BEP 6 the Fast extension's 13 to 17 and BEP 10 the extended
// message.
const (
	MsgHandshake     MessageID = -2 // not a message; names handshake errors
	MsgKeepAlive     MessageID = -1 // a message of length zero
	MsgChoke         MessageID = 0
	MsgUnchoke       MessageID = 1
	MsgInterested    MessageID = 2
	MsgNotInterested MessageID = 3
	MsgHave          MessageID = 4
	MsgBitfield      MessageID = 5
	MsgRequest       MessageID = 6
	MsgPiece         MessageID = 7
	MsgCancel        MessageID = 8
	MsgPort          MessageID = 9  // BEP 5
	MsgSuggest       MessageID = 13 // BEP 6
	MsgHaveAll       MessageID = 14 // BEP 6
	MsgHaveNone      MessageID = 15 // BEP 6
	MsgReject        MessageID = 16 // BEP 6
	MsgAllowedFast   MessageID = 17 // BEP 6
	MsgExtended      MessageID = 20 // BEP 10
)

var idNames = map[MessageID]string{
	MsgHandshake:     "handshake",
	MsgKeepAlive:     "keep-alive",
	MsgChoke:         "choke",
	MsgUnchoke:       "unchoke",
	MsgInterested:    "interested",
	MsgNotInterested: "not interested",
	MsgHave:          "have",
	MsgBitfield:      "bitfield",
	MsgRequest:       "request",
	MsgPiece:         "piece",
	MsgCancel:        "cancel",
	MsgPort:          "port",
	MsgSuggest:       "suggest",
	MsgHaveAll:       "have all",
	MsgHaveNone:      "have none",
	MsgReject:        "reject",
	MsgAllowedFast:   "allowed fast",
	MsgExtended:      "extended",
}

// String returns the message type's name, such as "not interested", or
// "message 42" for an ID this package does not know.
func (id MessageID) String() string {
	if s, ok := idNames[id]; ok {
		return s
	}
	return "message " + strconv.Itoa(int(id))
}

// Known reports whether the package decodes messages of this type; the
// Reader returns others with their raw payload.
func (id MessageID) Known() bool {
	_, ok := idNames[id]
	return ok && id != MsgHandshake
}

// isFast reports whether id belongs to the Fast extension (BEP 6).
func (id MessageID) isFast() bool {
	return id >= MsgSuggest && id <= MsgAllowedFast
}

// Message is one peer wire message. Only the fields of its type are
// meaningful; the others are zero after Reader.ReadMessage.
type Message struct {
	ID MessageID

	// Index is the piece index of have, request, piece, cancel, suggest,
	// reject and allowed fast.
	Index uint32
	// Begin is the byte offset within the piece of request, piece, cancel
	// and reject.
	Begin uint32
	// Length is the block length of request, cancel and reject.
	Length uint32
	// Bitfield is the payload of bitfield.
	Bitfield Bitfield
	// Block is the data of piece.
	Block []byte
	// Port is the DHT port of port (BEP 5).
	Port uint16
	// ExtendedID is the extended message ID of extended (BEP 10): 0 for
	// the extension handshake, else an ID the receiver chose.
	ExtendedID uint8
	// Payload is the payload of extended, after the extended message ID,
	// and of a message of unknown type, after the message ID.
	Payload []byte
}

// String summarizes the message for a protocol trace, as in "have 5",
// "bitfield 120/512 pieces" or "request piece 17 offset 32768 length 16384".
func (m Message) String() string {
	var b []byte
	u := func(s string, n uint32) {
		b = append(b, s...)
		b = strconv.AppendUint(b, uint64(n), 10)
	}
	switch m.ID {
	case MsgHave, MsgAllowedFast:
		u(m.ID.String()+" ", m.Index)
	case MsgSuggest:
		u("suggest piece ", m.Index)
	case MsgBitfield:
		b = strconv.AppendInt(append(b, "bitfield "...), int64(m.Bitfield.Count()), 10)
		b = strconv.AppendInt(append(b, '/'), int64(m.Bitfield.Len()), 10)
		b = append(b, " pieces"...)
	case MsgRequest, MsgCancel, MsgReject:
		u(m.ID.String()+" piece ", m.Index)
		u(" offset ", m.Begin)
		u(" length ", m.Length)
	case MsgPiece:
		u("piece ", m.Index)
		u(" offset ", m.Begin)
		u(" length ", uint32(len(m.Block)))
	case MsgPort:
		u("port ", uint32(m.Port))
	case MsgExtended:
		if m.ExtendedID == 0 {
			b = append(b, "extended handshake"...)
		} else {
			u("extended ", uint32(m.ExtendedID))
		}
		u(" (", uint32(len(m.Payload)))
		b = append(b, " bytes)"...)
	default:
		if m.ID.Known() {
			return m.ID.String()
		}
		u("unknown message ", uint32(m.ID))
		u(" (", uint32(len(m.Payload)))
		b = append(b, " bytes)"...)
	}
	return string(b)
}

func appendHeader(b []byte, length int, id MessageID) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(length))
	return append(b, byte(id))
}

// AppendPieceHeader appends the first 13 bytes of a piece message that
// carries blockLen bytes: the length prefix, the ID, the index and the
// offset. The caller writes the block itself after it, which spares a
// copy of the data.
func AppendPieceHeader(b []byte, index, begin uint32, blockLen int) []byte {
	b = appendHeader(b, 9+blockLen, MsgPiece)
	b = binary.BigEndian.AppendUint32(b, index)
	return binary.BigEndian.AppendUint32(b, begin)
}

// ErrMessageTooLong is returned when encoding a message whose length does
// not fit the 32-bit length prefix.
var ErrMessageTooLong = errors.New("peerwire: message too long")

// AppendBinary appends the message's wire form (BEP 3 §peer messages: a
// four-byte big-endian length, the ID byte, the payload) to b. It fails
// only for an ID outside 0 to 255 and a payload too long for the prefix.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	var payload int
	switch m.ID {
	case MsgBitfield:
		payload = len(m.Bitfield.Bytes())
	case MsgPiece:
		payload = len(m.Block)
	default:
		payload = len(m.Payload)
	}
	if payload > math.MaxUint32-9 {
		return b, ErrMessageTooLong
	}
	switch m.ID {
	case MsgKeepAlive:
		return append(b, 0, 0, 0, 0), nil
	case MsgChoke, MsgUnchoke, MsgInterested, MsgNotInterested, MsgHaveAll, MsgHaveNone:
		return appendHeader(b, 1, m.ID), nil
	case MsgHave, MsgSuggest, MsgAllowedFast:
		b = appendHeader(b, 5, m.ID)
		return binary.BigEndian.AppendUint32(b, m.Index), nil
	case MsgBitfield:
		bits := m.Bitfield.Bytes()
		b = appendHeader(b, 1+len(bits), m.ID)
		return append(b, bits...), nil
	case MsgRequest, MsgCancel, MsgReject:
		b = appendHeader(b, 13, m.ID)
		b = binary.BigEndian.AppendUint32(b, m.Index)
		b = binary.BigEndian.AppendUint32(b, m.Begin)
		return binary.BigEndian.AppendUint32(b, m.Length), nil
	case MsgPiece:
		b = AppendPieceHeader(b, m.Index, m.Begin, len(m.Block))
		return append(b, m.Block...), nil
	case MsgPort:
		b = appendHeader(b, 3, m.ID)
		return binary.BigEndian.AppendUint16(b, m.Port), nil
	case MsgExtended:
		b = appendHeader(b, 2+len(m.Payload), m.ID)
		b = append(b, m.ExtendedID)
		return append(b, m.Payload...), nil
	}
	if m.ID < 0 || m.ID > 255 {
		return b, errors.New("peerwire: cannot encode " + m.ID.String())
	}
	b = appendHeader(b, 1+len(m.Payload), m.ID)
	return append(b, m.Payload...), nil
}

// MarshalBinary returns the message's wire form.
func (m *Message) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(nil)
}
