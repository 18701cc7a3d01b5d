// Package proxy is a caching HTTP/1.1 proxy: a forward proxy (the course's
// Web cache, which acts as both client and server) and, with an Origin, a
// reverse proxy (the CDN edge of web/cdn).
//
// Caching follows RFC 9111: responses are stored when their method, status
// and Cache-Control allow it (no-store and private are honoured, and a
// request with Authorization is only served from a response marked
// public, s-maxage or must-revalidate); freshness comes from s-maxage,
// max-age or Expires, or heuristically from 10% of the time since
// Last-Modified; Vary selects among stored variants; a stale response (or
// one marked no-cache) is validated with If-None-Match / If-Modified-Since
// and a 304 refreshes it; Age and Via are sent (RFC 9110 §7.6.3); unsafe
// methods invalidate the target and its Location and Content-Location.
// Concurrent misses for one object are collapsed into one origin fetch.
// Each response says how it was served in X-Cache: HIT, MISS or
// REVALIDATED. CONNECT is tunnelled (RFC 9110 §9.3.6), never cached.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"appnet/trace"
	"appnet/web/internal/fastlane"
	"appnet/web/internal/httpx"
)

// ErrServerClosed is returned by Serve after Shutdown (it is net/http's).
var ErrServerClosed = http.ErrServerClosed

// Defaults.
const (
	DefaultMaxObjectSize = 64 << 20
	DefaultName          = "appnet"
)

// Config is the proxy's settings.
type Config struct {
	// Origin makes a reverse proxy: every request is for this origin. Nil
	// makes a forward proxy, which takes absolute-form requests.
	Origin *url.URL
	Store  *Store // nil: a memory store of DefaultCacheSize
	// Transport fetches from origins; nil: one of the proxy's own.
	Transport     http.RoundTripper
	Name          string // pseudonym in Via; default "appnet"
	MaxObjectSize int64  // larger responses are passed on, not stored
	Freshness     Freshness
	// AllowConnect says whether to tunnel CONNECT to host:port; nil allows
	// port 443 only, as Squid does.
	AllowConnect func(hostport string) bool
	Now          func() time.Time // the clock; nil: time.Now
	// NoFastLane serves every request through net/http. Otherwise a
	// reverse proxy answers plain fresh hits in web/internal/fastlane
	// (see Respond).
	NoFastLane bool

	Host   string
	Tracer *trace.Tracer
	Logger *slog.Logger
}

// Proxy is the caching proxy; it is an http.Handler.
type Proxy struct {
	cfg   Config
	store *Store
	tr    http.RoundTripper
	own   *http.Transport
	srv   *http.Server
	lane  *fastlane.Server // with no Handler for a forward proxy, or with NoFastLane

	mu        sync.Mutex
	via       string // this proxy's Via value
	keyPrefix string // see fastKey; "" for a forward proxy
	realClock bool   // cfg.Now is time.Now
	flights   map[string]*flight
	tunnels   map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup // tunnels
}

// New returns a proxy.
func New(cfg Config) *Proxy {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = DefaultMaxObjectSize
	}
	realClock := cfg.Now == nil
	if realClock {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Host == "" {
		cfg.Host = "proxy"
	}
	p := &Proxy{cfg: cfg, store: cfg.Store, tr: cfg.Transport, flights: map[string]*flight{}, tunnels: map[net.Conn]struct{}{},
		via: "1.1 " + cfg.Name, realClock: realClock, keyPrefix: keyPrefixOf(cfg.Origin)}
	if p.store == nil {
		p.store, _ = NewStore("", DefaultCacheSize, 0)
	}
	if p.tr == nil {
		p.own = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			DisableCompression:    true,
		}
		p.tr = p.own
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	p.lane = &fastlane.Server{HTTP: p.srv}
	if p.keyPrefix != "" && !cfg.NoFastLane {
		p.lane.Handler = p
	}
	return p
}

// Store returns the proxy's cache.
func (p *Proxy) Store() *Store { return p.store }

// Serve accepts connections on ln until Shutdown.
func (p *Proxy) Serve(ln net.Listener) error { return p.lane.Serve(ln) }

// ListenAndServe listens on addr and serves.
func (p *Proxy) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return p.Serve(ln)
}

// Shutdown stops accepting, closes tunnels and idle connections, waits for
// requests in progress (or ctx) and records the cache's LRU order.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	for c := range p.tunnels {
		c.Close()
	}
	p.mu.Unlock()
	err := p.lane.Shutdown(ctx)
	if err != nil {
		p.lane.Close()
	}
	p.wg.Wait()
	if p.own != nil {
		p.own.CloseIdleConnections()
	}
	return errors.Join(err, p.store.Close())
}

// X-Cache values.
const (
	Hit         = "HIT"
	Miss        = "MISS"
	Revalidated = "REVALIDATED"
)

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.Tracer.Enabled() {
		p.serve(w, r) // nothing to record
		return
	}
	rec := &httpx.Recorder{ResponseWriter: w}
	outcome := p.serve(rec, r)
	if p.cfg.Tracer.Enabled() {
		local, remote := httpx.Addrs(r)
		p.traceExchange(local, remote, r.Method, r.RequestURI, rec.StatusOrOK(), outcome, rec.Bytes)
	}
}

// traceExchange reports one request, its answer and where it came from
// (HIT, MISS...) as one event.
func (p *Proxy) traceExchange(local, remote net.Addr, method, uri string, status int, outcome string, bytes int64) {
	c := p.cfg.Tracer.Conv(p.cfg.Host, "http/tcp", trace.Server, local, remote)
	c.Send(fmt.Sprintf("%s %s -> %d %s %d bytes", method, uri, status, outcome, bytes))
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) string {
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return "TUNNEL"
	}
	key, ok := p.fastKey(r)
	var target *url.URL
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		var err error
		if target, err = p.target(r); err != nil {
			http.Error(w, "400 "+err.Error(), http.StatusBadRequest)
			return "ERROR"
		}
		key = target.String()
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return p.passThrough(w, r, target, true)
	}
	reqCC := requestDirectives(r.Header)
	if reqCC.Has("no-store") {
		return p.passThrough(w, r, p.mustTarget(r, target), false)
	}
	for range 2 {
		now := p.cfg.Now()
		used := now
		if !p.realClock {
			used = time.Now()
		}
		m, body, ok := p.store.lookup(key, func(m *Meta) bool { return varyMatch(m, r.Header) }, used)
		if ok && p.usable(m, r.Header.Get("Authorization") != "", reqCC, now) {
			p.writeCached(w, r, m, body, Hit, now)
			return Hit
		}
		if reqCC.Has("only-if-cached") {
			http.Error(w, "504 not in cache (only-if-cached)", http.StatusGatewayTimeout)
			return Miss
		}
		target = p.mustTarget(r, target)
		if r.Method == http.MethodHead && !ok {
			return p.passThrough(w, r, target, false)
		}
		var stale *Meta
		if ok {
			stale = m
		}
		res, leader := p.collapse(r, target, key, stale, body)
		if res.err != nil {
			if leader {
				p.cfg.Logger.Debug("proxy: fetch", "url", key, "err", res.err)
				http.Error(w, "502 bad gateway: "+res.err.Error(), http.StatusBadGateway)
				return "ERROR"
			}
			continue // the leader's fetch failed (perhaps its client left): try ourselves
		}
		if leader {
			return p.writeFetched(w, r, res)
		}
		if res.stored && varyMatch(&res.meta, r.Header) {
			p.writeCached(w, r, &res.meta, res.body, Hit, p.cfg.Now())
			return Hit
		}
		// not storable, or another variant: fetch for ourselves
		return p.passThrough(w, r, target, false)
	}
	return p.passThrough(w, r, p.mustTarget(r, target), false)
}

// mustTarget returns target, or when it is nil the target of a request
// fastKey accepted (which target accepts too).
func (p *Proxy) mustTarget(r *http.Request, target *url.URL) *url.URL {
	if target != nil {
		return target
	}
	t, _ := p.target(r)
	return t
}

// fastKey is target(r).String() for a reverse proxy's plain requests,
// made with one concatenation (no URL to copy, no escaping to do): the
// path has only bytes that a URL path keeps as they are. ok is false for
// anything else, and for a forward proxy.
func (p *Proxy) fastKey(r *http.Request) (key string, ok bool) {
	if p.keyPrefix == "" || r.URL.RawPath != "" || r.URL.ForceQuery || r.URL.Opaque != "" {
		return "", false
	}
	path := r.URL.Path
	if path == "" || path[0] != '/' {
		return "", false
	}
	for i := 0; i < len(path); i++ {
		if !pathByte(path[i]) {
			return "", false
		}
	}
	if r.URL.RawQuery != "" {
		return p.keyPrefix + path + "?" + r.URL.RawQuery, true
	}
	return p.keyPrefix + path, true
}

// pathByte says whether net/url leaves c as it is in a path.
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.~$&+,/:;=@", c) >= 0
}

// keyPrefixOf is what fastKey puts before a request's path: the origin's
// URL with its path but not its final slash. "" when the origin's URL has
// anything that could make target(r).String() differ from a plain
// concatenation (a query, an escaped or odd path).
func keyPrefixOf(origin *url.URL) string {
	if origin == nil || origin.Opaque != "" || origin.RawPath != "" || origin.ForceQuery || origin.RawQuery != "" {
		return ""
	}
	op := strings.TrimSuffix(origin.Path, "/")
	if op != "" && op[0] != '/' {
		return ""
	}
	for i := 0; i < len(op); i++ {
		if !pathByte(op[i]) {
			return ""
		}
	}
	u := *origin
	u.Path, u.Fragment, u.RawFragment = op, "", ""
	prefix := u.String()
	// check with a probe request that it is what target makes
	probe := &http.Request{URL: &url.URL{Path: "/probe/a.b", RawQuery: "q=1"}}
	t, err := (&Proxy{cfg: Config{Origin: origin}}).target(probe)
	if err != nil || t.String() != prefix+"/probe/a.b?q=1" {
		return ""
	}
	return prefix
}

// target is the URI the request is for.
func (p *Proxy) target(r *http.Request) (*url.URL, error) {
	if p.cfg.Origin != nil {
		u := *p.cfg.Origin
		u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
		u.RawPath = ""
		if r.URL.RawPath != "" {
			u.RawPath = strings.TrimSuffix(p.cfg.Origin.EscapedPath(), "/") + r.URL.RawPath
		}
		u.RawQuery = r.URL.RawQuery
		u.Fragment = ""
		return &u, nil
	}
	if !r.URL.IsAbs() || r.URL.Host == "" {
		return nil, errors.New("proxy: this is a proxy: send absolute-form requests (GET http://host/path)")
	}
	if r.URL.Scheme != "http" {
		return nil, fmt.Errorf("proxy: scheme %q is not proxied (use CONNECT for https)", r.URL.Scheme)
	}
	u := *r.URL
	u.Host = strings.ToLower(u.Host)
	u.Fragment = ""
	return &u, nil
}

func requestDirectives(h http.Header) Directives {
	_, hasCC := h["Cache-Control"]
	_, hasPragma := h["Pragma"]
	if !hasCC && !hasPragma {
		return nil
	}
	cc := ParseCacheControl(h.Values("Cache-Control"))
	if len(h.Values("Cache-Control")) == 0 && strings.Contains(strings.ToLower(h.Get("Pragma")), "no-cache") {
		cc["no-cache"] = "" // RFC 9111 §5.4
	}
	return cc
}

// usable says whether a stored response may be served without validation
// (RFC 9111 §4 and §4.2, with the request's own directives of §5.2.1);
// auth says whether the request has an Authorization field.
func (p *Proxy) usable(m *Meta, auth bool, reqCC Directives, now time.Time) bool {
	if reqCC.Has("no-cache") {
		return false
	}
	hi := info(m)
	if !hi.authOK && auth {
		return false
	}
	life := p.cfg.Freshness.lifetime(m, hi)
	age := hi.age(m, now)
	if len(reqCC) == 0 {
		return age < life
	}
	if d, ok, _ := reqCC.Seconds("max-age"); ok && age > d {
		return false
	}
	if d, ok, _ := reqCC.Seconds("min-fresh"); ok {
		life -= d
	}
	if age < life {
		return true
	}
	if hi.mustValidate {
		return false
	}
	if v, ok := reqCC["max-stale"]; ok {
		if v == "" {
			return true
		}
		d, _, valid := reqCC.Seconds("max-stale")
		return valid && age < life+d
	}
	return false
}

// writeCached serves a stored response, answering the client's own
// conditional request with 304 where it can.
func (p *Proxy) writeCached(w http.ResponseWriter, r *http.Request, m *Meta, body []byte, how string, now time.Time) {
	hi := info(m)
	h := w.Header()
	// one allocation holds every value of the response's header (a
	// handler after us may modify them in place: they are not the store's)
	vals := make([]string, 0, hi.nvals+len(hi.via)+4) // and Age, Via, X-Cache, Content-Length
	for _, f := range hi.fields {
		i := len(vals)
		vals = append(vals, f.val...)
		h[f.key] = vals[i:len(vals):len(vals)]
	}
	i := len(vals)
	vals = append(vals, hi.ageField(hi.age(m, now)))
	h["Age"] = vals[i : i+1 : i+1]
	i = len(vals)
	vals = append(append(vals, hi.via...), p.via)
	h["Via"] = vals[i:len(vals):len(vals)]
	i = len(vals)
	vals = append(vals, how)
	h["X-Cache"] = vals[i : i+1 : i+1]
	if notModified(r, m, hi) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	i = len(vals)
	if int64(len(body)) == hi.size {
		vals = append(vals, hi.clen)
	} else {
		vals = append(vals, strconv.Itoa(len(body)))
	}
	h["Content-Length"] = vals[i : i+1 : i+1]
	w.WriteHeader(m.Status)
	if r.Method != http.MethodHead {
		w.Write(body) //nolint:errcheck
	}
}

// notModified evaluates If-None-Match (weak comparison) or, without it,
// If-Modified-Since against a stored response (RFC 9110 §13.1.2, §13.1.3).
func notModified(r *http.Request, m *Meta, hi *hitInfo) bool {
	if m.Status != http.StatusOK {
		return false
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if hi.etag == "" {
			return false
		}
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == hi.etag {
				return true
			}
		}
		return false
	}
	v := r.Header.Get("If-Modified-Since")
	if v == "" || !hi.hasLastMod {
		return false
	}
	ims, err := http.ParseTime(v)
	return err == nil && !hi.lastMod.After(ims)
}

// outRequest makes the request to send upstream.
func (p *Proxy) outRequest(ctx context.Context, r *http.Request, target *url.URL) *http.Request {
	out := r.Clone(ctx)
	out.URL = target
	out.Host = target.Host
	out.RequestURI = ""
	out.Close = false
	httpx.RemoveHopByHop(out.Header)
	out.Header.Add("Via", fmt.Sprintf("%d.%d %s", r.ProtoMajor, r.ProtoMinor, p.cfg.Name))
	if p.cfg.Origin == nil {
		out.Header.Del("X-Forwarded-For")
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return out
}

// passThrough forwards a request the cache does not answer. After an
// unsafe method that succeeded, it invalidates what the request changed
// (RFC 9111 §4.4).
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request, target *url.URL, invalidate bool) string {
	resp, err := p.roundTrip(p.outRequest(r.Context(), r, target))
	if err != nil {
		http.Error(w, "502 bad gateway: "+err.Error(), http.StatusBadGateway)
		return "ERROR"
	}
	defer resp.Body.Close()
	if invalidate && !isSafe(r.Method) && resp.StatusCode < 400 {
		p.invalidate(target, resp)
	}
	copyHeader(w.Header(), resp.Header)
	w.Header().Add("Via", "1.1 "+p.cfg.Name)
	w.Header().Set("X-Cache", Miss)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body) //nolint:errcheck
	return Miss
}

func isSafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func (p *Proxy) invalidate(target *url.URL, resp *http.Response) {
	p.store.Invalidate(target.String())
	for _, f := range []string{"Location", "Content-Location"} {
		v := resp.Header.Get(f)
		if v == "" {
			continue
		}
		u, err := target.Parse(v)
		if err != nil || !strings.EqualFold(u.Host, target.Host) || u.Scheme != target.Scheme {
			continue // §4.4: only the same origin
		}
		u.Host = strings.ToLower(u.Host)
		u.Fragment = ""
		p.store.Invalidate(u.String())
	}
}

func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.tr.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if p.cfg.Tracer.Enabled() {
		c := p.cfg.Tracer.Conv(p.cfg.Host, "http/tcp", trace.Client, nil, nil)
		c.Send(fmt.Sprintf("%s %s -> %s", req.Method, req.URL, resp.Status))
	}
	return resp, nil
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = append([]string(nil), v...)
	}
	httpx.RemoveHopByHop(dst)
}

// flight is one origin fetch that concurrent requests for the same object
// wait for (request collapsing).
type flight struct {
	done chan struct{}
	res  fetchResult
}

type fetchResult struct {
	err    error
	stored bool
	how    string // MISS or REVALIDATED
	meta   Meta
	body   []byte         // the whole body when it was read into memory
	resp   *http.Response // the leader's response when it was too big to store
}

// collapse runs fetch for key once among concurrent callers; the leader
// (the caller that ran it) gets leader=true and owns res.resp.
func (p *Proxy) collapse(r *http.Request, target *url.URL, key string, stale *Meta, staleBody []byte) (fetchResult, bool) {
	p.mu.Lock()
	if f, ok := p.flights[key]; ok {
		p.mu.Unlock()
		select {
		case <-f.done:
			return f.res, false
		case <-r.Context().Done():
			return fetchResult{err: r.Context().Err()}, false
		}
	}
	f := &flight{done: make(chan struct{})}
	p.flights[key] = f
	p.mu.Unlock()
	res := p.fetch(r, target, key, stale, staleBody)
	f.res = res
	f.res.resp = nil
	p.mu.Lock()
	delete(p.flights, key)
	p.mu.Unlock()
	close(f.done)
	return res, true
}

// fetch gets key from the origin (conditionally when a stale copy exists),
// reads the body when it may be stored, and stores it.
func (p *Proxy) fetch(r *http.Request, target *url.URL, key string, stale *Meta, staleBody []byte) fetchResult {
	out := p.outRequest(r.Context(), r, target)
	out.Method = http.MethodGet
	out.Header.Del("If-None-Match")
	out.Header.Del("If-Modified-Since")
	out.Header.Del("If-Range")
	out.Header.Del("Range")
	if stale != nil {
		// RFC 9111 §4.3.1: validate with the stored validators
		if et := stale.Header.Get("ETag"); et != "" {
			out.Header.Set("If-None-Match", et)
		}
		if lm := stale.Header.Get("Last-Modified"); lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	reqTime := p.cfg.Now()
	resp, err := p.roundTrip(out)
	if err != nil {
		return fetchResult{err: err}
	}
	respTime := p.cfg.Now()
	if stale != nil && resp.StatusCode == http.StatusNotModified {
		resp.Body.Close()
		m := *stale
		m.hit = nil
		m.Header = stale.Header.Clone()
		updateHeaders(m.Header, resp.Header)
		m.RequestTime, m.ResponseTime = reqTime, respTime
		if p.storable(r, m.Status, m.Header) {
			p.store.Put(m, staleBody) //nolint:errcheck
		}
		return fetchResult{stored: true, how: Revalidated, meta: m, body: staleBody}
	}
	m := Meta{Key: key, Status: resp.StatusCode, Header: resp.Header.Clone(), RequestTime: reqTime, ResponseTime: respTime}
	httpx.RemoveHopByHop(m.Header)
	if !p.storable(r, resp.StatusCode, m.Header) || resp.ContentLength > p.cfg.MaxObjectSize {
		return fetchResult{how: Miss, meta: m, resp: resp}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxObjectSize+1))
	if err != nil {
		resp.Body.Close()
		return fetchResult{err: fmt.Errorf("proxy: reading from origin: %w", err)}
	}
	if int64(len(body)) > p.cfg.MaxObjectSize {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return fetchResult{how: Miss, meta: m, resp: resp}
	}
	resp.Body.Close()
	names, _ := varyNames(m.Header)
	if len(names) > 0 {
		m.Vary = map[string]string{}
		for _, n := range names {
			m.Vary[n] = fieldValue(r.Header, n)
		}
	}
	if err := p.store.Put(m, body); err != nil {
		p.cfg.Logger.Warn("proxy: store", "url", key, "err", err)
		return fetchResult{how: Miss, meta: m, body: body}
	}
	m.Size = int64(len(body))
	return fetchResult{stored: true, how: Miss, meta: m, body: body}
}

// updateHeaders applies a 304's fields to a stored response (RFC 9111
// §3.2), except those that describe the stored body.
func updateHeaders(stored, fresh http.Header) {
	for k, v := range fresh {
		switch k {
		case "Content-Length", "Content-Encoding", "Transfer-Encoding", "Content-Range", "Trailer", "Connection", "Keep-Alive":
			continue
		}
		stored[k] = append([]string(nil), v...)
	}
}

// storable says whether a shared cache may store a response to r (RFC 9111
// §3, §3.5).
func (p *Proxy) storable(r *http.Request, status int, h http.Header) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false
	}
	cc := ParseCacheControl(h.Values("Cache-Control"))
	if cc.Has("no-store") || cc.Has("private") || requestDirectives(r.Header).Has("no-store") {
		return false
	}
	if r.Header.Get("Authorization") != "" && !cc.Has("public") && !cc.Has("s-maxage") && !cc.Has("must-revalidate") {
		return false
	}
	if _, star := varyNames(h); star {
		return false
	}
	if h.Get("Set-Cookie") != "" && !cc.Has("public") {
		return false // what nginx does: a cookie is one client's
	}
	explicit := cc.Has("max-age") || cc.Has("s-maxage") || h.Get("Expires") != "" || cc.Has("public")
	if explicit {
		return true
	}
	// heuristically cacheable, or at least revalidatable
	return heuristicStatus[status] && (h.Get("Last-Modified") != "" || h.Get("ETag") != "")
}

// writeFetched sends the leader's fetch result to its client.
func (p *Proxy) writeFetched(w http.ResponseWriter, r *http.Request, res fetchResult) string {
	if res.resp != nil {
		defer res.resp.Body.Close()
		copyHeader(w.Header(), res.resp.Header)
		w.Header().Add("Via", "1.1 "+p.cfg.Name)
		w.Header().Set("X-Cache", Miss)
		w.WriteHeader(res.resp.StatusCode)
		if r.Method != http.MethodHead {
			io.Copy(w, res.resp.Body) //nolint:errcheck
		}
		return Miss
	}
	p.writeCached(w, r, &res.meta, res.body, res.how, p.cfg.Now())
	return res.how
}

// tunnel serves CONNECT: a TCP connection to the target, bytes copied both
// ways until either side closes. Nothing is cached.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	allow := p.cfg.AllowConnect
	if allow == nil {
		allow = func(hp string) bool { _, port, _ := net.SplitHostPort(hp); return port == "443" }
	}
	if p.cfg.Origin != nil || !allow(r.Host) {
		http.Error(w, "403 CONNECT to "+r.Host+" is not allowed", http.StatusForbidden)
		return
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	up, err := d.DialContext(ctx, "tcp", r.Host)
	cancel()
	if err != nil {
		http.Error(w, "502 "+err.Error(), http.StatusBadGateway)
		return
	}
	down, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		http.Error(w, "500 cannot tunnel", http.StatusInternalServerError)
		return
	}
	if !p.track(up, down) {
		up.Close()
		down.Close()
		return
	}
	defer p.wg.Done()
	defer p.untrack(up, down)
	if _, err := brw.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, brw) //nolint:errcheck // buffered bytes first, then the connection
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(down, up) //nolint:errcheck
	down.Close()
	up.Close()
	<-done
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.tunnels[c] = struct{}{}
	}
	p.wg.Add(1)
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.tunnels, c)
		c.Close()
	}
}
