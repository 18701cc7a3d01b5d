package tracker

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"appnet/internal/testnet"
	"appnet/p2p/metainfo"
	"appnet/trace"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output for the test log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// aria2Flags keep aria2c on loopback and make our tracker the only way the
// two aria2c processes can find each other:
//   - no DHT (IPv4 or IPv6), no local peer discovery (LPD multicasts on the
//     LAN) and no peer exchange: otherwise peers could be found without the
//     tracker, and DHT would try to reach the Internet's bootstrap nodes;
//   - --interface=127.0.0.1: bind and announce on loopback only, so the
//     address the tracker sees and hands out is one the other peer reaches;
//   - --file-allocation=none: no slow preallocation of the output file;
//   - --disable-ipv6: the test is IPv4 loopback only (aria2c otherwise
//     complains it cannot bind an IPv6 port where IPv6 is off);
//   - --no-conf: ignore any aria2.conf of the machine.
//
// aria2c speaks the UDP tracker protocol only through its DHT socket: with
// DHT off it says "udp is not supported yet". The UDP subtest therefore
// turns DHT on, but with a fresh routing-table file in the test's folder,
// no entry point and its port on loopback, so the DHT knows no node and
// sends nothing: the tracker is still the only way to meet.
var aria2Flags = []string{
	"--no-conf", "--enable-dht6=false", "--bt-enable-lpd=false", "--disable-ipv6=true",
	"--enable-peer-exchange=false", "--file-allocation=none", "--interface=127.0.0.1",
	"--console-log-level=warn", "--summary-interval=0", "--show-console-readout=false",
	"--bt-tracker-connect-timeout=10", "--bt-tracker-timeout=10",
}

// TestInteropAria2 has an aria2c seeder and an aria2c leecher find each
// other only through our tracker, over HTTP and over UDP, and checks the
// file arrives intact and the tracker saw both peers and a completed event.
func TestInteropAria2(t *testing.T) {
	aria2c := testnet.NeedTool(t, "aria2c")
	for _, proto := range []string{"http", "udp"} {
		t.Run(proto, func(t *testing.T) { interopAria2(t, aria2c, proto) })
	}
}

func interopAria2(t *testing.T, aria2c, proto string) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	tr := trace.New()
	defer tr.Close()
	sub := tr.Subscribe(4096, false)
	// Short intervals so that a peer that announced before the other
	// re-announces soon; aria2c honours "min interval".
	r := start(t, &Server{Tracer: tr, Host: "tracker", Interval: 3 * time.Second, MinInterval: time.Second})
	announce := r.httpURL
	if proto == "udp" {
		announce = r.udpURL + "/announce"
	}

	dir := t.TempDir()
	seedDir, leechDir := filepath.Join(dir, "seed"), filepath.Join(dir, "leech")
	for _, d := range []string{seedDir, leechDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 3<<20+12345) // not a whole number of pieces
	rand.Read(data)
	src := filepath.Join(seedDir, "sample.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(ctx, src, metainfo.CreateOptions{Announce: announce, PieceLength: 256 << 10, CreatedBy: "appnet tracker test"})
	if err != nil {
		t.Fatal(err)
	}
	torrent := filepath.Join(dir, "sample.torrent")
	f, err := os.Create(torrent)
	if err != nil {
		t.Fatal(err)
	}
	if err := mi.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ih := Hash(mi.InfoHash())

	run := func(name string, extra ...string) (*exec.Cmd, *syncBuffer) {
		args := append(append([]string{}, aria2Flags...), extra...)
		if proto == "udp" {
			args = append(args, "--enable-dht=true", "--dht-file-path="+filepath.Join(dir, name+"-dht.dat"),
				"--dht-listen-port="+strconv.Itoa(freePort(t)))
		} else {
			args = append(args, "--enable-dht=false")
		}
		args = append(args, "--stop-with-process="+strconv.Itoa(os.Getpid()), torrent)
		cmd := exec.CommandContext(ctx, aria2c, args...)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return cmd, out
	}

	seedPort, leechPort := freePort(t), freePort(t)
	// The seeder: -V checks the file against the torrent, then it seeds
	// whatever the ratio (--seed-ratio=0.0) until we stop it.
	seeder, seedOut := run("seeder", "--dir="+seedDir, "-V", "--bt-seed-unverified=true", "--seed-ratio=0.0",
		"--listen-port="+strconv.Itoa(seedPort))
	seederDone := make(chan error, 1)
	go func() { seederDone <- seeder.Wait() }()
	defer func() {
		seeder.Process.Kill()
		<-seederDone
		if t.Failed() {
			t.Logf("seeder output:\n%s", seedOut.String())
		}
	}()

	// Start the leecher once the tracker knows the seeder.
	for st := r.srv.Stats(ih); st.Complete == 0; st = r.srv.Stats(ih) {
		select {
		case <-ctx.Done():
			t.Fatalf("the seeder never announced to our tracker")
		case err := <-seederDone:
			seederDone <- err
			t.Fatalf("the seeder exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The leecher leaves soon after it has the file. With --seed-time=0
	// aria2c leaves at once and sends "stopped" without "completed"; a
	// few seconds of seeding let it announce "completed" first.
	leecher, leechOut := run("leecher", "--dir="+leechDir, "--seed-time=0.05", "--listen-port="+strconv.Itoa(leechPort))
	if err := leecher.Wait(); err != nil {
		t.Fatalf("leecher: %v\n%s", err, leechOut.String())
	}
	got, err := os.ReadFile(filepath.Join(leechDir, "sample.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("the leecher's file differs from the seeder's (%d bytes, want %d)", len(got), len(data))
	}
	if st := r.srv.Stats(ih); st.Downloaded != 1 {
		t.Errorf("scrape downloaded = %d, want 1 completed event", st.Downloaded)
	}

	// The trace shows an announce from each peer and the completed event.
	var lines []string
	for len(sub.C()) > 0 {
		e := <-sub.C()
		if e.Host == "tracker" && strings.HasPrefix(e.Summary, "announce ") {
			lines = append(lines, e.Summary)
		}
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{
		"started port=" + strconv.Itoa(seedPort) + " left=0",
		"started port=" + strconv.Itoa(leechPort) + " left=" + strconv.Itoa(len(data)),
		"completed port=" + strconv.Itoa(leechPort) + " left=0",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("the tracker never saw %q; it saw:\n%s", want, joined)
		}
	}
	t.Logf("%s: %d announces seen by the tracker:\n%s", proto, len(lines), joined)
}
