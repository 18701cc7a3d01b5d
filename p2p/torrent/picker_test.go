package torrent

import (
	"testing"
	"time"
)

func fullSet(n int) bitset {
	b := newBitset(n)
	b.setAll()
	return b
}

func setOf(n int, pieces ...int) bitset {
	b := newBitset(n)
	for _, p := range pieces {
		b.set(p)
	}
	return b
}

func uniformPieces(size int64) func(int) int64 { return func(int) int64 { return size } }

func TestBitsetWire(t *testing.T) {
	b := setOf(10, 0, 3, 9)
	if got := b.bytes(); len(got) != 2 || got[0] != 0x90 || got[1] != 0x40 {
		t.Errorf("bytes = %08b", got)
	}
	c := bitsetFromBytes(b.bytes(), 10)
	if c.count() != 3 || !c.get(0) || !c.get(3) || !c.get(9) {
		t.Errorf("round trip: %08b", c.bytes())
	}
	all := fullSet(70)
	if all.count() != 70 {
		t.Errorf("setAll: %d", all.count())
	}
}

// Rarest first: with the first pieces behind us, the picker starts the
// piece fewest peers have.
func TestPickerRarestFirst(t *testing.T) {
	const n = 8
	have := setOf(n, 0, 1, 2, 3) // past the random-first phase
	p := newPicker(n, uniformPieces(BlockSize), have, 1)
	// Piece 6 is on one peer, 4, 5 and 7 on three.
	common := setOf(n, 4, 5, 7)
	for range 2 {
		p.peerHas(&common, false)
	}
	rare := setOf(n, 4, 5, 6, 7)
	p.peerHas(&rare, false)
	got := p.pick(&rare, false, 1, func(block) bool { return false }, time.Time{}, noDue)
	if len(got) != 1 || got[0].piece != 6 {
		t.Fatalf("picked %v, want piece 6 (the rarest)", got)
	}
	// Next: the three equally common ones, each chosen sometimes (random
	// tie-break), never a piece the peer lacks.
	seen := map[int]int{}
	for seed := range uint64(300) {
		p := newPicker(n, uniformPieces(BlockSize), have, seed)
		p.peerHas(&rare, false)
		got := p.pick(&common, false, 1, func(block) bool { return false }, time.Time{}, noDue)
		seen[got[0].piece]++
	}
	for _, piece := range []int{4, 5, 7} {
		if seen[piece] < 50 {
			t.Errorf("tie-break: piece %d chosen %d times of 300: %v", piece, seen[piece], seen)
		}
	}
	if len(seen) != 3 {
		t.Errorf("chose pieces outside the peer's set: %v", seen)
	}
}

// Blocks of a started piece come before any new piece.
func TestPickerFinishesStartedPieces(t *testing.T) {
	const n = 4
	p := newPicker(n, uniformPieces(4*BlockSize), newBitset(n), 1)
	all := fullSet(n)
	first := p.pick(&all, true, 2, func(block) bool { return false }, time.Time{}, noDue)
	if len(first) != 2 || first[0].piece != first[1].piece {
		t.Fatalf("first pick %v", first)
	}
	second := p.pick(&all, true, 2, func(block) bool { return false }, time.Time{}, noDue)
	if second[0].piece != first[0].piece || second[0].index != 2 || second[1].index != 3 {
		t.Errorf("second pick %v does not finish piece %d", second, first[0].piece)
	}
}

// The last piece does not stall: once every block is requested, endgame
// lets another peer request the same blocks, but only those whose first
// request is late, or that the other peer would send much sooner.
func TestPickerEndgame(t *testing.T) {
	const n = 2
	t0 := time.Unix(1000, 0)
	all := fullSet(n)
	none := func(block) bool { return false }
	// The slow peer is expected to send its k-th block at k+1 seconds.
	slowEta := func(k int) time.Time { return t0.Add(time.Duration(k+1) * time.Second) }
	newSlow := func() (*picker, []block) {
		p := newPicker(n, uniformPieces(2*BlockSize), newBitset(n), 1)
		slow := p.pick(&all, true, 10, none, t0, slowEta)
		if len(slow) != 4 {
			t.Fatalf("picked %d blocks, want all 4", len(slow))
		}
		if !p.endgame() {
			t.Fatal("not in endgame with every block requested")
		}
		return p, slow
	}
	// A second peer as slow as the first (its blocks would come in a
	// minute): only late blocks are asked again. A block is late after
	// twice its expected time and endgameSlack.
	p, _ := newSlow()
	inAMinute := func(at time.Time) func(int) time.Time {
		return func(int) time.Time { return at.Add(time.Minute) }
	}
	if got := p.pick(&all, true, 10, none, t0.Add(time.Second), inAMinute(t0.Add(time.Second))); len(got) != 0 {
		t.Errorf("endgame duplicated %v before any request was late", got)
	}
	at := t0.Add(4200 * time.Millisecond) // blocks 0 and 1 are late (2.1 s, 4.1 s)
	if got := p.pick(&all, true, 10, none, at, inAMinute(at)); len(got) != 2 {
		t.Errorf("endgame at 4.2 s duplicated %v, want the 2 late blocks", got)
	}
	// A fast idle peer (100 ms a block) at 1 s: the blocks expected at 2,
	// 3 and 4 s come sooner from it; the one expected now does not.
	p, _ = newSlow()
	at = t0.Add(time.Second)
	fastEta := func(k int) time.Time { return at.Add(time.Duration(k+1) * 100 * time.Millisecond) }
	if got := p.pick(&all, true, 10, none, at, fastEta); len(got) != 3 {
		t.Errorf("fast peer got %v, want the 3 blocks it sends in under a quarter of their remaining time", got)
	}
	// Another peer, much later, with one of the blocks asked of it
	// already: it gets the rest, each duplicated at most once.
	p, slow := newSlow()
	asked := map[block]bool{slow[0]: true}
	at = t0.Add(time.Minute)
	fast := p.pick(&all, true, 10, func(b block) bool { return asked[b] }, at, inAMinute(at))
	if len(fast) != 3 {
		t.Fatalf("endgame pick %v, want the 3 blocks not yet asked of this peer", fast)
	}
	if again := p.pick(&all, true, 10, none, at, inAMinute(at)); len(again) != 1 || again[0] != slow[0] {
		t.Errorf("a third peer got %v, want only %v, the one block asked just once", again, slow[0])
	}
	for _, b := range slow {
		p.received(b, nil, true)
	}
	for piece := range n {
		p.verified(piece, true)
	}
	if !p.done() {
		t.Error("not done after every piece verified")
	}
}

// A peer that slows down after it was asked for the last blocks does not
// hold them: each block it sends revises when the rest are expected (at its
// rate now), and an idle fast peer is then asked for every block it would
// send in under a quarter of that time. Without the revision, the first
// estimates (already due) would keep all but the last two blocks at the
// slow peer.
func TestEndgameReestimatesASlowedPeer(t *testing.T) {
	const blocks = 8
	tr := &Torrent{picker: newPicker(1, uniformPieces(blocks*BlockSize), newBitset(1), 1), peers: map[*peer]struct{}{}}
	all := fullSet(1)
	slow := &peer{asked: map[block]time.Time{}, seeder: true}
	slow.down.fast = 1 << 20 // 16 ms a block, when it was asked
	t0 := time.Unix(1000, 0)
	per := tr.blockTime(slow)
	asked := tr.picker.pick(&all, true, blocks, func(block) bool { return false }, t0, func(k int) time.Time { return t0.Add(time.Duration(k+1) * per) })
	if len(asked) != blocks || !tr.picker.endgame() {
		t.Fatalf("picked %d blocks (endgame %v), want all %d", len(asked), tr.picker.endgame(), blocks)
	}
	for _, b := range asked {
		slow.asked[b] = t0
	}
	// Its first block comes after 100 ms: its rate has fallen to 160 KiB/s.
	now := t0.Add(100 * time.Millisecond)
	slow.down.fast = 160 << 10
	delete(slow.asked, asked[0])
	tr.picker.received(asked[0], slow, true)
	fast := &peer{asked: map[block]time.Time{}, seeder: true}
	fast.down.fast = 20 << 20
	fastEta := func(k int) time.Time { return now.Add(time.Duration(k+1) * tr.blockTime(fast)) }
	none := func(block) bool { return false }
	before := tr.picker.pick(&all, true, blocks, none, now, fastEta)
	if len(before) != 2 {
		t.Fatalf("before the revision, the fast peer got %v, want only the last 2 blocks", before)
	}
	for _, b := range before {
		tr.picker.cancelled(b) // as if those requests had not been made
	}
	tr.reestimate(slow, now)
	got := tr.picker.pick(&all, true, blocks, none, now, fastEta)
	if len(got) != blocks-1 {
		t.Errorf("after the revision, the fast peer got %v, want the %d blocks still at the slow peer", got, blocks-1)
	}
}

// A piece that fails its check goes back to the pool, and the senders are
// named.
func TestPickerFailedPiece(t *testing.T) {
	p := newPicker(1, uniformPieces(BlockSize), newBitset(1), 1)
	all := fullSet(1)
	bad := &peer{}
	b := p.pick(&all, true, 1, func(block) bool { return false }, time.Time{}, noDue)[0]
	if fresh, complete := p.received(b, bad, true); !fresh || !complete {
		t.Fatal("block not recorded")
	}
	if dup, _ := p.received(b, bad, true); dup {
		t.Error("duplicate block counted twice")
	}
	from := p.verified(0, false)
	if len(from) != 1 || from[0] != bad {
		t.Errorf("blamed %v", from)
	}
	if p.done() || p.pending != 1 {
		t.Errorf("failed piece not back in the pool: pending %d", p.pending)
	}
	again := p.pick(&all, true, 1, func(block) bool { return false }, time.Time{}, noDue)
	if len(again) != 1 || again[0].piece != 0 {
		t.Errorf("failed piece not picked again: %v", again)
	}
}

func TestPickerLastPieceShorter(t *testing.T) {
	sizes := func(i int) int64 {
		if i == 1 {
			return BlockSize + 100
		}
		return 4 * BlockSize
	}
	p := newPicker(2, sizes, setOf(2, 0), 1)
	all := fullSet(2)
	got := p.pick(&all, true, 10, func(block) bool { return false }, time.Time{}, noDue)
	if len(got) != 2 || p.blockLen(got[1]) != 100 {
		t.Errorf("picked %v; last block length %d", got, p.blockLen(got[len(got)-1]))
	}
}

// Tit-for-tat: the 4 best interested uploaders are unchoked, plus one
// optimistic unchoke that stays for its period and then rotates.
func TestChoker(t *testing.T) {
	c := newChoker(ChokeConfig{Interval: time.Second, OptimisticEvery: 3 * time.Second}, 1)
	t0 := time.Unix(1000, 0)
	var peers []chokeCandidate
	for i := range 8 {
		peers = append(peers, chokeCandidate{key: i, interested: i != 7, rate: float64(100 * i), since: t0.Add(-time.Hour)})
	}
	r := c.round(t0, peers)
	want := []any{6, 5, 4, 3}
	for i, k := range want {
		if r.regular[i] != k {
			t.Fatalf("regular = %v, want %v", r.regular, want)
		}
	}
	if r.optimistic == nil || r.unchoke[7] || len(r.unchoke) != 5 {
		t.Fatalf("unchoke = %v, optimistic %v (peer 7 is not interested)", r.unchoke, r.optimistic)
	}
	opt := r.optimistic
	if o := opt.(int); o > 2 {
		t.Errorf("optimistic %v is one of the regular ones", opt)
	}
	// Within the optimistic period it stays.
	if r2 := c.round(t0.Add(time.Second), peers); r2.optimistic != opt || r2.newOptimistic {
		t.Errorf("optimistic changed early: %v -> %v", opt, r2.optimistic)
	}
	// After it, it is picked again (may be the same by chance, but it is
	// a new pick).
	if r3 := c.round(t0.Add(3*time.Second), peers); !r3.newOptimistic {
		t.Error("optimistic not re-picked after its period")
	}
	// New peers are favoured.
	newCount := 0
	for seed := range uint64(400) {
		c := newChoker(ChokeConfig{}, seed)
		ps := []chokeCandidate{
			{key: "old1", interested: true, since: t0.Add(-time.Hour)},
			{key: "old2", interested: true, since: t0.Add(-time.Hour)},
			{key: "new", interested: true, since: t0},
		}
		c.cfg.Slots = 0
		if c.round(t0, ps).optimistic == "new" {
			newCount++
		}
	}
	// Weight 3 of 5: about 240 of 400.
	if newCount < 190 || newCount > 290 {
		t.Errorf("new peer chosen %d of 400 times, want about 240", newCount)
	}
}

// noDue expects every block at once.
func noDue(int) time.Time { return time.Time{} }

// The pipeline holds what a peer sends in a round trip and a quarter of
// a second more: a distant peer gets the requests that keep its link
// full, a near one no more than it sends in 250 ms.
func TestRequestDepth(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		rtt  time.Duration
		want int
	}{
		{0, 0, 2},                              // nothing known: two blocks
		{2 << 20, 0, 32},                       // 2 MiB/s nearby: 512 KiB
		{2 << 20, 750 * time.Millisecond, 128}, // the same 750 ms away: 2 MiB
		{100 << 10, 2 * time.Second, 14},       // slow and far
		{1 << 30, 0, 1024},                     // capped at 16 MiB
	} {
		if got := requestDepth(tc.rate, tc.rtt); got != tc.want {
			t.Errorf("requestDepth(%.0f B/s, %v) = %d, want %d", tc.rate, tc.rtt, got, tc.want)
		}
	}
}

// The round trip is sampled only from the probe, the first block asked
// of an idle peer, answered to its own request; it is the least sample.
func TestRoundTripFromProbe(t *testing.T) {
	p := &peer{}
	t0 := time.Unix(1000, 0)
	a, b := block{0, 0}, block{0, 1}
	p.probe, p.probeAt = a, t0
	p.answered(b, t0, t0.Add(time.Second)) // not the probe
	if p.rtt != 0 {
		t.Fatalf("a block behind the probe set the round trip to %v", p.rtt)
	}
	p.answered(a, t0.Add(time.Second), t0.Add(2*time.Second)) // asked again later
	if p.rtt != 0 {
		t.Fatalf("a probe asked again set the round trip to %v", p.rtt)
	}
	p.answered(a, t0, t0.Add(80*time.Millisecond))
	if p.rtt != 80*time.Millisecond {
		t.Fatalf("first sample: round trip %v, want 80ms", p.rtt)
	}
	p.answered(a, t0, t0.Add(time.Second)) // the probe is spent
	if p.rtt != 80*time.Millisecond {
		t.Fatalf("a spent probe moved the round trip to %v", p.rtt)
	}
	p.probe, p.probeAt = b, t0
	p.answered(b, t0, t0.Add(300*time.Millisecond))
	if p.rtt != 80*time.Millisecond {
		t.Fatalf("a slower sample (time in queues) moved the round trip to %v", p.rtt)
	}
	p.probe, p.probeAt = a, t0
	p.answered(a, t0, t0.Add(40*time.Millisecond))
	if p.rtt != 40*time.Millisecond {
		t.Fatalf("a faster sample left the round trip at %v, want 40ms", p.rtt)
	}
}
