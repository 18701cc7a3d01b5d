package torrent

import (
	"cmp"
	"math/bits"
	"math/rand/v2"
	"slices"
	"time"
)

// BlockSize is the size of the requests the engine sends (BEP 3: 16 KiB is
// what every client expects; larger requests are often refused).
const BlockSize = 16 << 10

// bitset is a fixed-size set of piece indexes.
type bitset struct {
	w []uint64
	n int
}

func newBitset(n int) bitset { return bitset{w: make([]uint64, (n+63)/64), n: n} }

func (b *bitset) get(i int) bool { return b.w[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b *bitset) set(i int)      { b.w[i>>6] |= 1 << (uint(i) & 63) }

func (b *bitset) count() int {
	c := 0
	for _, w := range b.w {
		c += bits.OnesCount64(w)
	}
	return c
}

func (b *bitset) setAll() {
	for i := range b.w {
		b.w[i] = ^uint64(0)
	}
	if r := b.n & 63; r != 0 {
		b.w[len(b.w)-1] = 1<<uint(r) - 1
	}
}

// hasAnyNotIn reports whether b has a piece that other lacks.
func (b *bitset) hasAnyNotIn(other *bitset) bool {
	for i, w := range b.w {
		if w&^other.w[i] != 0 {
			return true
		}
	}
	return false
}

// bytes returns the set in BEP 3 bitfield order: piece 0 is the high bit of
// the first byte.
func (b *bitset) bytes() []byte {
	out := make([]byte, (b.n+7)/8)
	for i := 0; i < b.n; i++ {
		if b.get(i) {
			out[i>>3] |= 0x80 >> (uint(i) & 7)
		}
	}
	return out
}

// bitsetFromBytes reads a BEP 3 bitfield of n pieces.
func bitsetFromBytes(p []byte, n int) bitset {
	b := newBitset(n)
	for i := 0; i < n && i>>3 < len(p); i++ {
		if p[i>>3]&(0x80>>(uint(i)&7)) != 0 {
			b.set(i)
		}
	}
	return b
}

// block names one request: a piece and a block index within it.
type block struct {
	piece, index int
}

// partial is a piece being downloaded.
type partial struct {
	nblocks int
	// got marks the blocks taken from a peer: claimed by the block that
	// answered its request, so no other copy is written over it, and
	// from then on not asked for again. ngot counts those written to
	// storage: the piece is complete when every block is.
	got  []bool
	ngot int
	reqs []uint8 // outstanding requests per block
	// When the block was first requested and when it is expected, from
	// the rate of the peer asked and the requests ahead of it there
	// (revised in endgame each time that peer delivers a block).
	reqAt, eta []time.Time
	// from records which peer sent each block, so a piece that fails its
	// hash check can be blamed on the peers that sent it (smartban.go).
	from []*peer
}

// picker decides which blocks to request from which peer: pieces in
// progress first (to finish them), then the rarest pieces among the
// connected peers, ties broken at random; the first few pieces at random,
// to have something to trade quickly; and endgame at the end, when every
// missing block has been requested, so a slow peer cannot stall the last
// piece. It is not safe for concurrent use: the torrent's lock guards it.
type picker struct {
	numPieces   int
	pieceSize   func(int) int64
	have        bitset
	avail       []int // connected peers that have each piece
	inProgress  map[int]*partial
	rng         *rand.Rand
	randomFirst int // pick at random until we have this many pieces
	// pending counts pieces neither had nor in progress, to know when
	// endgame starts without a scan.
	pending int
	// seeders counts connected peers that have every piece; they are not
	// in avail, so that a swarm of seeders costs nothing to track.
	seeders int
	// onStart, if set, hears of each piece started: its availability and
	// whether it was chosen at random (first pieces) or as the rarest.
	onStart func(piece, avail int, random bool)
	// single holds the pieces that failed with blocks from several peers
	// and are fetched again from one peer alone, to find the peer that
	// sent bad data (smartban.go): the peer that has it, or nil while
	// none does (the next peer to ask for it takes it).
	single map[int]*peer
}

func newPicker(numPieces int, pieceSize func(int) int64, have bitset, seed uint64) *picker {
	return &picker{
		numPieces:   numPieces,
		pieceSize:   pieceSize,
		have:        have,
		avail:       make([]int, numPieces),
		inProgress:  make(map[int]*partial),
		single:      make(map[int]*peer),
		rng:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		randomFirst: 4,
		pending:     numPieces - have.count(),
	}
}

func (p *picker) blocksIn(piece int) int {
	return int((p.pieceSize(piece) + BlockSize - 1) / BlockSize)
}

// blockLen returns the length of block b.
func (p *picker) blockLen(b block) int {
	size := p.pieceSize(b.piece)
	return int(min(BlockSize, size-int64(b.index)*BlockSize))
}

// peerHas adds a peer's pieces to the availability counts.
func (p *picker) peerHas(bs *bitset, seeder bool) {
	if seeder {
		p.seeders++
		return
	}
	for i := 0; i < p.numPieces; i++ {
		if bs.get(i) {
			p.avail[i]++
		}
	}
}

// peerGone removes a peer's pieces from the availability counts.
func (p *picker) peerGone(bs *bitset, seeder bool) {
	if seeder {
		p.seeders--
		return
	}
	for i := 0; i < p.numPieces; i++ {
		if bs.get(i) {
			p.avail[i]--
		}
	}
}

// availability returns how many connected peers have piece i.
func (p *picker) availability(i int) int { return p.avail[i] + p.seeders }

func (p *picker) done() bool { return p.pending == 0 && len(p.inProgress) == 0 }

// endgame reports whether every missing block has been requested at least
// once.
func (p *picker) endgame() bool {
	if p.pending > 0 {
		return false
	}
	for _, pp := range p.inProgress {
		for i := range pp.nblocks {
			if !pp.got[i] && pp.reqs[i] == 0 {
				return false
			}
		}
	}
	return true
}

// pick returns up to n blocks to request from a peer that has the pieces in
// has (all of them when seeder), skipping blocks for which asked reports
// that this peer already has a request outstanding. eta(k) is when this
// peer should send the k-th block picked now.
//
// In endgame it asks again only for a block that is late (it has taken
// twice as long as expected, and endgameSlack more) or that this peer
// would send in under a quarter of the time still expected of the first
// request: duplicates go to blocks stuck at a slow peer or deep in its
// pipeline while this one sits idle, not to every block in flight. Each
// duplicate costs some peer's upload, which in a busy swarm is everyone's
// time.
func (p *picker) pick(has *bitset, seeder bool, n int, asked func(block) bool, now time.Time, eta func(k int) time.Time) []block {
	return p.pickFor(nil, has, seeder, n, asked, now, eta)
}

// pickFor is pick for the peer who: a piece fetched from one peer alone
// (single) is offered only to the peer that has it, or, when none has,
// to who, which then takes it. A nil who is any peer and takes nothing.
func (p *picker) pickFor(who *peer, has *bitset, seeder bool, n int, asked func(block) bool, now time.Time, eta func(k int) time.Time) []block {
	var out []block
	peerHas := func(i int) bool {
		if !seeder && !has.get(i) {
			return false
		}
		owner, one := p.single[i]
		return !one || owner == who || owner == nil && who != nil
	}
	// take gives who a piece fetched from one peer alone that nobody had.
	take := func(piece int) {
		if owner, one := p.single[piece]; one && owner == nil {
			p.single[piece] = who
		}
	}
	request := func(pp *partial, i int) {
		if pp.reqs[i] == 0 {
			pp.reqAt[i], pp.eta[i] = now, eta(len(out))
		}
		pp.reqs[i]++
	}
	// 1. Finish what is started.
	for piece, pp := range p.inProgress {
		if len(out) >= n {
			return out
		}
		if !peerHas(piece) {
			continue
		}
		for i := 0; i < pp.nblocks && len(out) < n; i++ {
			if !pp.got[i] && pp.reqs[i] == 0 {
				request(pp, i)
				out = append(out, block{piece, i})
				take(piece)
			}
		}
	}
	// 2. Start new pieces: rarest first, or random at the very start.
	for len(out) < n && p.pending > 0 {
		piece := p.choose(peerHas)
		if piece < 0 {
			break
		}
		take(piece)
		pp := p.start(piece)
		for i := 0; i < pp.nblocks && len(out) < n; i++ {
			request(pp, i)
			out = append(out, block{piece, i})
		}
	}
	// 3. Endgame: request late blocks again from another peer, in the
	// order they are expected (the late ones first): this peer's k-th
	// block goes to the k-th most urgent.
	if len(out) == 0 && p.endgame() {
		var cands []block
		for piece, pp := range p.inProgress {
			if _, one := p.single[piece]; one || !peerHas(piece) {
				continue // a piece from one peer alone gets no second copy
			}
			for i := range pp.nblocks {
				// At most one duplicate of each block: enough that a slow
				// peer cannot stall the end, without flooding every peer
				// with the same requests.
				if b := (block{piece, i}); !pp.got[i] && pp.reqs[i] < 2 && !asked(b) {
					cands = append(cands, b)
				}
			}
		}
		slices.SortFunc(cands, func(a, b block) int {
			if c := p.inProgress[a.piece].eta[a.index].Compare(p.inProgress[b.piece].eta[b.index]); c != 0 {
				return c
			}
			return cmp.Or(cmp.Compare(a.piece, b.piece), cmp.Compare(a.index, b.index))
		})
		for _, b := range cands {
			if len(out) >= n {
				break
			}
			pp, i := p.inProgress[b.piece], b.index
			late := now.After(pp.eta[i].Add(pp.eta[i].Sub(pp.reqAt[i]) + endgameSlack))
			sooner := eta(len(out)).Sub(now) < pp.eta[i].Sub(now)/4
			if late || sooner {
				request(pp, i)
				out = append(out, b)
			}
		}
	}
	return out
}

// endgameSlack is what a request may take beyond twice its expected time
// before endgame calls it late: room for round trips and a busy machine.
const endgameSlack = 100 * time.Millisecond

// choose returns the piece to start next among those the peer has, or -1.
func (p *picker) choose(peerHas func(int) bool) int {
	random := p.have.count()+len(p.inProgress) < p.randomFirst
	best, bestAvail, ties := -1, 0, 0
	for i := 0; i < p.numPieces; i++ {
		if p.have.get(i) || !peerHas(i) {
			continue
		}
		if _, busy := p.inProgress[i]; busy {
			continue
		}
		a := p.availability(i)
		if random {
			a = 0
		}
		switch {
		case best < 0 || a < bestAvail:
			best, bestAvail, ties = i, a, 1
		case a == bestAvail:
			// Reservoir sampling: each tied piece is chosen with equal
			// probability, in one pass.
			ties++
			if p.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	if best >= 0 && p.onStart != nil {
		p.onStart(best, p.availability(best), random)
	}
	return best
}

func (p *picker) start(piece int) *partial {
	nb := p.blocksIn(piece)
	pp := &partial{nblocks: nb, got: make([]bool, nb), reqs: make([]uint8, nb), reqAt: make([]time.Time, nb), eta: make([]time.Time, nb), from: make([]*peer, nb)}
	p.inProgress[piece] = pp
	p.pending--
	return pp
}

// cancelled returns a block whose request was dropped (choked, peer gone,
// rejected) to the pool.
func (p *picker) cancelled(b block) {
	if pp := p.inProgress[b.piece]; pp != nil && pp.reqs[b.index] > 0 {
		pp.reqs[b.index]--
	}
}

// expect revises when an outstanding block is expected (endgame weighs
// asking again for it against that). A block asked of two peers keeps its
// estimate: it will not be asked a third time anyway.
func (p *picker) expect(b block, at time.Time) {
	if pp := p.inProgress[b.piece]; pp != nil && !pp.got[b.index] && pp.reqs[b.index] == 1 {
		pp.eta[b.index] = at
	}
}

// claim takes block b for the copy from sends, before it is written: it
// reports false when the piece is not being fetched or another copy of
// the block was taken first, and that copy must then not be written.
func (p *picker) claim(b block, from *peer) bool {
	pp := p.inProgress[b.piece]
	if pp == nil || b.index >= pp.nblocks || pp.got[b.index] {
		return false
	}
	pp.got[b.index] = true
	pp.from[b.index] = from
	return true
}

// unclaim gives back a claimed block whose copy could not be written.
func (p *picker) unclaim(b block) {
	if pp := p.inProgress[b.piece]; pp != nil && pp.got[b.index] {
		pp.got[b.index] = false
		pp.from[b.index] = nil
	}
}

// written records that a claimed block is in storage and reports whether
// its piece is now complete (ready to verify).
func (p *picker) written(b block) (complete bool) {
	pp := p.inProgress[b.piece]
	if pp == nil {
		return false
	}
	pp.ngot++
	return pp.ngot == pp.nblocks
}

// received claims and writes a block at once (for tests); requested says
// it answers a request still counted as outstanding.
func (p *picker) received(b block, from *peer, requested bool) (fresh, complete bool) {
	if !p.claim(b, from) {
		return false, false
	}
	if requested {
		p.cancelled(b)
	}
	return true, p.written(b)
}

// verified ends a piece: kept when ok, otherwise every block is dropped and
// the piece goes back to the pool. It returns the peer that sent each
// block of the piece.
func (p *picker) verified(piece int, ok bool) []*peer {
	pp := p.inProgress[piece]
	if pp == nil {
		return nil
	}
	delete(p.inProgress, piece)
	if ok {
		p.have.set(piece)
		delete(p.single, piece)
	} else {
		p.pending++
	}
	return pp.from
}

// fetchFrom has piece fetched again from one peer alone: owner, or, if
// nil, the next peer to ask for it.
func (p *picker) fetchFrom(piece int, owner *peer) { p.single[piece] = owner }

// release frees the pieces peer o was to fetch alone (it left, choked us,
// or let a request time out), for the next peer that asks.
func (p *picker) release(o *peer) {
	for piece, owner := range p.single {
		if owner == o {
			p.single[piece] = nil
		}
	}
}
