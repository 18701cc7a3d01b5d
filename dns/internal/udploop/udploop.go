// Package udploop is the UDP read loop of appnet's DNS servers: a few
// long-lived goroutines per socket read datagrams into buffers they own,
// hand each to the server's Handler, and write the answer from a buffer
// they own too. Nothing is allocated per datagram on the way through, so
// a server whose answer is ready (a cached, packed answer) pays only the
// two system calls. It replaces miekg/dns's goroutine per datagram on
// the UDP side; TCP stays with miekg/dns.
package udploop

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// MaxDatagram is the largest datagram read.
const MaxDatagram = 65535

// Handler answers one datagram req from from: it appends the answer to
// out[:0] and returns it, or returns nil to send nothing (a dropped
// message, or one answered later with Loop.WriteTo). req and out belong
// to the loop: they may not be kept after Handler returns.
type Handler func(req []byte, from netip.AddrPort, out []byte) []byte

// Loop serves one packet socket.
type Loop struct {
	pc      net.PacketConn
	uc      *net.UDPConn // pc, when it is a UDP socket (no allocation per read)
	h       Handler
	closing atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	extra   []*net.UDPConn // the readers' own sockets (SO_REUSEPORT)
}

// Readers is the number of reader goroutines per socket: one per
// processor, at least two, so that one goroutine answers while another
// waits in the kernel.
func Readers() int { return max(2, runtime.GOMAXPROCS(0)) }

// New returns a loop answering pc's datagrams with h.
func New(pc net.PacketConn, h Handler) *Loop {
	l := &Loop{pc: pc, h: h}
	l.uc, _ = pc.(*net.UDPConn)
	return l
}

// Serve runs readers goroutines (0: Readers()) until Stop, then returns
// nil; or the first read error that is not a timeout.
func (l *Loop) Serve(readers int) error {
	if readers <= 0 {
		readers = Readers()
	}
	conns := []*net.UDPConn{l.uc}
	if l.uc != nil && reusePort(l.uc) {
		// One socket per reader: the kernel spreads the datagrams over
		// them (SO_REUSEPORT), so the readers do not queue on one socket.
		for range readers - 1 {
			pc, err := ListenPacket(context.Background(), "udp", l.uc.LocalAddr().String())
			if err != nil {
				break
			}
			conns = append(conns, pc.(*net.UDPConn))
		}
	}
	l.mu.Lock()
	l.extra = conns[1:]
	stopped := l.closing.Load()
	l.mu.Unlock()
	if stopped {
		for _, c := range conns[1:] {
			c.Close()
		}
		return nil
	}
	errc := make(chan error, readers)
	for i := range readers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			errc <- l.read(conns[i%len(conns)])
		}()
	}
	l.wg.Wait()
	for _, c := range conns[1:] {
		c.Close()
	}
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stop wakes every reader (a read deadline in the past); each finishes
// the datagram it is answering and returns. Serve returns once all have.
func (l *Loop) Stop() {
	l.closing.Store(true)
	l.pc.SetReadDeadline(time.Unix(1, 0))
	l.mu.Lock()
	for _, c := range l.extra {
		c.SetReadDeadline(time.Unix(1, 0))
	}
	l.mu.Unlock()
}

// ListenPacket opens a UDP socket with SO_REUSEPORT set, so that a Loop
// serving it can open one more socket on the same address for each of
// its readers.
func ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	return lc.ListenPacket(ctx, network, addr)
}

// reusePort reports whether c has SO_REUSEPORT set.
func reusePort(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	on := 0
	rc.Control(func(fd uintptr) {
		on, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT)
	})
	return on != 0
}

// Stopping reports whether Stop was called.
func (l *Loop) Stopping() bool { return l.closing.Load() }

// batchConn reads and writes many datagrams per system call (recvmmsg
// and sendmmsg on Linux); ipv4.Message and ipv6.Message are one type.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Batch sizes: datagrams per system call, and the buffer of each. A
// question longer than batchBuf is dropped (RFC 1035 questions are small;
// 4096 is the largest EDNS0 payload commonly offered).
const (
	batch    = 32
	batchBuf = 4096
)

func (l *Loop) read(uc *net.UDPConn) error {
	if uc != nil && UseBatch {
		var bc batchConn
		if a, ok := uc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
			bc = ipv4.NewPacketConn(uc)
		} else {
			bc = ipv6.NewPacketConn(uc)
		}
		return l.readBatch(bc)
	}
	in := make([]byte, MaxDatagram)
	out := make([]byte, 0, MaxDatagram)
	for !l.closing.Load() {
		var (
			n    int
			from netip.AddrPort
			err  error
		)
		if uc != nil {
			n, from, err = uc.ReadFromUDPAddrPort(in)
		} else {
			var a net.Addr
			n, a, err = l.pc.ReadFrom(in)
			if ua, ok := a.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
		}
		if err != nil {
			if stop, err := l.readFailed(err); stop {
				return err
			}
			continue
		}
		if resp := l.h(in[:n], from, out[:0]); resp != nil {
			if uc != nil {
				uc.WriteToUDPAddrPort(resp, from)
			} else {
				l.WriteTo(resp, from)
			}
		}
	}
	return nil
}

// readFailed says what a read error means: stop (returning ret, nil when
// the loop is closing), or read on.
func (l *Loop) readFailed(err error) (stop bool, ret error) {
	if l.closing.Load() {
		return true, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, nil
	}
	if errors.Is(err, net.ErrClosed) {
		return true, err
	}
	// A transient error (an ICMP unreachable reported on the socket, a
	// short buffer): read on, after a breath.
	time.Sleep(time.Millisecond)
	return false, nil
}

// WriteTo sends b to addr; it is safe to call from any goroutine.
func (l *Loop) WriteTo(b []byte, addr netip.AddrPort) error {
	if l.uc != nil {
		_, err := l.uc.WriteToUDPAddrPort(b, addr)
		return err
	}
	_, err := l.pc.WriteTo(b, net.UDPAddrFromAddrPort(addr))
	return err
}

// LocalAddr is the socket's address.
func (l *Loop) LocalAddr() net.Addr { return l.pc.LocalAddr() }

// UseBatch turns the batched reads and writes on (the default; on this
// 2-core machine they gained a few per cent over one datagram per system
// call, and one socket per reader gained about 40%).
var UseBatch = true

func (l *Loop) readBatch(bc batchConn) error {
	in := make([]ipv4.Message, batch)
	out := make([]ipv4.Message, batch)
	outBufs := make([][]byte, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, batchBuf)}
		out[i].Buffers = make([][]byte, 1)
		outBufs[i] = make([]byte, 0, batchBuf)
	}
	for !l.closing.Load() {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if stop, err := l.readFailed(err); stop {
				return err
			}
			continue
		}
		k := 0
		for i := range n {
			m := &in[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok || m.Flags&syscall.MSG_TRUNC != 0 {
				continue
			}
			from := ua.AddrPort()
			resp := l.h(m.Buffers[0][:m.N], from, outBufs[k][:0])
			if resp == nil {
				continue
			}
			outBufs[k] = resp[:0]
			out[k].Buffers[0] = resp
			out[k].Addr = m.Addr
			k++
		}
		for sent := 0; sent < k; {
			c, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil {
				// A datagram the kernel refused (ICMP unreachable reported
				// on the socket, buffers full): skip it, send the rest.
				c = max(c, 1)
			}
			sent += c
		}
		for i := range k {
			out[i].Addr = nil
		}
	}
	return nil
}
