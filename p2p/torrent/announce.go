package torrent

import (
	"context"
	"net/netip"
	"sync"
	"time"

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
