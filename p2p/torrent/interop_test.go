package torrent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/internal/testnet"
	"appnet/p2p/metainfo"
	"appnet/p2p/tracker"
)

// startTracker runs our tracker on loopback for one test and returns its
// HTTP announce URL.
func startTracker(t testing.TB) (string, *tracker.Server) {
	t.Helper()
	s := &tracker.Server{Interval: 2 * time.Second, MinInterval: time.Second}
	return "http://" + testnet.Serve(t, s, testnet.ListenTCP(t), tracker.ErrServerClosed) + "/announce", s
}

// withTracker returns a copy of mi announcing to url.
func withTracker(t testing.TB, srcDir string, mi *metainfo.MetaInfo, url string) (*metainfo.MetaInfo, string) {
	t.Helper()
	mi2, err := metainfo.Create(context.Background(), filepath.Join(srcDir, mi.Info.Name), metainfo.CreateOptions{PieceLength: mi.Info.PieceLength, Announce: url})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "x.torrent")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := mi2.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return mi2, file
}

// aria2Flags keep aria2c on loopback and to the tracker: no DHT, no local
// peer discovery, no peer exchange (each would look beyond the test's own
// peers), no preallocation (faster), bound to 127.0.0.1, quiet.
func aria2Flags(port int) []string {
	return []string{
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--file-allocation=none", "--interface=127.0.0.1", fmt.Sprintf("--listen-port=%d", port),
		"--console-log-level=warn", "--summary-interval=0", "--bt-tracker-interval=1", "--check-integrity=false",
		"--follow-torrent=false", "--bt-stop-timeout=60", "--log=-", "--log-level=info",
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// appnet seeds, aria2c downloads, our tracker introduces them.
func TestInteropAria2Leeches(t *testing.T) {
	aria2 := testnet.NeedTool(t, "aria2c")
	url, trk := startTracker(t)
	srcDir, mi := makeTorrent(t, 6<<20+777, 256<<10)
	mi, file := withTracker(t, srcDir, mi, url)
	seeder := startNode(t, mi, Config{Dir: srcDir, Announcer: TrackerAnnouncer(nil), SeedRatio: SeedForever})

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, aria2, append(aria2Flags(freePort(t)), "--seed-time=0", "-d", out, file)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aria2c: %v\n%s", err, b)
	}
	sameFile(t, filepath.Join(srcDir, mi.Info.Name), filepath.Join(out, mi.Info.Name))
	// Every byte came from the appnet seeder, found through our tracker.
	if up := seeder.t.Status().Uploaded; up < mi.Info.TotalLength() {
		t.Errorf("the appnet seeder uploaded %d bytes of %d", up, mi.Info.TotalLength())
	}
	if len(trk.Peers(tracker.Hash(mi.InfoHash()))) == 0 {
		t.Error("the tracker knows no peer of the torrent")
	}
}

// aria2c seeds, appnet downloads.
func TestInteropAria2Seeds(t *testing.T) {
	aria2 := testnet.NeedTool(t, "aria2c")
	url, _ := startTracker(t)
	srcDir, mi := makeTorrent(t, 6<<20+777, 256<<10)
	mi, file := withTracker(t, srcDir, mi, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The seeder: -V with --bt-seed-unverified would skip the check; we
	// let it hash the file (it is small) so it surely seeds.
	seeder := exec.CommandContext(ctx, aria2, append(aria2Flags(freePort(t)), "--seed-ratio=0.0", "-V", "-d", srcDir, file)...)
	var seederOut strings.Builder
	seeder.Stdout, seeder.Stderr = &seederOut, &seederOut
	if err := seeder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); seeder.Wait() }()

	leecher := startNode(t, mi, Config{Dir: t.TempDir(), Announcer: TrackerAnnouncer(nil), SeedRatio: SeedNone})
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := leecher.t.Wait(wctx); err != nil {
		cancel()
		seeder.Wait() // its output is read only after it has stopped writing
		t.Fatalf("appnet leecher: %v, status %+v\naria2c:\n%s", err, leecher.t.Status(), seederOut.String())
	}
	sameFile(t, filepath.Join(srcDir, mi.Info.Name), filepath.Join(leecher.t.cfg.Dir, mi.Info.Name))
}

// transmission-cli seeds, appnet downloads. transmission-cli reads its
// settings from a folder (-g): DHT, local peer discovery, peer exchange,
// uTP and port forwarding are turned off there for the same reasons as
// aria2c's flags, and it is bound to 127.0.0.1. (The other direction,
// transmission-cli leeching from us, is not tested: transmission-cli 3.00
// verifies its empty download first and ignores the bitfield of a peer
// that connected meanwhile, so it waits for a reconnection that takes
// minutes.)
func TestInteropTransmissionSeeds(t *testing.T) {
	tr := testnet.NeedTool(t, "transmission-cli")
	url, _ := startTracker(t)
	srcDir, mi := makeTorrent(t, 1<<20+99, 64<<10)
	mi, file := withTracker(t, srcDir, mi, url)

	conf := t.TempDir()
	settings := fmt.Sprintf(`{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
"port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1", "peer-port": %d, "download-dir": %q, "rpc-enabled": false}`, freePort(t), srcDir)
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seeder := exec.CommandContext(ctx, tr, "-g", conf, "-w", srcDir, file)
	var log strings.Builder
	seeder.Stdout, seeder.Stderr = &log, &log
	if err := seeder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); seeder.Wait() }()

	leecher := startNode(t, mi, Config{Dir: t.TempDir(), Announcer: TrackerAnnouncer(nil), SeedRatio: SeedNone})
	wctx, wcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer wcancel()
	if err := leecher.t.Wait(wctx); err != nil {
		cancel()
		seeder.Wait() // its output is read only after it has stopped writing
		tail := log.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		t.Fatalf("appnet leecher: %v, status %+v\ntransmission-cli:\n%s", err, leecher.t.Status(), tail)
	}
	sameFile(t, filepath.Join(srcDir, mi.Info.Name), filepath.Join(leecher.t.cfg.Dir, mi.Info.Name))
}
