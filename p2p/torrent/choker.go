package torrent

import (
	"math/rand/v2"
	"sort"
	"time"
)

// ChokeConfig sets the tit-for-tat choking algorithm's rhythm (BEP 3 and
// the course: 4 regular unchoke slots re-evaluated every 10 s, one
// optimistic unchoke rotated every 30 s).
type ChokeConfig struct {
	Slots           int           // regular unchoke slots; default 4
	Interval        time.Duration // re-evaluation period; default 10 s
	OptimisticEvery time.Duration // optimistic unchoke rotation; default 30 s
	NewPeerWeight   int           // how much likelier a new peer is to be the optimistic one; default 3
	NewPeerAge      time.Duration // a peer is new for this long; default 2 optimistic periods
}

func (c ChokeConfig) withDefaults() ChokeConfig {
	if c.Slots <= 0 {
		c.Slots = 4
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.OptimisticEvery <= 0 {
		c.OptimisticEvery = 30 * time.Second
	}
	if c.NewPeerWeight <= 0 {
		c.NewPeerWeight = 3
	}
	if c.NewPeerAge <= 0 {
		c.NewPeerAge = 2 * c.OptimisticEvery
	}
	return c
}

// chokeCandidate is what the choker knows of one peer.
type chokeCandidate struct {
	key        any     // identifies the peer to the caller
	interested bool    // the peer wants pieces from us
	rate       float64 // bytes/s: its upload to us while we download, ours to it while we seed
	since      time.Time
}

// choker runs tit-for-tat: each round it unchokes the Slots interested
// peers with the best rate and chokes the others; every OptimisticEvery it
// also picks one more interested peer at random (new peers weighted up)
// and keeps it unchoked until the next pick, so that newcomers get a first
// piece to trade and better partners can be discovered.
type choker struct {
	cfg            ChokeConfig
	rng            *rand.Rand
	optimistic     any
	lastOptimistic time.Time
	rounds         int
}

func newChoker(cfg ChokeConfig, seed uint64) *choker {
	return &choker{cfg: cfg.withDefaults(), rng: rand.New(rand.NewPCG(seed, 7))}
}

// chokeRound is the outcome of one round.
type chokeRound struct {
	unchoke         map[any]bool
	regular         []any // by rank
	optimistic      any   // nil if none
	newOptimistic   bool  // the optimistic peer was (re)chosen this round
	candidatesRated int
}

// round computes which peers are unchoked at now.
func (c *choker) round(now time.Time, peers []chokeCandidate) chokeRound {
	c.rounds++
	interested := make([]chokeCandidate, 0, len(peers))
	for _, p := range peers {
		if p.interested {
			interested = append(interested, p)
		}
	}
	// Best rate first; equal rates by how long we know the peer, which
	// keeps the order stable between rounds.
	sort.SliceStable(interested, func(i, j int) bool {
		if interested[i].rate != interested[j].rate {
			return interested[i].rate > interested[j].rate
		}
		return interested[i].since.Before(interested[j].since)
	})
	r := chokeRound{unchoke: make(map[any]bool), candidatesRated: len(interested)}
	for _, p := range interested {
		if len(r.regular) == c.cfg.Slots {
			break
		}
		r.regular = append(r.regular, p.key)
		r.unchoke[p.key] = true
	}
	// The optimistic unchoke: keep the current one until its time is up,
	// as long as it is still connected, interested and not already among
	// the regular ones.
	stillValid := false
	for _, p := range interested {
		if p.key == c.optimistic && !r.unchoke[p.key] {
			stillValid = true
		}
	}
	if !stillValid || now.Sub(c.lastOptimistic) >= c.cfg.OptimisticEvery {
		c.optimistic = c.pickOptimistic(now, interested, r.unchoke)
		c.lastOptimistic = now
		r.newOptimistic = c.optimistic != nil
	}
	if c.optimistic != nil {
		r.unchoke[c.optimistic] = true
		r.optimistic = c.optimistic
	}
	return r
}

func (c *choker) pickOptimistic(now time.Time, interested []chokeCandidate, taken map[any]bool) any {
	total := 0
	weights := make([]int, len(interested))
	for i, p := range interested {
		if taken[p.key] {
			continue
		}
		w := 1
		if now.Sub(p.since) < c.cfg.NewPeerAge {
			w = c.cfg.NewPeerWeight
		}
		weights[i] = w
		total += w
	}
	if total == 0 {
		return nil
	}
	x := c.rng.IntN(total)
	for i, w := range weights {
		if x < w {
			return interested[i].key
		}
		x -= w
	}
	return nil
}
