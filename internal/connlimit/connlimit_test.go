package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

func tcp(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestAcquirePerAddrAndTotal(t *testing.T) {
	l := New(5, 2)
	var rel []func()
	for _, a := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		r, err := l.Acquire(tcp(a))
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		rel = append(rel, r)
	}
	if _, err := l.Acquire(tcp("127.0.0.1:3")); !errors.Is(err, ErrPerAddr) {
		t.Fatalf("third from one address: %v, want ErrPerAddr", err)
	}
	// Another address is still served, up to the total.
	for _, a := range []string{"127.0.0.2:1", "127.0.0.2:2", "127.0.0.3:1"} {
		if _, err := l.Acquire(tcp(a)); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if _, err := l.Acquire(tcp("127.0.0.4:1")); !errors.Is(err, ErrTotal) {
		t.Fatalf("over the total: %v, want ErrTotal", err)
	}
	rel[0]()
	rel[0]() // a second release does nothing
	if _, err := l.Acquire(tcp("127.0.0.1:4")); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := l.Acquire(tcp("127.0.0.5:4")); !errors.Is(err, ErrTotal) {
		t.Fatalf("a double release freed two slots: %v", err)
	}
	active, sources, refused := l.Stats()
	if active != 5 || sources != 3 || refused != 3 {
		t.Fatalf("Stats = %d active, %d sources, %d refused; want 5, 3, 3", active, sources, refused)
	}
}

func TestSourceGroupsIPv6By64(t *testing.T) {
	a, _ := Source(tcp("[2001:db8:1:2::1]:80"))
	b, _ := Source(tcp("[2001:db8:1:2:ffff::9]:81"))
	c, _ := Source(tcp("[2001:db8:1:3::1]:80"))
	if a != b || a == c {
		t.Fatalf("/64 grouping: %v %v %v", a, b, c)
	}
	m, _ := Source(tcp("[::ffff:10.0.0.1]:5"))
	v4, _ := Source(tcp("10.0.0.1:6"))
	if m != v4 {
		t.Fatalf("mapped %v != %v", m, v4)
	}
	if _, ok := Source(&net.UnixAddr{Name: "x", Net: "unix"}); ok {
		t.Fatal("a unix address has a source")
	}
}

func TestNilLimitsAdmitAll(t *testing.T) {
	var l *Limits
	for range 100 {
		if _, err := l.Acquire(tcp("127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListenerRefusesOverCap: one address is held to its cap while another
// is still accepted, and a closed connection frees its slot.
func TestListenerRefusesOverCap(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	refusals := make(chan error, 16)
	ln := Listen(raw, New(0, 2), func(c net.Conn, err error) { c.Close(); refusals <- err })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	wait := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	first := func() net.Conn { dial("127.0.0.1"); return wait() }()
	dial("127.0.0.1")
	wait()
	dial("127.0.0.1")
	select {
	case err := <-refusals:
		if !errors.Is(err, ErrPerAddr) {
			t.Fatalf("refusal: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("third connection from 127.0.0.1 not refused")
	}
	dial("127.0.0.2")
	c := wait()
	if c.RemoteAddr().(*net.TCPAddr).IP.String() != "127.0.0.2" {
		t.Fatalf("accepted %v", c.RemoteAddr())
	}
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatal("a limited conn hides SyscallConn")
	}
	first.Close()
	dial("127.0.0.1")
	wait()
}
