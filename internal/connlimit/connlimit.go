// Package connlimit bounds the connections a long-lived server holds: in
// total and per source address, so that one host can never take every
// slot (../shared/DESIGN.md: "connections per address below the global
// cap"). A server either asks a *Limits for a slot itself (to answer a
// refused client with an error line) or wraps its listener with Listen,
// whose Accept hands out only connections within the limits.
//
// Addresses are grouped as hosts are: an IPv4 address is one source, an
// IPv6 address counts against its /64 (the smallest block a site is
// given, so rotating through one's own /64 gains nothing). An IPv4-mapped
// IPv6 address counts as the IPv4 address.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// Errors that say which limit refused a connection.
var (
	ErrTotal   = errors.New("connlimit: server busy (connection limit reached)")
	ErrPerAddr = errors.New("connlimit: too many connections from this address")
)

// Limits counts connections. MaxTotal and MaxPerAddr are set before use;
// a value <= 0 means no limit of that kind. A nil *Limits admits
// everything.
type Limits struct {
	MaxTotal   int
	MaxPerAddr int

	mu      sync.Mutex
	total   int
	per     map[netip.Prefix]int
	refused atomic.Int64
}

// New returns Limits with the given caps.
func New(maxTotal, maxPerAddr int) *Limits {
	return &Limits{MaxTotal: maxTotal, MaxPerAddr: maxPerAddr}
}

// Source returns the key a remote address counts against: the IPv4
// address, or the IPv6 /64. ok is false for an address that is not IP
// (a unix socket, a test pipe): such connections count only in the total.
func Source(addr net.Addr) (netip.Prefix, bool) {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if addr == nil {
			return netip.Prefix{}, false
		}
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Prefix{}, false
		}
		ip = ap.Addr()
	}
	return SourceIP(ip)
}

// SourceIP is Source for an IP address.
func SourceIP(ip netip.Addr) (netip.Prefix, bool) {
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// Acquire reserves a slot for a connection from addr. It returns a
// release function to call (once; later calls do nothing) when the
// connection ends, or ErrTotal or ErrPerAddr.
func (l *Limits) Acquire(addr net.Addr) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	src, keyed := Source(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.MaxTotal > 0 && l.total >= l.MaxTotal {
		l.refused.Add(1)
		return nil, ErrTotal
	}
	if keyed && l.MaxPerAddr > 0 && l.per[src] >= l.MaxPerAddr {
		l.refused.Add(1)
		return nil, ErrPerAddr
	}
	l.total++
	if keyed {
		if l.per == nil {
			l.per = make(map[netip.Prefix]int)
		}
		l.per[src]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if keyed {
				if l.per[src]--; l.per[src] <= 0 {
					delete(l.per, src)
				}
			}
		})
	}, nil
}

// Stats returns the connections held now, the sources holding them and
// the connections refused so far.
func (l *Limits) Stats() (active, sources int, refused int64) {
	if l == nil {
		return 0, 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.per), l.refused.Load()
}

// Listen wraps ln so that Accept returns only connections within l; one
// over a limit is passed to refuse (nil: closed at once) and Accept goes
// on waiting. refuse runs on the accepting goroutine, so it must not
// block: a server that answers refused clients starts a goroutine of its
// own. A returned connection gives its slot back when it is closed.
func Listen(ln net.Listener, l *Limits, refuse func(net.Conn, error)) net.Listener {
	return &listener{Listener: ln, l: l, refuse: refuse}
}

type listener struct {
	net.Listener
	l      *Limits
	refuse func(net.Conn, error)
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, err := ln.l.Acquire(c.RemoteAddr())
		if err != nil {
			if ln.refuse != nil {
				ln.refuse(c, err)
			} else {
				c.Close()
			}
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

// conn gives its slot back on Close.
type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// Unwrap returns the connection underneath, for code that needs the
// *net.TCPConn (socket options, CloseWrite).
func (c *conn) Unwrap() net.Conn { return c.Conn }

// SyscallConn gives the raw socket underneath, for socket options.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("connlimit: connection has no socket")
}

// CloseWrite half-closes the connection underneath when it can.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connlimit: connection cannot half-close")
}
