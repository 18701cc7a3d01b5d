package torrent

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"appnet/p2p/peerwire"
)

// 600 connections from 127.0.0.1 to a seeder, half of them through the
// handshake and then silent, half stuck in it, leave a peer from 127.0.0.2
// fully served: its handshake is answered and it downloads the file.
// Without a per-address cap the silent ones took all 50 of the seeder's
// slots and the newcomer was refused.
func TestOneHostCannotLockOutOthers(t *testing.T) {
	srcDir, mi := makeTorrent(t, 1<<20, 64<<10)
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever, MaxConnsPerAddr: DefaultMaxConnsPerAddr})
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range 600 {
		c, err := net.Dial("tcp", seeder.addr)
		if err != nil {
			t.Fatalf("attacker connection %d: %v", i, err)
		}
		held = append(held, c)
		hs := peerwire.Handshake{InfoHash: mi.InfoHash()}
		copy(hs.PeerID[:], "-SLOW00-")
		hs.PeerID[18], hs.PeerID[19] = byte(i>>8), byte(i)
		if i%2 == 0 {
			peerwire.WriteHandshake(c, hs) //nolint:errcheck // refused ones are closed
		} else {
			c.Write([]byte{19, 'B', 'i', 't'}) //nolint:errcheck
		}
	}
	// A peer from another address.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	leecher := startNode(t, mi, Config{Dir: t.TempDir(), DisableTrackers: true, Dial: d.DialContext})
	leecher.t.AddPeer(seeder.addr)
	leecher.waitComplete(t, 30*time.Second, "the peer from 127.0.0.2")
	sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(leecher.t.cfg.Dir, "payload.bin"))
	active, _, refused := seeder.t.inLimits.Stats()
	if refused < 600-DefaultMaxConnsPerAddr || active > DefaultMaxConnsPerAddr+1 {
		t.Errorf("listener: %d connections held, %d refused; want at most %d from 127.0.0.1", active, refused, DefaultMaxConnsPerAddr)
	}
}

// A connection that does not finish its handshake in HandshakeTimeout is
// cut.
func TestHandshakeTimeout(t *testing.T) {
	srcDir, mi := makeTorrent(t, 64<<10, 64<<10)
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever, HandshakeTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", seeder.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{19, 'B', 'i', 't'}) //nolint:errcheck
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a stalled handshake was not cut: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
