package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"appnet/p2p/chord"
)

// ChordConfig is the [host.NAME.chord] table: one node of a Chord ring
// (p2p/chord). The first host of a ring founds it (no join); the others
// join through any node of it. Teaching rings set bits and id to place
// the nodes where the course's figures have them.
type ChordConfig struct {
	Port       int           `toml:"port"`        // TCP port
	Bits       int           `toml:"bits"`        // m, the identifier bits (1-160)
	ID         string        `toml:"id"`          // the node's identifier (decimal or 0x-hex), needs trust_ids; "": SHA-1(IP:port)
	TrustIDs   bool          `toml:"trust_ids"`   // accept IDs not derived from addresses (the course's rings); every node of a ring alike
	Join       string        `toml:"join"`        // "IP:port" of a node of the ring; "": found a ring
	Successors int           `toml:"successors"`  // r, the successor-list length
	Stabilize  time.Duration `toml:"stabilize"`   // interval of stabilize (fix_fingers runs 4x as often)
	CheckNodes int           `toml:"check_nodes"` // nodes the check's ring walk must find; 0: do not walk
}

func init() {
	Register("chord", "a node of a Chord DHT ring (p2p/chord)",
		func() *ChordConfig {
			return &ChordConfig{Port: 4000, Bits: chord.DefaultBits, Successors: 4, Stabilize: 500 * time.Millisecond}
		},
		validateChord, startChord)
}

func validateChord(c *ChordConfig) error {
	if err := CheckPort("port", c.Port); err != nil {
		return err
	}
	if c.Port == 0 {
		return FieldError("port", "a chord node needs a port")
	}
	if !(chord.Space{Bits: c.Bits}).Valid() {
		return FieldError("bits", "%d is not between 1 and %d", c.Bits, chord.MaxBits)
	}
	if c.ID != "" {
		if _, err := (chord.Space{Bits: c.Bits}).Parse(c.ID); err != nil {
			return FieldError("id", "%v", err)
		}
		if !c.TrustIDs {
			return FieldError("id", "a chosen id needs trust_ids = true (otherwise the id is SHA-1(IP:port))")
		}
	}
	if c.Join != "" {
		if _, err := netip.ParseAddrPort(c.Join); err != nil {
			return FieldError("join", "%q is not IP:port", c.Join)
		}
	}
	if c.Successors < 1 || c.Successors > chord.MaxListLen/2 {
		return FieldError("successors", "%d is not between 1 and %d", c.Successors, chord.MaxListLen/2)
	}
	if c.Stabilize < 10*time.Millisecond || c.Stabilize > time.Hour {
		return FieldError("stabilize", "%v is not between 10ms and 1h", c.Stabilize)
	}
	if c.CheckNodes < 0 || c.CheckNodes > 1024 {
		return FieldError("check_nodes", "%d is not between 0 and 1024", c.CheckNodes)
	}
	return nil
}

type chordNode struct {
	env      *Env
	cfg      *ChordConfig
	peer     *chord.Peer
	endpoint Endpoint
}

// chordJoinWait bounds how long a node keeps trying to join when the node
// it joins through is not up yet.
const chordJoinWait = 5 * time.Second

func startChord(ctx context.Context, env *Env, c *ChordConfig) (Service, error) {
	cfg := chord.Config{Bits: c.Bits, Successors: c.Successors, Replicas: min(c.Successors, 2),
		StabilizeInterval: c.Stabilize, FixFingersInterval: c.Stabilize / 4,
		CheckPredecessorInterval: 2 * c.Stabilize, ReplicateInterval: 4 * c.Stabilize,
		CallTimeout: time.Second, TrustIDs: c.TrustIDs}
	sp := chord.Space{Bits: c.Bits}
	if c.ID != "" {
		id, err := sp.Parse(c.ID)
		if err != nil {
			return nil, err
		}
		cfg.ID = &id
	}
	join := ""
	if c.Join != "" {
		ap := netip.MustParseAddrPort(c.Join)
		join = netip.AddrPortFrom(ap.Addr(), uint16(env.Ports.Map(int(ap.Port())))).String()
	}
	ln, err := env.Listen(ctx, c.Port)
	if err != nil {
		return nil, err
	}
	p, err := chord.NewPeer(ln, cfg, env.Host, env.Tracer, env.Logger)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p.Start()
	s := &chordNode{env: env, cfg: c, peer: p,
		endpoint: Endpoint{Proto: chord.Proto, Addr: netip.MustParseAddrPort(ln.Addr().String())}}
	if join != "" {
		if err := s.join(ctx, join); err != nil {
			p.Shutdown(ctx) //nolint:errcheck
			return nil, err
		}
	}
	return s, nil
}

// join enters the ring through addr, retrying for a while when nobody
// answers there yet (the founder may start after this host).
func (s *chordNode) join(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, chordJoinWait)
	defer cancel()
	for {
		err := s.peer.Join(ctx, addr)
		var re *chord.RemoteError
		if err == nil || errors.As(err, &re) || errors.Is(err, chord.ErrIDTaken) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *chordNode) Endpoints() []Endpoint { return []Endpoint{s.endpoint} }

func (s *chordNode) Try() []string {
	a := s.endpoint.Addr.String()
	out := []string{
		fmt.Sprintf("appnet chord ring --node %s", a),
		fmt.Sprintf("appnet chord put --node %s Liberty 'a copy of the Liberty file'", a),
		fmt.Sprintf("appnet --trace chord get --node %s Liberty", a),
	}
	if s.cfg.CheckNodes == 0 {
		return nil // the ring's first node lists the commands
	}
	return out
}

// Check stores a value through this node and reads it back, retrying
// while the ring stabilizes; on a node with check_nodes, it also walks the
// ring and expects that many nodes.
func (s *chordNode) Check(ctx context.Context) []Probe {
	addr := s.endpoint.Addr.String()
	cl := &chord.Client{Host: "lab-check", Tracer: s.env.Tracer, Timeout: time.Second}
	defer cl.Close()
	probes := []Probe{s.checkPutGet(ctx, cl, addr)}
	if s.cfg.CheckNodes > 0 {
		probes = append(probes, s.checkRing(ctx, cl, addr))
	}
	return probes
}

// chordRetry runs f until it succeeds, every 200ms, until ctx ends or 10 s.
func chordRetry(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *chordNode) checkPutGet(ctx context.Context, cl *chord.Client, addr string) Probe {
	key := "lab check of " + s.env.Host
	value := "stored via " + addr
	p := Probe{What: fmt.Sprintf("%s %s: put and get %q", chord.Proto, addr, key)}
	start := time.Now()
	sp := chord.Space{Bits: s.cfg.Bits}
	var res chord.Result
	err := chordRetry(ctx, func() error {
		if _, err := chordWalk(ctx, cl, addr); err != nil {
			return err
		}
		if _, err := cl.Put(ctx, addr, chord.Key{Name: key}, []chord.Value{{Data: []byte(value)}}, false); err != nil {
			return fmt.Errorf("put: %w", err)
		}
		vs, r, err := cl.Get(ctx, addr, chord.Key{Name: key})
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if len(vs) != 1 || string(vs[0].Data) != value {
			return fmt.Errorf("get: %d values, want the one stored", len(vs))
		}
		// The owner must agree that it owns the key: key in (pred, owner].
		// Until the ring has stabilized, a lookup may end at a node whose
		// predecessor pointer is stale.
		in, err := cl.Info(ctx, r.Owner.Addr)
		if err != nil {
			return fmt.Errorf("info of the owner: %w", err)
		}
		if id := sp.HashString(key); in.Pred == nil || !chord.BetweenRight(id, in.Pred.ID, in.Self.ID) {
			return fmt.Errorf("key %s found at N%s, which does not own it yet", sp.Format(id), sp.Format(in.Self.ID))
		}
		res = r
		return nil
	})
	if err != nil {
		p.Err = err
		return p
	}
	hops := "hops"
	if res.PathLength() == 1 {
		hops = "hop"
	}
	p.Detail = fmt.Sprintf("key %s at N%s, %d %s from N%s, in %v", sp.Format(sp.HashString(key)), sp.Format(res.Owner.ID),
		res.PathLength(), hops, sp.Format(s.peer.Node.Self().ID), time.Since(start).Round(10*time.Microsecond))
	return p
}

func (s *chordNode) checkRing(ctx context.Context, cl *chord.Client, addr string) Probe {
	p := Probe{What: fmt.Sprintf("%s %s: ring walk finds %d nodes", chord.Proto, addr, s.cfg.CheckNodes)}
	start := time.Now()
	var ids []string
	err := chordRetry(ctx, func() error {
		infos, err := chordWalk(ctx, cl, addr)
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, in := range infos {
			ids = append(ids, "N"+in.Space.Format(in.Self.ID))
		}
		if len(infos) != s.cfg.CheckNodes {
			return fmt.Errorf("ring walk found %d nodes %v, want %d", len(infos), ids, s.cfg.CheckNodes)
		}
		return nil
	})
	if err != nil {
		p.Err = err
		return p
	}
	p.Detail = fmt.Sprintf("%v in %v", ids, time.Since(start).Round(10*time.Microsecond))
	return p
}

func (s *chordNode) Shutdown(ctx context.Context) error {
	return s.peer.Shutdown(ctx)
}

// chordWalk walks the ring from addr and checks that it has stabilized:
// each node's predecessor is the node before it on the walk. Until then a
// lookup may end at a node that does not own the key yet.
func chordWalk(ctx context.Context, cl *chord.Client, addr string) ([]*chord.Info, error) {
	infos, err := cl.Ring(ctx, addr, 1024)
	if err != nil {
		return nil, fmt.Errorf("ring walk: %w", err)
	}
	for i, in := range infos {
		prev := infos[(i+len(infos)-1)%len(infos)]
		if len(infos) > 1 && (in.Pred == nil || in.Pred.Addr != prev.Self.Addr) {
			return nil, fmt.Errorf("ring not stable yet: N%s follows N%s but its predecessor is %v",
				in.Space.Format(in.Self.ID), prev.Space.Format(prev.Self.ID), in.Pred)
		}
	}
	return infos, nil
}
