package torrent

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/p2p/metainfo"
	"appnet/p2p/peerwire"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(resumeChild())
	}
	goleak.VerifyTestMain(m)
}

// makeTorrent writes size random bytes to a file in a new folder and
// returns the folder and the torrent of the file.
func makeTorrent(t testing.TB, size int, pieceLen int64) (string, *metainfo.MetaInfo) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "payload.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(context.Background(), filepath.Join(dir, "payload.bin"), metainfo.CreateOptions{PieceLength: pieceLen})
	if err != nil {
		t.Fatal(err)
	}
	return dir, mi
}

// syncWriter serialises log writes from many goroutines.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// node is one running Torrent with its listener.
type node struct {
	t    *Torrent
	addr string
	done chan error
	once sync.Once
}

// startNode starts a Torrent with cfg on 127.0.0.1. Its listener takes
// any number of connections from one address (every test peer is on
// 127.0.0.1) unless cfg says otherwise.
func startNode(t testing.TB, mi *metainfo.MetaInfo, cfg Config) *node {
	t.Helper()
	if cfg.MaxConnsPerAddr == 0 {
		cfg.MaxConnsPerAddr = -1
	}
	tor, err := New(mi, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: tor, addr: ln.Addr().String(), done: make(chan error, 1)}
	tor.Start(context.Background())
	go func() { n.done <- tor.Serve(ln) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// waitComplete fails the test unless n has every piece within d; what
// names n in the message.
func (n *node) waitComplete(t testing.TB, d time.Duration, what string) {
	t.Helper()
	select {
	case <-n.t.Complete():
	case <-time.After(d):
		t.Fatalf("%s did not complete in %v: %+v", what, d, n.t.Status())
	}
}

// stop shuts n down and checks that Serve returned; a second call does
// nothing.
func (n *node) stop(t testing.TB) { n.once.Do(func() { n.stopOnce(t) }) }

func (n *node) stopOnce(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.t.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case <-n.done:
	case <-ctx.Done():
		t.Error("Serve did not return")
	}
}

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ", a, b)
	}
}

// A seeder and 8 leechers, rate limited, all complete; the log shows
// rarest-first picking and the rechoke cycle (1 s rounds, 3 s optimistic
// unchokes: the course's 10 s and 30 s scaled down).
func TestSwarm(t *testing.T) {
	srcDir, mi := makeTorrent(t, 3<<20, 32<<10) // 96 pieces
	logs := &syncWriter{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	choke := ChokeConfig{Interval: time.Second, OptimisticEvery: 3 * time.Second}
	seeder := startNode(t, mi, Config{Dir: srcDir, Logger: logger.With("node", "seeder"), UpRate: 1 << 20, Choke: choke, DisableTrackers: true, Tick: 100 * time.Millisecond, SeedRatio: SeedForever})
	if !seeder.t.Status().Complete {
		t.Fatal("the seeder does not have the whole file")
	}
	var leechers []*node
	for i := range 8 {
		l := startNode(t, mi, Config{
			Dir: t.TempDir(), Logger: logger.With("node", "leecher"+string(rune('0'+i))),
			UpRate: 512 << 10, DownRate: 2 << 20, Choke: choke, DisableTrackers: true,
			Tick: 100 * time.Millisecond, SeedRatio: SeedForever,
		})
		l.t.AddPeer(seeder.addr)
		for _, o := range leechers {
			l.t.AddPeer(o.addr)
		}
		leechers = append(leechers, l)
	}
	deadline := time.Now().Add(90 * time.Second)
	for i, l := range leechers {
		l.waitComplete(t, time.Until(deadline), fmt.Sprintf("leecher %d", i))
	}
	var fromPeers int64
	for _, l := range leechers {
		sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(l.t.cfg.Dir, "payload.bin"))
		fromPeers += l.t.Status().Uploaded
	}
	// The seeder alone could not have sent 8 copies at its rate in the
	// time: the leechers traded among themselves.
	if fromPeers == 0 {
		t.Error("leechers uploaded nothing to each other")
	}
	out := logs.String()
	for _, want := range []string{`mode="rarest first"`, `mode="random (first pieces)"`, "msg=rechoke", `"new optimistic"=true`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	t.Logf("leechers uploaded %d bytes to each other; seeder uploaded %d", fromPeers, seeder.t.Status().Uploaded)
}

// Two peers, no limits: a download completes and the files are identical.
func TestPairDownload(t *testing.T) {
	srcDir, mi := makeTorrent(t, 5<<20+12345, 256<<10)
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever})
	leecher := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true})
	leecher.t.AddPeer(seeder.addr)
	leecher.waitComplete(t, 30*time.Second, "the leecher")
	sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(leecher.t.cfg.Dir, "payload.bin"))
}

// Two peers that dial each other at the same moment end up connected once,
// not zero times: each end would otherwise keep the connection it admitted
// first and close the other, the one the other end kept.
func TestSimultaneousDialKeepsOneConnection(t *testing.T) {
	src, mi := makeTorrent(t, 256<<10, 64<<10)
	for round := range 8 {
		a := startNode(t, mi, Config{Dir: src, DisableTrackers: true, SeedRatio: SeedForever})
		b := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true, SeedRatio: SeedForever})
		go a.t.AddPeer(b.addr)
		go b.t.AddPeer(a.addr)
		b.waitComplete(t, 10*time.Second, fmt.Sprintf("round %d: the leecher", round))
		// Both directions were dialled; one connection remains at both ends.
		deadline := time.Now().Add(2 * time.Second)
		for a.t.Status().Peers != 1 || b.t.Status().Peers != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d and %d connections, want 1 at each end", round, a.t.Status().Peers, b.t.Status().Peers)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A peer that hangs up is forgotten at once, even when we had nothing to
// send it: its requests go back to the pool then, not when our writer next
// wakes (a keep-alive, two minutes later).
func TestClosedPeerIsRemoved(t *testing.T) {
	src, mi := makeTorrent(t, 256<<10, 64<<10)
	a := startNode(t, mi, Config{Dir: src, DisableTrackers: true, SeedRatio: SeedForever})
	c, err := net.Dial("tcp", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: mi.InfoHash(), PeerID: [20]byte{'-', 'T', 'T'}}); err != nil {
		t.Fatal(err)
	}
	if _, err := peerwire.ReadHandshake(c); err != nil {
		t.Fatal(err)
	}
	// Our bitfield comes, then nothing: we are not interested.
	var m peerwire.Message
	if err := peerwire.NewReader(c).ReadMessage(&m); err != nil || m.ID != peerwire.MsgBitfield {
		t.Fatalf("first message %v, %v; want a bitfield", m.ID, err)
	}
	time.Sleep(100 * time.Millisecond) // the writer has gone idle
	if n := a.t.Status().Peers; n != 1 {
		t.Fatalf("%d peers, want 1", n)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for a.t.Status().Peers != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection is still counted as a peer after 2 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
