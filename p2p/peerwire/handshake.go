package peerwire

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Protocol is the protocol name that opens every handshake.
const Protocol = "BitTorrent protocol"

// HandshakeLength is the length of a handshake on the wire.
const HandshakeLength = 1 + len(Protocol) + 8 + 20 + 20

// Reserved holds the eight reserved handshake bytes, whose bits announce
// protocol extensions.
type Reserved [8]byte

// Bits of Reserved.
const (
	extendedByte, extendedBit = 5, 0x10 // BEP 10 §handshake: reserved[5] & 0x10
	fastByte, fastBit         = 7, 0x04 // BEP 6: reserved[7] |= 0x04
	dhtByte, dhtBit           = 7, 0x01 // BEP 5 §BitTorrent protocol extension: reserved[7] |= 0x01
)

// Fast reports whether the Fast extension bit is set (BEP 6). The
// extension is on only if both peers set it.
func (r Reserved) Fast() bool { return r[fastByte]&fastBit != 0 }

// Extended reports whether the extension protocol bit is set (BEP 10).
func (r Reserved) Extended() bool { return r[extendedByte]&extendedBit != 0 }

// DHT reports whether the DHT bit is set (BEP 5); such a peer may send a
// port message.
func (r Reserved) DHT() bool { return r[dhtByte]&dhtBit != 0 }

// SetFast sets or clears the Fast extension bit.
func (r *Reserved) SetFast(on bool) { r.set(fastByte, fastBit, on) }

// SetExtended sets or clears the extension protocol bit.
func (r *Reserved) SetExtended(on bool) { r.set(extendedByte, extendedBit, on) }

// SetDHT sets or clears the DHT bit.
func (r *Reserved) SetDHT(on bool) { r.set(dhtByte, dhtBit, on) }

func (r *Reserved) set(i int, bit byte, on bool) {
	if on {
		r[i] |= bit
	} else {
		r[i] &^= bit
	}
}

// Handshake is the first thing each peer sends (BEP 3 §peer protocol):
// the byte 19, "BitTorrent protocol", eight reserved bytes, the torrent's
// info hash and the sender's peer ID.
type Handshake struct {
	Reserved Reserved
	InfoHash [20]byte
	PeerID   [20]byte
}

// AppendBinary appends the handshake's wire form to b.
func (h *Handshake) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(len(Protocol)))
	b = append(b, Protocol...)
	b = append(b, h.Reserved[:]...)
	b = append(b, h.InfoHash[:]...)
	return append(b, h.PeerID[:]...), nil
}

// WriteHandshake writes h to w in one Write call.
func WriteHandshake(w io.Writer, h Handshake) error {
	var buf [HandshakeLength]byte
	b, _ := h.AppendBinary(buf[:0])
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("peerwire: writing handshake: %w", err)
	}
	return nil
}

// ReadHandshake reads a handshake from r. It checks the first byte before
// reading on, so a peer that speaks another protocol is refused at once.
// A handshake with the wrong protocol name is a *ProtocolError; it does
// not check the info hash, which only the caller knows.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var h Handshake
	var buf [HandshakeLength]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return h, fmt.Errorf("peerwire: reading handshake: %w", err)
	}
	if int(buf[0]) != len(Protocol) {
		return h, &ProtocolError{ID: MsgHandshake, Msg: fmt.Sprintf("handshake: protocol name length %d, want %d", buf[0], len(Protocol))}
	}
	if _, err := io.ReadFull(r, buf[1:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, fmt.Errorf("peerwire: reading handshake: %w", err)
	}
	if name := string(buf[1 : 1+len(Protocol)]); name != Protocol {
		return h, &ProtocolError{ID: MsgHandshake, Msg: fmt.Sprintf("handshake: protocol %q, want %q", name, Protocol)}
	}
	rest := buf[1+len(Protocol):]
	copy(h.Reserved[:], rest[:8])
	copy(h.InfoHash[:], rest[8:28])
	copy(h.PeerID[:], rest[28:48])
	return h, nil
}

// String summarizes the handshake for a protocol trace:
// "handshake 0123…cdef peer -TR3000-xxxxxxxxxxxx fast extended".
func (h Handshake) String() string {
	var b strings.Builder
	b.WriteString("handshake ")
	b.WriteString(hex.EncodeToString(h.InfoHash[:]))
	b.WriteString(" peer ")
	b.WriteString(PeerIDString(h.PeerID))
	if h.Reserved.Fast() {
		b.WriteString(" fast")
	}
	if h.Reserved.Extended() {
		b.WriteString(" extended")
	}
	if h.Reserved.DHT() {
		b.WriteString(" dht")
	}
	return b.String()
}

// PeerIDString returns a peer ID for display: printable ASCII as is (most
// clients start their IDs with a tag such as "-TR3000-"), any other byte as
// a dot.
func PeerIDString(id [20]byte) string {
	var b [20]byte
	for i, c := range id {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		b[i] = c
	}
	return string(b[:])
}
