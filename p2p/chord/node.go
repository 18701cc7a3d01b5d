package chord

import (
	"context"
	"crypto/ed25519"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// LookupMode chooses how a lookup travels.
type LookupMode int

const (
	// Iterative: the asking node contacts each hop itself (find_next),
	// routing around a hop that does not answer.
	Iterative LookupMode = iota
	// Recursive: each hop forwards the query (find_successor) and the
	// answer comes back along the path.
	Recursive
)

func (m LookupMode) String() string {
	if m == Recursive {
		return "recursive"
	}
	return "iterative"
}

// Defaults of Config; a zero field takes its default.
const (
	DefaultBits             = 160
	DefaultSuccessors       = 8 // r: 2·log2 of a 16-node ring
	DefaultStabilize        = time.Second
	DefaultFixFingers       = 250 * time.Millisecond
	DefaultCheckPredecessor = 2 * time.Second
	DefaultReplicate        = 5 * time.Second
	DefaultExpire           = 10 * time.Second
	DefaultCallTimeout      = 2 * time.Second
	DefaultMaxHops          = 64
	DefaultMaxKeys          = 100000
	maxItemBytes            = 256 << 10
	storeBatchBytes         = 256 << 10
)

// SuccessorsFor returns the course's default successor-list length for an
// expected ring of n nodes: 2·log2 n, at least 2.
func SuccessorsFor(n int) int {
	r := 0
	for v := 1; v < n; v <<= 1 {
		r++
	}
	return max(2, 2*r)
}

// Config configures a node. The zero value is a 160-bit node with the
// defaults above.
type Config struct {
	Bits int // m, 1..160; 0: 160
	// ID is the node's identifier; nil: SHA-1 of its address ("IP:port").
	// Teaching rings set it, which needs TrustIDs.
	ID *ID
	// TrustIDs accepts node IDs that are not SHA-1("IP:port"), for the
	// course's small rings with chosen IDs (lab trust_ids = true). The
	// other checks (source address, callback, neighbours, signatures)
	// still apply. Every node of a ring must agree on it.
	TrustIDs   bool
	Successors int // r, the successor-list length; 0: DefaultSuccessors
	Replicas   int // successors holding a copy of each key; 0: Successors; -1: none

	StabilizeInterval        time.Duration // stabilize + notify (also the successor ping)
	FixFingersInterval       time.Duration // fix_fingers, one finger per call
	CheckPredecessorInterval time.Duration // check_predecessor (ping)
	ReplicateInterval        time.Duration // push owned keys to the replicas
	ExpireInterval           time.Duration // drop expired values

	CallTimeout   time.Duration // one RPC; 0: DefaultCallTimeout
	LookupTimeout time.Duration // a whole recursive lookup; 0: 8 × CallTimeout
	MaxHops       int           // hops before a lookup gives up; 0: DefaultMaxHops
	Lookup        LookupMode    // how the node's own lookups travel
	MaxKeys       int           // keys held at most; 0: DefaultMaxKeys

	MaxBytes       int64 // bytes stored at most (keys, values, metadata); 0: DefaultMaxBytes
	MaxWriterBytes int64 // bytes one writer may store here; 0: DefaultMaxWriterBytes

	// MaxConns and MaxConnsPerAddr cap a Peer's server: connections in
	// total and from one source address (an IPv4 address or an IPv6 /64).
	// 0: DefaultMaxConns, DefaultMaxConnsPerAddr; < 0: no cap. Rings with
	// many nodes on one address (tests, experiments) lift the second.
	MaxConns        int
	MaxConnsPerAddr int

	// Signer is the key that signs what the node itself puts (Node.Put);
	// nil: a fresh key.
	Signer ed25519.PrivateKey

	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.Bits == 0 {
		c.Bits = DefaultBits
	}
	if !(Space{c.Bits}).Valid() {
		return fmt.Errorf("chord: m = %d is not between 1 and %d", c.Bits, MaxBits)
	}
	if c.Successors == 0 {
		c.Successors = DefaultSuccessors
	}
	if c.Successors < 1 || c.Successors > MaxListLen/2 {
		return fmt.Errorf("chord: %d successors is not between 1 and %d", c.Successors, MaxListLen/2)
	}
	switch {
	case c.Replicas == 0:
		c.Replicas = c.Successors
	case c.Replicas < 0:
		c.Replicas = 0
	case c.Replicas > c.Successors:
		return fmt.Errorf("chord: %d replicas but only %d successors", c.Replicas, c.Successors)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StabilizeInterval, DefaultStabilize)
	def(&c.FixFingersInterval, DefaultFixFingers)
	def(&c.CheckPredecessorInterval, DefaultCheckPredecessor)
	def(&c.ReplicateInterval, DefaultReplicate)
	def(&c.ExpireInterval, DefaultExpire)
	def(&c.CallTimeout, DefaultCallTimeout)
	def(&c.LookupTimeout, 8*c.CallTimeout)
	if c.MaxHops <= 0 {
		c.MaxHops = DefaultMaxHops
	}
	c.MaxHops = min(c.MaxHops, MaxListLen-2)
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxWriterBytes <= 0 {
		c.MaxWriterBytes = DefaultMaxWriterBytes
	}
	if c.Signer == nil {
		c.Signer = NewSigner()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Node is one Chord node: its routing state (predecessor, successor list,
// finger table), its share of the stored keys, and the periodic
// maintenance of Stoica et al. §4–5. It talks to other nodes only through
// its Transport and tells time only through its Clock, so the same code
// runs on sockets and in a simulator. Its methods are safe for concurrent
// use; no lock is held during a call to another node.
type Node struct {
	cfg  Config
	sp   Space
	self NodeRef
	tr   Transport
	clk  Clock

	mu      sync.Mutex
	pred    *NodeRef
	preds   []NodeRef // pred, then its predecessors as it told us (notify); at most Replicas+1
	around  bool      // preds reaches round the ring to us: the whole circle is our replica range
	leaving bool      // Leave has begun: a ping answer says so, to confirm our leave
	succs   []NodeRef // never empty: [self] when alone
	fingers []NodeRef // fingers[i-1] is finger[i]; zero: unknown
	next    int       // the next finger fix_fingers refreshes (0-based)
	st      store

	tmu     sync.Mutex
	stopped bool
	timers  map[int]Timer
	tseq    int
	twg     sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// NewNode returns a node at addr (the address others reach it at) that
// forms a ring of its own until it joins another. Its ID is cfg.ID or
// hash(addr).
func NewNode(addr string, cfg Config, tr Transport, clk Clock) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if clk == nil {
		clk = SystemClock{}
	}
	sp := Space{cfg.Bits}
	self := NodeRef{ID: sp.HashString(addr), Addr: addr}
	if cfg.ID != nil {
		if !sp.Contains(*cfg.ID) {
			return nil, fmt.Errorf("chord: node id does not fit in m = %d bits", cfg.Bits)
		}
		if !cfg.TrustIDs && *cfg.ID != self.ID {
			return nil, fmt.Errorf("chord: node id %s is not SHA-1(%q): set TrustIDs for a ring of chosen ids", sp.Format(*cfg.ID), addr)
		}
		self.ID = *cfg.ID
	}
	n := &Node{cfg: cfg, sp: sp, self: self, tr: tr, clk: clk,
		succs: []NodeRef{self}, fingers: make([]NodeRef, cfg.Bits),
		st: newStore(cfg.MaxBytes, cfg.MaxWriterBytes, cfg.MaxKeys), timers: map[int]Timer{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// Self returns the node's own reference.
func (n *Node) Self() NodeRef { return n.self }

// Space returns the node's identifier circle.
func (n *Node) Space() Space { return n.sp }

// Config returns the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// State is a snapshot of a node's routing state.
type State struct {
	Self    NodeRef
	Pred    *NodeRef
	Succs   []NodeRef
	Fingers []NodeRef // Fingers[i-1] is finger[i]
	Keys    int
}

// State returns a snapshot of the routing state.
func (n *Node) State() State {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := State{Self: n.self, Succs: slices.Clone(n.succs), Fingers: slices.Clone(n.fingers), Keys: len(n.st.items)}
	if n.pred != nil {
		p := *n.pred
		s.Pred = &p
	}
	return s
}

// StoredBytes returns the bytes the node's store holds, as it counts them
// against Config.MaxBytes: keys, names, values and writer metadata.
func (n *Node) StoredBytes() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st.bytes
}

// WriterBytes returns the bytes charged to the writer with public key pk.
func (n *Node) WriterBytes(pk ed25519.PublicKey) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st.writerBytes(string(pk))
}

// Holds reports whether the node stores a live value under key (as owner or
// replica).
func (n *Node) Holds(key ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, _, ok := n.st.get(key, n.clk.Now())
	return ok
}

// Bootstrap installs routing state computed elsewhere, as a simulator
// does to start from a converged ring; maintenance keeps it up to date
// from then on.
func (n *Node) Bootstrap(pred *NodeRef, succs, fingers []NodeRef) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if pred != nil {
		p := *pred
		n.pred = &p
		n.preds = []NodeRef{p}
	}
	n.setSuccsLocked(succs)
	copy(n.fingers, fingers)
}

// ---- lifecycle ----

// Start begins the periodic maintenance: stabilize, fix_fingers,
// check_predecessor, replication and expiry, each at its interval (the
// first run at a random point of the first interval, so a ring does not
// move in lockstep). The points are drawn from the node's identity, not
// the global random source, so that a simulation with a given seed runs
// the same way every time.
func (n *Node) Start() {
	h := sha1.Sum(append(n.self.ID[:], n.self.Addr...))
	rng := rand.New(rand.NewPCG(binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:16])))
	n.every(rng, n.cfg.StabilizeInterval, n.Stabilize)
	n.every(rng, n.cfg.FixFingersInterval, n.FixFinger)
	n.every(rng, n.cfg.CheckPredecessorInterval, n.CheckPredecessor)
	n.every(rng, n.cfg.ReplicateInterval, n.Replicate)
	n.every(rng, n.cfg.ExpireInterval, func(context.Context) { n.Expire() })
}

func (n *Node) schedule(d time.Duration, f func(), repeat time.Duration) {
	n.tmu.Lock()
	defer n.tmu.Unlock()
	if n.stopped {
		return
	}
	n.tseq++
	id := n.tseq
	var run func()
	run = func() {
		n.tmu.Lock()
		delete(n.timers, id)
		if n.stopped {
			n.tmu.Unlock()
			return
		}
		n.twg.Add(1)
		n.tmu.Unlock()
		f()
		n.twg.Done()
		if repeat > 0 {
			n.tmu.Lock()
			if !n.stopped {
				n.timers[id] = n.clk.AfterFunc(repeat, run)
			}
			n.tmu.Unlock()
		}
	}
	n.timers[id] = n.clk.AfterFunc(d, run)
}

func (n *Node) every(rng *rand.Rand, d time.Duration, f func(context.Context)) {
	first := time.Duration(rng.Int64N(int64(d))) + 1
	n.schedule(first, func() { f(n.ctx) }, d)
}

// spawn runs f soon, outside the caller (a key hand-over after notify).
func (n *Node) spawn(f func(context.Context)) {
	n.schedule(0, func() { f(n.ctx) }, 0)
}

// Stop ends the maintenance and waits for a task under way. It does not
// tell anyone: to the ring this is a failure. Use Leave to go gracefully.
func (n *Node) Stop() {
	n.tmu.Lock()
	n.stopped = true
	for id, t := range n.timers {
		t.Stop()
		delete(n.timers, id)
	}
	n.tmu.Unlock()
	n.cancel()
	n.twg.Wait()
}

// ---- calls ----

func (n *Node) call(ctx context.Context, to NodeRef, req *Message) (*Message, error) {
	return n.callTimeout(ctx, to, req, n.cfg.CallTimeout)
}

func (n *Node) callTimeout(ctx context.Context, to NodeRef, req *Message, d time.Duration) (*Message, error) {
	req.M = n.sp.Bits
	if req.From == nil {
		self := n.self
		req.From = &self
	}
	ctx = context.WithValue(ctx, callerKey, n.self.Addr)
	var resp *Message
	if to.Addr == n.self.Addr {
		resp = n.Handle(SourceForCaller(ctx), req)
	} else {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var err error
		if resp, err = n.tr.Call(ctx, to.Addr, req); err != nil {
			return nil, err
		}
	}
	if resp.Err != "" {
		return nil, &RemoteError{Addr: to.Addr, Code: resp.Code, Msg: resp.Err}
	}
	return resp, nil
}

// failed reports whether err means the node did not answer (as opposed to
// answering with an error, or our own context ending).
func failed(ctx context.Context, err error) bool {
	var re *RemoteError
	return err != nil && ctx.Err() == nil && !errors.As(err, &re)
}

// suspect forgets a node that did not answer: routing goes around it via
// the successor list and the other fingers.
func (n *Node) suspect(r NodeRef) {
	if r.Addr == n.self.Addr {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pred != nil && n.pred.Addr == r.Addr {
		n.pred = nil
	}
	n.preds = slices.DeleteFunc(n.preds, func(s NodeRef) bool { return s.Addr == r.Addr })
	n.succs = slices.DeleteFunc(n.succs, func(s NodeRef) bool { return s.Addr == r.Addr })
	if len(n.succs) == 0 {
		n.succs = []NodeRef{n.self}
	}
	for i := range n.fingers {
		if n.fingers[i].Addr == r.Addr {
			n.fingers[i] = NodeRef{}
		}
	}
}

// setSuccsLocked installs a successor list: duplicates, and everything
// from self on, dropped; at most r entries; [self] when empty.
func (n *Node) setSuccsLocked(list []NodeRef) {
	out := make([]NodeRef, 0, n.cfg.Successors)
	for _, s := range list {
		if s.Addr == n.self.Addr || s.IsZero() {
			break
		}
		if slices.ContainsFunc(out, func(o NodeRef) bool { return o.Addr == s.Addr }) {
			continue
		}
		out = append(out, s)
		if len(out) == n.cfg.Successors {
			break
		}
	}
	if len(out) == 0 {
		out = append(out, n.self)
	}
	n.succs = out
}

func (n *Node) successor() NodeRef {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.succs[0]
}

func inRefs(list []NodeRef, r NodeRef) bool {
	return slices.ContainsFunc(list, func(o NodeRef) bool { return o.Addr == r.Addr })
}

// closestPreceding returns the finger or successor closest before key
// (Stoica et al. Fig. 5, closest_preceding_node), skipping excluded
// nodes; self when there is none.
func (n *Node) closestPreceding(key ID, exclude []NodeRef) NodeRef {
	n.mu.Lock()
	defer n.mu.Unlock()
	best := n.self
	var bestDist ID
	consider := func(c NodeRef) {
		if c.IsZero() || !Between(c.ID, n.self.ID, key) || inRefs(exclude, c) {
			return
		}
		if d := n.sp.Sub(c.ID, n.self.ID); best.Addr == n.self.Addr || Cmp(d, bestDist) > 0 {
			best, bestDist = c, d
		}
	}
	for i := len(n.fingers) - 1; i >= 0; i-- {
		consider(n.fingers[i])
	}
	for _, s := range n.succs {
		consider(s)
	}
	return best
}

// firstLive returns the first successor not excluded, or self.
func (n *Node) firstLive(exclude []NodeRef) NodeRef {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.succs {
		if !inRefs(exclude, s) {
			return s
		}
	}
	return n.self
}

// ---- maintenance (Stoica et al. Fig. 7, with successor lists §5.2) ----

// Stabilize asks the successor for its predecessor and successor list,
// adopts the predecessor when it lies between, and notifies the
// successor. A successor that does not answer is dropped and the next in
// the list tried.
func (n *Node) Stabilize(ctx context.Context) {
	for try := 0; try <= n.cfg.Successors+1; try++ {
		s := n.successor()
		if s.Addr == n.self.Addr {
			n.mu.Lock()
			var cand NodeRef
			if n.pred != nil {
				cand = *n.pred
			} else {
				for _, f := range n.fingers {
					if !f.IsZero() && f.Addr != n.self.Addr {
						cand = f
						break
					}
				}
			}
			if cand.IsZero() {
				n.mu.Unlock()
				return // alone on the ring
			}
			n.succs = []NodeRef{cand}
			n.mu.Unlock()
			continue
		}
		resp, err := n.call(ctx, s, &Message{Op: OpStabilize})
		if err != nil {
			if failed(ctx, err) {
				n.suspect(s)
				continue
			}
			return
		}
		// The successor list comes only from the successor itself, which
		// must answer as the node we think it is; a predecessor it names
		// is adopted only when it answers as itself too.
		if resp.Node == nil || *resp.Node != s {
			n.suspect(s)
			continue
		}
		list := append([]NodeRef{s}, n.filterPlausible(resp.Succs)...)
		if x := resp.Pred; x != nil && x.Addr != n.self.Addr && Between(x.ID, n.self.ID, s.ID) && n.plausible(*x) {
			if r2, err := n.call(ctx, *x, &Message{Op: OpStabilize}); err == nil && r2.Node != nil && *r2.Node == *x {
				s = *x
				list = append([]NodeRef{s}, n.filterPlausible(r2.Succs)...)
			}
		}
		n.mu.Lock()
		n.setSuccsLocked(list)
		preds := n.predListLocked()
		n.mu.Unlock()
		if _, err := n.call(ctx, s, &Message{Op: OpNotify, Preds: preds}); failed(ctx, err) {
			n.suspect(s)
		}
		return
	}
}

// FixFinger refreshes one finger per call (Stoica et al. fix_fingers):
// finger[i] = find_successor(n + 2^(i-1)). The following fingers whose
// start falls before the same node get it too, without more lookups.
func (n *Node) FixFinger(ctx context.Context) {
	n.mu.Lock()
	i := n.next % n.sp.Bits
	n.mu.Unlock()
	start := n.sp.FingerStart(n.self.ID, i+1)
	res, err := n.Lookup(ctx, start, n.cfg.Lookup)
	if err != nil {
		return
	}
	owner := res.Owner
	if !n.plausible(owner) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fingers[i] = owner
	j := i + 1
	for j < n.sp.Bits && BetweenRight(n.sp.FingerStart(n.self.ID, j+1), n.self.ID, owner.ID) {
		n.fingers[j] = owner
		j++
	}
	n.next = j % n.sp.Bits
}

// CheckPredecessor pings the predecessor and forgets it when it does not
// answer.
func (n *Node) CheckPredecessor(ctx context.Context) {
	n.mu.Lock()
	p := n.pred
	n.mu.Unlock()
	if p == nil {
		return
	}
	if _, err := n.call(ctx, *p, &Message{Op: OpPing}); failed(ctx, err) {
		n.suspect(*p)
	}
}

// Replicate pushes the keys this node owns, (predecessor, self], to its
// first Replicas successors, so that a failed node loses no key.
func (n *Node) Replicate(ctx context.Context) {
	n.mu.Lock()
	if n.pred == nil || n.cfg.Replicas == 0 {
		n.mu.Unlock()
		return
	}
	lo := n.pred.ID
	items := n.st.collect(n.clk.Now(), func(k ID) bool { return BetweenRight(k, lo, n.self.ID) })
	targets := n.replicaTargetsLocked()
	n.mu.Unlock()
	for _, t := range targets {
		n.sendItems(ctx, t, items)
	}
}

func (n *Node) replicaTargetsLocked() []NodeRef {
	var out []NodeRef
	for _, s := range n.succs[:min(len(n.succs), n.cfg.Replicas)] {
		if s.Addr != n.self.Addr {
			out = append(out, s)
		}
	}
	return out
}

// predListLocked is what the node tells its successor in notify: its
// predecessor and the predecessors before it, at most Replicas+1.
func (n *Node) predListLocked() []NodeRef {
	if n.pred == nil {
		return nil
	}
	return slices.Clone(n.preds[:min(len(n.preds), n.cfg.Replicas+1)])
}

// setPredsLocked installs pred's list of predecessors after pred: ours is
// pred, then its list, up to ourselves (the list then goes round the ring)
// and at most Replicas+1 entries.
func (n *Node) setPredsLocked(theirs []NodeRef) {
	out := []NodeRef{*n.pred}
	n.around = false
	for _, p := range theirs {
		if len(out) > n.cfg.Replicas {
			break
		}
		if p.Addr == n.self.Addr {
			n.around = true
			break
		}
		if p.IsZero() || inRefs(out, p) || !n.plausible(p) {
			break
		}
		out = append(out, p)
	}
	n.preds = out
}

// sendItems stores items at t in batches that fit a frame. A batch t
// refuses in part (not its range, quota) does not stop the others.
func (n *Node) sendItems(ctx context.Context, t NodeRef, items []Item) {
	for len(items) > 0 {
		size, k := 0, 0
		for k < len(items) && k < MaxItems && (k == 0 || size < storeBatchBytes) {
			size += itemSize(items[k])
			k++
		}
		if _, err := n.call(ctx, t, &Message{Op: OpStore, Items: items[:k]}); err != nil {
			var re *RemoteError
			if !errors.As(err, &re) {
				if failed(ctx, err) {
					n.suspect(t)
				}
				return
			}
			n.cfg.Logger.Debug("chord: store refused in part", "to", t.Addr, "err", err)
		}
		items = items[k:]
	}
}

func itemSize(it Item) int {
	s := 64 + len(it.Name)
	for _, v := range it.Values {
		s += 128 + len(v.Data)
	}
	return s
}

// Expire drops values whose time is up.
func (n *Node) Expire() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.st.expire(n.clk.Now())
}

// ---- join and leave ----

// ErrIDTaken is returned by Join when a node with the same ID is on the
// ring.
var ErrIDTaken = errors.New("chord: a node with this id is already on the ring")

// ErrUnverified is wrapped when a node's ID is not derived from its
// address (and IDs are not trusted).
var ErrUnverified = errors.New("chord: node id is not SHA-1 of its address")

// Join enters the ring through the node at addr (Stoica et al. Fig. 6):
// predecessor = nil, successor = find_successor(n) asked of that node,
// then one stabilize round. The successor hands over the keys the newcomer
// now owns when it is notified.
func (n *Node) Join(ctx context.Context, addr string) error {
	via := NodeRef{Addr: addr}
	key := n.self.ID
	resp, err := n.callTimeout(ctx, via, &Message{Op: OpFindSuccessor, Key: &key, TTL: n.cfg.MaxHops,
		Budget: n.cfg.LookupTimeout.Milliseconds()}, n.cfg.LookupTimeout)
	if err != nil {
		return fmt.Errorf("chord: join via %s: %w", addr, err)
	}
	if resp.Node == nil {
		return fmt.Errorf("chord: join via %s: %w: no successor in the answer", addr, ErrMalformed)
	}
	succ := *resp.Node
	if !n.plausible(succ) {
		return fmt.Errorf("chord: join via %s: successor N%s at %s: %w", addr, n.sp.Format(succ.ID), succ.Addr, ErrUnverified)
	}
	if succ.ID == n.self.ID {
		return fmt.Errorf("%w (N%s at %s)", ErrIDTaken, n.sp.Format(succ.ID), succ.Addr)
	}
	n.mu.Lock()
	n.pred = nil
	n.setSuccsLocked([]NodeRef{succ})
	n.mu.Unlock()
	n.Stabilize(ctx)
	return nil
}

// Leave leaves the ring gracefully: maintenance stops, the keys go to the
// successor, and both neighbours are told (op leave) so they close the
// gap at once.
func (n *Node) Leave(ctx context.Context) error {
	n.Stop()
	n.mu.Lock()
	n.leaving = true
	var pred *NodeRef
	if n.pred != nil {
		p := *n.pred
		pred = &p
	}
	succs := slices.Clone(n.succs)
	items := n.st.collect(n.clk.Now(), func(ID) bool { return true })
	n.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if s := succs[0]; s.Addr != n.self.Addr {
		n.sendItems(ctx, s, items)
		if _, err := n.call(ctx, s, &Message{Op: OpLeave, Pred: pred}); err != nil {
			errs = append(errs, err)
		}
	}
	if pred != nil && pred.Addr != n.self.Addr {
		if _, err := n.call(ctx, *pred, &Message{Op: OpLeave, Succs: succs}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Node) isStopped() bool {
	n.tmu.Lock()
	defer n.tmu.Unlock()
	return n.stopped
}
