// Package client is the course's Web client: it fetches a page and the
// objects the page references (img src, script src, link href) over
// non-persistent, persistent or pipelined HTTP/1.1 connections (RFC 9112
// §9.3, §9.6), and times each object, so that the course's response-time
// comparison can be seen.
//
// With an RTT, every connection is wrapped to add round-trip delay in user
// space (the kernel here has no netem): opening a connection waits one RTT
// (the SYN / SYN-ACK exchange before the request can be sent), and the
// first read after one or more writes does not return before RTT has
// passed since the last of those writes (the request travelling to the
// server and the first byte of the answer travelling back). Transmission
// time and the server's processing time are not added; reads that follow
// reads are not delayed. So a non-persistent fetch costs 2 RTT per object,
// a persistent one 1 RTT per object, and a pipelined one 1 RTT for all the
// objects it sends at once.
package client

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"

	"appnet/trace"
)

// Mode is how connections are used.
type Mode int

// The course's three ways.
const (
	NonPersistent Mode = iota // a new TCP connection per object
	Persistent                // one connection per server, one request at a time
	Pipelined                 // one connection per server, all requests sent back to back
)

func (m Mode) String() string {
	return [...]string{"non-persistent", "persistent", "pipelined"}[m]
}

// MaxPage is the most of a page read for references; MaxObjects the most
// objects fetched.
const (
	MaxPage    = 4 << 20
	MaxObjects = 200
)

// Fetcher fetches pages.
type Fetcher struct {
	Proxy   *url.URL      // nil: connect to each server directly
	Mode    Mode          //
	RTT     time.Duration // emulated round-trip delay added to every connection
	Timeout time.Duration // for the whole page; default 60s
	Host    string
	Tracer  *trace.Tracer
}

// Object is one fetched object.
type Object struct {
	URL     string
	Status  int
	Bytes   int64
	Start   time.Duration // since the fetch began
	Elapsed time.Duration // from the request's start to the end of its body
	Err     error
}

// Result is a page and its objects, in the order they were asked for.
type Result struct {
	Page    Object
	Objects []Object
	Total   time.Duration
	Conns   int // TCP connections opened
}

// Get fetches the page at rawURL and every object it references.
func (f *Fetcher) Get(ctx context.Context, rawURL string) (*Result, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not an http:// URL", rawURL)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := &session{f: f, ctx: ctx, start: time.Now(), conns: map[string]*conn{}}
	defer s.closeAll()

	var page bytes.Buffer
	pages := s.fetch([]*url.URL{u}, func(int) io.Writer { return &page })
	res := &Result{Page: pages[0]}
	if res.Page.Err != nil {
		return nil, res.Page.Err
	}
	refs := References(bytes.NewReader(page.Bytes()), u)
	if len(refs) > MaxObjects {
		refs = refs[:MaxObjects]
	}
	res.Objects = s.fetch(refs, func(int) io.Writer { return io.Discard })
	res.Total = time.Since(s.start)
	res.Conns = s.dials
	return res, nil
}

// References returns the absolute http URLs of the objects a page refers
// to (img src, script src, link href), each once, in page order.
func References(r io.Reader, base *url.URL) []*url.URL {
	z := html.NewTokenizer(io.LimitReader(r, MaxPage))
	seen := map[string]bool{}
	var out []*url.URL
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, hasAttr := z.TagName()
		want := map[string]string{"img": "src", "script": "src", "link": "href"}[string(name)]
		for hasAttr && want != "" {
			var k, v []byte
			k, v, hasAttr = z.TagAttr()
			if string(k) != want {
				continue
			}
			ref, err := base.Parse(strings.TrimSpace(string(v)))
			if err != nil || ref.Scheme != "http" || ref.Host == "" {
				continue
			}
			ref.Fragment = ""
			if !seen[ref.String()] {
				seen[ref.String()] = true
				out = append(out, ref)
			}
		}
	}
}

type session struct {
	f     *Fetcher
	ctx   context.Context
	start time.Time
	conns map[string]*conn // by the address dialled
	dials int
}

type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func (s *session) closeAll() {
	for _, c := range s.conns {
		c.c.Close()
	}
}

// addr is where a request for u goes: the proxy or the server.
func (s *session) addr(u *url.URL) string {
	h := u
	if s.f.Proxy != nil {
		h = s.f.Proxy
	}
	if h.Port() == "" {
		return net.JoinHostPort(h.Hostname(), "80")
	}
	return h.Host
}

func (s *session) dial(addr string) (*conn, error) {
	if s.f.RTT > 0 {
		t := time.NewTimer(s.f.RTT) // SYN, SYN-ACK
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return nil, s.ctx.Err()
		}
	}
	var d net.Dialer
	c, err := d.DialContext(s.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	s.dials++
	if dl, ok := s.ctx.Deadline(); ok {
		c.SetDeadline(dl) //nolint:errcheck
	}
	if s.f.RTT > 0 {
		c = &delayConn{Conn: c, rtt: s.f.RTT}
	}
	return &conn{c: c, br: bufio.NewReader(c)}, nil
}

// request writes one GET for u on c.
func (s *session) request(c *conn, u *url.URL, close bool) (*http.Request, error) {
	target := u.RequestURI()
	if s.f.Proxy != nil {
		target = u.String() // absolute-form (RFC 9112 §3.2.2)
	}
	req := &http.Request{Method: "GET", URL: u, Host: u.Host}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: appnet-web-client\r\n", target, u.Host)
	if close {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c.c, b.String()); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return req, nil
}

// response reads one response on c into w.
func (s *session) response(c *conn, req *http.Request, w io.Writer, o *Object, began time.Time) (closed bool) {
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		o.Err = fmt.Errorf("client: %s: %w", req.URL, err)
		return true
	}
	o.Status = resp.StatusCode
	o.Bytes, err = io.Copy(w, io.LimitReader(resp.Body, MaxPage))
	resp.Body.Close()
	if err != nil {
		o.Err = fmt.Errorf("client: %s: %w", req.URL, err)
	}
	o.Elapsed = time.Since(began)
	if s.f.Tracer.Enabled() {
		tc := s.f.Tracer.Conv(s.f.Host, "http/tcp", trace.Client, c.c.LocalAddr(), c.c.RemoteAddr())
		tc.Send(fmt.Sprintf("GET %s -> %d %d bytes", req.URL, o.Status, o.Bytes))
	}
	if resp.Close {
		c.c.Close()
	}
	return resp.Close || o.Err != nil
}

// fetch gets urls in the session's mode.
func (s *session) fetch(urls []*url.URL, sink func(int) io.Writer) []Object {
	objs := make([]Object, len(urls))
	for i, u := range urls {
		objs[i].URL = u.String()
	}
	switch s.f.Mode {
	case NonPersistent:
		for i, u := range urls {
			began := time.Now()
			objs[i].Start = began.Sub(s.start)
			c, err := s.dial(s.addr(u))
			if err != nil {
				objs[i].Err = err
				continue
			}
			req, err := s.request(c, u, true)
			if err == nil {
				s.response(c, req, sink(i), &objs[i], began)
			} else {
				objs[i].Err = err
			}
			c.c.Close()
		}
	case Persistent:
		for i, u := range urls {
			began := time.Now()
			objs[i].Start = began.Sub(s.start)
			c, err := s.conn(s.addr(u))
			if err != nil {
				objs[i].Err = err
				continue
			}
			req, err := s.request(c, u, false)
			if err != nil {
				objs[i].Err = err
				continue
			}
			if s.response(c, req, sink(i), &objs[i], began) {
				s.drop(s.addr(u))
			}
		}
	case Pipelined:
		// group by connection, keeping order; send all, then read all
		byAddr := map[string][]int{}
		var order []string
		for i, u := range urls {
			a := s.addr(u)
			if byAddr[a] == nil {
				order = append(order, a)
			}
			byAddr[a] = append(byAddr[a], i)
		}
		for _, a := range order {
			began := time.Now()
			c, err := s.conn(a)
			idx := byAddr[a]
			reqs := make([]*http.Request, len(idx))
			for k, i := range idx {
				objs[i].Start = began.Sub(s.start)
				if err == nil {
					reqs[k], err = s.request(c, urls[i], false)
				}
				if err != nil {
					objs[i].Err = err
				}
			}
			for k, i := range idx {
				if reqs[k] == nil || objs[i].Err != nil {
					continue
				}
				s.response(c, reqs[k], sink(i), &objs[i], began)
			}
		}
	}
	return objs
}

func (s *session) conn(addr string) (*conn, error) {
	if c, ok := s.conns[addr]; ok {
		return c, nil
	}
	c, err := s.dial(addr)
	if err != nil {
		return nil, err
	}
	s.conns[addr] = c
	return c, nil
}

func (s *session) drop(addr string) {
	if c, ok := s.conns[addr]; ok {
		c.c.Close()
		delete(s.conns, addr)
	}
}

// delayConn adds a round-trip delay: the first read after writes waits
// until RTT after the last write (see the package comment).
type delayConn struct {
	net.Conn
	rtt       time.Duration
	wrote     bool
	lastWrite time.Time
}

func (c *delayConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.wrote, c.lastWrite = true, time.Now()
	return n, err
}

func (c *delayConn) Read(b []byte) (int, error) {
	if c.wrote {
		c.wrote = false
		if d := time.Until(c.lastWrite.Add(c.rtt)); d > 0 {
			time.Sleep(d)
		}
	}
	return c.Conn.Read(b)
}
