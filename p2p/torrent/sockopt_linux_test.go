package torrent

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"appnet/internal/connlimit"
)

// A connection from the capped listener (not a *net.TCPConn) still gets
// its socket option.
func TestTuneConnThroughLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := connlimit.Listen(raw, connlimit.New(10, 2), nil)
	defer ln.Close()
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, isTCP := c.(*net.TCPConn); isTCP {
		t.Fatal("the limiting listener returned a *net.TCPConn: this test tests nothing")
	}
	tuneConn(c)
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := -1
	rc.Control(func(fd uintptr) { got, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT) }) //nolint:errcheck
	if got != notSentLowat {
		t.Errorf("TCP_NOTSENT_LOWAT = %d, want %d", got, notSentLowat)
	}
}
