package torrent

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"appnet/p2p/chord"
)

// startRing runs n Chord nodes on loopback, joined into one ring, and
// returns their addresses.
func startRing(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	cfg := chord.Config{StabilizeInterval: 20 * time.Millisecond, FixFingersInterval: 10 * time.Millisecond, CheckPredecessorInterval: 50 * time.Millisecond, ReplicateInterval: 100 * time.Millisecond, ExpireInterval: 100 * time.Millisecond}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := chord.NewPeer(ln, cfg, "chord", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Shutdown(ctx)
		})
		if i > 0 {
			if err := p.Join(context.Background(), addrs[0]); err != nil {
				t.Fatal(err)
			}
		}
		addrs = append(addrs, ln.Addr().String())
	}
	time.Sleep(300 * time.Millisecond) // a few stabilization rounds
	return addrs
}

// A trackerless torrent: the seeder and the leecher find each other only
// through a Chord ring, each talking to a different node of it.
func TestTrackerlessThroughChord(t *testing.T) {
	ring := startRing(t, 4)
	srcDir, mi := makeTorrent(t, 1<<20, 64<<10)
	startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, Announcer: DHTAnnouncer(ring[1], 10*time.Second), SeedRatio: SeedForever})
	time.Sleep(100 * time.Millisecond)
	leecher := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true, Announcer: DHTAnnouncer(ring[3], 10*time.Second), AnnounceBackoff: 100 * time.Millisecond})
	leecher.waitComplete(t, 30*time.Second, "the leecher")
	sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(leecher.t.cfg.Dir, "payload.bin"))
	if st := leecher.t.Status().Tracker; st != "ok" {
		t.Errorf("announce status %q", st)
	}
}
