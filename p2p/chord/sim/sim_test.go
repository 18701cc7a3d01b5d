package sim

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"appnet/p2p/chord"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func simConfig(r int) chord.Config {
	return chord.Config{Bits: 160, Successors: r, Replicas: -1,
		StabilizeInterval: time.Second, FixFingersInterval: time.Second,
		CheckPredecessorInterval: time.Second, ReplicateInterval: time.Hour, ExpireInterval: time.Hour}
}

// TestPathLength checks the mean path length against ½·log2 N ± 15%
// (Stoica et al. §6.3, Fig. 10(a)) for every N = 2^4 … 2^12, in both
// lookup modes up to 2^10 (they route alike) and iteratively above, with
// the paper's measure and routing (see PathLengths); the whole table to
// 2^14 is `appnet chord sim --sweep 4-14`. Routing through the successor
// list as well may only shorten the paths, never lengthen them.
func TestPathLength(t *testing.T) {
	ctx := context.Background()
	for k := 4; k <= 12; k++ {
		modes := []chord.LookupMode{chord.Iterative, chord.Recursive}
		if k > 10 {
			modes = modes[:1] // the modes agree; keep the default run short
		}
		for _, mode := range modes {
			row, err := PathLengths(ctx, k, 2000, mode, uint64(k))
			if err != nil {
				t.Fatal(err)
			}
			dev := row.Length.Mean/row.Half - 1
			t.Logf("N = 2^%-2d %-9v: path length mean %.2f (½·log2 N = %.1f, %+.1f%%), 1st %.0f, 99th %.0f; with the successor list %.2f; failed %d",
				k, mode, row.Length.Mean, row.Half, 100*dev, row.Length.P1, row.Length.P99, row.SuccList.Mean, row.Failed)
			if row.Failed != 0 {
				t.Errorf("N = 2^%d: %d lookups failed", k, row.Failed)
			}
			if math.Abs(dev) > 0.15 {
				t.Errorf("N = 2^%d: mean path length %.2f, want %.1f ± 15%%", k, row.Length.Mean, row.Half)
			}
			if row.SuccList.Mean > row.Length.Mean {
				t.Errorf("N = 2^%d: routing through the successor list lengthens the mean path, %.2f > %.2f", k, row.SuccList.Mean, row.Length.Mean)
			}
		}
	}
}

// TestPathLengthCount checks the measure on a hand-made ring: the fingers
// followed up to the key's predecessor, the owner not counted.
func TestPathLengthCount(t *testing.T) {
	ctx := context.Background()
	cfg := chord.Config{Bits: 6, Successors: 1, Replicas: -1,
		StabilizeInterval: time.Hour, FixFingersInterval: time.Hour, CheckPredecessorInterval: time.Hour,
		ReplicateInterval: time.Hour, ExpireInterval: time.Hour}
	r := &Ring{Clock: NewClock(), Net: &Network{nodes: map[string]*chord.Node{}}, Cfg: cfg}
	sp := chord.Space{Bits: 6}
	for _, id := range []uint64{1, 8, 14, 21, 32, 38, 42, 48, 51, 56} { // the paper's Fig. 3 ring
		c, nid := cfg, sp.FromUint64(id)
		c.ID, c.TrustIDs = &nid, true
		nd, err := chord.NewNode(fmt.Sprintf("n%d", id), c, r.Net, r.Clock)
		if err != nil {
			t.Fatal(err)
		}
		r.insert(nd)
	}
	r.Converge()
	byID := func(id uint64) *chord.Node { return r.Nodes[r.ownerIndex(sp.FromUint64(id))] }
	for _, tc := range []struct {
		from, key uint64
		want      int
	}{
		{8, 10, 0}, // N8's successor N14 owns K10: no finger followed
		{8, 54, 2}, // N8 -> N42 -> N51, whose successor N56 owns K54 (Fig. 3(b))
		{8, 8, 2},  // its own key goes round: N8 -> N42 -> N1, N8's predecessor
		{42, 1, 2}, // N42 -> N51 -> N56; the key wraps to N1
		{1, 30, 1}, // N1 -> N21, whose successor N32 owns K30
	} {
		for _, mode := range []chord.LookupMode{chord.Iterative, chord.Recursive} {
			res, err := byID(tc.from).Lookup(ctx, sp.FromUint64(tc.key), mode)
			if err != nil {
				t.Fatal(err)
			}
			if got := PathLength(res); got != tc.want || res.Owner != r.Successor(sp.FromUint64(tc.key)) {
				t.Errorf("%v lookup of K%d from N%d: owner %s, path length %d (path %v); want owner %s, %d",
					mode, tc.key, tc.from, res.Owner.Addr, got, res.Path, r.Successor(sp.FromUint64(tc.key)).Addr, tc.want)
			}
		}
	}
}

// TestChurn: lookups under joins and failures (Stoica et al. §6.4, Fig.
// 12 style) mostly succeed; the CLI's --churn gives the table.
func TestChurn(t *testing.T) {
	ctx := context.Background()
	cfg := simConfig(chord.SuccessorsFor(200))
	cfg.StabilizeInterval, cfg.FixFingersInterval, cfg.CheckPredecessorInterval = 30*time.Second, 3*time.Second, 30*time.Second
	r, err := NewRing(200, cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Clock.Run(time.Minute)
	st := r.Churn(ctx, 0.2, 10*time.Minute)
	t.Logf("churn 0.2/s on 200 nodes: %d of %d lookups failed (%.1f%%), mean path %.2f", st.Failed, st.Lookups, 100*float64(st.Failed)/float64(st.Lookups), st.Hops.Mean)
	if st.Lookups < 500 || float64(st.Failed) > 0.05*float64(st.Lookups) {
		t.Errorf("%d of %d lookups failed under churn", st.Failed, st.Lookups)
	}
	for _, nd := range r.Nodes {
		nd.Stop()
	}
}

func TestFailHalf(t *testing.T) {
	ctx := context.Background()
	r, err := NewRing(1000, simConfig(20), 7)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Clock.Run(5 * time.Second)
	r.Fail(0.5)
	before := r.Lookups(ctx, 1000, chord.Iterative)
	r.Clock.Run(30 * time.Second)
	after := r.Lookups(ctx, 1000, chord.Iterative)
	t.Logf("50%% of 1000 failed: %d/%d lookups failed at once, %d/%d after stabilization (mean %.2f hops)", before.Failed, before.Lookups, after.Failed, after.Lookups, after.Hops.Mean)
	if after.Failed != 0 {
		t.Errorf("%d lookups failed after stabilization", after.Failed)
	}
	for _, nd := range r.Nodes {
		nd.Stop()
	}
}

func TestKeyLoad(t *testing.T) {
	plain := KeyLoad(1000, 100000, 1, 1)
	virt := KeyLoad(1000, 100000, 20, 1)
	t.Logf("keys per node, mean %.0f: 1st %.0f, 99th %.0f (%.2f× mean); with 20 virtual nodes 1st %.0f, 99th %.0f (%.2f×)",
		plain.Mean, plain.P1, plain.P99, plain.P99/plain.Mean, virt.P1, virt.P99, virt.P99/virt.Mean)
	if plain.P99 > 5.5*plain.Mean {
		t.Errorf("99th percentile %.0f > 5.5× mean", plain.P99)
	}
	if r := virt.P99 / virt.Mean; r > 2 {
		t.Errorf("with 20 virtual nodes, 99th percentile is %.2f× the mean", r)
	}
}
