package tracker

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// HashSize is the length of an info hash and of a peer ID.
const HashSize = 20

// Hash is an info hash or a peer ID: 20 bytes.
type Hash [HashSize]byte

// String returns h in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// short returns the first 4 bytes of h in hex and an ellipsis, for traces.
func (h Hash) short() string { return hex.EncodeToString(h[:4]) + "…" }

// ParseHash reads a 40-digit hex info hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("tracker: info hash %q: want %d hex digits", s, 2*HashSize)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("tracker: info hash %q: %w", s, err)
	}
	return h, nil
}

// Event is the event of an announce (BEP 3). The values are those of the
// UDP protocol (BEP 15).
type Event int32

// Announce events.
const (
	None      Event = 0 // a regular announce
	Completed Event = 1 // the download finished
	Started   Event = 2 // the first announce
	Stopped   Event = 3 // the peer is leaving
)

// String returns the event's name on the HTTP wire ("" for None).
func (e Event) String() string {
	switch e {
	case Completed:
		return "completed"
	case Started:
		return "started"
	case Stopped:
		return "stopped"
	case None:
		return ""
	}
	return fmt.Sprintf("event(%d)", int32(e))
}

// Request is an announce: what a peer tells the tracker about itself.
type Request struct {
	InfoHash   Hash
	PeerID     Hash
	Port       uint16
	Uploaded   int64
	Downloaded int64
	Left       int64
	Event      Event
	// NumWant is how many peers the peer wants; 0 or less asks for the
	// tracker's default.
	NumWant int
	// IP is the address the peer asks to be known by; the zero Addr means
	// its source address. Trackers honour it only in limited cases.
	IP        netip.Addr
	Key       uint32
	TrackerID string // echoed from an earlier response's "tracker id"
	// NoCompact asks an HTTP tracker for the dictionary model (compact=0).
	NoCompact bool
}

// Peer is one peer of a swarm as a tracker returns it. ID is zero when the
// tracker sent a compact list.
type Peer struct {
	ID   Hash
	Addr netip.AddrPort
}

// Response is a tracker's answer to an announce.
type Response struct {
	Interval    time.Duration
	MinInterval time.Duration // 0: not given
	Complete    int           // seeders
	Incomplete  int           // leechers
	Peers       []Peer
	TrackerID   string
	Warning     string // "warning message", if any
}

// ScrapeStats are a tracker's counts for one swarm (BEP 48).
type ScrapeStats struct {
	Complete   int // seeders now
	Downloaded int // completed events ever
	Incomplete int // leechers now
}

// FailureError is a tracker's refusal: the "failure reason" of an HTTP
// tracker or the message of a UDP error action.
type FailureError struct {
	URL    string
	Reason string
}

func (e *FailureError) Error() string {
	return fmt.Sprintf("tracker: %s: failure reason: %s", e.URL, e.Reason)
}

var (
	// ErrServerClosed is returned by Serve and ServeUDP after Shutdown.
	ErrServerClosed = errors.New("tracker: server closed")
	// ErrNoScrape says an announce URL has no scrape URL (BEP 48: its
	// last path element does not begin with "announce").
	ErrNoScrape = errors.New("tracker: the tracker offers no scrape")
	// ErrTimeout says a UDP tracker did not answer after every
	// retransmission.
	ErrTimeout = errors.New("tracker: no answer")
)

// ProtocolError is an answer that breaks the tracker protocol.
type ProtocolError struct {
	URL string
	Msg string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("tracker: %s: bad answer: %s", e.URL, e.Msg)
}
