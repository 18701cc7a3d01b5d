package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"appnet/p2p/tracker"
)

// TrackerConfig is the [host.NAME.tracker] table: a BitTorrent tracker
// over HTTP and UDP (p2p/tracker).
type TrackerConfig struct {
	HTTP        int           `toml:"http"`         // TCP port of /announce and /scrape; 0: none
	UDP         int           `toml:"udp"`          // UDP port (BEP 15); 0: none
	Interval    time.Duration `toml:"interval"`     // announce interval given to peers
	PeerTTL     time.Duration `toml:"peer_ttl"`     // forget silent peers after this; 0: 2×interval + 1m
	MaxNumwant  int           `toml:"max_numwant"`  // most peers in one answer
	MaxTorrents int           `toml:"max_torrents"` // most torrents tracked
	MaxPeers    int           `toml:"max_peers"`    // most peers per torrent
	Whitelist   []string      `toml:"whitelist"`    // info hashes (hex) served; empty: any
	// Limits against hostile peers (p2p/tracker's Server fields of the
	// same names); -1 turns a limit off, for many peers on one address.
	MaxBytes        int64   `toml:"max_bytes"`          // memory of all swarms, in bytes
	MaxPeersPerAddr int     `toml:"max_peers_per_addr"` // peers of a torrent from one address
	AnnounceRate    float64 `toml:"announce_rate"`      // announces a second from one address
	AnnounceBurst   int     `toml:"announce_burst"`     // announces from one address at once
	MaxConns        int     `toml:"max_conns"`          // HTTP connections at once
	MaxConnsPerAddr int     `toml:"max_conns_per_addr"` // HTTP connections from one address
	ShowPeerIDs     bool    `toml:"show_peer_ids"`      // give peer IDs in compact=0 answers
}

func init() {
	Register("tracker", "a BitTorrent tracker over HTTP and UDP (p2p/tracker)",
		func() *TrackerConfig {
			return &TrackerConfig{Interval: time.Minute, MaxNumwant: tracker.DefaultMaxNumwant, MaxTorrents: tracker.DefaultMaxTorrents, MaxPeers: tracker.DefaultMaxPeers,
				MaxBytes: tracker.DefaultMaxBytes, MaxPeersPerAddr: tracker.DefaultMaxPeersPerAddr, AnnounceRate: tracker.DefaultAnnounceRate, AnnounceBurst: tracker.DefaultAnnounceBurst,
				MaxConns: tracker.DefaultMaxConns, MaxConnsPerAddr: tracker.DefaultMaxConnsPerAddr}
		},
		validateTracker, startTracker)
}

func validateTracker(c *TrackerConfig) error {
	if err := CheckPort("http", c.HTTP); err != nil {
		return err
	}
	if err := CheckPort("udp", c.UDP); err != nil {
		return err
	}
	if c.HTTP == 0 && c.UDP == 0 {
		return errors.New("set an http or a udp port (or both)")
	}
	if c.Interval < time.Second {
		return FieldError("interval", "%v is shorter than a second", c.Interval)
	}
	if c.PeerTTL < 0 {
		return FieldError("peer_ttl", "must not be negative")
	}
	for field, v := range map[string]int{"max_numwant": c.MaxNumwant, "max_torrents": c.MaxTorrents, "max_peers": c.MaxPeers, "announce_burst": c.AnnounceBurst} {
		if v < 1 {
			return FieldError(field, "%d is not positive", v)
		}
	}
	for field, v := range map[string]float64{"max_bytes": float64(c.MaxBytes), "max_peers_per_addr": float64(c.MaxPeersPerAddr), "announce_rate": c.AnnounceRate,
		"max_conns": float64(c.MaxConns), "max_conns_per_addr": float64(c.MaxConnsPerAddr)} {
		if v <= 0 && v != -1 {
			return FieldError(field, "%v is neither positive nor -1 (no limit)", v)
		}
	}
	for _, s := range c.Whitelist {
		if _, err := tracker.ParseHash(s); err != nil {
			return FieldError("whitelist", "%q is not a 40-digit hex info hash", s)
		}
	}
	return nil
}

type trackerService struct {
	env       *Env
	srv       *tracker.Server
	endpoints []Endpoint
	known     tracker.Hash // a hash the whitelist lets in, for Check; zero: any
	wg        sync.WaitGroup
}

func startTracker(ctx context.Context, env *Env, c *TrackerConfig) (Service, error) {
	ts := &trackerService{env: env}
	ts.srv = &tracker.Server{
		Host: env.Host, Tracer: env.Tracer, Logger: env.Logger,
		Interval: c.Interval, PeerTTL: c.PeerTTL,
		MaxNumwant: c.MaxNumwant, MaxTorrents: c.MaxTorrents, MaxPeers: c.MaxPeers,
		MaxBytes: c.MaxBytes, MaxPeersPerAddr: c.MaxPeersPerAddr, AnnounceRate: c.AnnounceRate, AnnounceBurst: c.AnnounceBurst,
		MaxConns: c.MaxConns, MaxConnsPerAddr: c.MaxConnsPerAddr, ShowPeerIDs: c.ShowPeerIDs,
	}
	if len(c.Whitelist) > 0 {
		ts.srv.Whitelist = map[tracker.Hash]bool{}
		for i, s := range c.Whitelist {
			h, _ := tracker.ParseHash(s) // validated
			ts.srv.Whitelist[h] = true
			if i == 0 {
				ts.known = h
			}
		}
	}
	if c.HTTP != 0 {
		ln, err := env.Listen(ctx, c.HTTP)
		if err != nil {
			return nil, err
		}
		ts.endpoints = append(ts.endpoints, Endpoint{Proto: "tracker/http", Addr: netip.MustParseAddrPort(ln.Addr().String())})
		ts.serve(func() error { return ts.srv.Serve(ln) })
	}
	if c.UDP != 0 {
		pc, err := env.ListenPacket(ctx, c.UDP)
		if err != nil {
			ts.Shutdown(ctx) //nolint:errcheck
			return nil, err
		}
		ts.endpoints = append(ts.endpoints, Endpoint{Proto: "tracker/udp", Addr: netip.MustParseAddrPort(pc.LocalAddr().String())})
		ts.serve(func() error { return ts.srv.ServeUDP(pc) })
	}
	return ts, nil
}

func (ts *trackerService) serve(f func() error) {
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		if err := f(); err != nil && !errors.Is(err, tracker.ErrServerClosed) {
			ts.env.Logger.Error("tracker stopped", "err", err)
		}
	}()
}

func (ts *trackerService) url(ep Endpoint) string {
	if ep.Proto == "tracker/udp" {
		return "udp://" + ep.Addr.String()
	}
	return "http://" + ep.Addr.String() + "/announce"
}

func (ts *trackerService) Endpoints() []Endpoint { return ts.endpoints }

func (ts *trackerService) Try() []string {
	var out []string
	for _, ep := range ts.endpoints {
		out = append(out, fmt.Sprintf("appnet --trace tracker announce %s 0123456789abcdef0123456789abcdef01234567", ts.url(ep)))
	}
	if len(ts.endpoints) > 0 {
		out = append(out, fmt.Sprintf("appnet tracker scrape %s 0123456789abcdef0123456789abcdef01234567", ts.url(ts.endpoints[0])))
	}
	return out
}

// Check announces a made-up torrent once over each transport, as a leecher
// over the first and a seeder over the others, scrapes it, expects to see
// itself counted, and leaves again.
func (ts *trackerService) Check(ctx context.Context) []Probe {
	cl := &tracker.Client{Host: "lab-check", Tracer: ts.env.Tracer, Timeout: 5 * time.Second, UDPBase: time.Second, UDPRetries: 2}
	ih := ts.known
	if ih == (tracker.Hash{}) {
		rand.Read(ih[:])
	}
	var probes []Probe
	var announced []tracker.Request
	var urls []string
	for i, ep := range ts.endpoints {
		u := ts.url(ep)
		req := tracker.Request{InfoHash: ih, Port: uint16(6881 + i), Left: 1, Event: tracker.Started}
		copy(req.PeerID[:], fmt.Sprintf("-LC0001-check%07d", i))
		if i > 0 {
			req.Left = 0
		}
		start := time.Now()
		p := Probe{What: ep.Proto + " " + ep.Addr.String()}
		resp, err := cl.Announce(ctx, u, req)
		if err != nil {
			p.Err = err
			probes = append(probes, p)
			continue
		}
		announced, urls = append(announced, req), append(urls, u)
		stats, err := cl.Scrape(ctx, u, ih)
		switch st, ok := stats[ih]; {
		case err != nil:
			p.Err = fmt.Errorf("scrape: %w", err)
		case !ok || st.Complete+st.Incomplete != i+1:
			p.Err = fmt.Errorf("scrape counts %d seeders, %d leechers after %d announces", st.Complete, st.Incomplete, i+1)
		case len(resp.Peers) != i:
			p.Err = fmt.Errorf("announce returned %d peers, want %d", len(resp.Peers), i)
		default:
			p.Detail = fmt.Sprintf("announce %s… -> %d peers; scrape: %d seeders, %d leechers, in %v",
				ih.String()[:8], len(resp.Peers), st.Complete, st.Incomplete, time.Since(start).Round(10*time.Microsecond))
		}
		probes = append(probes, p)
	}
	for i, req := range announced {
		req.Event = tracker.Stopped
		cl.Announce(ctx, urls[i], req) //nolint:errcheck // leaving is best effort
	}
	return probes
}

func (ts *trackerService) Shutdown(ctx context.Context) error {
	err := ts.srv.Shutdown(ctx)
	ts.wg.Wait()
	return err
}
