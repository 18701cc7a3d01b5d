// Package fastq reads the one kind of message a busy DNS server sees
// most, a plain query (RFC 1035 §4.1: QR clear, opcode QUERY, one
// question, nothing else but an optional EDNS0 OPT record, RFC 6891
// §6.1), straight from the wire, without allocating, and patches a
// packed answer kept from an earlier, identical question: the ID, the RD
// and CD flags, the question name's letter case, and TTLs. Anything else
// is left to the full codec (github.com/miekg/dns).
package fastq

import (
	"encoding/binary"
	"slices"

	"github.com/miekg/dns"
)

// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2).
const (
	bitQR = 1 << 15
	bitTC = 1 << 9
	bitRD = 1 << 8
	bitCD = 1 << 4
)

// Flags in a Key's last byte.
const (
	FlagEDNS = 1 << 0 // the query carried an OPT record
	FlagDO   = 1 << 1 // ... with the DNSSEC OK bit
)

// MaxKey is the longest key: a name of 255 bytes, type, class, flags.
const MaxKey = 255 + 5

// Query is what a plain query asks.
type Query struct {
	NameLen int    // the question name's length on the wire, from offset 12
	Qtype   uint16 // the question's type
	Qclass  uint16
	EDNS    bool   // an OPT record came with it
	UDPSize uint16 // the OPT's payload size (RFC 6891 §6.2.3)
	DO      bool
	RD      bool
	CD      bool
}

// Parse reads b as a plain query and appends its cache key (the question
// in lower case, then the flags byte) to key. ok is false for anything
// else: responses, other opcodes, several questions, records in the
// answer or authority sections, additional records other than one OPT of
// version 0 with no options other than COOKIE, NSID and PADDING,
// compressed or malformed names, or trailing bytes.
func Parse(b []byte, key []byte) (q Query, k []byte, ok bool) {
	if len(b) < 12 {
		return q, key, false
	}
	bits := binary.BigEndian.Uint16(b[2:])
	if bits&bitQR != 0 || (bits>>11)&0xF != 0 || bits&bitTC != 0 {
		return q, key, false
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q, key, false
	}
	ar := binary.BigEndian.Uint16(b[10:])
	if ar > 1 {
		return q, key, false
	}
	q.RD, q.CD = bits&bitRD != 0, bits&bitCD != 0
	off := 12
	for {
		if off >= len(b) {
			return q, key, false
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l >= len(b) {
			return q, key, false // a pointer, a bad label type, or too short
		}
		key = append(key, byte(l))
		for _, c := range b[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		off += 1 + l
		if off-12 > 254 {
			return q, key, false
		}
	}
	key = append(key, 0)
	q.NameLen = off - 12
	if off+4 > len(b) {
		return q, key, false
	}
	q.Qtype = binary.BigEndian.Uint16(b[off:])
	q.Qclass = binary.BigEndian.Uint16(b[off+2:])
	key = append(key, b[off:off+4]...)
	off += 4
	var flags byte
	if ar == 1 {
		// The OPT record: root name, type 41, class = payload size, TTL =
		// extended rcode, version, flags; then the options.
		if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != 41 {
			return q, key, false
		}
		q.EDNS = true
		q.UDPSize = binary.BigEndian.Uint16(b[off+3:])
		if b[off+5] != 0 || b[off+6] != 0 { // extended rcode, version 0
			return q, key, false
		}
		q.DO = b[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(b[off+9:]))
		off += 11
		if off+rdlen != len(b) {
			return q, key, false
		}
		for o := off; o < off+rdlen; {
			if o+4 > off+rdlen {
				return q, key, false
			}
			code, n := binary.BigEndian.Uint16(b[o:]), int(binary.BigEndian.Uint16(b[o+2:]))
			switch {
			case code == 10 && (n == 8 || (n >= 16 && n <= 40)): // COOKIE, RFC 7873 §4
			case code == 3, code == 12: // NSID, PADDING
			default:
				return q, key, false
			}
			o += 4 + n
			if o > off+rdlen {
				return q, key, false
			}
		}
		off += rdlen
		flags |= FlagEDNS
		if q.DO {
			flags |= FlagDO
		}
	}
	if off != len(b) {
		return q, key, false
	}
	return q, append(key, flags), true
}

// Patch makes the packed answer ans (kept from an earlier identical
// question) the answer to req: req's ID, RD and CD bits, and the
// question name as req spells it. ans must have been packed with the
// question of the same length at offset 12.
func Patch(ans, req []byte, q Query) {
	copy(ans[0:2], req[0:2])
	bits := binary.BigEndian.Uint16(ans[2:]) &^ (bitRD | bitCD)
	if q.RD {
		bits |= bitRD
	}
	if q.CD {
		bits |= bitCD
	}
	binary.BigEndian.PutUint16(ans[2:], bits)
	copy(ans[12:12+q.NameLen], req[12:12+q.NameLen])
}

// TTLOffsets returns the offsets of the TTL fields of every record in
// the packed message m except OPT (whose TTL field holds flags), or ok
// false when m does not parse.
func TTLOffsets(m []byte) (offs []int, ok bool) {
	if len(m) < 12 {
		return nil, false
	}
	qd := int(binary.BigEndian.Uint16(m[4:]))
	rrs := int(binary.BigEndian.Uint16(m[6:])) + int(binary.BigEndian.Uint16(m[8:])) + int(binary.BigEndian.Uint16(m[10:]))
	off := 12
	for range qd {
		if off = skipName(m, off); off < 0 || off+4 > len(m) {
			return nil, false
		}
		off += 4
	}
	for range rrs {
		if off = skipName(m, off); off < 0 || off+10 > len(m) {
			return nil, false
		}
		if binary.BigEndian.Uint16(m[off:]) != 41 {
			offs = append(offs, off+4)
		}
		off += 10 + int(binary.BigEndian.Uint16(m[off+8:]))
		if off > len(m) {
			return nil, false
		}
	}
	return offs, off == len(m)
}

// skipName returns the offset after the name at off, or -1.
func skipName(m []byte, off int) int {
	for {
		if off >= len(m) {
			return -1
		}
		l := int(m[off])
		switch {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0:
			if off+2 > len(m) {
				return -1
			}
			return off + 2
		case l > 63:
			return -1
		}
		off += 1 + l
	}
}

// PutTTL writes ttl at off.
func PutTTL(m []byte, off int, ttl uint32) { binary.BigEndian.PutUint32(m[off:], ttl) }

// Header reads the header of b (len(b) >= 12).
func Header(b []byte) dns.Header {
	return dns.Header{
		Id: binary.BigEndian.Uint16(b), Bits: binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]), Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]), Arcount: binary.BigEndian.Uint16(b[10:]),
	}
}

// Reject returns the answer to a message a server rejects after reading
// its header (b, len(b) >= 12): the header alone, as a reply, with
// FORMERR, or NOTIMP (for an opcode the server does not implement), as
// miekg/dns's server answers.
func Reject(b []byte, notImp bool) *dns.Msg {
	var hdr [12]byte
	copy(hdr[:4], b)
	var m dns.Msg
	if m.Unpack(hdr[:]) != nil {
		return nil
	}
	opcode := m.Opcode
	m.SetRcodeFormatError(&m)
	m.Zero = false
	if notImp {
		m.Opcode, m.Rcode = opcode, dns.RcodeNotImplemented
	}
	return &m
}

// Accept returns a server's first look at a message's header (RFC 1035
// §4.1.1), as miekg/dns's server takes it: responses are dropped, opcodes
// other than ops get NOTIMP, and a message must ask exactly one question.
func Accept(ops ...int) dns.MsgAcceptFunc {
	return func(dh dns.Header) dns.MsgAcceptAction {
		const qr = 1 << 15
		if dh.Bits&qr != 0 {
			return dns.MsgIgnore
		}
		if op := int(dh.Bits>>11) & 0xF; !slices.Contains(ops, op) {
			return dns.MsgRejectNotImplemented
		}
		if dh.Qdcount != 1 {
			return dns.MsgReject
		}
		return dns.MsgAccept
	}
}

// Decode reads a request (len(b) >= 12) as miekg/dns's server does:
// it returns the request when accept takes it and it unpacks; otherwise
// the reply to send instead (FORMERR, or NOTIMP for an opcode accept
// refuses), or neither when the message is to be dropped.
func Decode(b []byte, accept dns.MsgAcceptFunc) (req, reject *dns.Msg) {
	action := accept(Header(b))
	if action == dns.MsgIgnore {
		return nil, nil
	}
	if action == dns.MsgAccept {
		var m dns.Msg
		if m.Unpack(b) == nil {
			return &m, nil
		}
	}
	return nil, Reject(b, action == dns.MsgRejectNotImplemented)
}
