package torrent

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"

	"appnet/internal/connlimit"
)

// Smart ban: finding who sent bad data, and banning no one else.
//
// A piece is made of blocks from several peers, and its hash check says
// only that one of them lied. Banning every sender of a failed piece (or
// counting strikes) bans honest seeders whose blocks happened to share a
// piece with a liar's. Instead, as libtorrent's smart_ban plugin does, we
// remember, when a piece fails, a hash of each block as it was on disk and
// the peer that sent it; when the piece later passes its check, each
// remembered block is compared with the good block at the same place: a
// peer whose block differs is proven to have sent bad data and is banned,
// and a peer whose block matched is cleared of that piece.
//
// Two things make it converge. A piece that failed with blocks from
// several peers is fetched again from one peer alone (picker.single): one
// that already sent part of it when one is unchoking us, so that either
// that peer sends all of it again, or the next one to ask does. A piece
// that fails with every block from one peer proves that peer bad at once.
// And a block is taken only from the peer it was asked of (onPiece), so a
// peer cannot slip blocks into a piece fetched from someone else.
//
// A ban is of the peer's IP address (an IPv6 /64), as libtorrent's are of
// its address: a new port or peer ID does not bring it back (and peers
// behind one NAT share its fate). The bookkeeping is bounded: at most maxSmartBanBlocks remembered
// blocks (32 bytes each), the oldest failed piece forgotten first, which
// can only spare a liar, never ban an honest peer. Hashing happens only
// for pieces that failed and for their later good copy, off the lock: the
// download path pays nothing.

// maxSmartBanBlocks bounds the blocks remembered for failed pieces: 2 MiB
// of records, for 1 GiB of failed data.
const maxSmartBanBlocks = 1 << 16

// blockSum is a block's SHA-256, cut to 128 bits: enough that a liar
// cannot make a bad block that matches the good one.
type blockSum [16]byte

// sender names the peer behind a connection for bans: its IP address,
// and for logs its address and ID.
type sender struct {
	ip   string // the ban key (ipOf): IPv4 address or IPv6 /64
	addr string
	id   string
}

// blockRecord is one block of a failed piece: who sent it, and its hash.
type blockRecord struct {
	index int32
	who   *sender
	sum   blockSum
}

// smartBan holds the blocks of failed pieces that are not yet good. It is
// guarded by the torrent's lock.
type smartBan struct {
	failed map[int][]blockRecord
	order  []int // pieces in the order they first failed
	blocks int
}

// add remembers the blocks of a failed attempt at piece.
func (sb *smartBan) add(piece int, recs []blockRecord) {
	if sb.failed == nil {
		sb.failed = make(map[int][]blockRecord)
	}
	if _, ok := sb.failed[piece]; !ok {
		sb.order = append(sb.order, piece)
	}
	sb.failed[piece] = append(sb.failed[piece], recs...)
	sb.blocks += len(recs)
	for sb.blocks > maxSmartBanBlocks && len(sb.order) > 0 {
		sb.take(sb.order[0])
	}
}

// take returns and forgets what is remembered of piece.
func (sb *smartBan) take(piece int) []blockRecord {
	recs, ok := sb.failed[piece]
	if !ok {
		return nil
	}
	delete(sb.failed, piece)
	sb.blocks -= len(recs)
	for i, p := range sb.order {
		if p == piece {
			sb.order = append(sb.order[:i], sb.order[i+1:]...)
			break
		}
	}
	return recs
}

func (sb *smartBan) has(piece int) bool { _, ok := sb.failed[piece]; return ok }

// blockSums hashes each block of a piece's data.
func blockSums(data []byte) []blockSum {
	sums := make([]blockSum, 0, (len(data)+BlockSize-1)/BlockSize)
	for off := 0; off < len(data); off += BlockSize {
		h := sha256.Sum256(data[off:min(off+BlockSize, len(data))])
		sums = append(sums, blockSum(h[:16]))
	}
	return sums
}

// ipOf returns the key of bans for a host:port: its source as
// internal/connlimit counts them, the IPv4 address or the IPv6 /64 (a host
// is given a /64, and rotating through it must not escape a ban); the host
// as given when it is not an IP address.
func ipOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if src, ok := connlimit.SourceIP(ip); ok {
			return src.String()
		}
	}
	return host
}

// isBanned reports whether the peer at addr is banned; the lock is held.
func (t *Torrent) isBanned(addr string) bool { return t.banned[ipOf(addr)] }

// pieceFailed applies a failed hash check of piece, whose blocks came from
// from (one entry per block) and hash to sums as read back. The lock is
// held.
func (t *Torrent) pieceFailed(piece int, from []*peer, sums []blockSum) {
	count := make(map[*peer]int)
	for _, p := range from {
		if p != nil {
			count[p]++
		}
	}
	t.log.Warn("piece failed its hash check", "piece", piece, "senders", len(count))
	if len(count) == 1 {
		for p := range count {
			t.ban(p.who, fmt.Sprintf("sent all of piece %d, which failed its hash check", piece))
		}
		return
	}
	recs := make([]blockRecord, 0, len(from))
	for i, p := range from {
		if p != nil && i < len(sums) {
			recs = append(recs, blockRecord{index: int32(i), who: p.who, sum: sums[i]})
		}
	}
	t.smart.add(piece, recs)
	// Fetch it again from one peer: one that sent part of it and is
	// unchoking us, the one that sent most; or whoever asks first.
	var owner *peer
	for p, n := range count {
		if _, connected := t.peers[p]; connected && !p.peerChoking && (owner == nil || n > count[owner]) {
			owner = p
		}
	}
	t.picker.fetchFrom(piece, owner)
}

// piecePassed compares what is remembered of piece's failed attempts with
// its good blocks (sums): senders of blocks that differ are banned. The
// lock is held.
func (t *Torrent) piecePassed(piece int, sums []blockSum) {
	recs := t.smart.take(piece)
	cleared := make(map[*sender]bool)
	for _, r := range recs {
		if int(r.index) < len(sums) && r.sum == sums[r.index] {
			cleared[r.who] = true
			continue
		}
		t.ban(r.who, fmt.Sprintf("sent a bad block %d of piece %d", r.index, piece))
	}
	for who := range cleared {
		if !t.banned[who.ip] {
			t.log.Debug("cleared of a failed piece", "peer", who.addr, "piece", piece)
		}
	}
}

// ban refuses who's IP address from now on and closes its connections.
// The lock is held.
func (t *Torrent) ban(who *sender, why string) {
	if t.banned[who.ip] {
		return
	}
	t.banned[who.ip] = true
	t.log.Warn("banned a peer for bad data", "peer", who.addr, "id", who.id, "why", why)
	for p := range t.peers {
		if p.who.ip == who.ip {
			p.closeCause = "banned: " + why
			p.tc.Notef("%s", p.closeCause)
			p.conn.Close()
		}
	}
}
