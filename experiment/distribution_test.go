package experiment

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var chokeFlag = flag.Duration("choke", 0, "rechoke interval for TestQuick (0: the default)")

// quickParams are what `appnet experiment distribution --quick` runs.
func quickParams() Params {
	return Params{Peers: []int{1, 4, 8}, FileSize: 4 << 20, ServerUp: 20 << 20, PeerUp: 2 << 20, PeerDown: 20 << 20, ChokeInterval: *chokeFlag, OptimisticEvery: 3 * *chokeFlag}
}

// A small sweep in process: every measured time is at least its bound, each
// peer's time is recorded, and the CSV and the plot are written. (The
// issue's check of --quick, with its ratio, runs the built binary in
// cmd/appnet, away from the race detector's slowdown.)
func TestSmallSweep(t *testing.T) {
	p := quickParams()
	p.Peers = []int{1, 3}
	p.FileSize = 1 << 20
	results, err := Distribution(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	WriteSummary(&table, p, results)
	t.Logf("\n%s", table.String())
	if len(results) != 4 {
		t.Fatalf("%d results, want 4", len(results))
	}
	for _, r := range results {
		if r.Measured < r.Bound {
			t.Errorf("N = %d %s: measured %v is below the bound %v: the shaping leaks", r.N, r.Mode, r.Measured, r.Bound)
		}
		if len(r.PerPeer) != r.N {
			t.Errorf("N = %d %s: %d completion times", r.N, r.Mode, len(r.PerPeer))
		}
	}
	dir := t.TempDir()
	var csv bytes.Buffer
	if err := WriteCSV(&csv, p, results); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(csv.String(), "\n"); lines != 5 {
		t.Errorf("CSV has %d lines, want a header and 4 rows", lines)
	}
	png, svg := filepath.Join(dir, "d.png"), filepath.Join(dir, "d.svg")
	if err := Plot(p, results, png, svg); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{png, svg} {
		if st, err := os.Stat(f); err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestBounds(t *testing.T) {
	// The course's example: u_s = 10u, d >= u_s, F/u = 1 hour.
	p := Params{FileSize: 3600, PeerUp: 1, ServerUp: 10, PeerDown: 10}
	cs, p2p := p.Bounds(30)
	if cs != 3*time.Hour {
		t.Errorf("D_cs(30) = %v, want 3h", cs)
	}
	if p2p != 45*time.Minute {
		t.Errorf("D_p2p(30) = %v, want 0.75h", p2p)
	}
	_, p2p = p.Bounds(1000)
	if p2p >= time.Hour {
		t.Errorf("D_p2p(1000) = %v, not below F/u", p2p)
	}
}

// The same quick sweep with every host in a network namespace of its own
// and tc shaping its links: no result beats its bound, and client-server
// agrees with the userspace shaper within 10%. P2P is logged, not checked:
// kernel-shaped P2P is a little slower (at the default sizes, F/u = 4 s,
// by 1-5% from N = 8 to 32; at the quick sizes by about 5% at N = 8),
// more under the race detector, and a single run varies by more than that.
func TestNetnsAgreesWithUserspace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	testnet.NeedTool(t, "tc")
	p := quickParams()
	user, err := Distribution(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	p.Shaper = "netns"
	kernel, err := Distribution(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var ut, kt bytes.Buffer
	WriteSummary(&ut, p, user)
	WriteSummary(&kt, p, kernel)
	t.Logf("userspace:\n%s\nnetns:\n%s", ut.String(), kt.String())
	for i := range user {
		u, k := user[i], kernel[i]
		// tc's bucket starts with a few ms of traffic saved up.
		if k.Measured < time.Duration(float64(k.Bound)*0.98) {
			t.Errorf("netns N = %d %s: measured %v is below the bound %v", k.N, k.Mode, k.Measured, k.Bound)
		}
		if d := math.Abs(k.Measured.Seconds()/u.Measured.Seconds() - 1); k.Mode == ClientServer && d > 0.10 {
			t.Errorf("N = %d %s: netns %v and userspace %v differ by %.0f%%", k.N, k.Mode, k.Measured, u.Measured, 100*d)
		} else if k.Mode == P2P {
			t.Logf("N = %d %s: netns %v, userspace %v (%+.0f%%)", k.N, k.Mode, k.Measured, u.Measured, 100*(k.Measured.Seconds()/u.Measured.Seconds()-1))
		}
	}
}

// An interrupted run removes what it made: its temporary files and, with
// netns shaping, its namespaces and links. The run is cancelled while its
// clients are downloading (the transfer takes 3.2 s, from about 0.1 s or,
// in namespaces, once they are set up).
func TestInterruptedRunCleansUp(t *testing.T) {
	shapers := []string{"userspace"}
	if os.Geteuid() == 0 {
		testnet.NeedTool(t, "tc")
		shapers = append(shapers, "netns")
	}
	for _, shaper := range shapers {
		t.Run(shaper, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			p := quickParams()
			p.Peers, p.FileSize, p.Modes, p.Shaper = []int{8}, 8<<20, []string{ClientServer}, shaper
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			timer := time.AfterFunc(1500*time.Millisecond, cancel)
			defer timer.Stop()
			start := time.Now()
			_, err := Distribution(ctx, p)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Distribution = %v after %v, want it cancelled", err, time.Since(start))
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range left {
				t.Errorf("left behind in TMPDIR: %s", e.Name())
			}
			prefix := fmt.Sprintf("apx%d", os.Getpid()%100000)
			namespaces, _ := os.ReadDir("/var/run/netns") // absent when there are none
			for _, e := range namespaces {
				if strings.HasPrefix(e.Name(), prefix) {
					t.Errorf("namespace %s left behind", e.Name())
				}
			}
			links, err := net.Interfaces()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range links {
				if strings.HasPrefix(l.Name, prefix) {
					t.Errorf("link %s left behind", l.Name)
				}
			}
		})
	}
}
