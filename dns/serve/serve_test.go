package serve

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"appnet/dns/internal/udploop"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Shutdown stops a TCP server and a UDP loop that are serving, and both
// report ErrClosed; the group's addresses are theirs.
func TestShutdownStopsEverything(t *testing.T) {
	var g Group
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	registered := make(chan struct{}, 2)
	mark := func() { registered <- struct{}{} }
	errs := make(chan error, 2)
	go func() {
		errs <- g.DNS(&dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(dns.ResponseWriter, *dns.Msg) {})}, mark)
	}()
	afterRan := make(chan struct{})
	l := udploop.New(pc, func([]byte, netip.AddrPort, []byte) []byte { return nil })
	go func() { errs <- g.Loop(l, pc, mark, func() { close(afterRan) }) }()
	<-registered
	<-registered
	if got := len(g.Addrs()); got != 2 {
		t.Errorf("Addrs: %d addresses, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("serve returned %v, want ErrClosed", err)
		}
	}
	select {
	case <-afterRan:
	default:
		t.Error("the loop's after function did not run")
	}
	if !g.Closed() {
		t.Error("not Closed after Shutdown")
	}
}

// After Shutdown, serving is refused at once and the socket is closed.
func TestServeAfterShutdown(t *testing.T) {
	var g Group
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.DNS(&dns.Server{Listener: ln}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("DNS after Shutdown: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("the listener is still open")
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Loop(udploop.New(pc, func([]byte, netip.AddrPort, []byte) []byte { return nil }), pc, nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Loop after Shutdown: %v", err)
	}
}

func TestAddrIP(t *testing.T) {
	for _, c := range []struct {
		a    net.Addr
		want string
		ok   bool
	}{
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.9"), Port: 53}, "127.0.0.9", true}, // 16-byte, v4-mapped
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 53}, "::1", true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1).To4()}, "10.0.0.1", true},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, "invalid IP", false},
		{&net.UDPAddr{}, "invalid IP", false},
	} {
		got, ok := AddrIP(c.a)
		if got.String() != c.want || ok != c.ok {
			t.Errorf("AddrIP(%v) = %v %v, want %s %v", c.a, got, ok, c.want, c.ok)
		}
	}
}
