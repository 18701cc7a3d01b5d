// Package experiment reproduces the course's quantitative results with real
// transfers between appnet's own servers and peers.
//
// Distribution time (Kurose & Ross, "Scalability of P2P architectures"): a
// file of F bytes goes from one server with upload rate u_s to N peers with
// upload u and download d. Client-server needs at least
//
//	D_cs  = max{ N·F/u_s, F/d_min }
//
// and P2P at least
//
//	D_p2p = max{ F/u_s, F/d_min, N·F/(u_s + Σu_i) }.
//
// Distribution runs both for real on loopback: an HTTP server whose total
// upload is capped at u_s serving N clients capped at d, and an appnet
// tracker, seeder (capped at u_s) and N appnet leechers (capped at u up and
// d down) started together. It records when each peer completes, checks
// every copy's hash, and compares the time until the last one completes
// with the bound.
package experiment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"appnet/p2p/metainfo"
	"appnet/p2p/torrent"
	"appnet/p2p/tracker"
)

// Params of a distribution experiment. Rates are in bytes per second.
type Params struct {
	Peers    []int // the values of N
	FileSize int64
	ServerUp int64 // u_s
	PeerUp   int64 // u (every peer the same)
	PeerDown int64 // d (every peer the same)
	Runs     int   // repetitions of each point
	// PieceSize of the torrent; default 32 KiB, so that even small files
	// have enough pieces to trade.
	PieceSize int64
	// ChokeInterval and OptimisticEvery scale the course's 10 s and 30 s
	// to the experiment's time scale: by default F/u / 8 and three times
	// that, so that a peer's choking is re-evaluated several times while a
	// copy takes F/u to upload.
	ChokeInterval, OptimisticEvery time.Duration
	Modes                          []string // "client-server", "p2p"; default both
	// Shaper is how the rates are enforced: "userspace" (token buckets
	// in the programs, on loopback; the default) or "netns" (a network
	// namespace per host, links shaped by tc; needs root).
	Shaper string
	Dir    string // scratch space; default a temporary folder
	Logger *slog.Logger
	// Progress, if set, hears of each finished run.
	Progress func(Result)
}

// Modes of Result.
const (
	ClientServer = "client-server"
	P2P          = "p2p"
)

// Result is one run of one mode at one N.
type Result struct {
	N        int
	Mode     string
	Run      int
	Measured time.Duration   // until the last peer completed
	Bound    time.Duration   // the course's lower bound for this mode
	PerPeer  []time.Duration // each peer's completion, sorted
	// ServerSent is what the server (seeder) uploaded, in copies of the
	// file: N for client-server; for P2P, how much the peers took from
	// the seeder rather than from each other.
	ServerSent float64
	// PeerUtilization is, for P2P, the share of the peers' total upload
	// capacity (N·u over the measured time) that they used.
	PeerUtilization float64
	// Wasted is, for P2P, the data the peers received twice or that
	// failed its check, in copies of the file.
	Wasted float64
}

// Ratio is measured time over the bound.
func (r Result) Ratio() float64 { return r.Measured.Seconds() / r.Bound.Seconds() }

// FOverU is F/u, the unit of the course's figure.
func (p Params) FOverU() time.Duration {
	return seconds(float64(p.FileSize) / float64(p.PeerUp))
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Bounds returns the course's minimum distribution times for n peers.
func (p Params) Bounds(n int) (cs, p2p time.Duration) {
	F, us, u, d := float64(p.FileSize), float64(p.ServerUp), float64(p.PeerUp), float64(p.PeerDown)
	N := float64(n)
	cs = seconds(math.Max(N*F/us, F/d))
	p2p = seconds(math.Max(math.Max(F/us, F/d), N*F/(us+N*u)))
	return cs, p2p
}

func (p *Params) defaults() error {
	if p.PieceSize == 0 {
		p.PieceSize = 32 << 10
	}
	if p.ChokeInterval == 0 && p.PeerUp > 0 {
		p.ChokeInterval = max(p.FOverU()/8, 50*time.Millisecond)
	}
	if p.OptimisticEvery == 0 {
		p.OptimisticEvery = 3 * p.ChokeInterval
	}
	if p.Runs < 1 {
		p.Runs = 1
	}
	if p.Shaper == "" {
		p.Shaper = "userspace"
	}
	if p.Shaper != "userspace" && p.Shaper != "netns" {
		return fmt.Errorf("experiment: unknown shaper %q (userspace or netns)", p.Shaper)
	}
	if len(p.Modes) == 0 {
		p.Modes = []string{ClientServer, P2P}
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case p.FileSize <= 0:
		return errors.New("experiment: the file size must be positive")
	case p.ServerUp <= 0 || p.PeerUp <= 0 || p.PeerDown <= 0:
		return errors.New("experiment: every rate must be positive")
	case len(p.Peers) == 0:
		return errors.New("experiment: no values of N")
	}
	for _, n := range p.Peers {
		if n < 1 || n > 256 {
			return fmt.Errorf("experiment: N = %d: want 1 to 256", n)
		}
	}
	for _, m := range p.Modes {
		if m != ClientServer && m != P2P && m != Optimal && m != Aria2 {
			return fmt.Errorf("experiment: unknown mode %q", m)
		}
	}
	return nil
}

// Distribution runs the experiment: for each N and run, each mode.
func Distribution(ctx context.Context, p Params) ([]Result, error) {
	if err := p.defaults(); err != nil {
		return nil, err
	}
	dir := p.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "appnet-experiment-")
		if err != nil {
			return nil, fmt.Errorf("experiment: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	file := filepath.Join(src, "file.bin")
	data := make([]byte, p.FileSize)
	rand.Read(data) //nolint:errcheck // never fails
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	sum := sha256.Sum256(data)
	var out []Result
	for _, n := range p.Peers {
		for run := 1; run <= p.Runs; run++ {
			for _, mode := range p.Modes {
				if err := ctx.Err(); err != nil {
					return out, err
				}
				runDir := filepath.Join(dir, fmt.Sprintf("%s-n%d-r%d", mode, n, run))
				nw, err := p.network(n)
				if err != nil {
					return out, err
				}
				var r Result
				switch mode {
				case ClientServer:
					r, err = runClientServer(ctx, p, nw, n, data, sum)
				case Optimal:
					r, err = runOptimal(ctx, p, nw, n, data, sum)
				case Aria2:
					r, err = runAria2(ctx, p, nw, n, file, runDir, sum)
				default:
					r, err = runP2P(ctx, p, nw, n, file, runDir, sum)
				}
				os.RemoveAll(runDir)
				if cerr := nw.close(); err == nil && cerr != nil {
					err = cerr
				}
				if err != nil {
					return out, fmt.Errorf("experiment: %s, N = %d: %w", mode, n, err)
				}
				r.N, r.Mode, r.Run = n, mode, run
				cs, p2p := p.Bounds(n)
				r.Bound = cs
				if mode != ClientServer {
					r.Bound = p2p
				}
				out = append(out, r)
				if p.Progress != nil {
					p.Progress(r)
				}
			}
		}
	}
	return out, nil
}

// network returns the hosts of one run: host 0 is the server (seeder,
// and the tracker), hosts 1 to n the peers.
func (p Params) network(n int) (network, error) {
	if p.Shaper != "netns" {
		return loopback{}, nil
	}
	up, down := make([]int64, n+1), make([]int64, n+1)
	up[0] = p.ServerUp
	for i := 1; i <= n; i++ {
		up[i], down[i] = p.PeerUp, p.PeerDown
	}
	return newNetns(up, down)
}

// tokenBucket is a rate.Limiter whose reservations are made one at a
// time, each at the time it is made. rate.Limiter takes the caller's
// time: goroutines that read the clock, then take its lock in another
// order, set its clock back, and the interval between is credited twice
// (a leak seen as a client-server run 0.6% under its bound on a loaded
// machine).
type tokenBucket struct {
	mu sync.Mutex
	l  *rate.Limiter
}

// newBucket returns a token bucket of bytesPerSec that starts empty, so
// that no interval of length T from the start carries more than
// bytesPerSec·T: the measured time can never beat the bound through a
// burst. It holds half a second of tokens, so that a goroutine woken late
// on a busy machine loses no capacity.
func newBucket(bytesPerSec int64) *tokenBucket {
	burst := int(max(bytesPerSec/2, 64<<10))
	l := rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	l.AllowN(time.Now(), burst)
	return &tokenBucket{l: l}
}

// waitN waits until b allows n bytes.
func waitN(ctx context.Context, b *tokenBucket, n int) error {
	for n > 0 {
		k := min(n, b.l.Burst())
		b.mu.Lock()
		r := b.l.ReserveN(time.Now(), k)
		b.mu.Unlock()
		if !r.OK() {
			return fmt.Errorf("experiment: %d bytes exceed the bucket", k)
		}
		if d := r.Delay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return ctx.Err()
			}
		}
		n -= k
	}
	return nil
}

// limitedWriter paces writes through a shared bucket: the server's total
// upload.
type limitedWriter struct {
	ctx context.Context
	w   http.ResponseWriter
	l   *tokenBucket
}

func (lw *limitedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		if err := waitN(lw.ctx, lw.l, k); err != nil {
			return written, err
		}
		n, err := lw.w.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

// runClientServer serves the file over HTTP with the server's upload capped
// at u_s in total, to n clients that each download at most d.
func runClientServer(ctx context.Context, p Params, nw network, n int, data []byte, sum [32]byte) (Result, error) {
	// The server's bucket is made when the clock starts (below), so it
	// holds no tokens saved up before.
	var up atomic.Pointer[tokenBucket]
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			if nw.shaped() {
				w.Write(data) //nolint:errcheck // a client gone is seen on its side
				return
			}
			lw := &limitedWriter{ctx: r.Context(), w: w, l: up.Load()}
			lw.Write(data) //nolint:errcheck
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ln, err := nw.listen(0)
	if err != nil {
		return Result{}, err
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer srv.Shutdown(context.Background())
	url := "http://" + ln.Addr().String() + "/file.bin"

	ctx, cancel := context.WithTimeout(ctx, 20*p.Bound(ClientServer, n)+30*time.Second)
	defer cancel()
	times := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	up.Store(newBucket(p.ServerUp))
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			down := p.PeerDown
			if nw.shaped() {
				down = 0
			}
			times[i], errs[i] = fetch(ctx, url, nw.dial(i+1), down, sum, start)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	r := finish(times)
	r.ServerSent = float64(n)
	return r, nil
}

// Bound returns the bound of mode for n peers.
func (p Params) Bound(mode string, n int) time.Duration {
	cs, p2p := p.Bounds(n)
	if mode == ClientServer {
		return cs
	}
	return p2p
}

// fetch downloads url, dialling with dial, at most at rate d (0: no
// limit), and checks the body's hash.
func fetch(ctx context.Context, url string, dial func(context.Context, string, string) (net.Conn, error), d int64, sum [32]byte, start time.Time) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	// One connection per client, as N separate hosts would have.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var down *tokenBucket
	if d > 0 {
		down = newBucket(d)
	}
	h := sha256.New()
	buf := make([]byte, 16<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if down != nil {
				if werr := waitN(ctx, down, n); werr != nil {
					return 0, werr
				}
			}
			h.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	took := time.Since(start)
	if [32]byte(h.Sum(nil)) != sum {
		return 0, errors.New("a client's copy differs from the file")
	}
	return took, nil
}

func finish(times []time.Duration) Result {
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return Result{Measured: times[len(times)-1], PerPeer: times}
}

// startSwarm starts appnet's tracker on host 0, the server's, and makes
// the file's torrent, announcing to it; stop ends the tracker.
func startSwarm(ctx context.Context, p Params, nw network, file string) (mi *metainfo.MetaInfo, stop func(), err error) {
	// Every peer may be on 127.0.0.1: the tracker's per-address limits are off.
	trk := &tracker.Server{Interval: time.Minute, MinInterval: time.Second, Logger: p.Logger, MaxPeersPerAddr: -1, AnnounceRate: -1, MaxConnsPerAddr: -1}
	tln, err := nw.listen(0)
	if err != nil {
		return nil, nil, err
	}
	go trk.Serve(tln) //nolint:errcheck // ends with Shutdown
	// Nothing to report when a run's tracker stops.
	stop = func() { trk.Shutdown(context.Background()) } //nolint:errcheck
	mi, err = metainfo.Create(ctx, file, metainfo.CreateOptions{PieceLength: p.PieceSize, Announce: "http://" + tln.Addr().String() + "/announce"})
	if err != nil {
		stop()
		return nil, nil, err
	}
	return mi, stop, nil
}

// runP2P distributes the file with appnet's tracker, one seeder capped at
// u_s, and n leechers capped at u up and d down, all started together. The
// leechers stay and upload until the last one completes, as the course's
// model assumes.
func runP2P(ctx context.Context, p Params, nw network, n int, file, dir string, sum [32]byte) (Result, error) {
	mi, stopTracker, err := startSwarm(ctx, p, nw, file)
	if err != nil {
		return Result{}, err
	}
	defer stopTracker()
	choke := torrent.ChokeConfig{Interval: p.ChokeInterval, OptimisticEvery: p.OptimisticEvery}

	type peer struct {
		t  *torrent.Torrent
		ln net.Listener
	}
	var peers []peer
	stopAll := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, pr := range peers {
			pr.t.Shutdown(sctx) //nolint:errcheck
		}
	}
	defer stopAll()
	add := func(host int, cfg torrent.Config) (*torrent.Torrent, error) {
		dial := nw.dial(host)
		cfg.Dial = dial
		cfg.Announcer = torrent.ClientAnnouncer(&tracker.Client{HTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial}}})
		cfg.Logger, cfg.Choke = p.Logger, choke
		cfg.SeedRatio, cfg.MaxConns, cfg.WantConns = torrent.SeedForever, 80, 80
		cfg.Tick = 100 * time.Millisecond
		if _, lo := nw.(loopback); lo {
			cfg.MaxConnsPerAddr = -1 // every peer is 127.0.0.1
		}
		if nw.shaped() {
			cfg.UpRate, cfg.DownRate = 0, 0 // the links enforce them
		}
		t, err := torrent.New(mi, cfg)
		if err != nil {
			return nil, err
		}
		ln, err := nw.listen(host)
		if err != nil {
			t.Shutdown(context.Background()) //nolint:errcheck
			return nil, err
		}
		peers = append(peers, peer{t, ln})
		return t, nil
	}
	if _, err := add(0, torrent.Config{Dir: filepath.Dir(file), UpRate: p.ServerUp}); err != nil {
		return Result{}, err
	}
	for i := range n {
		if _, err := add(i+1, torrent.Config{Dir: filepath.Join(dir, strconv.Itoa(i)), UpRate: p.PeerUp, DownRate: p.PeerDown}); err != nil {
			return Result{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*p.Bound(P2P, n)+30*time.Second)
	defer cancel()
	start := time.Now()
	for _, pr := range peers {
		pr.t.Start(ctx)
		go pr.t.Serve(pr.ln) //nolint:errcheck // ends with Shutdown
	}
	times := make([]time.Duration, n)
	for i, pr := range peers[1:] {
		select {
		case <-pr.t.Complete():
			times[i] = time.Since(start)
		case <-ctx.Done():
			st := pr.t.Status()
			return Result{}, fmt.Errorf("leecher %d did not complete: %d of %d pieces, %d peers", i, st.Have, st.Pieces, st.Peers)
		}
	}
	// The leechers are measured in the order they were created, but each
	// completion time is taken when its channel is seen closed: wait for
	// all, then read the exact times from the torrents.
	for i, pr := range peers[1:] {
		if at := pr.t.FinishedAt(); !at.IsZero() {
			times[i] = at.Sub(start)
		}
		got, err := fileSum(filepath.Join(dir, strconv.Itoa(i), mi.Info.Name))
		if err != nil {
			return Result{}, err
		}
		if got != sum {
			return Result{}, fmt.Errorf("leecher %d's copy differs from the file", i)
		}
	}
	r := finish(times)
	r.ServerSent = float64(peers[0].t.Status().Uploaded) / float64(p.FileSize)
	var up, wasted int64
	for _, pr := range peers[1:] {
		st := pr.t.Status()
		up += st.Uploaded
		wasted += st.Wasted
	}
	r.Wasted = float64(wasted) / float64(p.FileSize)
	r.PeerUtilization = float64(up) / (float64(n) * float64(p.PeerUp) * r.Measured.Seconds())
	return r, nil
}

func fileSum(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}
