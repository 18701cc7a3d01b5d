package testnet

import (
	"net"
	"testing"
	"time"
)

// DialFrom dials the TCP address addr from the loopback address src
// ("127.0.0.9"), so one test plays several hosts.
func DialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.Dial("tcp", addr)
}

// SlowFlood opens n connections to addr from the loopback address src, as
// a slowloris attacker does: each sends prefix (the start of a message it
// never finishes; empty: nothing) and then waits. The connections stay
// open until the test ends. It returns how many connections the kernel
// completed; a server that refuses some closes them, which is not an
// error here.
func SlowFlood(t testing.TB, src, addr string, n int, prefix []byte) int {
	t.Helper()
	opened := 0
	for range n {
		c, err := DialFrom(src, addr, 5*time.Second)
		if err != nil {
			continue
		}
		t.Cleanup(func() { c.Close() })
		opened++
		if len(prefix) > 0 {
			c.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck
			c.Write(prefix)                                 //nolint:errcheck // a refused conn may be closed already
		}
	}
	return opened
}
