package torrent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"appnet/internal/connlimit"
	"appnet/p2p/metainfo"
	"appnet/p2p/peerwire"
	"appnet/trace"
)

// Config sets up one torrent. Zero values mean the defaults given.
type Config struct {
	Dir      string   // where the torrent's files are (or go)
	PeerID   [20]byte // default: "-AN0100-" and 12 random bytes
	Host     string   // name in traces
	Tracer   *trace.Tracer
	Logger   *slog.Logger
	MaxConns int // connections at most; default 50
	// MaxConnsPerAddr bounds the connections Serve accepts from one
	// address (an IPv4 address, an IPv6 /64), handshakes in progress
	// included, so that one host cannot take every slot; 0: the default,
	// DefaultMaxConnsPerAddr; negative: no cap, for many peers on one
	// address (the loopback experiment, tests). Serve holds at most
	// 2*MaxConns connections in all.
	MaxConnsPerAddr int
	// HandshakeTimeout cuts a connection whose BitTorrent handshake is
	// not complete in this long; default 10 s.
	HandshakeTimeout time.Duration
	// WantConns is how many connections the torrent tries to keep by
	// dialling the peers it learns of; default 30.
	WantConns int
	Choke     ChokeConfig
	UpRate    int64 // bytes/s; 0: unlimited
	DownRate  int64 // bytes/s; 0: unlimited
	// SeedRatio ends seeding once uploaded/size reaches it after the
	// download completes: 0 stops at once, a negative value never.
	// Default (unset): 1.0; use SeedForever or SeedNone to be explicit.
	SeedRatio *float64
	// Verify re-checks every piece on start even when resume data
	// exists.
	Verify bool
	// Trackers overrides the torrent's announce list; DisableTrackers
	// uses none (peers come from AddPeer only).
	Trackers        [][]string
	DisableTrackers bool
	// Announcer asks trackers for peers; nil uses the tracker client
	// (set by the caller, e.g. a tracker.Client wrapped by AnnounceFunc).
	Announcer Announcer
	// Dial, if set, opens connections to peers instead of a net.Dialer
	// (the experiments use it to dial from a network namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ListenPort is the port announced to trackers; 0 uses the port of
	// the listener given to Serve.
	ListenPort int
	// RequestTimeout cancels a request a peer has not answered in this
	// long; default 30 s.
	RequestTimeout time.Duration
	// Tick is the period of the housekeeping loop (rates, timeouts,
	// dialling); default 1 s.
	Tick time.Duration
	// AnnounceBackoff is the first wait after every tracker failed; it
	// doubles with each failed announce up to 10 minutes. Default 5 s.
	AnnounceBackoff time.Duration
	// ResumeEvery is how often verified pieces are synced and recorded
	// as resume data; default 5 s. A crash loses at most this much work.
	ResumeEvery time.Duration
}

// Seed-ratio helpers for Config.SeedRatio.
var (
	SeedNone    = ptr(0.0)
	SeedForever = ptr(-1.0)
)

func ptr[T any](v T) *T { return &v }

// DefaultMaxConnsPerAddr is Config.MaxConnsPerAddr's default. libtorrent
// allows one connection per IP address; a few more let several clients
// behind one NAT, or a peer's own reconnection racing its old connection,
// through, and are still far below MaxConns.
const DefaultMaxConnsPerAddr = 4

// maxBlockLen is the largest block we serve or accept.
const maxBlockLen = 128 << 10

// Torrent is one peer in one swarm: it downloads the torrent's missing
// pieces from other peers and uploads the pieces it has to them.
type Torrent struct {
	cfg      Config
	mi       *metainfo.MetaInfo
	info     *metainfo.Info
	layout   *metainfo.Layout
	infoHash [20]byte
	st       Storage
	files    *FileStorage // st, for the files' sizes and times
	log      *slog.Logger
	upLimit  *limiter
	downLim  *limiter
	resume   string
	inLimits *connlimit.Limits // what Serve accepts

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	picker      *picker
	peers       map[*peer]struct{}
	known       map[string]time.Time // addresses heard of, when last dialled
	banned      map[string]bool      // IP addresses proven to send bad data (smartban.go)
	smart       smartBan
	choker      *choker
	lastChoke   time.Time
	resumeDirty bool
	completed   bool // every piece verified
	complete    chan struct{}
	verifying   int
	listeners   map[net.Listener]struct{}
	trackerErr  string
	trackerOK   time.Time
	stopped     bool

	uploaded   atomic.Int64 // piece data sent
	downloaded atomic.Int64 // piece data received and verified
	wasted     atomic.Int64 // received but failed or duplicate
	wrote      atomic.Bool  // blocks written since resume data was last saved
	hashFails  atomic.Int64
	downMeter  meter
	upMeter    meter
	verifySem  chan struct{}
	kick       chan struct{} // dial now
	listening  chan struct{} // closed when the port to announce is known
	listenIP   string        // the listener's address, when bound to one
	startedAt  time.Time
	finishedAt time.Time
}

// Announcer asks trackers for peers on behalf of a torrent.
type Announcer interface {
	Announce(ctx context.Context, req AnnounceRequest) (AnnounceResponse, error)
}

// AnnounceRequest is what a torrent tells its trackers.
type AnnounceRequest struct {
	Trackers   [][]string // BEP 12 tiers
	InfoHash   [20]byte
	PeerID     [20]byte
	Port       int
	Uploaded   int64
	Downloaded int64
	Left       int64
	// IP is the address peers should dial, when the listener is bound
	// to one (a lab host's 127.0.0.x); empty: the tracker uses the
	// request's source.
	IP      string
	Event   string // "started", "completed", "stopped" or ""
	NumWant int
}

// AnnounceResponse is what a tracker answered.
type AnnounceResponse struct {
	Interval time.Duration
	Peers    []string // host:port
	Tracker  string   // which tracker answered
}

// New opens the torrent's storage below cfg.Dir, checks what is there
// (from resume data, or by hashing), and returns a Torrent ready to Start.
func New(mi *metainfo.MetaInfo, cfg Config) (*Torrent, error) {
	if cfg.Dir == "" {
		return nil, errors.New("torrent: no folder for the data")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 50
	}
	if cfg.MaxConnsPerAddr == 0 {
		cfg.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.WantConns <= 0 {
		cfg.WantConns = 30
	}
	if cfg.SeedRatio == nil {
		cfg.SeedRatio = ptr(1.0)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.AnnounceBackoff <= 0 {
		cfg.AnnounceBackoff = 5 * time.Second
	}
	if cfg.ResumeEvery <= 0 {
		cfg.ResumeEvery = 5 * time.Second
	}
	if cfg.PeerID == ([20]byte{}) {
		copy(cfg.PeerID[:], "-AN0100-")
		rand.Read(cfg.PeerID[8:]) //nolint:errcheck // never fails
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Trackers == nil && !cfg.DisableTrackers {
		cfg.Trackers = mi.AnnounceList
		if len(cfg.Trackers) == 0 && mi.Announce != "" {
			cfg.Trackers = [][]string{{mi.Announce}}
		}
	}
	st, err := OpenFiles(cfg.Dir, &mi.Info)
	if err != nil {
		return nil, err
	}
	t := &Torrent{
		cfg:       cfg,
		mi:        mi,
		info:      &mi.Info,
		layout:    metainfo.NewLayout(&mi.Info),
		infoHash:  mi.InfoHash(),
		st:        st,
		files:     st,
		log:       cfg.Logger.With("torrent", mi.Info.Name),
		peers:     make(map[*peer]struct{}),
		known:     make(map[string]time.Time),
		banned:    make(map[string]bool),
		complete:  make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		verifySem: make(chan struct{}, runtime.GOMAXPROCS(0)),
		kick:      make(chan struct{}, 1),
		listening: make(chan struct{}),
		inLimits:  connlimit.New(2*cfg.MaxConns, cfg.MaxConnsPerAddr),
	}
	if cfg.ListenPort != 0 {
		close(t.listening)
	}
	t.resume = resumePath(cfg.Dir, t.infoHash)
	have := newBitset(t.layout.NumPieces)
	if st.Empty() {
		// A new download: hashing its files would read gigabytes of holes.
		t.log.Debug("new files: nothing to check")
	} else if have, err = t.checkExisting(); err != nil {
		st.Close()
		return nil, err
	}
	t.picker = newPicker(t.layout.NumPieces, t.layout.PieceSize, have, randSeed())
	t.picker.onStart = func(piece, avail int, random bool) {
		mode := "rarest first"
		if random {
			mode = "random (first pieces)"
		}
		t.log.Debug("picked piece", "piece", piece, "availability", avail, "mode", mode)
	}
	t.choker = newChoker(cfg.Choke, randSeed())
	if have.count() == t.layout.NumPieces {
		t.completed = true
		close(t.complete)
	}
	return t, nil
}

func randSeed() uint64 {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck
	var s uint64
	for _, c := range b {
		s = s<<8 | uint64(c)
	}
	return s
}

// checkExisting decides which pieces are already on disk: from resume
// data when it exists (and Verify is off), with the recorded pieces of
// files changed since hashed again; otherwise by hashing every piece. Hashing
// runs in parallel on all cores.
func (t *Torrent) checkExisting() (bitset, error) {
	n := t.layout.NumPieces
	if !t.cfg.Verify {
		if have, files, ok := readResume(t.resume, t.infoHash, n); ok {
			changed := t.changedFiles(files)
			var recheck []int
			for i := range n {
				if have.get(i) && t.touchesAny(i, changed) {
					recheck = append(recheck, i)
				}
			}
			if len(recheck) == 0 {
				t.log.Debug("resume data", "pieces", have.count(), "of", n)
				return have, nil
			}
			good, err := t.hashPieces(recheck)
			if err != nil {
				return have, err
			}
			bad := 0
			for _, i := range recheck {
				if !good.get(i) {
					have.w[i>>6] &^= 1 << (uint(i) & 63)
					bad++
				}
			}
			t.log.Info("files changed since the resume data: their pieces were checked again", "checked", len(recheck), "failed", bad, "pieces", have.count(), "of", n)
			return have, nil
		}
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	have, err := t.hashPieces(all)
	if err != nil {
		return have, err
	}
	t.log.Debug("checked existing data", "pieces", have.count(), "of", n)
	return have, nil
}

// changedFiles reports, per file, whether its size or modification time
// when opened differs from what resume data recorded (every file, if the
// record does not match the torrent's files).
func (t *Torrent) changedFiles(recorded []FileState) []bool {
	opened := t.files.Opened()
	changed := make([]bool, len(opened))
	for i, o := range opened {
		changed[i] = len(recorded) != len(opened) || recorded[i].Size != o.Size || !recorded[i].MTime.Equal(o.MTime)
	}
	return changed
}

// touchesAny reports whether piece i has bytes in a file marked in files.
func (t *Torrent) touchesAny(i int, files []bool) bool {
	spans, err := t.layout.Spans(t.layout.PieceOffset(i), t.layout.PieceSize(i))
	if err != nil {
		return true
	}
	for _, sp := range spans {
		if files[sp.File] {
			return true
		}
	}
	return false
}

// hashPieces checks the given pieces against their hashes, in parallel on
// all cores, and returns those that match.
func (t *Torrent) hashPieces(pieces []int) (bitset, error) {
	have := newBitset(t.layout.NumPieces)
	var mu sync.Mutex
	var firstErr error
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= len(pieces) {
					return
				}
				var ok bool
				var err error
				ok, buf, err = verifyPiece(t.st, t.layout, t.info, pieces[k], buf)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if ok {
					have.set(pieces[k])
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return have, firstErr
}

// FinishedAt returns when the last missing piece was verified, or the zero
// Time if the torrent is not complete or was complete when it started.
func (t *Torrent) FinishedAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finishedAt
}

// InfoHash returns the torrent's info hash.
func (t *Torrent) InfoHash() [20]byte { return t.infoHash }

// Complete is closed when every piece has been verified.
func (t *Torrent) Complete() <-chan struct{} { return t.complete }

// Start begins the torrent's work: the housekeeping loop, and announcing
// to the trackers. Peers connect through Serve and AddPeer.
func (t *Torrent) Start(ctx context.Context) {
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.startedAt = time.Now()
	// The rate limits start now, with empty buckets.
	t.upLimit = newLimiter(t.cfg.UpRate)
	t.downLim = newLimiter(t.cfg.DownRate)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.loop()
	}()
	if t.cfg.Announcer != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.announceLoop()
		}()
	}
}

// Serve accepts peers on ln until Shutdown, at most 2*MaxConns at once and
// MaxConnsPerAddr from one address.
func (t *Torrent) Serve(ln net.Listener) error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	t.listeners[ln] = struct{}{}
	if t.cfg.ListenPort == 0 {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			t.cfg.ListenPort = a.Port
			if !a.IP.IsUnspecified() {
				t.listenIP = a.IP.String()
			}
			close(t.listening)
		}
	}
	t.mu.Unlock()
	// Connections over the caps are closed as they are accepted.
	ln = connlimit.Listen(ln, t.inLimits, nil)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("torrent: accept: %w", err)
		}
		backoff = 0
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.handle(c, false)
		}()
	}
}

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("torrent: closed")

// AddPeer adds the address of a peer to connect to.
func (t *Torrent) AddPeer(addr string) {
	t.mu.Lock()
	if _, ok := t.known[addr]; !ok && !t.isBanned(addr) {
		t.known[addr] = time.Time{}
	}
	t.mu.Unlock()
	t.kickDial()
}

// Shutdown stops the torrent: it tells the trackers it stopped (bounded by
// ctx), closes every connection and listener, saves resume data and closes
// the storage.
func (t *Torrent) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil
	}
	t.stopped = true
	for ln := range t.listeners {
		ln.Close()
	}
	for p := range t.peers {
		p.conn.Close()
	}
	t.mu.Unlock()
	if t.cancel != nil {
		t.cancel()
		if t.cfg.Announcer != nil && isClosed(t.listening) {
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			t.announce(actx, "stopped") //nolint:errcheck // best effort on the way out
			cancel()
		}
	}
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := t.saveResume()
	return errors.Join(err, t.st.Close())
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// saveResume syncs the data and then records the verified pieces and the
// files' sizes and times, when a piece was verified or a block written
// since the last record.
func (t *Torrent) saveResume() error {
	t.mu.Lock()
	wrote := t.wrote.Swap(false)
	if !t.resumeDirty && !wrote {
		t.mu.Unlock()
		return nil
	}
	t.resumeDirty = false
	have := bitset{w: append([]uint64(nil), t.picker.have.w...), n: t.picker.have.n}
	t.mu.Unlock()
	// Data first, then the record that claims it: after a crash the
	// record never names a piece that is not on disk. The files' times
	// are read after the sync, so they cover every write it made durable.
	err := t.st.Sync()
	var states []FileState
	if err == nil {
		states, err = t.files.FileStates()
	}
	if err == nil {
		err = writeResume(t.resume, t.infoHash, states, &have)
	}
	if err != nil {
		// Try again next time.
		t.mu.Lock()
		t.resumeDirty = true
		t.wrote.Store(true)
		t.mu.Unlock()
	}
	return err
}

// Status is a snapshot of a torrent's progress.
type Status struct {
	Name             string
	Pieces, Have     int
	Size, Left       int64
	Downloaded       int64 // verified piece data received
	Uploaded         int64
	Wasted           int64
	HashFails        int64
	DownRate, UpRate float64 // bytes/s
	Peers            int
	Unchoked         int // peers we let download from us
	Seeds            int
	Complete         bool
	Tracker          string // last tracker error, or "ok"
	ETA              time.Duration
	Banned           int
}

// Status returns the torrent's progress now.
func (t *Torrent) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	have := t.picker.have.count()
	s := Status{
		Name:       t.info.Name,
		Pieces:     t.layout.NumPieces,
		Have:       have,
		Size:       t.layout.TotalLength,
		Downloaded: t.downloaded.Load(),
		Uploaded:   t.uploaded.Load(),
		Wasted:     t.wasted.Load(),
		HashFails:  t.hashFails.Load(),
		DownRate:   t.downMeter.rate,
		UpRate:     t.upMeter.rate,
		Peers:      len(t.peers),
		Complete:   t.completed,
		Banned:     len(t.banned),
	}
	for i := 0; i < t.layout.NumPieces; i++ {
		if !t.picker.have.get(i) {
			s.Left += t.layout.PieceSize(i)
		}
	}
	for p := range t.peers {
		if !p.amChoking {
			s.Unchoked++
		}
		if p.seeder {
			s.Seeds++
		}
	}
	switch {
	case t.trackerErr != "":
		s.Tracker = t.trackerErr
	case !t.trackerOK.IsZero():
		s.Tracker = "ok"
	case t.cfg.Announcer == nil:
		s.Tracker = "none"
	default:
		s.Tracker = "announcing"
	}
	if s.DownRate > 0 && s.Left > 0 {
		s.ETA = time.Duration(float64(s.Left) / s.DownRate * float64(time.Second))
	}
	return s
}

// Done is closed when the torrent has nothing left to do: complete, and
// its seed ratio reached (never, for SeedForever).
func (t *Torrent) seedingDone() bool {
	r := *t.cfg.SeedRatio
	if !t.completed || r < 0 {
		return false
	}
	return float64(t.uploaded.Load()) >= r*float64(t.layout.TotalLength)
}

// Wait blocks until the torrent is complete and has seeded as its
// SeedRatio asks, or ctx ends.
func (t *Torrent) Wait(ctx context.Context) error {
	select {
	case <-t.complete:
	case <-ctx.Done():
		return ctx.Err()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		done := t.seedingDone()
		t.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// peerIDString is used for bans and logs.
func peerIDString(id [20]byte) string { return peerwire.PeerIDString(id) }
