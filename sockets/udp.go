package sockets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"

	"appnet/trace"
)

// UDPServer is the uppercase server over UDP. Set its fields before Serve;
// zero values mean the defaults.
type UDPServer struct {
	Host       string        // name reported in traces
	Tracer     *trace.Tracer // nil: no tracing
	Logger     *slog.Logger  // nil: slog.Default()
	BufferSize int           // largest datagram answered; at most MaxUDPPayload
	Readers    int           // goroutines reading the socket; default GOMAXPROCS

	mu      sync.Mutex
	conns   map[net.PacketConn]struct{}
	closing atomic.Bool

	// TooLong counts datagrams refused for their size.
	TooLong atomic.Uint64
}

// ListenAndServe listens on the UDP address addr and serves it.
func (s *UDPServer) ListenAndServe(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("sockets: %w", err)
	}
	return s.Serve(pc)
}

// Serve answers the datagrams arriving on pc until Shutdown, which closes
// pc. It returns ErrServerClosed after Shutdown.
func (s *UDPServer) Serve(pc net.PacketConn) error {
	if !s.track(pc) {
		pc.Close()
		return ErrServerClosed
	}
	defer s.untrack(pc)
	defer pc.Close()
	size := orDefault(s.BufferSize, DefaultBufferSize)
	if size > MaxUDPPayload {
		return fmt.Errorf("sockets: buffer size %d is larger than a UDP payload can be (%d)", size, MaxUDPPayload)
	}
	n := orDefault(s.Readers, runtime.GOMAXPROCS(0))
	errs := make(chan error, n)
	for range n {
		go func() { errs <- s.readLoop(pc, size) }()
	}
	var first error
	for range n {
		if err := <-errs; first == nil {
			first = err
		}
	}
	return first
}

func (s *UDPServer) readLoop(pc net.PacketConn, size int) error {
	// One byte more than the largest datagram we answer: a read that fills
	// it means the datagram was longer, whatever the kernel cut.
	buf := make([]byte, size+1)
	reply := make([]byte, 0, size+64)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("sockets: read: %w", err)
			}
			// ICMP errors from earlier replies (port unreachable) can
			// surface here on some systems; they concern one client only.
			if isConnRefused(err) {
				continue
			}
			return fmt.Errorf("sockets: read: %w", err)
		}
		tc := s.Tracer.Conv(s.Host, "uppercase/udp", trace.Server, pc.LocalAddr(), addr)
		if n > size {
			s.TooLong.Add(1)
			msg := fmt.Sprintf("ERROR datagram too long (max %d bytes)", size)
			tc.Notef("datagram of more than %d bytes refused", size)
			s.logger().Info("uppercase: datagram too long", "from", addr, "max", size)
			tc.Send(msg)
			reply = append(reply[:0], msg...)
		} else {
			tc.RecvBytes(buf[:n])
			reply = AppendUpper(reply[:0], buf[:n])
			tc.SendBytes(reply)
		}
		if _, err := pc.WriteTo(reply, addr); err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			s.logger().Debug("uppercase: reply", "to", addr, "err", err)
		}
	}
}

// Shutdown closes the server's sockets; Serve returns once its readers have
// stopped. A datagram is answered within one read, so there is nothing to
// drain and ctx is not waited on.
func (s *UDPServer) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for pc := range s.conns {
		pc.Close()
	}
	return ctx.Err()
}

func (s *UDPServer) track(pc net.PacketConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.PacketConn]struct{})
	}
	s.conns[pc] = struct{}{}
	return true
}

func (s *UDPServer) untrack(pc net.PacketConn) {
	s.mu.Lock()
	delete(s.conns, pc)
	s.mu.Unlock()
}

func (s *UDPServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
