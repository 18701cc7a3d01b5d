package torrent

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"
)

// testPeer is a peer object for the smart-ban bookkeeping alone (no
// connection).
func testPeer(addr string) *peer {
	return &peer{addr: addr, who: &sender{ip: ipOf(addr), addr: addr}}
}

// A piece that failed with blocks from three peers, and then passed:
// only the peer whose block differs from the good copy is banned; the two
// whose blocks matched are not. A piece sent whole by one peer that fails
// bans that peer at once.
func TestSmartBanComparesBlocks(t *testing.T) {
	_, mi := makeTorrent(t, 256<<10, 64<<10) // 4 pieces of 4 blocks
	tr, err := New(mi, Config{Dir: t.TempDir(), DisableTrackers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(t.Context()) //nolint:errcheck
	honest1, liar, honest2 := testPeer("127.0.0.1:6881"), testPeer("127.0.0.3:6881"), testPeer("127.0.0.5:6881")
	good := make([]byte, 64<<10)
	rand.Read(good)
	bad := bytes.Clone(good)
	bad[BlockSize+7] ^= 1 // block 1, the liar's
	tr.mu.Lock()
	tr.pieceFailed(0, []*peer{honest1, liar, honest2, honest1}, blockSums(bad))
	if len(tr.banned) != 0 {
		t.Fatalf("a mixed failed piece banned %v before anything was proven", tr.banned)
	}
	if _, one := tr.picker.single[0]; !one {
		t.Error("the failed piece is not fetched from one peer alone")
	}
	tr.piecePassed(0, blockSums(good))
	if !tr.banned["127.0.0.3/32"] || tr.banned["127.0.0.1/32"] || tr.banned["127.0.0.5/32"] {
		t.Errorf("after the good copy: banned %v, want the liar's address alone", tr.banned)
	}
	if tr.smart.has(0) || tr.smart.blocks != 0 {
		t.Errorf("the records of a good piece are kept: %d blocks", tr.smart.blocks)
	}
	// A whole piece from one peer that fails proves that peer bad.
	alone := testPeer("127.0.0.9:1")
	tr.pieceFailed(1, []*peer{alone, alone, alone, alone}, blockSums(bad))
	if !tr.banned["127.0.0.9/32"] {
		t.Error("a peer that sent a whole bad piece is not banned")
	}
	tr.mu.Unlock()
}

// The records of failed pieces are bounded: the oldest piece is forgotten
// first.
func TestSmartBanBounded(t *testing.T) {
	var sb smartBan
	recs := make([]blockRecord, 1000)
	for piece := range 200 {
		sb.add(piece, recs)
		if sb.blocks > maxSmartBanBlocks {
			t.Fatalf("after piece %d: %d blocks remembered", piece, sb.blocks)
		}
	}
	if sb.has(0) || !sb.has(199) {
		t.Error("not the oldest piece forgotten first")
	}
	if len(sb.failed) != len(sb.order) {
		t.Errorf("%d pieces in the map, %d in the order", len(sb.failed), len(sb.order))
	}
}

// A piece fetched from one peer alone is offered to that peer only; when
// it leaves, the next peer to ask takes it.
func TestPickerSinglePeerPiece(t *testing.T) {
	p := newPicker(2, uniformPieces(4*BlockSize), newBitset(2), 1)
	all := fullSet(2)
	a, b := &peer{}, &peer{}
	none := func(block) bool { return false }
	p.fetchFrom(0, a)
	got := p.pickFor(b, &all, true, 8, none, time.Time{}, noDue)
	for _, x := range got {
		if x.piece == 0 {
			t.Fatalf("another peer was given the piece reserved for one: %v", got)
		}
	}
	if got := p.pickFor(a, &all, true, 8, none, time.Time{}, noDue); len(got) != 4 || got[0].piece != 0 {
		t.Fatalf("its peer got %v, want the 4 blocks of piece 0", got)
	}
	for i := range 4 {
		p.cancelled(block{0, i})
	}
	p.release(a)
	if got := p.pickFor(b, &all, true, 8, none, time.Time{}, noDue); len(got) != 4 || got[0].piece != 0 || p.single[0] != b {
		t.Fatalf("after its peer left: %v, owner %p (b %p)", got, p.single[0], b)
	}
}

// Bans are keyed by source: an IPv4 address, or an IPv6 /64.
func TestBanKey(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.3:6881":            "127.0.0.3/32",
		"[2001:db8:1:2::9]:6881":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:1":   "2001:db8:1:2::/64",
		"[::ffff:10.0.0.1]:5":       "10.0.0.1/32",
		"tracker.example.test:6881": "tracker.example.test",
	} {
		if got := ipOf(addr); got != want {
			t.Errorf("ipOf(%s) = %s, want %s", addr, got, want)
		}
	}
}
