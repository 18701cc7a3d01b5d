package tracker

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"appnet/internal/connlimit"
)

// peer is one member of a swarm, as the store keeps it.
type peer struct {
	id         Hash
	addr       netip.AddrPort
	fromIP     netip.Addr // the source address of its last announce
	src        srcKey     // fromIP's source, counted in its swarm
	key        uint32
	hasKey     bool
	completed  bool // a completed event was counted for it
	left       int64
	uploaded   int64
	downloaded int64
	last       time.Time // last announce
	idx        int       // position in sw.list
	sw         *swarm
	// older and newer link the store's peers in the order of their last
	// announce, for expiry and eviction without a scan.
	older, newer *peer
}

func (p *peer) seeder() bool { return p.left == 0 }

// claim checks that an announce from fromIP, for the address addr, may
// change or stop p. A peer that gave a key is held by that key (BEP 7's
// key, BEP 15's key field): it is moved to another address or port, or
// stopped, only by an announce with the same key, from any address.
// Without the key, an announce from its last source and for its very
// address and port may still refresh it (counts, left, a completed
// event), since aria2 draws a new UDP key for every announce. A peer that
// gave no key is held by the source IP address of its announces (not the
// address it asked for with ip=, which a loopback host may set to any
// loopback address): an announce or a stop for its peer_id from another
// source is refused, since anyone can copy a peer_id seen on the wire. It
// takes the first key it sends from its source.
func (p *peer) claim(r *Request, addr netip.AddrPort, fromIP netip.Addr) error {
	if p.hasKey {
		if r.Key != p.key && (addr != p.addr || fromIP != p.fromIP || r.Event == Stopped) {
			return refuse("key: peer_id %s announced with another key", r.PeerID.short())
		}
		return nil
	}
	if fromIP != p.fromIP {
		return refuse("peer_id: %s is in use from another address (a peer moves only with the key it announced)", r.PeerID.short())
	}
	return nil
}

// srcKey is the source a peer counts against in a swarm: its IPv4 address
// or its IPv6 /64 (internal/connlimit's grouping), as 16 bytes.
type srcKey [16]byte

func sourceOf(a netip.Addr) srcKey {
	p, ok := connlimit.SourceIP(a)
	if !ok {
		return srcKey{}
	}
	return p.Addr().As16()
}

// swarm is the set of peers of one info hash. list holds the same peers as
// byID, so that a random peer is one index away; perSrc counts them by
// source.
type swarm struct {
	hash      Hash
	byID      map[Hash]*peer
	perSrc    map[srcKey]int32
	list      []*peer
	seeders   int
	completed int // completed events ever (scrape's "downloaded")
}

func (sw *swarm) add(p *peer) {
	p.idx = len(sw.list)
	p.sw = sw
	sw.list = append(sw.list, p)
	sw.byID[p.id] = p
	sw.perSrc[p.src]++
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
	sw.unsource(p.src)
	if p.seeder() {
		sw.seeders--
	}
}

func (sw *swarm) unsource(src srcKey) {
	if sw.perSrc[src]--; sw.perSrc[src] <= 0 {
		delete(sw.perSrc, src)
	}
}

func (sw *swarm) stats() ScrapeStats {
	return ScrapeStats{Complete: sw.seeders, Incomplete: len(sw.list) - sw.seeders, Downloaded: sw.completed}
}

// The store's memory is counted in bytes by these estimates, checked by
// TestMemoryBound against the Go heap: a peer is its struct, its entries
// in byID and perSrc and its slot in list (Go maps take about twice
// their entries' bytes); a swarm is its struct, its entry in the store's
// map and its two maps, whose first group of 8 slots and header take
// about 250 bytes each. Maps and lists that shrank keep their capacity
// until their swarm goes, which these counts do not see.
const (
	peerBytes  = int64(unsafe.Sizeof(peer{})) + 2*(HashSize+8) + 2*(16+4) + 8
	swarmBytes = int64(unsafe.Sizeof(swarm{})) + 2*(HashSize+8) + 2*250
)

// store holds every swarm. One mutex guards it; no I/O happens under it.
type store struct {
	mu      sync.Mutex
	swarms  map[Hash]*swarm
	peers   int   // peers in all swarms
	bytes   int64 // their cost: peerBytes each, swarmBytes a swarm
	evicted int64 // peers forgotten to stay within the byte bound
	// newest and oldest are the ends of the list of every peer by last
	// announce.
	newest, oldest *peer
	rate           rateTable
	rng            *rand.Rand

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
	req     Request
	addr    netip.AddrPort // the peer's address
	fromIP  netip.Addr     // the request's source address
	from    srcKey         // its source, for the rate and per-swarm limits
	now     time.Time
	numwant int
	family  int // 4 or 6: only peers of that family (UDP); 0: any
	limits
	dst []Peer // pick appends the peers here (reused by the caller)
}

// limits are a Server's bounds, resolved: a value <= 0 means none.
type limits struct {
	maxSwarms   int
	maxPeers    int   // per swarm
	maxPerAddr  int   // per swarm and source
	maxBytes    int64 // of all swarms
	rate, burst float64
	rateSources int
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
	if !s.rate.allow(in.from, in.now, &in.limits) {
		return out, refuse("announce: more than %g announces a second from your address (bursts of %g); slow down", in.rate, in.burst)
	}
	sw := s.swarms[r.InfoHash]
	var p *peer
	if sw != nil {
		p = sw.byID[r.PeerID]
	}
	if p != nil {
		if err := p.claim(r, in.addr, in.fromIP); err != nil {
			return out, err
		}
	}
	if r.Event == Stopped {
		if p != nil {
			s.drop(p)
		}
		if sw != nil {
			out.stats = sw.stats()
		}
		return out, nil
	}
	src := in.from
	if sw != nil && in.maxPerAddr > 0 && (p == nil || p.src != src) && int(sw.perSrc[src]) >= in.maxPerAddr {
		return out, refuse("peer_id: this torrent has %d peers from your address already, the most it takes", in.maxPerAddr)
	}
	if sw == nil && len(s.swarms) >= in.maxSwarms {
		return out, refuse("info_hash: the tracker is full (%d torrents)", in.maxSwarms)
	}
	if p == nil && sw != nil && in.maxPeers > 0 && len(sw.list) >= in.maxPeers {
		if v := s.crowded(sw, src); v != nil {
			s.drop(v) // sw keeps at least the other peers: maxPeers > 1
		}
	}
	if p == nil && (sw == nil || len(sw.list) < in.maxPeers) && in.maxPeers > 0 {
		need := peerBytes
		if sw == nil {
			need += swarmBytes
		}
		s.makeRoom(need, in.maxBytes)
		if sw = s.swarms[r.InfoHash]; sw == nil { // new, or evicted just now
			sw = &swarm{hash: r.InfoHash, byID: make(map[Hash]*peer), perSrc: make(map[srcKey]int32)}
			s.swarms[r.InfoHash] = sw
			s.bytes += swarmBytes
		}
		p = &peer{id: r.PeerID, left: r.Left, addr: in.addr, fromIP: in.fromIP, src: src}
		sw.add(p)
		s.peers++
		s.bytes += peerBytes
	}
	if sw == nil { // a swarm of no peers: MaxPeers < 0
		return out, nil
	}
	if p != nil {
		s.update(p, in, src)
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
	return out, nil
}

// update records an announce of p, a peer of its swarm, and makes it the
// newest peer.
func (s *store) update(p *peer, in *announceIn, src srcKey) {
	r, sw := &in.req, p.sw
	if p.seeder() != (r.Left == 0) {
		if r.Left == 0 {
			sw.seeders++
		} else {
			sw.seeders--
		}
	}
	if p.src != src {
		sw.unsource(p.src)
		sw.perSrc[src]++
		p.src = src
	}
	p.addr, p.fromIP, p.left, p.uploaded, p.downloaded = in.addr, in.fromIP, r.Left, r.Uploaded, r.Downloaded
	if r.Key != 0 && !p.hasKey {
		p.key, p.hasKey = r.Key, true
	}
	// The list stays in order of last even if the clock steps back.
	p.last = in.now
	if s.newest != nil && s.newest != p && p.last.Before(s.newest.last) {
		p.last = s.newest.last
	}
	s.unlink(p)
	p.older = s.newest
	if s.newest != nil {
		s.newest.newer = p
	}
	s.newest = p
	if s.oldest == nil {
		s.oldest = p
	}
}

// unlink takes p out of the list by last announce (if it is in it).
func (s *store) unlink(p *peer) {
	if p.newer != nil {
		p.newer.older = p.older
	} else if s.newest == p {
		s.newest = p.older
	}
	if p.older != nil {
		p.older.newer = p.newer
	} else if s.oldest == p {
		s.oldest = p.newer
	}
	p.older, p.newer = nil, nil
}

// drop forgets p, and its swarm if p was its last peer.
func (s *store) drop(p *peer) {
	sw := p.sw
	sw.remove(p)
	s.unlink(p)
	s.peers--
	s.bytes -= peerBytes
	if len(sw.list) == 0 {
		delete(s.swarms, sw.hash)
		s.bytes -= swarmBytes
	}
}

// crowdSample is the number of peers crowded looks at.
const crowdSample = 8

// crowded chooses a peer of a full swarm to make room for a newcomer from
// src, or returns nil. It looks at a few peers at random and takes the
// one whose source has the most peers in the swarm (the least recently
// seen of those), but only if that source has at least two more than
// src: a swarm filled by a few sources (one attacker's addresses, an
// IPv6 /48's worth of /64s) still takes newcomers from others, while a
// source cannot push out peers of sources no larger than its own.
func (s *store) crowded(sw *swarm, src srcKey) *peer {
	var v *peer
	for range crowdSample {
		c := sw.list[s.rng.IntN(len(sw.list))]
		if v == nil || sw.perSrc[c.src] > sw.perSrc[v.src] || sw.perSrc[c.src] == sw.perSrc[v.src] && c.last.Before(v.last) {
			v = c
		}
	}
	if v == nil || sw.perSrc[v.src] < sw.perSrc[src]+2 || len(sw.list) < 2 {
		return nil
	}
	return v
}

// makeRoom forgets the least recently seen peers until need more bytes
// fit in max (<= 0: no bound).
func (s *store) makeRoom(need, max int64) {
	for max > 0 && s.bytes+need > max && s.oldest != nil {
		s.drop(s.oldest)
		s.evicted++
	}
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
// every swarm left empty, oldest first, without looking at the others. It
// returns the number of peers forgotten.
func (s *store) expire(deadline time.Time) int {
	n := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.oldest != nil && s.oldest.last.Before(deadline) {
		s.drop(s.oldest)
		n++
	}
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

func (s *store) memory() (bytes, evicted int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.evicted
}
