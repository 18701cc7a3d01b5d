package chord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIDArithmetic(t *testing.T) {
	sp := Space{Bits: 5}
	n := func(v uint64) ID { return sp.FromUint64(v) }
	if got := sp.Add(n(30), n(5)); got != n(3) {
		t.Errorf("30+5 mod 32 = %s", sp.Format(got))
	}
	if got := sp.Sub(n(3), n(30)); got != n(5) {
		t.Errorf("3-30 mod 32 = %s", sp.Format(got))
	}
	if got := sp.FingerStart(n(20), 5); got != n(4) {
		t.Errorf("finger 5 of 20 starts at %s, want 4", sp.Format(got))
	}
	cases := []struct {
		x, a, b uint64
		open    bool
		right   bool
	}{
		{14, 12, 20, true, true}, {20, 12, 20, false, true}, {12, 12, 20, false, false},
		{1, 25, 2, true, true}, {30, 25, 2, true, true}, {10, 25, 2, false, false}, {7, 7, 7, false, true}, {8, 7, 7, true, true},
	}
	for _, c := range cases {
		if got := Between(n(c.x), n(c.a), n(c.b)); got != c.open {
			t.Errorf("%d in (%d,%d) = %v", c.x, c.a, c.b, got)
		}
		if got := BetweenRight(n(c.x), n(c.a), n(c.b)); got != c.right {
			t.Errorf("%d in (%d,%d] = %v", c.x, c.a, c.b, got)
		}
	}
	big := Space{Bits: 160}
	id, err := big.Parse("0xffffffffffffffffffffffffffffffffffffffff")
	if err != nil || big.Add(id, big.Pow2(0)) != (ID{}) {
		t.Errorf("2^160-1 + 1 != 0: %v", err)
	}
	if _, err := sp.Parse("32"); err == nil {
		t.Error("32 fits in 5 bits?")
	}
	if sp.Format(sp.HashString("x")) == "" || !sp.Contains(sp.HashString("anything")) {
		t.Error("hash outside the space")
	}
}

// testConfig has short intervals for loopback rings.
func testConfig(bits, r int) Config {
	return Config{Bits: bits, Successors: r,
		StabilizeInterval: 15 * time.Millisecond, FixFingersInterval: 5 * time.Millisecond,
		CheckPredecessorInterval: 30 * time.Millisecond, ReplicateInterval: 300 * time.Millisecond,
		ExpireInterval: time.Second, CallTimeout: 400 * time.Millisecond,
		MaxConnsPerAddr: -1} // every node of a test ring is on 127.0.0.1
}

type ring struct {
	t     testing.TB
	cfg   Config
	peers []*Peer
}

func (r *ring) add(id *ID, join string) *Peer {
	r.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := r.cfg
	cfg.ID = id
	cfg.TrustIDs = cfg.TrustIDs || id != nil
	p, err := NewPeer(ln, cfg, fmt.Sprintf("n%d", len(r.peers)), nil, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	p.Start()
	r.peers = append(r.peers, p)
	if join != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Join(ctx, join); err != nil {
			r.t.Fatalf("join: %v", err)
		}
	}
	return p
}

func newRing(t testing.TB, cfg Config, n int, ids []uint64) *ring {
	r := &ring{t: t, cfg: cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, p := range r.peers {
			p.Shutdown(ctx) //nolint:errcheck
		}
	})
	sp := Space{cfg.Bits}
	for i := 0; i < n; i++ {
		var id *ID
		if ids != nil {
			v := sp.FromUint64(ids[i])
			id = &v
		}
		join := ""
		if i > 0 {
			join = r.peers[rand.IntN(i)].Node.Self().Addr
		}
		r.add(id, join)
	}
	return r
}

func (r *ring) live() []*Peer {
	var out []*Peer
	for _, p := range r.peers {
		if !p.Node.isStopped() {
			out = append(out, p)
		}
	}
	return out
}

// truth is the ring computed from the sorted IDs.
type truth struct {
	sp  Space
	ids []NodeRef
}

func newTruth(sp Space, peers []*Peer) truth {
	var refs []NodeRef
	for _, p := range peers {
		refs = append(refs, p.Node.Self())
	}
	sort.Slice(refs, func(i, j int) bool { return Cmp(refs[i].ID, refs[j].ID) < 0 })
	return truth{sp, refs}
}

func (tr truth) successor(k ID) NodeRef {
	i := sort.Search(len(tr.ids), func(i int) bool { return Cmp(tr.ids[i].ID, k) >= 0 })
	return tr.ids[i%len(tr.ids)]
}

func (tr truth) index(id ID) int {
	return sort.Search(len(tr.ids), func(i int) bool { return Cmp(tr.ids[i].ID, id) >= 0 })
}

// diff returns the first way a node's state differs from the truth.
func (tr truth) diff(s State, fingers bool) string {
	i := tr.index(s.Self.ID)
	n := len(tr.ids)
	if want := tr.ids[(i+1)%n]; s.Succs[0] != want {
		return fmt.Sprintf("N%s: successor %s, want %s", tr.sp.Format(s.Self.ID), tr.sp.Format(s.Succs[0].ID), tr.sp.Format(want.ID))
	}
	if want := tr.ids[(i+n-1)%n]; s.Pred == nil || *s.Pred != want {
		return fmt.Sprintf("N%s: predecessor %v, want %s", tr.sp.Format(s.Self.ID), s.Pred, tr.sp.Format(want.ID))
	}
	if fingers {
		for k := 1; k <= tr.sp.Bits; k++ {
			if want := tr.successor(tr.sp.FingerStart(s.Self.ID, k)); s.Fingers[k-1] != want {
				return fmt.Sprintf("N%s: finger[%d] = %s, want %s", tr.sp.Format(s.Self.ID), k, tr.sp.Format(s.Fingers[k-1].ID), tr.sp.Format(want.ID))
			}
		}
	}
	return ""
}

// converge waits (bounded) until every live node agrees with the truth.
func (r *ring) converge(fingers bool, limit time.Duration) truth {
	r.t.Helper()
	live := r.live()
	tr := newTruth(Space{r.cfg.Bits}, live)
	deadline := time.Now().Add(limit)
	for {
		bad := ""
		for _, p := range live {
			if d := tr.diff(p.Node.State(), fingers); d != "" {
				bad = d
				break
			}
		}
		if bad == "" {
			return tr
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("ring did not converge in %v: %s", limit, bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func Test32NodesConverge(t *testing.T) {
	r := newRing(t, testConfig(160, SuccessorsFor(32)), 32, nil)
	tr := r.converge(true, 20*time.Second)
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		key := Space{160}.HashString(fmt.Sprint("key", i))
		mode := LookupMode(i % 2)
		p := r.peers[rand.IntN(len(r.peers))]
		res, err := p.Node.Lookup(ctx, key, mode)
		if err != nil {
			t.Fatalf("%v lookup: %v", mode, err)
		}
		if want := tr.successor(key); res.Owner != want {
			t.Fatalf("%v lookup of %x from %s: %s, want %s", mode, key, p.Node.Self().Addr, res.Owner.Addr, want.Addr)
		}
		if res.Hops() > 10 {
			t.Errorf("%v lookup took %d hops in a ring of 32", mode, res.Hops())
		}
	}
	// The client does the same from outside.
	var c Client
	defer c.Close()
	for _, mode := range []LookupMode{Iterative, Recursive} {
		c.Mode = mode
		res, _, err := c.Lookup(ctx, r.peers[3].Node.Self().Addr, Key{Name: "Liberty"})
		if err != nil || res.Owner != tr.successor(Space{160}.HashString("Liberty")) {
			t.Fatalf("client %v lookup: %v %v", mode, res.Owner, err)
		}
	}
}

// TestCourseExample is the course's walk-through at m = 5.
func TestCourseExample(t *testing.T) {
	sp := Space{5}
	cfg := testConfig(5, 3)
	r := newRing(t, cfg, 7, []uint64{2, 5, 10, 12, 20, 25, 29})
	r.converge(true, 10*time.Second)
	byID := func(v uint64) *Peer {
		for _, p := range r.peers {
			if p.Node.Self().ID == sp.FromUint64(v) {
				return p
			}
		}
		t.Fatalf("no node %d", v)
		return nil
	}
	ctx := context.Background()
	n5 := byID(5)
	// Key 14 stored via node 5 lands at its successor, node 20: directly,
	// and the course's indirect "Liberty -> N5's address".
	for _, k := range []uint64{14, 16} {
		res, err := n5.Node.Put(ctx, sp.FromUint64(k), "", []Value{{Data: []byte(fmt.Sprint("value ", k))}}, false)
		if err != nil || res.Owner.ID != sp.FromUint64(20) {
			t.Fatalf("put %d: owner %v, %v", k, res.Owner, err)
		}
	}
	liberty := sp.FromUint64(14)
	if _, err := n5.Node.Put(ctx, liberty, "Liberty", []Value{{Data: []byte(n5.Node.Self().Addr), Ref: true}}, true); err != nil {
		t.Fatal(err)
	}
	if !byID(20).Node.Holds(sp.FromUint64(14)) || byID(12).Node.Holds(sp.FromUint64(14)) {
		t.Fatal("key 14 is not at node 20 alone among 12, 20")
	}
	vs, res, err := byID(2).Node.Get(ctx, liberty)
	if err != nil || len(vs) != 2 || !vs[1].Ref || string(vs[1].Data) != n5.Node.Self().Addr {
		t.Fatalf("get Liberty: %v %v", vs, err)
	}
	t.Logf("get K14 from N2: path of %d hops to N%s", res.Hops(), sp.Format(res.Owner.ID))

	// Node 17 joins and takes keys 14 and 16.
	id17 := sp.FromUint64(17)
	n17 := r.add(&id17, n5.Node.Self().Addr)
	r.converge(true, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !(n17.Node.Holds(sp.FromUint64(14)) && n17.Node.Holds(sp.FromUint64(16))) {
		if time.Now().After(deadline) {
			t.Fatal("node 17 did not receive keys 14 and 16")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res, err := n5.Node.Lookup(ctx, sp.FromUint64(14), Recursive); err != nil || res.Owner.ID != id17 {
		t.Fatalf("K14 now at %v (%v), want N17", res.Owner, err)
	}

	// Key 8 lives at node 10; node 10 leaves and the ring heals.
	if _, err := n5.Node.Put(ctx, sp.FromUint64(8), "", []Value{{Data: []byte("eight")}}, false); err != nil {
		t.Fatal(err)
	}
	n10 := byID(10)
	if err := n10.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if s := n5.Node.State(); s.Succs[0].ID != sp.FromUint64(12) {
		t.Errorf("right after the leave, N5's successor is %s", sp.Format(s.Succs[0].ID))
	}
	r.converge(true, 10*time.Second)
	vs, res, err = n5.Node.Get(ctx, sp.FromUint64(8))
	if err != nil || string(vs[0].Data) != "eight" || res.Owner.ID != sp.FromUint64(12) {
		t.Fatalf("key 8 after node 10 left: %v at %v, %v", vs, res.Owner, err)
	}
}

func Test64NodesFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	// 64 nodes' maintenance on 2 shared cores, under the race detector
	// when CI runs it: intervals long enough that it does not starve the
	// test's own calls.
	cfg := testConfig(160, SuccessorsFor(64))
	cfg.StabilizeInterval = 150 * time.Millisecond
	cfg.FixFingersInterval = 75 * time.Millisecond
	cfg.CheckPredecessorInterval = 300 * time.Millisecond
	cfg.ReplicateInterval = time.Second
	cfg.CallTimeout = 5 * time.Second
	r := newRing(t, cfg, 64, nil)
	r.converge(false, 60*time.Second)
	ctx := context.Background()
	const keys = 1000
	key := func(i int) ID { return Space{160}.HashString(fmt.Sprint("object-", i)) }
	var wg sync.WaitGroup
	errc := make(chan error, keys)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < keys; i += 4 {
				p := r.peers[i%len(r.peers)]
				// A client retries a put that timed out, as a real one would.
				var err error
				for try := 0; try < 3; try++ {
					if _, err = p.Node.Put(ctx, key(i), "", []Value{{Data: []byte(fmt.Sprint(i))}}, false); err == nil {
						break
					}
				}
				if err != nil {
					errc <- fmt.Errorf("put %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	// Kill 25% abruptly.
	perm := rand.Perm(len(r.peers))
	for _, i := range perm[:len(r.peers)/4] {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r.peers[i].Shutdown(sctx) //nolint:errcheck
		cancel()
	}
	tr := r.converge(false, 60*time.Second)
	live := r.live()
	lost := 0
	for i := 0; i < keys; i++ {
		p := live[i%len(live)]
		vs, res, err := p.Node.Get(ctx, key(i))
		if err != nil || string(vs[0].Data) != fmt.Sprint(i) {
			lost++
			t.Errorf("key %d: %v", i, err)
			continue
		}
		if res.Owner != tr.successor(key(i)) {
			t.Errorf("key %d: lookup gave %s, want %s", i, res.Owner.Addr, tr.successor(key(i)).Addr)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d keys lost", lost, keys)
	}
}

func TestJoinUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := newRing(t, testConfig(6, 2), 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.peers[0].Join(ctx, dead); err == nil {
		t.Fatal("join via a dead address succeeded")
	}
}

func TestExpiryAndPeers(t *testing.T) {
	r := newRing(t, testConfig(160, 3), 4, nil)
	r.converge(false, 10*time.Second)
	ctx := context.Background()
	addr := r.peers[1].Node.Self().Addr
	var ih [20]byte
	copy(ih[:], "an info hash 20bytes")
	if err := AnnouncePeer(ctx, addr, ih, "127.0.0.5:6881", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := AnnouncePeer(ctx, addr, ih, "127.0.0.6:6881", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := AnnouncePeer(ctx, addr, ih, "127.0.0.5:6881", time.Hour); err != nil { // re-announce
		t.Fatal(err)
	}
	got, err := GetPeers(ctx, r.peers[2].Node.Self().Addr, ih)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"127.0.0.5:6881", "127.0.0.6:6881"}) {
		t.Fatalf("peers %v, %v", got, err)
	}
	time.Sleep(80 * time.Millisecond)
	got, err = GetPeers(ctx, addr, ih)
	if err != nil || !slices.Equal(got, []string{"127.0.0.5:6881"}) {
		t.Fatalf("after expiry: %v, %v", got, err)
	}
	var other [20]byte
	if got, err := GetPeers(ctx, addr, other); err != nil || len(got) != 0 {
		t.Fatalf("unknown hash: %v %v", got, err)
	}
}
