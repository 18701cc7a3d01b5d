// Package serve runs the sockets of one appnet DNS server and stops them
// all on Shutdown: miekg/dns servers (TCP, and UDP where no fast loop is
// used) and udploop loops (UDP). The authoritative server
// (dns/authserver), the local resolver (dns/resolver) and the CDN's name
// server (web/cdn) each keep one Group.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"

	"appnet/dns/internal/udploop"
)

// ErrClosed is returned by DNS and Loop after Shutdown; callers report it
// as their own ErrServerClosed (see Result).
var ErrClosed = errors.New("serve: closed")

// Result turns what DNS or Loop returned into a server package's error:
// closed (its ErrServerClosed) after Shutdown, others prefixed by pkg.
func Result(err, closed error, pkg string) error {
	switch {
	case errors.Is(err, ErrClosed):
		return closed
	case err != nil:
		return fmt.Errorf("%s: %w", pkg, err)
	}
	return nil
}

// Group is the set of sockets one server runs. The zero value is ready.
type Group struct {
	mu      sync.Mutex
	closed  bool
	servers []*server
	loops   []*loop
}

type server struct {
	srv           *dns.Server
	started, done chan struct{}
}

type loop struct {
	l    *udploop.Loop
	done chan struct{}
}

// DNS runs srv until Shutdown. registered, if not nil, runs once srv
// belongs to the group, before it starts serving. It returns ErrClosed
// after Shutdown (and closes srv's socket if the group was shut down
// already), and srv's own error otherwise.
func (g *Group) DNS(srv *dns.Server, registered func()) error {
	s := &server{srv: srv, started: make(chan struct{}), done: make(chan struct{})}
	defer close(s.done)
	srv.NotifyStartedFunc = func() { close(s.started) }
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		if srv.PacketConn != nil {
			srv.PacketConn.Close()
		} else {
			srv.Listener.Close()
		}
		return ErrClosed
	}
	g.servers = append(g.servers, s)
	g.mu.Unlock()
	if registered != nil {
		registered()
	}
	err := srv.ActivateAndServe()
	if g.Closed() {
		return ErrClosed
	}
	return err
}

// Loop runs l, a UDP loop on pc, until Shutdown, then runs after (if not
// nil: a handler's goroutines to wait for) and closes pc. registered is as
// for DNS. It returns ErrClosed after Shutdown, and the loop's error
// otherwise.
func (g *Group) Loop(l *udploop.Loop, pc net.PacketConn, registered, after func()) error {
	lr := &loop{l: l, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		pc.Close()
		return ErrClosed
	}
	g.loops = append(g.loops, lr)
	g.mu.Unlock()
	if registered != nil {
		registered()
	}
	err := l.Serve(0)
	if after != nil {
		after()
	}
	pc.Close()
	close(lr.done)
	if l.Stopping() {
		return ErrClosed
	}
	return err
}

// Closed reports whether Shutdown has been called.
func (g *Group) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Addrs returns the local addresses of the group's UDP loops, then of its
// miekg/dns servers' listeners and sockets.
func (g *Group) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []net.Addr
	for _, l := range g.loops {
		out = append(out, l.l.LocalAddr())
	}
	for _, s := range g.servers {
		switch {
		case s.srv.Listener != nil:
			out = append(out, s.srv.Listener.Addr())
		case s.srv.PacketConn != nil:
			out = append(out, s.srv.PacketConn.LocalAddr())
		}
	}
	return out
}

// Shutdown stops every loop and server: the loops at once, the servers
// letting answers being written finish. It waits for them, or for ctx.
func (g *Group) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	servers, loops := g.servers, g.loops
	g.servers, g.loops = nil, nil
	g.mu.Unlock()
	var errs []error
	for _, l := range loops {
		l.l.Stop()
	}
	for _, l := range loops {
		select {
		case <-l.done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
	}
	for _, s := range servers {
		select {
		case <-s.started:
			if err := s.srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, err)
			}
		case <-s.done:
		}
		select {
		case <-s.done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// AddrIP is the IP address of a UDP or TCP address (an IPv4-mapped one as
// IPv4); ok is false for any other kind of address.
func AddrIP(a net.Addr) (ip netip.Addr, ok bool) {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, ok = netip.AddrFromSlice(v.IP)
	case *net.TCPAddr:
		ip, ok = netip.AddrFromSlice(v.IP)
	}
	return ip.Unmap(), ok
}
