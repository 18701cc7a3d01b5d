package chord

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"appnet/p2p/bencode"
)

// RPC operations (the "op" key of a request). See the package doc.
const (
	OpPing          = "ping"           // liveness; the reply names the node and m
	OpFindSuccessor = "find_successor" // recursive lookup of Key
	OpFindNext      = "find_next"      // one step of an iterative lookup
	OpStabilize     = "stabilize"      // "who is your predecessor, and your successors?"
	OpNotify        = "notify"         // "I think I am your predecessor"
	OpGet           = "get"            // the values stored under Key
	OpPut           = "put"            // store Values under Key (replace, or add with Add)
	OpStore         = "store"          // replicas and handed-over keys: whole Items
	OpLeave         = "leave"          // a neighbour leaves gracefully
	OpInfo          = "info"           // the node's whole routing state, for `chord ring`
)

// Limits on what a message may hold; a message over any of them is
// rejected as malformed.
const (
	DefaultMaxMessage = 1 << 20 // bytes in one frame
	MaxListLen        = 256     // nodes in Path, Succs, Fingers, Exclude
	MaxItems          = 1024    // items in one store
	MaxValues         = 256     // values under one key
	MaxValueLen       = 16 << 10
	MaxNameLen        = 1024
	MaxAddrLen        = 255
	MaxErrLen         = 512
)

// NodeRef names a node: its identifier and its address ("IP:port").
type NodeRef struct {
	ID   ID     `bencode:"id"`
	Addr string `bencode:"addr"`
}

// IsZero reports whether r names no node.
func (r NodeRef) IsZero() bool { return r.Addr == "" }

// Value is one value stored under a key: data stored directly, or an
// indirect reference (Ref) whose Data is the address of whoever holds the
// object. TTL is the time left before it expires, in milliseconds; 0: never.
//
// PK, Seq and Sig identify and authenticate the writer: PK is its Ed25519
// public key, Seq a sequence number that only grows per writer, and Sig
// the Ed25519 signature of SignedBytes(key, Seq, Ref, Data). A node
// stores only values whose signature checks, and readers check it again.
// TTL is not signed (it counts down as the value is replicated).
type Value struct {
	Data []byte `bencode:"data"`
	Ref  bool   `bencode:"ref,omitempty"`
	TTL  int64  `bencode:"ttl,omitempty"`
	PK   []byte `bencode:"pk,omitempty"`
	Seq  int64  `bencode:"seq,omitempty"`
	Sig  []byte `bencode:"sig,omitempty"`
}

// Item is everything stored under one key.
// Excl marks a key written by a replacing put: it belongs to that one
// writer while its values live. Other keys are shared sets, each writer
// holding its own values.
type Item struct {
	Key    ID      `bencode:"key"`
	Name   string  `bencode:"name,omitempty"`
	Values []Value `bencode:"values"`
	Excl   bool    `bencode:"excl,omitempty"`
}

// Message is a request or a reply. Which keys a message carries depends on
// its op; the package doc lists them.
type Message struct {
	T       int64     `bencode:"t"`                // transaction number, echoed in the reply
	Op      string    `bencode:"op,omitempty"`     // requests only
	Re      string    `bencode:"re,omitempty"`     // replies: the op answered
	M       int       `bencode:"m"`                // bits of the sender's ring
	From    *NodeRef  `bencode:"from,omitempty"`   // the sending node, when it is one
	Key     *ID       `bencode:"key,omitempty"`    // lookup target or stored key
	Name    string    `bencode:"name,omitempty"`   // the key's name, when it has one
	TTL     int       `bencode:"ttl,omitempty"`    // hops left for a recursive lookup
	Budget  int64     `bencode:"budget,omitempty"` // ms the sender waits for a recursive answer
	Exclude []NodeRef `bencode:"exclude,omitempty"`
	Node    *NodeRef  `bencode:"node,omitempty"` // answer: owner, next hop or self
	Done    bool      `bencode:"done,omitempty"` // find_next: Node is the owner
	Found   bool      `bencode:"found,omitempty"`
	Add     bool      `bencode:"add,omitempty"` // put: add to the set instead of replacing
	Pred    *NodeRef  `bencode:"pred,omitempty"`
	Preds   []NodeRef `bencode:"preds,omitempty"` // notify: the sender's predecessor list
	Succs   []NodeRef `bencode:"succs,omitempty"`
	Fingers []NodeRef `bencode:"fingers,omitempty"`
	Path    []NodeRef `bencode:"path,omitempty"`
	Values  []Value   `bencode:"values,omitempty"`
	Items   []Item    `bencode:"items,omitempty"`
	Keys    int       `bencode:"keys,omitempty"`    // info: items held
	Leaving bool      `bencode:"leaving,omitempty"` // ping reply: the node is leaving the ring
	Err     string    `bencode:"err,omitempty"`     // a reply reporting failure
	Code    int       `bencode:"code,omitempty"`    // ErrorCode of Err
}

// ErrorCode classifies a failure reply.
const (
	CodeGeneric        = 1
	CodeMalformed      = 2
	CodeWrongRing      = 3
	CodeNotResponsible = 4
	CodeLookupFailed   = 5
	CodeFull           = 6
	CodeForbidden      = 7 // the sender may not do this (identity, range or writer check failed)
	CodeStale          = 8 // a value older (lower Seq) than the one stored
)

// RemoteError is a failure reply from a node.
type RemoteError struct {
	Addr string
	Code int
	Msg  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("chord: %s answered: %s", e.Addr, e.Msg)
}

// Errors of the wire format.
var (
	ErrTooLarge  = errors.New("chord: message too large")
	ErrMalformed = errors.New("chord: malformed message")
)

// AppendFrame appends m as one frame: a 4-byte big-endian length, then the
// bencoded dict.
func AppendFrame(b []byte, m *Message) ([]byte, error) {
	body, err := bencode.Marshal(m)
	if err != nil {
		return b, fmt.Errorf("chord: encode: %w", err)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...), nil
}

// ReadFrame reads one frame of at most max bytes (0: DefaultMaxMessage)
// and decodes it. A frame over the limit is rejected before its body is
// read.
func ReadFrame(r io.Reader, max int) (*Message, error) {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return DecodeMessage(body)
}

// DecodeMessage decodes and validates the body of one frame.
func DecodeMessage(body []byte) (*Message, error) {
	var m Message
	if err := (bencode.DecodeOptions{MaxDepth: 6}).Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &m, nil
}

func validRef(r *NodeRef, sp Space) error {
	if r == nil {
		return nil
	}
	if !sp.Contains(r.ID) {
		return fmt.Errorf("node id does not fit in m = %d bits", sp.Bits)
	}
	if len(r.Addr) > MaxAddrLen {
		return errors.New("address too long")
	}
	if _, _, err := net.SplitHostPort(r.Addr); err != nil {
		return fmt.Errorf("bad node address %q", r.Addr)
	}
	return nil
}

func validRefs(rs []NodeRef, sp Space) error {
	if len(rs) > MaxListLen {
		return fmt.Errorf("%d nodes in a list (max %d)", len(rs), MaxListLen)
	}
	for i := range rs {
		if err := validRef(&rs[i], sp); err != nil {
			return err
		}
	}
	return nil
}

func validValues(vs []Value) error {
	if len(vs) > MaxValues {
		return fmt.Errorf("%d values (max %d)", len(vs), MaxValues)
	}
	for _, v := range vs {
		if len(v.Data) > MaxValueLen {
			return fmt.Errorf("value of %d bytes (max %d)", len(v.Data), MaxValueLen)
		}
		if v.TTL < 0 || v.Seq < 0 {
			return errors.New("negative ttl or seq")
		}
		if (len(v.PK) != 0 && len(v.PK) != ed25519.PublicKeySize) || (len(v.Sig) != 0 && len(v.Sig) != ed25519.SignatureSize) {
			return errors.New("bad public key or signature length")
		}
	}
	return nil
}

// validate checks what decoding cannot: ranges and lengths.
func (m *Message) validate() error {
	sp := Space{Bits: m.M}
	if !sp.Valid() {
		return fmt.Errorf("m = %d is not between 1 and %d", m.M, MaxBits)
	}
	if len(m.Op) > 32 || len(m.Name) > MaxNameLen || len(m.Err) > MaxErrLen {
		return errors.New("string too long")
	}
	if m.TTL < 0 || m.TTL > 1024 || m.Budget < 0 {
		return errors.New("ttl or budget out of range")
	}
	if m.Key != nil && !sp.Contains(*m.Key) {
		return fmt.Errorf("key does not fit in m = %d bits", m.M)
	}
	for _, r := range []*NodeRef{m.From, m.Node, m.Pred} {
		if err := validRef(r, sp); err != nil {
			return err
		}
	}
	for _, l := range [][]NodeRef{m.Exclude, m.Succs, m.Preds, m.Fingers, m.Path} {
		if err := validRefs(l, sp); err != nil {
			return err
		}
	}
	if err := validValues(m.Values); err != nil {
		return err
	}
	if len(m.Items) > MaxItems {
		return fmt.Errorf("%d items (max %d)", len(m.Items), MaxItems)
	}
	for _, it := range m.Items {
		if !sp.Contains(it.Key) || len(it.Name) > MaxNameLen {
			return errors.New("bad item")
		}
		if err := validValues(it.Values); err != nil {
			return err
		}
	}
	return nil
}

// Summary is the message in one line, in Chord's words, for the trace.
func (m *Message) Summary() string {
	sp := Space{Bits: m.M}
	if !sp.Valid() {
		sp.Bits = MaxBits
	}
	ref := func(r *NodeRef) string {
		if r == nil || r.IsZero() {
			return "nil"
		}
		return "N" + sp.Format(r.ID) + "@" + r.Addr
	}
	key := func() string {
		if m.Key == nil {
			return "?"
		}
		s := "K" + sp.Format(*m.Key)
		if m.Name != "" {
			s += fmt.Sprintf(" (%q)", m.Name)
		}
		return s
	}
	var b strings.Builder
	switch {
	case m.Err != "":
		fmt.Fprintf(&b, "error: %s", m.Err)
	case m.Op == OpPing:
		b.WriteString("ping")
	case m.Op == OpFindSuccessor:
		fmt.Fprintf(&b, "find_successor(%s) ttl %d", key(), m.TTL)
	case m.Op == OpFindNext:
		fmt.Fprintf(&b, "find_successor(%s) iterative step", key())
		if len(m.Exclude) > 0 {
			fmt.Fprintf(&b, ", avoiding %d failed", len(m.Exclude))
		}
	case m.Op == OpStabilize:
		b.WriteString("stabilize: predecessor and successors?")
	case m.Op == OpNotify:
		fmt.Fprintf(&b, "notify: %s may be your predecessor", ref(m.From))
	case m.Op == OpGet:
		fmt.Fprintf(&b, "get %s", key())
	case m.Op == OpPut:
		verb := "put"
		if m.Add {
			verb = "add"
		}
		fmt.Fprintf(&b, "%s %s = %s", verb, key(), valuesSummary(m.Values))
	case m.Op == OpStore:
		fmt.Fprintf(&b, "store %d items (replicas / handed-over keys)", len(m.Items))
	case m.Op == OpLeave:
		fmt.Fprintf(&b, "leave: %s leaves; its predecessor %s, %d successors", ref(m.From), ref(m.Pred), len(m.Succs))
	case m.Op == OpInfo:
		b.WriteString("info?")
	case m.Op != "":
		fmt.Fprintf(&b, "%s?", m.Op)
	// replies
	case m.Re == OpPing:
		fmt.Fprintf(&b, "pong from %s (m = %d)", ref(m.Node), m.M)
	case m.Re == OpFindSuccessor:
		fmt.Fprintf(&b, "successor is %s (path of %d nodes)", ref(m.Node), len(m.Path))
	case m.Re == OpFindNext && m.Done:
		fmt.Fprintf(&b, "owner is %s", ref(m.Node))
	case m.Re == OpFindNext:
		fmt.Fprintf(&b, "not mine: ask %s", ref(m.Node))
	case m.Re == OpStabilize:
		fmt.Fprintf(&b, "predecessor %s, successors %d", ref(m.Pred), len(m.Succs))
	case m.Re == OpInfo:
		fmt.Fprintf(&b, "info: %s pred %s, %d successors, %d fingers, %d keys", ref(m.Node), ref(m.Pred), len(m.Succs), len(m.Fingers), m.Keys)
	case m.Re == OpGet && m.Found:
		fmt.Fprintf(&b, "found %s", valuesSummary(m.Values))
	case m.Re == OpGet:
		b.WriteString("not found")
	default:
		b.WriteString("ok")
	}
	return b.String()
}

func valuesSummary(vs []Value) string {
	if len(vs) == 0 {
		return "nothing"
	}
	parts := make([]string, 0, 3)
	for i, v := range vs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("… (%d values)", len(vs)))
			break
		}
		s := fmt.Sprintf("%q", truncate(string(v.Data), 40))
		if v.Ref {
			s = "-> " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
