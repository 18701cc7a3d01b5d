package torrent

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"appnet/p2p/metainfo"
	"appnet/p2p/peerwire"
)

// hostileMode says how a hostilePeer misbehaves.
type hostileMode int

const (
	// garbage unchokes and answers every request with random bytes.
	garbage hostileMode = iota
	// spray keeps the other end choked and sends it blocks of random
	// bytes it never asked for.
	spray
)

// hostilePeer is a fake peer for tests, speaking the peer wire protocol
// from an address of its own (a 127.0.0.x other than the honest peers'):
// it claims every piece of the torrent, then misbehaves as its mode says.
type hostilePeer struct {
	addr string
	// accepted counts connections that completed the handshake, ended
	// those the other end has closed since, sent the blocks sent.
	accepted, ended, sent atomic.Int64
}

// startHostile starts a hostile peer for mi listening on ip; it stops at
// the test's end.
func startHostile(t *testing.T, mi *metainfo.MetaInfo, ip string, mode hostileMode) *hostilePeer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hostilePeer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					select {
					case <-done:
						c.Close()
					case <-stop:
					}
				}()
				h.serve(c, mi, mode)
			}()
		}
	}()
	return h
}

func (h *hostilePeer) serve(c net.Conn, mi *metainfo.MetaInfo, mode hostileMode) {
	c.SetDeadline(time.Now().Add(60 * time.Second)) //nolint:errcheck
	if _, err := peerwire.ReadHandshake(c); err != nil {
		return
	}
	var id [20]byte
	copy(id[:], "-EVIL00-")
	rand.Read(id[8:]) //nolint:errcheck
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: mi.InfoHash(), PeerID: id}); err != nil {
		return
	}
	h.accepted.Add(1)
	n := mi.Info.NumPieces()
	var wmu sync.Mutex
	bw := bufio.NewWriter(c)
	w := peerwire.NewWriter(bw)
	all := peerwire.NewBitfield(n)
	all.SetAll()
	w.WriteMessage(&peerwire.Message{ID: peerwire.MsgBitfield, Bitfield: all}) //nolint:errcheck
	if mode == garbage {
		w.WriteMessage(&peerwire.Message{ID: peerwire.MsgUnchoke}) //nolint:errcheck
	}
	bw.Flush() //nolint:errcheck
	block := func(index, begin, length uint32) error {
		data := make([]byte, length)
		rand.Read(data) //nolint:errcheck
		wmu.Lock()
		defer wmu.Unlock()
		if err := w.WritePiece(index, begin, data); err != nil {
			return err
		}
		h.sent.Add(1)
		return bw.Flush()
	}
	layout := metainfo.NewLayout(&mi.Info)
	if mode == spray {
		// Blocks of every piece, round and round, a few a millisecond,
		// until the other end hangs up.
		go func() {
			for round := 0; round < 50; round++ {
				for i := range n {
					size := layout.PieceSize(i)
					for off := int64(0); off < size; off += BlockSize {
						if block(uint32(i), uint32(off), uint32(min(BlockSize, size-off))) != nil {
							return
						}
						time.Sleep(500 * time.Microsecond)
					}
				}
			}
		}()
	}
	r := peerwire.NewReader(c)
	r.NumPieces = n
	var m peerwire.Message
	for {
		if err := r.ReadMessage(&m); err != nil {
			h.ended.Add(1)
			return
		}
		if mode == garbage && m.ID == peerwire.MsgRequest {
			if block(m.Index, m.Begin, m.Length) != nil {
				h.ended.Add(1)
				return
			}
		}
	}
}

// A swarm of an honest seeder and a peer answering with garbage: in every
// one of 20 downloads, the file completes, the garbage peer is banned and
// the seeder never is, however their blocks were mixed in the pieces that
// failed (before smart ban, 5 of 6 such downloads banned the seeder).
func TestGarbagePeerNeverGetsSeederBanned(t *testing.T) {
	srcDir, mi := makeTorrent(t, 512<<10, 64<<10) // 8 pieces of 4 blocks
	// The seeder is slowed so the garbage peer, which answers at once, gets
	// blocks in the same pieces.
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, UpRate: 2 << 20, SeedRatio: SeedForever})
	bad := startHostile(t, mi, "127.0.0.3", garbage)
	var mixed, compared int
	for trial := range 20 {
		logs := &syncWriter{}
		leecher := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true, Tick: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		leecher.t.AddPeer(bad.addr)
		leecher.t.AddPeer(seeder.addr)
		leecher.waitComplete(t, 30*time.Second, fmt.Sprintf("trial %d: the leecher", trial))
		sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(leecher.t.cfg.Dir, "payload.bin"))
		seederBanned, badBanned := bannedIP(leecher.t, "127.0.0.1"), bannedIP(leecher.t, "127.0.0.3")
		st := leecher.t.Status()
		if seederBanned {
			t.Fatalf("trial %d: the honest seeder was banned: %+v", trial, st)
		}
		if !badBanned {
			t.Fatalf("trial %d: the garbage peer was not banned: %+v", trial, st)
		}
		out := logs.String()
		if strings.Contains(out, "senders=2") {
			mixed++
		}
		if strings.Contains(out, "sent a bad block") {
			compared++
		}
		leecher.stop(t)
	}
	t.Logf("garbage peer banned in 20 of 20 trials; %d had a failed piece mixing both peers' blocks, %d banned it by comparing blocks with the piece's good copy (the others when it sent a whole piece alone)", mixed, compared)
	if mixed == 0 {
		t.Error("no trial mixed the two peers' blocks in a failed piece: the test does not test smart ban")
	}
}

// bannedIP reports whether tr has banned the peer at ip (under any key
// that names it).
func bannedIP(tr *Torrent, ip string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for k, v := range tr.banned {
		if v && (k == ip || strings.HasPrefix(k, ip+":") || k == ip+"/32") {
			return true
		}
	}
	return false
}

// A peer that keeps us choked and sends blocks we never asked for: they
// are discarded (no piece fails), it is dropped, and the download from the
// honest seeder completes with the seeder not banned.
func TestUnrequestedBlocksDiscarded(t *testing.T) {
	srcDir, mi := makeTorrent(t, 2<<20, 64<<10) // 32 pieces
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, UpRate: 2 << 20, SeedRatio: SeedForever})
	sprayer := startHostile(t, mi, "127.0.0.4", spray)
	leecher := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true, Tick: 100 * time.Millisecond})
	leecher.t.AddPeer(seeder.addr)
	leecher.t.AddPeer(sprayer.addr)
	leecher.waitComplete(t, 30*time.Second, "the leecher")
	sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(leecher.t.cfg.Dir, "payload.bin"))
	deadline := time.Now().Add(10 * time.Second)
	for sprayer.accepted.Load() == 0 || sprayer.ended.Load() < sprayer.accepted.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the sprayer was not dropped: %d connections, %d ended, %d blocks sent", sprayer.accepted.Load(), sprayer.ended.Load(), sprayer.sent.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := leecher.t.Status()
	seederBanned := bannedIP(leecher.t, "127.0.0.1")
	if seederBanned || st.HashFails != 0 {
		t.Errorf("unrequested blocks got into pieces: %+v (seeder banned: %v)", st, seederBanned)
	}
	if st.Wasted == 0 {
		t.Errorf("no unrequested block was counted: %+v", st)
	}
	t.Logf("sprayer sent %d blocks before it was dropped; %d bytes discarded", sprayer.sent.Load(), st.Wasted)
}

// An answer to a request we dropped (cancelled in endgame, discarded by a
// choke, timed out) is late, not hostile: it is not counted against the
// peer. Blocks never asked for are, and past maxUnrequested the peer is
// dropped.
func TestLateBlocksAreNotHostile(t *testing.T) {
	_, mi := makeTorrent(t, 256<<10, 64<<10)
	tr, err := New(mi, Config{Dir: t.TempDir(), DisableTrackers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(t.Context()) //nolint:errcheck
	p := testPeer("127.0.0.3:1")
	p.asked, p.late, p.peerChoking = make(map[block]time.Time), make(map[block]time.Time), true
	all := fullSet(mi.Info.NumPieces())
	tr.mu.Lock()
	blocks := tr.picker.pickFor(p, &all, true, 4, func(block) bool { return false }, time.Now(), func(int) time.Time { return time.Now() })
	for _, b := range blocks {
		p.asked[b] = time.Now()
	}
	for _, b := range blocks {
		tr.dropRequest(p, b, time.Now())
	}
	tr.mu.Unlock()
	for _, b := range blocks {
		if err := tr.onPiece(p, uint32(b.piece), uint32(b.index*BlockSize), make([]byte, BlockSize)); err != nil {
			t.Fatalf("a late block: %v", err)
		}
	}
	if p.unrequested != 0 {
		t.Fatalf("late blocks counted as %d unrequested bytes", p.unrequested)
	}
	// The same blocks again: no request, no recent drop. Up to
	// maxUnrequested they are discarded; past it the peer is dropped.
	var sent int
	for sent = 0; sent <= maxUnrequested; sent += BlockSize {
		b := blocks[(sent/BlockSize)%len(blocks)]
		if err := tr.onPiece(p, uint32(b.piece), uint32(b.index*BlockSize), make([]byte, BlockSize)); err != nil {
			break
		}
	}
	if sent != maxUnrequested {
		t.Fatalf("dropped after %d unrequested bytes, want just past %d", sent+BlockSize, maxUnrequested)
	}
}
