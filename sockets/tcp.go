package sockets

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"appnet/internal/connlimit"
	"appnet/trace"
)

// Defaults for the servers' zero-valued fields.
const (
	DefaultIdleTimeout  = 2 * time.Minute
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxLine      = 64 << 10
	DefaultMaxConns     = 4096
	DefaultMaxPerAddr   = 64               // connections from one address (an IPv6 /64)
	DefaultFirstLine    = 10 * time.Second // a new connection's first line must be complete by then
	DefaultBufferSize   = 2048             // the course's UDP receive buffer
	MaxUDPPayload       = 65507            // the largest UDP payload over IPv4
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("sockets: server closed")

// TCPServer is the uppercase server over TCP. Set its fields before Serve;
// zero values mean the defaults above.
type TCPServer struct {
	Host         string        // name reported in traces
	Tracer       *trace.Tracer // nil: no tracing
	Logger       *slog.Logger  // nil: slog.Default()
	IdleTimeout  time.Duration // close a connection after this long without a complete line
	WriteTimeout time.Duration // give up on a client that does not read its replies
	MaxLine      int           // longest line accepted, not counting its "\n"
	MaxConns     int           // connections served at once; more are told "ERROR server busy"
	MaxPerAddr   int           // connections from one address (IPv4, or IPv6 /64); < 0: no cap
	FirstLine    time.Duration // a new connection's first line must be complete within this

	limitsOnce sync.Once
	limits     *connlimit.Limits
	refusing   atomic.Int64 // refusals lingering now

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	active    atomic.Int64
}

// ListenAndServe listens on the TCP address addr and serves it.
func (s *TCPServer) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sockets: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln, one goroutine each, until Shutdown. It
// closes ln when it returns, and returns ErrServerClosed after Shutdown.
func (s *TCPServer) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrack(ln)
	defer ln.Close()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of file descriptors or a similar passing trouble:
				// wait and try again, as a real server must.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("uppercase: accept", "err", err, "retry in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("sockets: accept: %w", err)
		}
		backoff = 0
		release, lerr := s.connLimits().Acquire(c.RemoteAddr())
		if !s.add(c, lerr == nil) {
			c.Close()
			if release != nil {
				release()
			}
			return ErrServerClosed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.remove(c, lerr == nil)
			if lerr != nil {
				s.refuseConn(c, lerr)
				return
			}
			defer release()
			s.serveConn(c)
		}()
	}
}

// connLimits returns the server's caps, made from its fields on first use.
func (s *TCPServer) connLimits() *connlimit.Limits {
	s.limitsOnce.Do(func() {
		s.limits = connlimit.New(orDefault(s.MaxConns, DefaultMaxConns), s.MaxPerAddr)
		if s.MaxPerAddr == 0 {
			s.limits.MaxPerAddr = DefaultMaxPerAddr
		}
	})
	return s.limits
}

// maxRefusing bounds the refused connections that are told why and
// lingered over at once; past it, refused connections are closed at once,
// so a flood of connections costs the server no more than this many
// goroutines.
const maxRefusing = 256

// refuseConn answers a connection over a cap with one error line, or
// closes it outright while maxRefusing others are being answered.
func (s *TCPServer) refuseConn(c net.Conn, why error) {
	defer c.Close()
	tc := s.Tracer.Conv(s.Host, "uppercase/tcp", trace.Server, c.LocalAddr(), c.RemoteAddr())
	tc.Notef("connection refused: %v", why)
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		return
	}
	defer s.refusing.Add(-1)
	msg := "ERROR server busy\n"
	if errors.Is(why, connlimit.ErrPerAddr) {
		msg = "ERROR too many connections from your address\n"
	}
	s.refuse(c, tc, msg, orDefault(s.WriteTimeout, DefaultWriteTimeout))
}

// isTemporary reports errors that accept may return while the system is
// short of resources.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, lets every connection finish the line it is
// answering, closes them all and waits for their goroutines. If ctx ends
// first, the remaining connections are closed at once and ctx's error is
// returned.
func (s *TCPServer) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		// Wake readers blocked waiting for a line; a reply being written
		// is not affected.
		c.SetReadDeadline(time.Now()) //nolint:errcheck
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Active returns the number of connections being served.
func (s *TCPServer) Active() int { return int(s.active.Load()) }

func (s *TCPServer) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *TCPServer) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

// add tracks c for Shutdown; served says whether it counts in Active (a
// refused connection does not).
func (s *TCPServer) add(c net.Conn, served bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	if served {
		s.active.Add(1)
	}
	return true
}

func (s *TCPServer) remove(c net.Conn, served bool) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if served {
		s.active.Add(-1)
	}
}

func (s *TCPServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func orDefault[T int | time.Duration](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}

// serveConn answers one connection's lines until EOF, an error, the idle
// timeout or Shutdown.
func (s *TCPServer) serveConn(c net.Conn) {
	defer c.Close()
	idle := orDefault(s.IdleTimeout, DefaultIdleTimeout)
	wto := orDefault(s.WriteTimeout, DefaultWriteTimeout)
	maxLine := orDefault(s.MaxLine, DefaultMaxLine)
	tc := s.Tracer.Conv(s.Host, "uppercase/tcp", trace.Server, c.LocalAddr(), c.RemoteAddr())
	tc.Notef("connection opened")

	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	var line, reply []byte
	// Until its first complete line, a connection has seconds, not the
	// idle timeout: a client that connects and trickles (or sends
	// nothing) holds its slot only briefly.
	wait := min(idle, orDefault(s.FirstLine, DefaultFirstLine))
	for {
		c.SetReadDeadline(time.Now().Add(wait)) //nolint:errcheck
		var err error
		line, err = readLine(r, line[:0], maxLine)
		switch {
		case errors.Is(err, errLineTooLong):
			w.Flush() //nolint:errcheck // answers already due go out first
			s.refuse(c, tc, fmt.Sprintf("ERROR line too long (max %d bytes)\n", maxLine), wto)
			return
		case err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)):
			// A line cut short by a timeout or an error is not answered.
			s.closed(tc, c, err)
			return
		}
		// A last line without "\n" (err == io.EOF) is answered too.
		wait = idle
		tc.RecvBytes(line)
		reply = AppendUpper(reply[:0], line)
		tc.SendBytes(reply)
		c.SetWriteDeadline(time.Now().Add(wto)) //nolint:errcheck
		if _, werr := w.Write(reply); werr != nil {
			tc.Notef("write failed: %v", werr)
			return
		}
		// Flush when the client has nothing more queued, so a client that
		// sends many lines at once gets its answers in few segments.
		if r.Buffered() == 0 || err != nil {
			if ferr := w.Flush(); ferr != nil {
				tc.Notef("write failed: %v", ferr)
				return
			}
		}
		if err != nil {
			s.closed(tc, c, err)
			return
		}
		if s.closing.Load() && r.Buffered() == 0 {
			tc.Notef("connection closed: server shutting down")
			return
		}
	}
}

func (s *TCPServer) closed(tc *trace.Conv, c net.Conn, err error) {
	switch {
	case errors.Is(err, io.EOF):
		tc.Notef("connection closed by client")
	case s.closing.Load():
		tc.Notef("connection closed: server shutting down")
	case errors.Is(err, os.ErrDeadlineExceeded):
		tc.Notef("connection closed: idle timeout")
		s.logger().Debug("uppercase: idle connection closed", "remote", c.RemoteAddr())
	default:
		tc.Notef("connection closed: %v", err)
		s.logger().Debug("uppercase: connection", "remote", c.RemoteAddr(), "err", err)
	}
}

// refuse sends a one-line error, then closes the connection gently: it
// half-closes and discards what the client is still sending for a moment,
// so the client reads the error instead of a connection reset.
func (s *TCPServer) refuse(c net.Conn, tc *trace.Conv, msg string, wto time.Duration) {
	tc.Send(msg)
	c.SetWriteDeadline(time.Now().Add(wto)) //nolint:errcheck
	if _, err := io.WriteString(c, msg); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() //nolint:errcheck
	}
	c.SetReadDeadline(time.Now().Add(lingerTime)) //nolint:errcheck
	io.CopyN(io.Discard, c, lingerBytes)          //nolint:errcheck
	tc.Notef("connection closed by server")
}

// The bounds of refuse's discarding.
const (
	lingerTime  = time.Second
	lingerBytes = 4 << 20
)

var errLineTooLong = errors.New("sockets: line too long")

// readLine appends the next line from r to buf, with its "\n". It never
// holds more than max bytes of a line (not counting the "\n"): past that it
// returns errLineTooLong.
// At the end of input it returns what it has with io.EOF.
func readLine(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > max+1 || (len(buf)+len(chunk) == max+1 && chunk[len(chunk)-1] != '\n') {
			return buf, errLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, err
		}
	}
}
