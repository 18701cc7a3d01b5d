package chord

import (
	"context"
	"time"
)

// Clock is the node's source of time. SystemClock is the real one; a
// simulator supplies a virtual clock whose AfterFunc runs callbacks in
// virtual time (see appnet/p2p/chord/sim).
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once after d. Stop prevents a call that has not
	// started yet.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Transport carries one request to the node at addr and returns its
// reply. A transport error (unreachable, timeout) means the node may have
// failed; a failure the node reported comes back as a reply with Err set.
// TCPTransport is the real one; a simulator delivers in-process.
type Transport interface {
	Call(ctx context.Context, addr string, req *Message) (*Message, error)
}

// Handler answers requests; *Node is one.
type Handler interface {
	Handle(ctx context.Context, req *Message) *Message
}
