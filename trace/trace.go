// Package trace records the protocol messages that appnet's clients and
// servers send and receive: who said what to whom, in the protocol's own words.
//
// A service is handed a *Tracer by its caller. A nil *Tracer is valid and means
// tracing is off; every method on a nil Tracer or a nil *Conv returns at once
// without allocating, so protocol code calls them unconditionally:
//
//	c := tr.Conv("alice", "uppercase/tcp", trace.Server, conn.LocalAddr(), conn.RemoteAddr())
//	c.RecvBytes(line)      // "C: hello"
//	c.Send("HELLO")        // "S: HELLO"
//
// Consumers subscribe to a Tracer (Subscribe) and receive every Event on a
// channel; Transcript is the consumer behind the CLI's --trace flag, which
// prints events in the course's C: / S: style, and the lab's dashboard is
// another. The fan-out never lets a slow consumer stall a protocol unless that
// consumer asked to be lossless.
package trace

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Side says which end of a conversation an endpoint is.
type Side uint8

// The two sides of a conversation. A peer-to-peer protocol calls the side that
// opened the connection the Client.
const (
	Client Side = iota
	Server
)

func (s Side) String() string {
	if s == Server {
		return "server"
	}
	return "client"
}

// Dir says whether an event is a message sent, a message received, or a note
// about the conversation (opened, closed, an error).
type Dir uint8

// Directions of an Event.
const (
	Send Dir = iota
	Recv
	Note
)

func (d Dir) String() string {
	switch d {
	case Send:
		return "send"
	case Recv:
		return "recv"
	}
	return "note"
}

// Event is one protocol message (or note) as seen by one endpoint.
type Event struct {
	Time    time.Time
	Host    string // the lab host (or program) that recorded the event
	Proto   string // protocol and transport, e.g. "uppercase/tcp", "dns/udp"
	Side    Side   // the recording endpoint's side
	Dir     Dir
	Local   string // the recording endpoint's address
	Remote  string // the other endpoint's address
	Summary string // one line in the protocol's own words
}

// Speaker returns "C" when the client said the message, "S" when the server
// did, and "*" for a note. It is the label of the course's transcripts.
func (e Event) Speaker() string {
	switch {
	case e.Dir == Note:
		return "*"
	case (e.Side == Client) == (e.Dir == Send):
		return "C"
	default:
		return "S"
	}
}

// ClientAddr and ServerAddr return the addresses of the two ends, whichever
// end recorded the event.
func (e Event) ClientAddr() string {
	if e.Side == Client {
		return e.Local
	}
	return e.Remote
}

// ServerAddr returns the server end's address; see ClientAddr.
func (e Event) ServerAddr() string {
	if e.Side == Server {
		return e.Local
	}
	return e.Remote
}

// MaxSummary is the longest summary kept, in bytes; longer ones are cut and
// marked with the original length.
const MaxSummary = 240

// Tracer fans events out to its subscribers. The zero value is not usable;
// call New. A nil *Tracer is valid and records nothing.
type Tracer struct {
	now  func() time.Time
	subs atomic.Pointer[[]*Subscription] // copy on write; Emit reads without locking

	mu     sync.Mutex // serialises Subscribe, Close and unsubscribe
	closed bool
}

// New returns a Tracer with no subscribers.
func New() *Tracer {
	t := &Tracer{now: time.Now}
	t.subs.Store(new([]*Subscription))
	return t
}

// Enabled reports whether anyone is listening. Callers may use it to skip
// building an expensive summary.
func (t *Tracer) Enabled() bool {
	if t == nil {
		return false
	}
	return len(*t.subs.Load()) > 0
}

// Emit delivers e to every subscriber. It fills in Time when it is zero and
// cleans the summary (see Clean).
func (t *Tracer) Emit(e Event) {
	if t == nil {
		return
	}
	subs := *t.subs.Load()
	if len(subs) == 0 {
		return
	}
	if e.Time.IsZero() {
		e.Time = t.now()
	}
	e.Summary = Clean(e.Summary)
	for _, s := range subs {
		s.deliver(e)
	}
}

// Subscribe adds a consumer that receives events on a channel with room for
// buffer events. When lossless is false, an event that finds the channel full
// is dropped and counted (Dropped); when true, Emit waits for room, so the
// consumer paces the protocols it watches. Close the subscription when done.
func (t *Tracer) Subscribe(buffer int, lossless bool) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{t: t, c: make(chan Event, buffer), done: make(chan struct{}), lossless: lossless}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close(s.done)
		return s
	}
	old := *t.subs.Load()
	next := make([]*Subscription, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	t.subs.Store(&next)
	return s
}

// Close ends every subscription. Events emitted afterwards are discarded.
func (t *Tracer) Close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	subs := *t.subs.Load()
	t.subs.Store(new([]*Subscription))
	t.mu.Unlock()
	for _, s := range subs {
		s.stop()
	}
}

func (t *Tracer) remove(s *Subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.subs.Load()
	next := make([]*Subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	t.subs.Store(&next)
}

// Subscription is one consumer's view of a Tracer.
type Subscription struct {
	t        *Tracer
	c        chan Event
	done     chan struct{}
	once     sync.Once
	lossless bool
	dropped  atomic.Uint64
}

// C returns the channel events arrive on. It is never closed: select on Done
// as well, and drain C after Done to get the events sent before it.
func (s *Subscription) C() <-chan Event { return s.c }

// Done is closed when the subscription or its Tracer is closed.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Dropped returns how many events were dropped because the channel was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close stops the subscription; events already in the channel stay there.
func (s *Subscription) Close() {
	s.t.remove(s)
	s.stop()
}

func (s *Subscription) stop() { s.once.Do(func() { close(s.done) }) }

func (s *Subscription) deliver(e Event) {
	if s.lossless {
		select {
		case s.c <- e:
		case <-s.done:
		}
		return
	}
	select {
	case s.c <- e:
	default:
		s.dropped.Add(1)
	}
}

// Conv returns a recorder for one conversation (a connection, or one
// exchange of datagrams) as seen by one endpoint. It returns nil, which is a
// valid *Conv that records nothing, when t is nil or has no subscribers at the
// time of the call.
func (t *Tracer) Conv(host, proto string, side Side, local, remote net.Addr) *Conv {
	if !t.Enabled() {
		return nil
	}
	return &Conv{t: t, host: host, proto: proto, side: side, local: addrString(local), remote: addrString(remote)}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Conv records the messages of one conversation. A nil *Conv records nothing.
type Conv struct {
	t             *Tracer
	host, proto   string
	side          Side
	local, remote string
}

// Enabled reports whether the conversation is being recorded.
func (c *Conv) Enabled() bool { return c != nil }

func (c *Conv) emit(d Dir, summary string) {
	c.t.Emit(Event{Host: c.host, Proto: c.proto, Side: c.side, Dir: d, Local: c.local, Remote: c.remote, Summary: summary})
}

// Send records a message this endpoint sent.
func (c *Conv) Send(summary string) {
	if c != nil {
		c.emit(Send, summary)
	}
}

// Recv records a message this endpoint received.
func (c *Conv) Recv(summary string) {
	if c != nil {
		c.emit(Recv, summary)
	}
}

// SendBytes records a message sent, given as bytes; the conversion to a
// string happens only when tracing is on.
func (c *Conv) SendBytes(b []byte) {
	if c != nil {
		c.emit(Send, string(b))
	}
}

// RecvBytes records a message received, given as bytes.
func (c *Conv) RecvBytes(b []byte) {
	if c != nil {
		c.emit(Recv, string(b))
	}
}

// Notef records a note about the conversation, such as why it ended. The
// formatting happens only when tracing is on, but the arguments are
// evaluated by the caller either way.
func (c *Conv) Notef(format string, args ...any) {
	if c != nil {
		c.emit(Note, fmt.Sprintf(format, args...))
	}
}

// Clean makes a summary safe to print on one terminal line: control
// characters and invalid UTF-8 are escaped as in Go string literals, and
// anything past MaxSummary bytes is replaced by a count of the bytes left out.
// Trailing CR and LF are dropped first, since line protocols end every
// message with them.
func Clean(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	if isPlain(s) && len(s) <= MaxSummary {
		return s
	}
	b := make([]byte, 0, min(len(s), MaxSummary)+32)
	i := 0
	for i < len(s) && len(b) < MaxSummary {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\x`...)
			b = append(b, hex[s[i]>>4], hex[s[i]&0xf])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			q := strconv.QuoteRune(r)
			b = append(b, q[1:len(q)-1]...)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	if i < len(s) {
		b = fmt.Appendf(b, "… (%d bytes)", len(s))
	}
	return string(b)
}

const hex = "0123456789abcdef"

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
