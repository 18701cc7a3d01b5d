package experiment

import (
	"context"
	"testing"

	"appnet/internal/testnet"
)

// The course's optimal schedule, in both of its cases, delivers correct
// copies in about the P2P bound, and never below it.
func TestOptimalSchedule(t *testing.T) {
	for _, tc := range []struct {
		name     string
		serverUp int64
	}{{"server slow", 2 << 20}, {"server fast", 20 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{Peers: []int{1, 6}, FileSize: 2 << 20, ServerUp: tc.serverUp, PeerUp: 2 << 20, PeerDown: 20 << 20, Modes: []string{Optimal}}
			results, err := Distribution(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				t.Logf("N = %d: measured %v, bound %v, ratio %.3f", r.N, r.Measured, r.Bound, r.Ratio())
				if r.Measured < r.Bound {
					t.Errorf("N = %d: measured %v is below the bound %v", r.N, r.Measured, r.Bound)
				}
				if r.Ratio() > 1.3 {
					t.Errorf("N = %d: the optimal schedule took %.2fx its bound", r.N, r.Ratio())
				}
			}
		})
	}
}

// aria2c as seeder and leechers, through our tracker: every copy arrives
// intact (Distribution checks each one's hash).
func TestAria2Mode(t *testing.T) {
	testnet.NeedTool(t, "aria2c")
	p := Params{Peers: []int{2}, FileSize: 1 << 20, ServerUp: 8 << 20, PeerUp: 2 << 20, PeerDown: 8 << 20, Modes: []string{Aria2}}
	results, err := Distribution(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if r := results[0]; len(r.PerPeer) != 2 || r.Measured <= 0 {
		t.Errorf("result %+v", r)
	} else {
		t.Logf("aria2c, N = 2: %v (bound %v, ratio %.2f)", r.Measured, r.Bound, r.Ratio())
	}
}
