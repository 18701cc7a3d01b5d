package chord

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"appnet/internal/connlimit"
	"appnet/trace"
)

// Proto is the protocol name in traces.
const Proto = "chord/tcp"

// TCPTransport sends requests over TCP, one at a time per connection,
// keeping a few idle connections per peer for reuse. Its zero value is
// ready to use.
//
// A peer may close an idle connection at any time (its idle timeout, a
// restart at the same address). A connection idle longer than IdleTimeout
// is not reused; and when a call on a reused connection fails, every idle
// connection to that peer is dropped and the call is sent once more on a
// fresh connection.
type TCPTransport struct {
	Host        string        // for the trace
	Tracer      *trace.Tracer // nil: no trace
	Timeout     time.Duration // per call when ctx has no deadline; 0: DefaultCallTimeout
	MaxMessage  int           // largest reply accepted; 0: DefaultMaxMessage
	MaxIdle     int           // idle connections kept per peer; 0: 2
	IdleTimeout time.Duration // reuse a connection idle at most this long; 0: DefaultClientIdle
	Dialer      *net.Dialer   // nil: a zero net.Dialer (set LocalAddr to choose the source)

	mu     sync.Mutex
	idle   map[string][]idleConn
	closed bool
	seq    atomic.Int64
}

// DefaultClientIdle is how long a TCPTransport reuses an idle connection:
// well under a Server's DefaultIdleTimeout, so the client gives up on a
// connection before the server closes it.
const DefaultClientIdle = 30 * time.Second

type idleConn struct {
	c     net.Conn
	since time.Time
}

// Call sends req to addr and waits for the reply.
func (t *TCPTransport) Call(ctx context.Context, addr string, req *Message) (*Message, error) {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req.T = t.seq.Add(1)
	frame, err := AppendFrame(nil, req)
	if err != nil {
		return nil, err
	}
	if len(frame)-4 > DefaultMaxMessage {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrTooLarge, len(frame)-4)
	}
	fresh := false
	for {
		conn, reused, err := t.get(ctx, addr, fresh)
		if err != nil {
			return nil, fmt.Errorf("chord: %s: %w", addr, err)
		}
		resp, err := t.exchange(ctx, conn, req, frame)
		if err == nil {
			t.put(addr, conn)
			return resp, nil
		}
		conn.Close()
		// A pooled connection the peer closed while idle: the others in
		// the pool are likely closed too (the same idle timeout, or the
		// peer restarted), so drop them all and dial afresh, once.
		if reused && ctx.Err() == nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.drop(addr)
			fresh = true
			continue
		}
		return nil, fmt.Errorf("chord: %s: %w", addr, err)
	}
}

func (t *TCPTransport) exchange(ctx context.Context, conn net.Conn, req *Message, frame []byte) (*Message, error) {
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)                                                         //nolint:errcheck
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	defer stop()
	c := t.Tracer.Conv(t.Host, Proto, trace.Client, conn.LocalAddr(), conn.RemoteAddr())
	c.Send(req.Summary())
	if _, err := conn.Write(frame); err != nil {
		return nil, err
	}
	resp, err := ReadFrame(conn, t.MaxMessage)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		c.Notef("no reply: %v", err)
		return nil, err
	}
	c.Recv(resp.Summary())
	if resp.T != req.T {
		return nil, fmt.Errorf("%w: reply to transaction %d, expected %d", ErrMalformed, resp.T, req.T)
	}
	return resp, nil
}

// get returns an idle connection to addr (reused = true) unless fresh, or
// dials one. Idle connections past IdleTimeout are closed, not reused.
func (t *TCPTransport) get(ctx context.Context, addr string, fresh bool) (net.Conn, bool, error) {
	maxIdle := t.IdleTimeout
	if maxIdle <= 0 {
		maxIdle = DefaultClientIdle
	}
	var stale []net.Conn
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, false, net.ErrClosed
	}
	var reuse net.Conn
	for l := t.idle[addr]; len(l) > 0 && !fresh; l = t.idle[addr] {
		ic := l[len(l)-1]
		t.idle[addr] = l[:len(l)-1]
		if time.Since(ic.since) > maxIdle {
			stale = append(stale, ic.c)
			continue
		}
		reuse = ic.c
		break
	}
	if len(t.idle[addr]) == 0 {
		delete(t.idle, addr)
	}
	t.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
	if reuse != nil {
		return reuse, true, nil
	}
	d := t.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	return c, false, err
}

// drop closes every idle connection to addr.
func (t *TCPTransport) drop(addr string) {
	t.mu.Lock()
	l := t.idle[addr]
	delete(t.idle, addr)
	t.mu.Unlock()
	for _, ic := range l {
		ic.c.Close()
	}
}

func (t *TCPTransport) put(addr string, c net.Conn) {
	max := t.MaxIdle
	if max <= 0 {
		max = 2
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.idle[addr]) >= max {
		c.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[string][]idleConn{}
	}
	c.SetDeadline(time.Time{}) //nolint:errcheck
	t.idle[addr] = append(t.idle[addr], idleConn{c, time.Now()})
}

// Close closes the idle connections; later calls fail.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for a, l := range t.idle {
		for _, ic := range l {
			ic.c.Close()
		}
		delete(t.idle, a)
	}
	return nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("chord: server closed")

// Defaults of Server.
const (
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultFrameTimeout    = 5 * time.Second
	DefaultMaxConns        = 512
	DefaultMaxConnsPerAddr = 32
)

// Server answers Chord RPCs on TCP with a Handler (a *Node). A malformed
// or oversized frame is answered with an error reply and the connection
// closed; the node goes on.
//
// One host cannot take the server: it holds at most MaxConnsPerAddr
// connections from one source address (appnet/internal/connlimit), well
// below MaxConns in all, and cuts a slow connection in seconds: a new
// connection must deliver a whole first frame within FrameTimeout, and
// every frame must arrive whole within FrameTimeout of its first byte.
// Only a connection that has completed a request may then sit idle,
// waiting for the next, up to IdleTimeout (so that callers can keep
// connections for reuse).
type Server struct {
	Handler      Handler
	Host         string
	Tracer       *trace.Tracer
	Logger       *slog.Logger
	IdleTimeout  time.Duration // close a connection silent this long after a request; 0: DefaultIdleTimeout
	FrameTimeout time.Duration // the first frame, and each frame from its first byte; 0: DefaultFrameTimeout
	MaxMessage   int           // largest request; 0: DefaultMaxMessage
	MaxConns     int           // connections at once; 0: DefaultMaxConns; < 0: no cap
	// MaxConnsPerAddr caps connections from one source address; 0:
	// DefaultMaxConnsPerAddr; < 0: no cap (many nodes on one address).
	MaxConnsPerAddr int

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *Server) init() {
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

// ListenAndServe listens on addr and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("chord: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown; it then returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ln = connlimit.Listen(ln, connlimit.New(capOr(s.MaxConns, DefaultMaxConns), capOr(s.MaxConnsPerAddr, DefaultMaxConnsPerAddr)), nil)
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("chord: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	frameTimeout := s.FrameTimeout
	if frameTimeout <= 0 {
		frameTimeout = DefaultFrameTimeout
	}
	ctx := s.ctx
	if src, ok := connlimit.Source(conn.RemoteAddr()); ok {
		ctx = WithSource(ctx, src.Addr())
	}
	c := s.Tracer.Conv(s.Host, Proto, trace.Server, conn.LocalAddr(), conn.RemoteAddr())
	r := bufio.NewReader(conn)
	wait := frameTimeout // before the first request: no idling
	for {
		conn.SetReadDeadline(time.Now().Add(wait)) //nolint:errcheck
		if _, err := r.Peek(1); err != nil {
			return
		}
		conn.SetReadDeadline(time.Now().Add(frameTimeout)) //nolint:errcheck
		req, err := ReadFrame(r, s.MaxMessage)
		if err != nil {
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
				c.Notef("rejected: %v", err)
				reply := &Message{M: 1, Code: CodeMalformed, Err: truncate(err.Error(), MaxErrLen-8)}
				if frame, ferr := AppendFrame(nil, reply); ferr == nil {
					conn.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck
					conn.Write(frame)                                  //nolint:errcheck
				}
			}
			return
		}
		c.Recv(req.Summary())
		resp := s.Handler.Handle(ctx, req)
		c.Send(resp.Summary())
		frame, err := AppendFrame(nil, resp)
		if err != nil {
			return
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
		if _, err := conn.Write(frame); err != nil {
			return
		}
		wait = idle
	}
}

// capOr is a connection cap: v, def when v is 0, none (0) when v < 0.
func capOr(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Shutdown closes the listeners and every connection (a request being
// answered is cut short: Chord callers retry elsewhere) and waits for the
// server's goroutines, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.init()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
