package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"appnet/web/cdn"
	"appnet/web/origin"
	"appnet/web/proxy"
)

// WebOriginConfig is the [host.NAME.web-origin] table: an HTTP origin
// server for files written inline (or a directory).
type WebOriginConfig struct {
	Port   int               `toml:"port"`    // standard port; default 80
	Root   string            `toml:"root"`    // a directory to serve instead of files
	Files  map[string]string `toml:"files"`   // path -> content, written to the host's folder
	Auth   string            `toml:"auth"`    // auth file text: PATH USER BCRYPT-HASH lines
	Realm  string            `toml:"realm"`   //
	MaxAge time.Duration     `toml:"max_age"` // Cache-Control: max-age on files; 0: none
}

// WebProxyConfig is the [host.NAME.web-proxy] table: a caching forward proxy.
type WebProxyConfig struct {
	Port      int    `toml:"port"`       // default 3128
	CacheSize string `toml:"cache_size"` // e.g. "64MiB"
	CheckURL  string `toml:"check_url"`  // fetched twice by lab --check (MISS, then HIT)
}

// CDNEdgeConfig is the [host.NAME.cdn-edge] table: a CDN edge server.
type CDNEdgeConfig struct {
	Port      int    `toml:"port"`       // default 80
	Origin    string `toml:"origin"`     // e.g. "http://127.0.0.40/" (a standard port, mapped like the lab's)
	CacheSize string `toml:"cache_size"` //
	CheckPath string `toml:"check_path"` // fetched twice by lab --check
}

// CDNDNSConfig is the [host.NAME.cdn-dns] table: the CDN's authoritative
// DNS server, which answers with the nearest edge.
type CDNDNSConfig struct {
	Port      int           `toml:"port"`       // default 53
	Zone      string        `toml:"zone"`       // e.g. "kingcdn.test"
	Map       string        `toml:"map"`        // the map file's text
	TTL       time.Duration `toml:"ttl"`        //
	CheckName string        `toml:"check_name"` // resolved by lab --check from each of check_from
	CheckFrom []string      `toml:"check_from"` // client addresses to ask from
}

func init() {
	Register("web-origin", "an HTTP/1.1 origin server for static files (web/origin)",
		func() *WebOriginConfig { return &WebOriginConfig{Port: 80, Realm: origin.DefaultRealm} },
		validateWebOrigin, startWebOrigin)
	Register("web-proxy", "a caching forward HTTP proxy, RFC 9111 (web/proxy)",
		func() *WebProxyConfig { return &WebProxyConfig{Port: 3128, CacheSize: "64MiB"} },
		validateWebProxy, startWebProxy)
	Register("cdn-edge", "a CDN edge server: a reverse caching proxy for an origin (web/cdn)",
		func() *CDNEdgeConfig { return &CDNEdgeConfig{Port: 80, CacheSize: "64MiB", CheckPath: "/"} },
		validateCDNEdge, startCDNEdge)
	Register("cdn-dns", "a CDN's authoritative DNS server that answers with the nearest edge (web/cdn)",
		func() *CDNDNSConfig { return &CDNDNSConfig{Port: 53, TTL: cdn.DefaultTTL} },
		validateCDNDNS, startCDNDNS)
}

func validateWebOrigin(c *WebOriginConfig) error {
	if c.Port < 1 || c.Port > 65535 {
		return FieldError("port", "%d is not a port", c.Port)
	}
	if (c.Root == "") == (len(c.Files) == 0) {
		return FieldError("files", "give files or a root directory (one of them)")
	}
	for p := range c.Files {
		if p == "" || strings.HasPrefix(p, "/") || !filepath.IsLocal(p) {
			return FieldError("files", "%q is not a relative path inside the site", p)
		}
	}
	if c.Auth != "" {
		if _, err := origin.ParseAuth(strings.NewReader(c.Auth), "auth"); err != nil {
			return FieldError("auth", "%v", err)
		}
	}
	if c.MaxAge < 0 {
		return FieldError("max_age", "must not be negative")
	}
	return nil
}

func validateWebProxy(c *WebProxyConfig) error {
	if c.Port < 1 || c.Port > 65535 {
		return FieldError("port", "%d is not a port", c.Port)
	}
	if _, err := proxy.ParseSize(c.CacheSize); err != nil {
		return FieldError("cache_size", "%v", err)
	}
	if c.CheckURL != "" {
		if u, err := url.Parse(c.CheckURL); err != nil || u.Scheme != "http" || u.Host == "" {
			return FieldError("check_url", "%q is not an http:// URL", c.CheckURL)
		}
	}
	return nil
}

func validateCDNEdge(c *CDNEdgeConfig) error {
	if c.Port < 1 || c.Port > 65535 {
		return FieldError("port", "%d is not a port", c.Port)
	}
	if u, err := url.Parse(c.Origin); err != nil || u.Scheme != "http" || u.Host == "" {
		return FieldError("origin", "%q is not an http:// URL", c.Origin)
	}
	if _, err := proxy.ParseSize(c.CacheSize); err != nil {
		return FieldError("cache_size", "%v", err)
	}
	if !strings.HasPrefix(c.CheckPath, "/") {
		return FieldError("check_path", "%q does not start with /", c.CheckPath)
	}
	return nil
}

func validateCDNDNS(c *CDNDNSConfig) error {
	if c.Port < 1 || c.Port > 65535 {
		return FieldError("port", "%d is not a port", c.Port)
	}
	if _, ok := dns.IsDomainName(c.Zone); !ok || c.Zone == "" {
		return FieldError("zone", "%q is not a domain name", c.Zone)
	}
	if _, err := cdn.ParseMap(strings.NewReader(c.Map), "map"); err != nil {
		return FieldError("map", "%v", err)
	}
	if c.TTL < time.Second {
		return FieldError("ttl", "must be at least 1s")
	}
	if c.CheckName != "" && !dns.IsSubDomain(dns.Fqdn(c.Zone), dns.Fqdn(c.CheckName)) {
		return FieldError("check_name", "%q is not in zone %s", c.CheckName, c.Zone)
	}
	for _, a := range c.CheckFrom {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.IsLoopback() {
			return FieldError("check_from", "%q is not a loopback address", a)
		}
	}
	return nil
}

// mapURL applies the lab's port policy to a URL on a lab host.
func mapURL(env *Env, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	port := 80
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip.IsLoopback() {
		u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(env.Ports.Map(port)))
	}
	return u, nil
}

// httpService runs one net/http-based server.
type httpService struct {
	env       *Env
	endpoints []Endpoint
	wg        sync.WaitGroup
	shutdown  func(context.Context) error
	try       []string
	check     func(context.Context) []Probe
}

func (h *httpService) run(proto string, ln net.Listener, serve func(net.Listener) error) {
	h.endpoints = append(h.endpoints, Endpoint{Proto: proto, Addr: netip.MustParseAddrPort(ln.Addr().String())})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, cdn.ErrServerClosed) {
			h.env.Logger.Error("web server stopped", "err", err)
		}
	}()
}

func (h *httpService) Endpoints() []Endpoint { return h.endpoints }
func (h *httpService) Try() []string         { return h.try }
func (h *httpService) Check(ctx context.Context) []Probe {
	if h.check == nil {
		return nil
	}
	return h.check(ctx)
}

func (h *httpService) Shutdown(ctx context.Context) error {
	err := h.shutdown(ctx)
	h.wg.Wait()
	return err
}

func startWebOrigin(ctx context.Context, env *Env, c *WebOriginConfig) (Service, error) {
	root := c.Root
	if root == "" {
		root = filepath.Join(env.Dir, "site")
		names := make([]string, 0, len(c.Files))
		for n := range c.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(root, filepath.FromSlash(n))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, fmt.Errorf("lab: host %s: %w", env.Host, err)
			}
			if err := os.WriteFile(p, []byte(c.Files[n]), 0o644); err != nil {
				return nil, fmt.Errorf("lab: host %s: %w", env.Host, err)
			}
		}
	}
	cfg := origin.Config{Root: root, Realm: c.Realm, MaxAge: c.MaxAge, CartFile: filepath.Join(env.Dir, "carts.json"),
		Host: env.Host, Tracer: env.Tracer, Logger: env.Logger}
	if c.Auth != "" {
		a, err := origin.ParseAuth(strings.NewReader(c.Auth), "auth")
		if err != nil {
			return nil, err
		}
		cfg.Auth = a
	}
	s, err := origin.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := env.Listen(ctx, c.Port)
	if err != nil {
		s.Shutdown(ctx) //nolint:errcheck
		return nil, err
	}
	h := &httpService{env: env, shutdown: s.Shutdown}
	h.run("http/tcp", ln, s.Serve)
	base := "http://" + ln.Addr().String()
	h.try = []string{"curl -i " + base + "/", "appnet web get --rtt 50ms --non-persistent " + base + "/",
		"curl -c jar -b jar -d item=book " + base + "/cart"}
	h.check = func(ctx context.Context) []Probe {
		status, hdr, err := labGet(ctx, nil, base+"/")
		p := Probe{What: "http/tcp " + ln.Addr().String() + " GET /"}
		switch {
		case err != nil:
			p.Err = err
		case status != http.StatusOK:
			p.Err = fmt.Errorf("status %d", status)
		default:
			p.Detail = fmt.Sprintf("200, ETag %s", hdr.Get("ETag"))
		}
		return []Probe{p}
	}
	return h, nil
}

// labGet fetches u, through proxyURL when it is not nil, and discards the body.
func labGet(ctx context.Context, proxyURL *url.URL, u string) (int, http.Header, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	if proxyURL != nil {
		tr.Proxy = http.ProxyURL(proxyURL)
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 16<<20)) //nolint:errcheck
	return resp.StatusCode, resp.Header, nil
}

// twice fetches u two times and expects MISS, then HIT.
func twice(ctx context.Context, what string, proxyURL *url.URL, u string) Probe {
	p := Probe{What: what}
	var got []string
	for range 2 {
		status, hdr, err := labGet(ctx, proxyURL, u)
		if err != nil {
			p.Err = err
			return p
		}
		got = append(got, fmt.Sprintf("%d %s", status, hdr.Get("X-Cache")))
	}
	if got[0] != "200 MISS" || got[1] != "200 HIT" {
		p.Err = fmt.Errorf("got %v, want 200 MISS then 200 HIT", got)
		return p
	}
	p.Detail = "GET " + u + " twice: MISS, then HIT"
	return p
}

func checkQuery() string { return "lab-check=" + strconv.FormatInt(time.Now().UnixNano(), 36) }

func startWebProxy(ctx context.Context, env *Env, c *WebProxyConfig) (Service, error) {
	size, _ := proxy.ParseSize(c.CacheSize)
	st, err := proxy.NewStore(filepath.Join(env.Dir, "cache"), size, 0)
	if err != nil {
		return nil, err
	}
	p := proxy.New(proxy.Config{Store: st, Name: env.Host, Host: env.Host, Tracer: env.Tracer, Logger: env.Logger})
	ln, err := env.Listen(ctx, c.Port)
	if err != nil {
		return nil, err
	}
	h := &httpService{env: env, shutdown: p.Shutdown}
	h.run("http-proxy/tcp", ln, p.Serve)
	pu := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	if c.CheckURL != "" {
		target, err := mapURL(env, c.CheckURL)
		if err != nil {
			return nil, err
		}
		h.try = []string{fmt.Sprintf("curl -x %s -i %s   # twice: X-Cache MISS, then HIT", pu, target)}
		h.check = func(ctx context.Context) []Probe {
			u := *target
			u.RawQuery = checkQuery()
			return []Probe{twice(ctx, "http-proxy/tcp "+ln.Addr().String(), pu, u.String())}
		}
	}
	return h, nil
}

func startCDNEdge(ctx context.Context, env *Env, c *CDNEdgeConfig) (Service, error) {
	o, err := mapURL(env, c.Origin)
	if err != nil {
		return nil, err
	}
	size, _ := proxy.ParseSize(c.CacheSize)
	st, err := proxy.NewStore(filepath.Join(env.Dir, "cache"), size, 0)
	if err != nil {
		return nil, err
	}
	p := cdn.NewEdge(o, proxy.Config{Store: st, Name: env.Host, Host: env.Host, Tracer: env.Tracer, Logger: env.Logger})
	ln, err := env.Listen(ctx, c.Port)
	if err != nil {
		return nil, err
	}
	h := &httpService{env: env, shutdown: p.Shutdown}
	h.run("http/tcp", ln, p.Serve)
	base := "http://" + ln.Addr().String()
	h.try = []string{"curl -i " + base + c.CheckPath + "   # twice: X-Cache MISS, then HIT"}
	h.check = func(ctx context.Context) []Probe {
		return []Probe{twice(ctx, "http/tcp "+ln.Addr().String()+" (edge for "+o.String()+")", nil, base+c.CheckPath+"?"+checkQuery())}
	}
	return h, nil
}

func startCDNDNS(ctx context.Context, env *Env, c *CDNDNSConfig) (Service, error) {
	m, err := cdn.ParseMap(strings.NewReader(c.Map), "map")
	if err != nil {
		return nil, err
	}
	d := &cdn.DNS{Zone: c.Zone, Map: m, TTL: c.TTL, Host: env.Host, Tracer: env.Tracer, Logger: env.Logger}
	pc, err := env.ListenPacket(ctx, c.Port)
	if err != nil {
		return nil, err
	}
	ln, err := env.Listen(ctx, c.Port)
	if err != nil {
		pc.Close()
		return nil, err
	}
	h := &httpService{env: env, shutdown: d.Shutdown}
	h.endpoints = append(h.endpoints, Endpoint{Proto: "dns/udp", Addr: netip.MustParseAddrPort(pc.LocalAddr().String())})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := d.ServePacket(pc); err != nil && !errors.Is(err, cdn.ErrServerClosed) {
			env.Logger.Error("cdn dns stopped", "err", err)
		}
	}()
	h.run("dns/tcp", ln, d.Serve)
	server := pc.LocalAddr().String()
	host, port, _ := net.SplitHostPort(server)
	name := c.CheckName
	if name == "" {
		name = c.Zone
	}
	for _, from := range c.CheckFrom {
		h.try = append(h.try, fmt.Sprintf("dig @%s -p %s -b %s %s +short", host, port, from, name))
	}
	if len(c.CheckFrom) > 0 {
		h.check = func(ctx context.Context) []Probe {
			p := Probe{What: fmt.Sprintf("dns/udp %s %s", server, name)}
			var got []string
			seen := map[string]bool{}
			for _, from := range c.CheckFrom {
				a, err := askFrom(ctx, server, from, name)
				if err != nil {
					p.Err = fmt.Errorf("from %s: %w", from, err)
					return []Probe{p}
				}
				want, _ := m.Lookup(netip.MustParseAddr(from))
				if len(want) == 0 || a != want[0].String() {
					p.Err = fmt.Errorf("from %s: got %s, the map says %v", from, a, want)
					return []Probe{p}
				}
				seen[a] = true
				got = append(got, from+" -> "+a)
			}
			if len(c.CheckFrom) > 1 && len(seen) < 2 {
				p.Err = fmt.Errorf("every client got the same edge: %v", got)
				return []Probe{p}
			}
			p.Detail = strings.Join(got, ", ")
			return []Probe{p}
		}
	}
	return h, nil
}

// askFrom sends an A query for name to server from the address from.
func askFrom(ctx context.Context, server, from, name string) (string, error) {
	cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	resp, _, err := cl.ExchangeContext(ctx, q, server)
	if err != nil {
		return "", err
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("no A record (%s)", dns.RcodeToString[resp.Rcode])
}
