package torrent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"appnet/p2p/chord"

	"appnet/p2p/tracker"
	"appnet/trace"
)

// TrackerAnnouncer returns an Announcer that speaks to HTTP and UDP
// trackers (p2p/tracker), walking a torrent's BEP 12 tiers in order.
func TrackerAnnouncer(tr *trace.Tracer) Announcer {
	return ClientAnnouncer(&tracker.Client{Host: "peer", Tracer: tr, Timeout: 15 * time.Second, UDPBase: 2 * time.Second, UDPRetries: 2})
}

// ClientAnnouncer is TrackerAnnouncer with a tracker client of the
// caller's, e.g. one whose HTTP client dials from another network.
func ClientAnnouncer(c *tracker.Client) Announcer {
	return &trackerAnnouncer{client: c, tiers: map[[20]byte]*tracker.Tiers{}}
}

type trackerAnnouncer struct {
	client *tracker.Client
	mu     sync.Mutex
	tiers  map[[20]byte]*tracker.Tiers
}

func (a *trackerAnnouncer) Announce(ctx context.Context, req AnnounceRequest) (AnnounceResponse, error) {
	if trackerless(req) {
		return AnnounceResponse{}, ErrNoTracker
	}
	a.mu.Lock()
	tiers := a.tiers[req.InfoHash]
	if tiers == nil {
		tiers = tracker.NewTiers(a.client, "", req.Trackers)
		a.tiers[req.InfoHash] = tiers
	}
	a.mu.Unlock()
	ev := tracker.None
	switch req.Event {
	case "started":
		ev = tracker.Started
	case "completed":
		ev = tracker.Completed
	case "stopped":
		ev = tracker.Stopped
	}
	treq := tracker.Request{
		InfoHash: req.InfoHash, PeerID: req.PeerID, Port: uint16(req.Port),
		Uploaded: req.Uploaded, Downloaded: req.Downloaded, Left: req.Left, Event: ev, NumWant: req.NumWant,
	}
	if ip, err := netip.ParseAddr(req.IP); err == nil {
		treq.IP = ip
	}
	resp, url, err := tiers.Announce(ctx, treq)
	if err != nil {
		return AnnounceResponse{}, err
	}
	out := AnnounceResponse{Interval: resp.Interval, Tracker: url}
	for _, p := range resp.Peers {
		out.Peers = append(out.Peers, p.Addr.String())
	}
	return out, nil
}

// trackerless reports a request with no tracker to ask.
func trackerless(req AnnounceRequest) bool {
	for _, tier := range req.Trackers {
		if len(tier) > 0 {
			return false
		}
	}
	return true
}

// ErrNoTracker says a torrent has no tracker to announce to.
var ErrNoTracker = errors.New("torrent: no tracker to announce to")

// DHTAnnouncer finds peers through a Chord ring reached at node (p2p/chord):
// it stores our address under key = info hash, as an indirect reference
// that expires after ttl unless announced again (every ttl/2), and reads
// the addresses other peers stored there.
func DHTAnnouncer(node string, ttl time.Duration) Announcer {
	return &dhtAnnouncer{node: node, ttl: ttl}
}

type dhtAnnouncer struct {
	node string
	ttl  time.Duration
}

func (d *dhtAnnouncer) Announce(ctx context.Context, req AnnounceRequest) (AnnounceResponse, error) {
	resp := AnnounceResponse{Interval: d.ttl / 2, Tracker: "chord " + d.node}
	if req.Event == "stopped" {
		return resp, nil // the entry expires by itself; Chord has no delete
	}
	ip := req.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	self := net.JoinHostPort(ip, strconv.Itoa(req.Port))
	if err := chord.AnnouncePeer(ctx, d.node, req.InfoHash, self, d.ttl); err != nil {
		return resp, fmt.Errorf("torrent: dht: %w", err)
	}
	peers, err := chord.GetPeers(ctx, d.node, req.InfoHash)
	if err != nil {
		return resp, fmt.Errorf("torrent: dht: %w", err)
	}
	for _, p := range peers {
		if p != self {
			resp.Peers = append(resp.Peers, p)
		}
	}
	return resp, nil
}

// Announcers asks each announcer in turn (trackers, a DHT) and merges the
// peers they return. It fails only when every one that applies fails; a
// tracker announcer is skipped for a torrent without trackers.
func Announcers(list ...Announcer) Announcer { return multiAnnouncer(list) }

type multiAnnouncer []Announcer

func (m multiAnnouncer) Announce(ctx context.Context, req AnnounceRequest) (AnnounceResponse, error) {
	var out AnnounceResponse
	var errs []error
	seen := map[string]bool{}
	ok := false
	for _, a := range m {
		if _, isTracker := a.(*trackerAnnouncer); isTracker && trackerless(req) {
			continue
		}
		resp, err := a.Announce(ctx, req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok = true
		if out.Interval == 0 || resp.Interval < out.Interval {
			out.Interval = resp.Interval
		}
		if out.Tracker != "" {
			out.Tracker += ", "
		}
		out.Tracker += resp.Tracker
		for _, p := range resp.Peers {
			if !seen[p] {
				seen[p] = true
				out.Peers = append(out.Peers, p)
			}
		}
	}
	if !ok {
		if len(errs) == 0 {
			return out, ErrNoTracker
		}
		return out, errors.Join(errs...)
	}
	return out, nil
}
