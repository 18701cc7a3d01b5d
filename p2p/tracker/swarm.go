package tracker

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// peer is one member of a swarm, as the store keeps it.
type peer struct {
	id         Hash
	addr       netip.AddrPort
	key        uint32
	hasKey     bool
	left       int64
	uploaded   int64
	downloaded int64
	last       time.Time // last announce
	idx        int       // position in swarm.list
	completed  bool      // a completed event was counted for it
}

func (p *peer) seeder() bool { return p.left == 0 }

// swarm is the set of peers of one info hash. list holds the same peers as
// byID, so that a random peer is one index away.
type swarm struct {
	byID      map[Hash]*peer
	list      []*peer
	seeders   int
	completed int // completed events ever (scrape's "downloaded")
}

func (sw *swarm) add(p *peer) {
	p.idx = len(sw.list)
	sw.list = append(sw.list, p)
	sw.byID[p.id] = p
	if p.seeder() {
		sw.seeders++
	}
}

func (sw *swarm) remove(p *peer) {
	last := sw.list[len(sw.list)-1]
	sw.list[p.idx] = last
	last.idx = p.idx
	sw.list[len(sw.list)-1] = nil
	sw.list = sw.list[:len(sw.list)-1]
	delete(sw.byID, p.id)
	if p.seeder() {
		sw.seeders--
	}
}

func (sw *swarm) stats() ScrapeStats {
	return ScrapeStats{Complete: sw.seeders, Incomplete: len(sw.list) - sw.seeders, Downloaded: sw.completed}
}

// store holds every swarm. One mutex guards it; no I/O happens under it.
type store struct {
	mu     sync.Mutex
	swarms map[Hash]*swarm
	peers  int // peers in all swarms
	rng    *rand.Rand

	// scratch space of pick, reused under mu
	cand []*peer
	seen map[int]struct{}
}

func newStore(seed uint64) *store {
	return &store{swarms: make(map[Hash]*swarm), seen: make(map[int]struct{}), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// announceIn is an announce as the store sees it: the request with its
// address settled and its limits resolved.
type announceIn struct {
	req       Request
	addr      netip.AddrPort // the peer's address
	now       time.Time
	numwant   int
	family    int // 4 or 6: only peers of that family (UDP); 0: any
	maxSwarms int
	maxPeers  int
	dst       []Peer // pick appends the peers here (reused by the caller)
}

// announceOut is the store's answer.
type announceOut struct {
	stats  ScrapeStats
	peers  []Peer
	stored bool // false: the swarm was full, or the peer stopped
}

// refusal is a failure reason the store gives.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func refuse(format string, args ...any) *refusal {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

func (s *store) announce(in *announceIn) (announceOut, error) {
	var out announceOut
	r := &in.req
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[r.InfoHash]
	if sw == nil {
		if r.Event == Stopped {
			return out, nil
		}
		if len(s.swarms) >= in.maxSwarms {
			return out, refuse("info_hash: the tracker is full (%d torrents)", in.maxSwarms)
		}
		sw = &swarm{byID: make(map[Hash]*peer)}
		s.swarms[r.InfoHash] = sw
	}
	p := sw.byID[r.PeerID]
	if p != nil && p.hasKey && p.addr.Addr() != in.addr.Addr() && (r.Key != p.key) {
		return out, refuse("key: peer_id %s announced from another address with another key", r.PeerID.short())
	}
	if r.Event == Stopped {
		if p != nil {
			sw.remove(p)
			s.peers--
		}
		out.stats = sw.stats()
		if len(sw.list) == 0 {
			delete(s.swarms, r.InfoHash)
		}
		return out, nil
	}
	if p == nil && len(sw.list) < in.maxPeers {
		p = &peer{id: r.PeerID, left: r.Left}
		sw.add(p)
		s.peers++
	}
	if p != nil {
		if p.seeder() != (r.Left == 0) {
			if r.Left == 0 {
				sw.seeders++
			} else {
				sw.seeders--
			}
		}
		p.addr, p.left, p.uploaded, p.downloaded, p.last = in.addr, r.Left, r.Uploaded, r.Downloaded, in.now
		if r.Key != 0 {
			p.key, p.hasKey = r.Key, true
		}
		out.stored = true
	}
	if r.Event == Completed && (p == nil || !p.completed) {
		sw.completed++
		if p != nil {
			p.completed = true
		}
	}
	out.stats = sw.stats()
	out.peers = s.pick(sw, in, p)
	if len(sw.list) == 0 { // a full swarm of zero peers cannot happen, but a zero MaxPeers can
		delete(s.swarms, r.InfoHash)
	}
	return out, nil
}

// pick chooses up to in.numwant peers at random for the announcing peer
// self (nil if it was not stored), never self itself. A seeder gets
// leechers only, unless there are none.
func (s *store) pick(sw *swarm, in *announceIn, self *peer) []Peer {
	k := in.numwant
	if k <= 0 || len(sw.list) == 0 {
		return nil
	}
	seeder := in.req.Left == 0
	leechers := len(sw.list) - sw.seeders
	if self != nil && !seeder {
		leechers--
	}
	skipSeeders := seeder && leechers > 0
	ok := func(p *peer) bool {
		if p == self || p.id == in.req.PeerID {
			return false
		}
		if skipSeeders && p.seeder() {
			return false
		}
		switch in.family {
		case 4:
			return p.addr.Addr().Is4()
		case 6:
			return p.addr.Addr().Is6()
		}
		return true
	}
	out := in.dst[:0]
	n := len(sw.list)
	if n > 2*k+8 {
		// Probe random positions; cheap when most peers qualify.
		clear(s.seen)
		for tries := 0; len(out) < k && tries < 3*k; tries++ {
			i := s.rng.IntN(n)
			if _, dup := s.seen[i]; dup {
				continue
			}
			s.seen[i] = struct{}{}
			if p := sw.list[i]; ok(p) {
				out = append(out, Peer{ID: p.id, Addr: p.addr})
			}
		}
		if len(out) == k {
			return out
		}
		out = out[:0] // few qualify: take them from all below
	}
	cand := s.cand[:0]
	for _, p := range sw.list {
		if ok(p) {
			cand = append(cand, p)
		}
	}
	// A partial Fisher-Yates shuffle: the first k are a random choice.
	for i := 0; i < k && i < len(cand); i++ {
		j := i + s.rng.IntN(len(cand)-i)
		cand[i], cand[j] = cand[j], cand[i]
		out = append(out, Peer{ID: cand[i].id, Addr: cand[i].addr})
	}
	clear(cand)
	s.cand = cand[:0]
	return out
}

// scrape returns the stats of each hash; a swarm the store does not know
// has zero counts.
func (s *store) scrape(hashes []Hash) []ScrapeStats {
	out := make([]ScrapeStats, len(hashes))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range hashes {
		if sw := s.swarms[h]; sw != nil {
			out[i] = sw.stats()
		}
	}
	return out
}

// expire forgets every peer whose last announce is before deadline and
// every swarm left empty. It returns the number of peers forgotten.
func (s *store) expire(deadline time.Time) int {
	n := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, sw := range s.swarms {
		for i := 0; i < len(sw.list); {
			if p := sw.list[i]; p.last.Before(deadline) {
				sw.remove(p) // moves the last peer to i: look at i again
				n++
				continue
			}
			i++
		}
		if len(sw.list) == 0 {
			delete(s.swarms, h)
		}
	}
	s.peers -= n
	return n
}

func (s *store) peersOf(h Hash) []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[h]
	if sw == nil {
		return nil
	}
	out := make([]Peer, len(sw.list))
	for i, p := range sw.list {
		out[i] = Peer{ID: p.id, Addr: p.addr}
	}
	return out
}

func (s *store) size() (swarms, peers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.swarms), s.peers
}
