package tracker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"appnet/internal/connlimit"
	"appnet/trace"
)

// Defaults of the Server's settings; a zero field means its default.
const (
	DefaultInterval       = 30 * time.Minute
	DefaultNumwant        = 50
	DefaultMaxNumwant     = 200
	DefaultMaxTorrents    = 100_000
	DefaultMaxPeers       = 20_000 // per torrent
	DefaultMaxScrape      = 74     // what fits in one UDP scrape (BEP 15)
	DefaultMaxHeaderBytes = 16 << 10

	// DefaultMaxPeersPerAddr is the most peers one source address (an
	// IPv4 address, an IPv6 /64) may have in one swarm: enough for the
	// households and NATs that share an address, far too few to fill a
	// swarm.
	DefaultMaxPeersPerAddr = 16
	// DefaultAnnounceRate and DefaultAnnounceBurst are the announces one
	// source address may make: a burst of 100 (a client starting many
	// torrents), then 10 a second (18,000 torrents at the default interval).
	DefaultAnnounceRate  = 10
	DefaultAnnounceBurst = 100
	// DefaultRateSources bounds the addresses whose announce rate is
	// followed at once: 65,536 × about 140 bytes, 9 MiB.
	DefaultRateSources = 1 << 16
	// DefaultMaxBytes bounds the memory of all swarms: about 900,000
	// peers (PeerBytes each).
	DefaultMaxBytes = 256 << 20
	// DefaultMaxConns and DefaultMaxConnsPerAddr bound the HTTP
	// connections held at once, in total and from one source address.
	DefaultMaxConns        = 2048
	DefaultMaxConnsPerAddr = 32
	// DefaultReadHeaderTimeout is how long an HTTP connection has to send
	// a request's headers, the first request's or a later one's.
	DefaultReadHeaderTimeout = 5 * time.Second
)

// PeerBytes is what the store counts for one peer against MaxBytes (a
// swarm costs about as much again, once).
const PeerBytes = peerBytes

// Server is a BitTorrent tracker over HTTP (Serve) and UDP (ServeUDP),
// both answering from one in-memory store. Set its fields before the first
// Serve; zero values mean the defaults above. A Server is also an
// http.Handler (ServeHTTP), for mounting in another HTTP server.
type Server struct {
	Host   string        // name reported in traces
	Tracer *trace.Tracer // nil: no tracing
	Logger *slog.Logger  // nil: slog.Default()

	// Interval is the announce interval given to peers; MinInterval the
	// "min interval" (default Interval/2).
	Interval    time.Duration
	MinInterval time.Duration
	// PeerTTL is how long a peer that does not announce stays in its swarm
	// (default 2×Interval + 1 minute). The server checks every
	// ExpireEvery (default PeerTTL/4, but at least a second).
	PeerTTL     time.Duration
	ExpireEvery time.Duration
	// DefaultNumwant is the number of peers given when the peer does not
	// say (default 50); MaxNumwant caps what a peer may ask for (200).
	DefaultNumwant int
	MaxNumwant     int
	// MaxTorrents and MaxPeers bound the store: swarms, and peers in one
	// swarm. MaxScrape bounds the info hashes in one scrape.
	MaxTorrents int
	MaxPeers    int
	MaxScrape   int
	// MaxBytes bounds the store's memory across all swarms (default 256
	// MiB; PeerBytes a peer): a new peer beyond it makes the tracker
	// forget the least recently seen peers, of any swarm. Negative: no
	// bound.
	MaxBytes int64
	// MaxPeersPerAddr is the most peers of one swarm from one source
	// address (an IPv4 address or an IPv6 /64; default 16): one more is
	// refused with a failure reason. The address is the peer's as settled
	// from its source (see the package doc). Negative: no limit, for
	// experiments that run every peer on one address.
	MaxPeersPerAddr int
	// AnnounceRate and AnnounceBurst bound the announces of one source
	// address, as a token bucket (default 10 a second, bursts of 100); an
	// announce beyond them is refused with a failure reason. RateSources
	// bounds the buckets kept (default 65,536; the least recently used
	// goes first, an idle one at once). A negative AnnounceRate means no
	// limit.
	AnnounceRate  float64
	AnnounceBurst int
	RateSources   int
	// ShowPeerIDs gives each peer's peer_id in dictionary-model answers
	// (compact=0) unless the peer asks no_peer_id=1. By default peer IDs
	// are never given: they name the client and its version, and a peer
	// that knows another's peer_id is one step closer to posing as it.
	ShowPeerIDs bool
	// MaxConns and MaxConnsPerAddr bound the HTTP connections held at
	// once, in total (default 2048) and from one source address (default
	// 32); a connection over either is closed at once. Negative: no cap.
	// ReadHeaderTimeout (default 5 s) cuts a connection that is slow to
	// send a request's headers.
	MaxConns          int
	MaxConnsPerAddr   int
	ReadHeaderTimeout time.Duration
	// Whitelist, when not nil, is the set of info hashes served; announces
	// for others are refused and scrapes leave them out.
	Whitelist map[Hash]bool
	// TrackerID is sent as "tracker id" in HTTP responses when not empty.
	TrackerID string
	// Now is the clock (default time.Now); tests set it to move time.
	Now func() time.Time
	// Secret keys the UDP connection IDs (default: 32 random bytes).
	Secret []byte
	// UDPReaders is the number of goroutines reading each UDP socket
	// (default 1: in BenchmarkVsOpentracker, 2 or 4 readers of one
	// socket answered 30-40% fewer announces than one, as they contend
	// for the socket and the store's lock).
	UDPReaders int

	initOnce sync.Once
	st       *store
	hs       *http.Server
	conns    *connlimit.Limits
	secret   []byte
	macs     sync.Pool // of keyed HMACs for UDP connection IDs

	mu        sync.Mutex // guards pcs, fresh, janitorOn, and wg.Add against Shutdown
	pcs       map[net.PacketConn]struct{}
	fresh     map[net.Conn]struct{} // HTTP connections that have sent nothing yet
	janitorOn bool
	closing   atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup // the janitor and the UDP readers

	// Announces, Scrapes and Failures count requests answered, over both
	// transports; Failures counts refusals and malformed requests.
	Announces, Scrapes, Failures atomic.Uint64
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		var seed [8]byte
		rand.Read(seed[:])
		s.st = newStore(binary.LittleEndian.Uint64(seed[:]))
		s.secret = s.Secret
		if len(s.secret) == 0 {
			s.secret = make([]byte, 32)
			rand.Read(s.secret)
		}
		s.stop = make(chan struct{})
		s.conns = connlimit.New(orNone(s.MaxConns, DefaultMaxConns), orNone(s.MaxConnsPerAddr, DefaultMaxConnsPerAddr))
		s.hs = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: cmp.Or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout),
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    DefaultMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
			ConnState:         s.connState,
		}
	})
}

// orNone resolves a limit: zero means def, negative none (0).
func orNone[T int | int64 | float64](v, def T) T {
	if v == 0 {
		return def
	}
	return max(v, 0)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) interval() time.Duration { return cmp.Or(s.Interval, DefaultInterval) }

func (s *Server) minInterval() time.Duration { return cmp.Or(s.MinInterval, s.interval()/2) }

func (s *Server) peerTTL() time.Duration { return cmp.Or(s.PeerTTL, 2*s.interval()+time.Minute) }

func (s *Server) numwant(asked int) int {
	if asked <= 0 {
		asked = cmp.Or(s.DefaultNumwant, DefaultNumwant)
	}
	return min(asked, cmp.Or(s.MaxNumwant, DefaultMaxNumwant))
}

func (s *Server) maxScrape() int { return cmp.Or(s.MaxScrape, DefaultMaxScrape) }

// startJanitor starts the goroutine that expires silent peers, once, unless
// the server is shutting down.
func (s *Server) startJanitor() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.janitorOn || s.closing.Load() {
		return
	}
	s.janitorOn = true
	every := s.ExpireEvery
	if every <= 0 {
		every = max(s.peerTTL()/4, time.Second)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if n := s.Expire(); n > 0 {
					s.logger().Debug("tracker: expired silent peers", "peers", n)
				}
			}
		}
	}()
}

// Expire forgets the peers that have not announced for PeerTTL, by the
// server's clock, and returns how many. It scans every peer under the
// store's lock. The server calls it periodically
// while it serves; tests call it after moving Now.
func (s *Server) Expire() int {
	s.init()
	return s.st.expire(s.now().Add(-s.peerTTL()))
}

// Stats returns the counts of one swarm, as a scrape would.
func (s *Server) Stats(h Hash) ScrapeStats {
	s.init()
	return s.st.scrape([]Hash{h})[0]
}

// Peers returns the peers of one swarm, in no order.
func (s *Server) Peers(h Hash) []Peer {
	s.init()
	return s.st.peersOf(h)
}

// Size returns the number of swarms and of peers in all of them.
func (s *Server) Size() (torrents, peers int) {
	s.init()
	return s.st.size()
}

// Memory returns the bytes the store counts for its swarms (see MaxBytes)
// and the peers it forgot so far to stay within MaxBytes.
func (s *Server) Memory() (bytes, evicted int64) {
	s.init()
	return s.st.memory()
}

// ConnStats returns the HTTP connections held now, the source addresses
// holding them and the connections refused so far by MaxConns and
// MaxConnsPerAddr.
func (s *Server) ConnStats() (active, sources int, refused int64) {
	s.init()
	return s.conns.Stats()
}

// ListenAndServe serves HTTP on the TCP address addr.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	return s.Serve(ln)
}

// ListenAndServeUDP serves the UDP protocol on the UDP address addr.
func (s *Server) ListenAndServeUDP(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	return s.ServeUDP(pc)
}

// Serve answers HTTP announces and scrapes on ln until Shutdown, and
// returns ErrServerClosed then. It closes ln. It holds at most MaxConns
// connections, MaxConnsPerAddr from one address, and closes the others
// as they come.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.closing.Load() {
		ln.Close()
		return ErrServerClosed
	}
	s.startJanitor()
	err := s.hs.Serve(connlimit.Listen(ln, s.conns, nil))
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return fmt.Errorf("tracker: %w", err)
}

// Shutdown stops the server: it closes the listeners and UDP sockets,
// lets HTTP requests in progress finish (until ctx ends), stops the expiry
// ticker and waits for every goroutine of the server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	first := !s.closing.Swap(true)
	for pc := range s.pcs {
		pc.Close()
	}
	// A connection that has sent nothing has nothing to finish; net/http
	// would wait 5 s before taking it for idle.
	for c := range s.fresh {
		c.Close()
	}
	s.mu.Unlock()
	if first {
		close(s.stop)
	}
	err := s.hs.Shutdown(ctx)
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	return nil
}

// connState tracks the HTTP connections that have not sent a byte yet, so
// Shutdown can close them at once, and closes new ones during Shutdown.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != http.StateNew {
		delete(s.fresh, c)
		return
	}
	if s.closing.Load() {
		c.Close()
		return
	}
	if s.fresh == nil {
		s.fresh = make(map[net.Conn]struct{})
	}
	s.fresh[c] = struct{}{}
}

// peerAddr settles the address a peer is known by: its source address,
// or the address it gave (ip parameter, UDP IP field) when that is the
// source itself or both are loopback addresses. See the package doc.
func peerAddr(source netip.Addr, asked netip.Addr, port uint16) netip.AddrPort {
	source = source.Unmap()
	asked = asked.Unmap()
	if asked.IsValid() && !asked.IsUnspecified() && (asked == source || (asked.IsLoopback() && source.IsLoopback())) {
		source = asked
	}
	return netip.AddrPortFrom(source, port)
}

// allowed reports whether the whitelist lets h in.
func (s *Server) allowed(h Hash) bool {
	return s.Whitelist == nil || s.Whitelist[h]
}

// announce runs an announce against the store.
func (s *Server) announce(req Request, source netip.Addr, family int) (announceOut, error) {
	return s.announceBuf(req, source, family, nil)
}

// announceBuf is announce with a buffer for the peers picked.
func (s *Server) announceBuf(req Request, source netip.Addr, family int, peers []Peer) (announceOut, error) {
	s.init()
	if !s.allowed(req.InfoHash) {
		return announceOut{}, refuse("info_hash: %s is not served by this tracker", req.InfoHash)
	}
	in := announceIn{
		req:     req,
		addr:    peerAddr(source, req.IP, req.Port),
		fromIP:  source.Unmap(),
		from:    sourceOf(source),
		now:     s.now(),
		numwant: s.numwant(req.NumWant),
		family:  family,
		limits: limits{
			maxSwarms:   cmp.Or(s.MaxTorrents, DefaultMaxTorrents),
			maxPeers:    cmp.Or(s.MaxPeers, DefaultMaxPeers),
			maxPerAddr:  orNone(s.MaxPeersPerAddr, DefaultMaxPeersPerAddr),
			maxBytes:    orNone(s.MaxBytes, DefaultMaxBytes),
			rate:        orNone(s.AnnounceRate, DefaultAnnounceRate),
			burst:       float64(max(orNone(s.AnnounceBurst, DefaultAnnounceBurst), 1)),
			rateSources: orNone(s.RateSources, DefaultRateSources),
		},
		dst: peers,
	}
	return s.st.announce(&in)
}

// scrape returns the stats of hashes; a swarm not in the store (never
// announced, or refused by the whitelist) has zero counts.
func (s *Server) scrape(hashes []Hash) []ScrapeStats {
	s.init()
	return s.st.scrape(hashes)
}

// announceSummary is the one trace line of an announce.
func announceSummary(req *Request, numwant int, out *announceOut, err error) string {
	ev := ""
	if req.Event != None {
		ev = " " + req.Event.String()
	}
	head := fmt.Sprintf("announce %s%s port=%d left=%d numwant=%d -> ", req.InfoHash.short(), ev, req.Port, req.Left, numwant)
	if err != nil {
		return head + "failure: " + err.Error()
	}
	return head + fmt.Sprintf("%d peers (%d seeders, %d leechers)", len(out.peers), out.stats.Complete, out.stats.Incomplete)
}

func scrapeSummary(hashes []Hash, stats []ScrapeStats) string {
	if len(hashes) == 1 {
		st := stats[0]
		return fmt.Sprintf("scrape %s -> complete=%d incomplete=%d downloaded=%d", hashes[0].short(), st.Complete, st.Incomplete, st.Downloaded)
	}
	return fmt.Sprintf("scrape %d info hashes", len(hashes))
}
