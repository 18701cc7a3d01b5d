// Package fastlane answers the simplest HTTP/1.1 requests of a connection
// itself and hands everything else to a net/http Server.
//
// A Web server on net/http spends most of its own time, for a small file,
// in net/http's per-request machinery: a Request and its header map, a
// context, a goroutine that watches the connection while the handler runs,
// deadlines reset several times, header sorting. The lane reads requests
// off the connection itself and passes those it fully understands (GET or
// HEAD of a clean path, HTTP/1.1, no body, no Expect, Upgrade or unusual
// Connection) to a Handler, which writes the whole response or declines.
// At the first request that is not simple, or that the Handler declines,
// the connection goes to the net/http Server with every byte read so far,
// and stays there: net/http then parses that request, answers any error
// and applies its timeouts. So the lane never judges a malformed request;
// it only recognises well-formed easy ones.
//
// The lane keeps net/http's limits: IdleTimeout while waiting for a
// request, ReadHeaderTimeout from a request's first byte to the end of its
// head, WriteTimeout on each response. To save a timer update per request,
// the idle and write deadlines are moved only when less than a second
// (deadlineSlack) of their full length is left, so each limit acts after
// between its length less a second and its length. A head longer than the
// lane's buffer goes to net/http, which applies MaxHeaderBytes.
package fastlane

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes and times.
const (
	bufSize       = 4096        // the read buffer: the longest head the lane reads itself
	deadlineSlack = time.Second // how stale a refreshed deadline may be
	lingerClose   = 500 * time.Millisecond
	sendFirst     = 512      // body bytes written with the head before sendfile
	copyBody      = 8 << 10  // a longer body is written from where it is, not copied
	maxOut        = 32 << 10 // responses buffered for one write, at most (about)
)

// Handler answers simple requests.
type Handler interface {
	// Respond fills w with the whole response to r and returns true, or
	// returns false having set nothing: then the connection, from r on,
	// goes to net/http.
	Respond(w *Response, r *Request) bool
}

// Response is what a Handler answers: the status line and header fields,
// then a body from memory or from a file. The lane adds "Connection:
// close" when the client asked for it, ends the head, and sends no body
// to a HEAD.
type Response struct {
	// Head is the status line and the header fields, each line ending in
	// CRLF, without the empty line that ends the head. The Handler appends
	// to it; the lane reuses its array.
	Head []byte
	// Body is the body, when it is in memory. The lane does not keep it
	// past the write and does not modify it.
	Body []byte
	// File, when not nil, holds the body instead: FileSize bytes from its
	// current offset, sent with sendfile. The lane closes it.
	File     *os.File
	FileSize int64
}

// Server runs the lane in front of HTTP, which serves the connections the
// lane hands off and provides the timeouts. With a nil Handler there is no
// lane: HTTP serves every connection itself.
type Server struct {
	HTTP    *http.Server
	Handler Handler

	answered, handedOff atomic.Uint64

	shutting atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
	lns      map[net.Listener]struct{}
	wg       sync.WaitGroup
}

// kinds of read deadline
const (
	noDeadline = iota
	idleDeadline
	headDeadline
	staleDeadline
)

// conn states
const (
	active int32 = iota
	idle         // waiting for a request, nothing buffered
)

type conn struct {
	c     net.Conn
	state atomic.Int32
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return s.HTTP.Serve(ln)
	}
	hl := &handoffListener{addr: ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		s.HTTP.Serve(hl) //nolint:errcheck // ends when hl closes
	}()
	defer func() {
		hl.Close()
		<-httpDone
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// out of file descriptors and the like: wait, as net/http does
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		lc := &conn{c: c}
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.conns[lc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(lc, hl)
	}
}

// Stats returns how many requests the lane answered, and how many
// connections it handed to net/http.
func (s *Server) Stats() (answered, handedOff uint64) {
	return s.answered.Load(), s.handedOff.Load()
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, lets each lane connection finish the response
// it is writing and closes it, and shuts HTTP down (which does the same
// for the connections it has), waiting for all of it or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.HTTP.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.closeConns()
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stop()
	err := s.HTTP.Close()
	s.closeConns()
	return err
}

// stop marks the server as shutting down, closes its listeners and wakes
// the idle lane connections, which then close.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutting.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	past := time.Unix(1, 0)
	for c := range s.conns {
		if c.state.Load() == idle {
			c.c.SetReadDeadline(past) //nolint:errcheck
		}
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.c.Close()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// serve runs one connection until it closes or goes to net/http.
func (s *Server) serve(lc *conn, hl *handoffListener) {
	c := lc.c
	gone := false // handed to net/http
	defer func() {
		if v := recover(); v != nil {
			// a Handler's bug costs its connection, not the server (as
			// net/http does for handlers)
			logf := log.Printf
			if s.HTTP.ErrorLog != nil {
				logf = s.HTTP.ErrorLog.Printf
			}
			logf("fastlane: panic serving %v: %v\n%s", c.RemoteAddr(), v, debug.Stack())
		}
		if !gone {
			c.Close()
		}
		s.forget(lc)
	}()
	var (
		buf        = make([]byte, bufSize)
		start, end int // buf[start:end] is read and not yet consumed
		out        []byte
		req        Request
		resp       Response
		readDL     time.Time // the read deadline set, of kind readKind
		readKind   = noDeadline
		writeDL    time.Time
		served     bool // a request was answered: a new one has idleT to begin
	)
	req.Conn = c
	idleT, headT, writeT := s.HTTP.IdleTimeout, s.HTTP.ReadHeaderTimeout, s.HTTP.WriteTimeout
	if idleT <= 0 {
		idleT = s.HTTP.ReadTimeout
	}
	if headT <= 0 {
		headT = s.HTTP.ReadTimeout
	}
	// flushWith writes the buffered responses, then body (with one writev)
	flushWith := func(body []byte) bool {
		if len(out) == 0 && len(body) == 0 {
			return true
		}
		if writeT > 0 {
			if now := time.Now(); writeDL.Sub(now) < writeT-deadlineSlack {
				writeDL = now.Add(writeT)
				c.SetWriteDeadline(writeDL) //nolint:errcheck
			}
		}
		var err error
		if len(body) == 0 {
			_, err = c.Write(out)
		} else {
			bufs := net.Buffers{out, body}
			_, err = bufs.WriteTo(c)
		}
		out = out[:0]
		if cap(out) > maxOut {
			out = nil // an idle connection keeps no large buffer
		}
		return err == nil
	}
	flush := func() bool { return flushWith(nil) }
	handoff := func() {
		if !flush() {
			return
		}
		c.SetDeadline(time.Time{}) //nolint:errcheck
		pc := &prefixConn{Conn: c, buf: append([]byte(nil), buf[start:end]...)}
		// counted before net/http can answer, so Stats never lags a
		// response a client has already read
		s.handedOff.Add(1)
		if gone = hl.handoff(pc); !gone {
			s.handedOff.Add(^uint64(0))
		}
	}
	for {
		// answer every whole request buffered (pipelining answers several
		// in one write)
		for start < end {
			resp.Head, resp.Body, resp.File, resp.FileSize = resp.Head[:0], nil, nil, 0
			n, v := parse(buf[start:end], &req)
			if v == incomplete {
				break
			}
			if v == handOff || !s.Handler.Respond(&resp, &req) {
				handoff()
				return
			}
			start += n
			served = true
			s.answered.Add(1)
			if readKind == headDeadline {
				readKind = staleDeadline // the next head gets its own
			}
			out = append(out, resp.Head...)
			if req.Close {
				out = append(out, "Connection: close\r\n"...)
			}
			out = append(out, '\r', '\n')
			if req.Method != http.MethodHead {
				if len(resp.Body) > copyBody {
					if !flushWith(resp.Body) {
						return
					}
				} else {
					out = append(out, resp.Body...)
				}
			}
			resp.Body = nil
			if resp.File != nil {
				ok := req.Method == http.MethodHead
				if !ok {
					var rest int64
					rest, ok = appendFirst(&out, resp.File, resp.FileSize)
					ok = ok && flush() && sendFile(c, resp.File, rest)
				}
				resp.File.Close()
				if !ok {
					return
				}
			}
			if req.Close {
				if flush() {
					lingeringClose(c)
				}
				return
			}
			if len(out) >= maxOut && !flush() {
				return
			}
		}
		if !flush() {
			return
		}
		if start == end {
			start, end = 0, 0
		} else if end == len(buf) {
			if start == 0 {
				handoff() // a head longer than the buffer
				return
			}
			end = copy(buf, buf[start:end])
			start = 0
		}
		// the deadline for this read: the idle timeout while nothing is
		// buffered between requests, else the head timeout from the
		// connection's start or the head's first bytes
		now := time.Now()
		if start == end {
			lc.state.Store(idle)
		}
		if start == end && served {
			if idleT <= 0 {
				if readKind != noDeadline {
					readDL, readKind = time.Time{}, noDeadline
					c.SetReadDeadline(readDL) //nolint:errcheck
				}
			} else if readKind != idleDeadline || readDL.Sub(now) < idleT-deadlineSlack {
				readDL, readKind = now.Add(idleT), idleDeadline
				c.SetReadDeadline(readDL) //nolint:errcheck
			}
		} else if readKind != headDeadline {
			readDL, readKind = time.Time{}, headDeadline
			if headT > 0 {
				readDL = now.Add(headT)
			}
			c.SetReadDeadline(readDL) //nolint:errcheck
		}
		// after the deadline is set: stop either sees this conn idle and
		// moves its deadline to the past, or is seen here
		if start == end && s.shutting.Load() {
			return
		}
		m, err := c.Read(buf[end:])
		lc.state.Store(active)
		end += m
		if err != nil {
			return
		}
	}
}

// appendFirst appends the first bytes of the body, up to sendFirst of n,
// from f to the heads in out. Like net/http, the lane sends a head with the
// body's first bytes and the rest with sendfile: a head written alone
// before sendfile made 1 MiB responses about 25% slower on loopback in
// scripts/bench-web.
func appendFirst(out *[]byte, f *os.File, n int64) (rest int64, ok bool) {
	k := int(min(n, sendFirst))
	b := slices.Grow(*out, k)
	b = b[:len(b)+k]
	if _, err := io.ReadFull(f, b[len(b)-k:]); err != nil {
		return 0, false
	}
	*out = b
	return n - int64(k), true
}

// sendFile copies n bytes of f to c; *net.TCPConn does it with sendfile.
func sendFile(c net.Conn, f *os.File, n int64) bool {
	m, err := io.Copy(c, io.LimitReader(f, n))
	return err == nil && m == n
}

// lingeringClose closes the write side and waits a little for the client
// to close, so that unread bytes from it do not make the kernel reset the
// connection before the response is read (what net/http does).
func lingeringClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()                                //nolint:errcheck
		c.SetReadDeadline(time.Now().Add(lingerClose)) //nolint:errcheck
		io.Copy(io.Discard, c)                         //nolint:errcheck
	}
}

// prefixConn is a connection handed to net/http with the bytes the lane
// had read from it.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// ReadFrom keeps sendfile for net/http's responses (it looks for an
// io.ReaderFrom on the connection).
func (p *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := p.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{p.Conn}, r)
}

// CloseWrite lets net/http close its side gracefully.
func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// handoffListener is the listener the net/http Server serves: it accepts
// the connections the lane hands off.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// handoff gives c to net/http; false when the listener is closed.
func (l *handoffListener) handoff(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}
