package torrent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/p2p/metainfo"
	"appnet/p2p/peerwire"
	"appnet/p2p/tracker"
)

// An oversized or malformed message closes that connection only; an
// unknown message is skipped.
func TestProtocolViolationsCloseOnlyThatPeer(t *testing.T) {
	srcDir, mi := makeTorrent(t, 1<<20, 64<<10)
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever})
	dialRaw := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", seeder.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var id [20]byte
		copy(id[:], "-RAW000-")
		id[19] = byte(time.Now().UnixNano())
		peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: mi.InfoHash(), PeerID: id})
		if _, err := peerwire.ReadHandshake(c); err != nil {
			t.Fatal(err)
		}
		return c, bufio.NewReader(c)
	}
	msg := func(length uint32, id byte, payload ...byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, length)
		return append(append(b, id), payload...)
	}
	closed := func(c net.Conn, r *bufio.Reader) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, r)
		return err == nil // EOF: the seeder closed it
	}

	// Unknown message type 99, then interested: still served.
	c1, r1 := dialRaw()
	c1.Write(msg(4, 99, 1, 2, 3))
	c1.Write(msg(1, byte(peerwire.MsgInterested)))
	pr := peerwire.NewReader(r1)
	pr.NumPieces = mi.Info.NumPieces()
	var m peerwire.Message
	gotUnchoke := false
	for !gotUnchoke {
		if err := pr.ReadMessage(&m); err != nil {
			t.Fatalf("after an unknown message: %v", err)
		}
		gotUnchoke = m.ID == peerwire.MsgUnchoke
	}

	for _, bad := range [][]byte{
		msg(100, byte(peerwire.MsgHave), make([]byte, 99)...),                  // have of the wrong length
		msg(9+1<<20, byte(peerwire.MsgPiece)),                                  // piece larger than any block
		msg(13, byte(peerwire.MsgRequest), 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0), // a request running past the end of the piece
		msg(0x7fffffff, 20), // a 2 GiB message
	} {
		c, r := dialRaw()
		c.Write(msg(1, byte(peerwire.MsgInterested)))
		time.Sleep(20 * time.Millisecond) // let the seeder unchoke, so the request is looked at
		c.Write(bad)
		if !closed(c, r) {
			t.Errorf("message % x…: connection not closed", bad[:5])
		}
	}
	// The first connection is unaffected: it can still download a block.
	w := peerwire.NewWriter(c1)
	w.WriteMessage(&peerwire.Message{ID: peerwire.MsgRequest, Index: 0, Begin: 0, Length: BlockSize})
	for {
		if err := pr.ReadMessage(&m); err != nil {
			t.Fatalf("good connection: %v", err)
		}
		if m.ID == peerwire.MsgPiece {
			if len(m.Block) != BlockSize {
				t.Errorf("block of %d bytes", len(m.Block))
			}
			break
		}
	}
}

// An unreachable tracker is retried with backoff, and the status says
// what went wrong; once the tracker is up, the status clears and the
// peers it knows are found.
func TestUnreachableTrackerRetried(t *testing.T) {
	srcDir, mi := makeTorrent(t, 256<<10, 32<<10)
	// A port with nothing behind it (yet).
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := hold.Addr().String()
	hold.Close()
	url := "http://" + addr + "/announce"
	mi, _ = withTracker(t, srcDir, mi, url)
	leecher := startNode(t, mi, Config{Dir: t.TempDir(), Announcer: TrackerAnnouncer(nil), AnnounceBackoff: 100 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(leecher.t.Status().Tracker, "connection refused") {
		if time.Now().After(deadline) {
			t.Fatalf("status does not show the tracker failure: %q", leecher.t.Status().Tracker)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The tracker comes up at that address, and a seeder with it.
	trk := &tracker.Server{Interval: time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	go trk.Serve(ln)
	defer trk.Shutdown(context.Background())
	startNode(t, mi, Config{Dir: srcDir, Announcer: TrackerAnnouncer(nil), SeedRatio: SeedForever})
	leecher.waitComplete(t, 20*time.Second, "the leecher, once the tracker was up,")
	if st := leecher.t.Status().Tracker; st != "ok" {
		t.Errorf("tracker status %q after a successful announce", st)
	}
}

// A multi-file torrent lands in its folder, every file at its offsets.
func TestMultiFileDownload(t *testing.T) {
	src := t.TempDir()
	root := filepath.Join(src, "album")
	sizes := map[string]int{"a.bin": 100000, "sub/b.bin": 1, "sub/c.bin": 300000, "empty.bin": 0}
	for name, size := range sizes {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, size)
		rand.Read(b)
		os.WriteFile(p, b, 0o644)
	}
	mi, err := metainfo.Create(context.Background(), root, metainfo.CreateOptions{PieceLength: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	seeder := startNode(t, mi, Config{Dir: src, DisableTrackers: true, SeedRatio: SeedForever})
	leecher := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true})
	leecher.t.AddPeer(seeder.addr)
	leecher.waitComplete(t, 20*time.Second, "the leecher")
	for name := range sizes {
		sameFile(t, filepath.Join(root, name), filepath.Join(leecher.t.cfg.Dir, "album", name))
	}
}
