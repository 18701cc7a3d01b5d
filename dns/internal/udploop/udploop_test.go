package udploop

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoop: an echo handler answers on a plain socket and on an
// SO_REUSEPORT one (a socket per reader), batched and not; Stop ends
// Serve with every reader gone, and the extra sockets closed.
func TestLoop(t *testing.T) {
	for _, tc := range []struct {
		name         string
		reuse, batch bool
	}{{"plain", false, false}, {"batch", false, true}, {"reuseport", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			UseBatch = tc.batch
			defer func() { UseBatch = true }()
			var pc net.PacketConn
			var err error
			if tc.reuse {
				pc, err = ListenPacket(context.Background(), "udp", "127.0.0.1:0")
			} else {
				pc, err = net.ListenPacket("udp", "127.0.0.1:0")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			l := New(pc, func(req []byte, from netip.AddrPort, out []byte) []byte {
				if string(req) == "drop" {
					return nil
				}
				return append(append(out, "echo "...), req...)
			})
			done := make(chan error, 1)
			go func() { done <- l.Serve(3) }()
			c, err := net.Dial("udp", pc.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 100)
			for i := range 20 {
				c.Write([]byte("drop"))
				c.Write([]byte{'a' + byte(i)})
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := c.Read(buf)
				if err != nil || string(buf[:n]) != "echo "+string(rune('a'+i)) {
					t.Fatalf("answer %d: %q %v", i, buf[:n], err)
				}
			}
			l.mu.Lock()
			got := len(l.extra)
			l.mu.Unlock()
			if tc.reuse != (got == 2) {
				t.Errorf("reuseport %v: %d extra sockets", tc.reuse, got)
			}
			l.Stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after Stop")
			}
		})
	}
}
