package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"appnet/dns/authserver"
	"appnet/dns/zone"
	"appnet/trace"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The test hierarchy, every server on one port at its own address:
//
//	127.0.53.1  root: test. and evil.
//	127.0.53.2  test.: umass.test (glue), poly.test (glueless, NS in evil.),
//	            loop.test (a server that refers upwards), slow.test (one
//	            silent server, one good), cyc1/cyc2.test (glueless cycle)
//	127.0.53.3  umass.test
//	127.0.53.4  poly.test, slow.test
//	127.0.53.5  evil.: answers with poisoned extras
//	127.0.53.6  loop.test: always refers back to test.
//	127.0.53.7  silent: reads and never answers
var zones = map[string]string{
	"127.0.53.1": `. 86400 IN SOA a.root.test. admin.root.test. 1 3600 600 86400 300
. 86400 IN NS a.root.test.
a.root.test. 86400 IN A 127.0.53.1
test. 86400 IN NS a.tld.test.
a.tld.test. 86400 IN A 127.0.53.2
evil. 86400 IN NS ns.evil.
ns.evil. 86400 IN A 127.0.53.5
`,
	"127.0.53.2": `$ORIGIN test.
@ 86400 IN SOA a.tld.test. admin.tld.test. 1 3600 600 86400 300
@ 86400 IN NS a.tld.test.
a.tld 86400 IN A 127.0.53.2
umass 3600 IN NS dns.umass
dns.umass 3600 IN A 127.0.53.3
poly 3600 IN NS ns.elsewhere.evil.
loop 3600 IN NS ns.loop
ns.loop 3600 IN A 127.0.53.6
slow 3600 IN NS ns1.slow
slow 3600 IN NS ns2.slow
ns1.slow 3600 IN A 127.0.53.7
ns2.slow 3600 IN A 127.0.53.4
dead 3600 IN NS ns.dead
ns.dead 3600 IN A 127.0.53.7
cyc1 3600 IN NS ns.cyc2.test.
cyc2 3600 IN NS ns.cyc1.test.
`,
	"127.0.53.3": `$ORIGIN umass.test.
@ 300 IN SOA dns admin 1 3600 600 86400 60
@ 300 IN NS dns
dns 300 IN A 127.0.53.3
www 300 IN A 128.119.40.186
alias 300 IN CNAME www.poly.test.
inner 300 IN CNAME www
`,
	"127.0.53.4": `$ORIGIN poly.test.
@ 300 IN SOA ns.elsewhere.evil. admin 1 3600 600 86400 60
@ 300 IN NS ns.elsewhere.evil.
www 300 IN A 128.238.24.30
`,
}

const slowZone = `$ORIGIN slow.test.
@ 300 IN SOA ns2 admin 1 3600 600 86400 60
@ 300 IN NS ns1
@ 300 IN NS ns2
ns1 300 IN A 127.0.53.7
ns2 300 IN A 127.0.53.4
www 300 IN A 10.9.9.9
`

const evilZone = `$ORIGIN evil.
@ 300 IN SOA ns admin 1 3600 600 86400 60
@ 300 IN NS ns
ns 300 IN A 127.0.53.5
ns.elsewhere 300 IN A 127.0.53.4
www 300 IN A 6.6.6.1
`

type lab struct {
	port  int
	roots []zone.Server
}

// freePort finds a port free for UDP and TCP on every address given.
func freePort(t *testing.T, addrs []string) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", addrs[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		ok := true
		for _, a := range addrs {
			for _, network := range []string{"udp", "tcp"} {
				var c interface{ Close() error }
				if network == "udp" {
					c, err = net.ListenPacket(network, fmt.Sprintf("%s:%d", a, port))
				} else {
					c, err = net.Listen(network, fmt.Sprintf("%s:%d", a, port))
				}
				if err != nil {
					ok = false
					continue
				}
				c.Close()
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func startLab(t *testing.T) *lab {
	t.Helper()
	addrs := []string{"127.0.53.1", "127.0.53.2", "127.0.53.3", "127.0.53.4", "127.0.53.5", "127.0.53.6", "127.0.53.7"}
	l := &lab{port: freePort(t, addrs)}
	l.roots = []zone.Server{{Name: "a.root.test.", Addrs: []netip.Addr{netip.MustParseAddr("127.0.53.1")}}}
	for addr, text := range zones {
		texts := []string{text}
		if addr == "127.0.53.4" {
			texts = append(texts, slowZone)
		}
		var zs []*zone.Zone
		for _, tx := range texts {
			z, err := zone.Parse(strings.NewReader(tx), "", addr)
			if err != nil {
				t.Fatal(err)
			}
			zs = append(zs, z)
		}
		set, _ := zone.NewSet(zs...)
		s := authserver.New(set)
		s.Rotate = false
		l.serve(t, addr, s.ServePacket, s.Serve, s.Shutdown)
	}
	// evil.: a server that adds poison to every answer.
	ez, err := zone.Parse(strings.NewReader(evilZone), "", "evil")
	if err != nil {
		t.Fatal(err)
	}
	eset, _ := zone.NewSet(ez)
	evil := authserver.New(eset)
	l.serveHandler(t, "127.0.53.5", func(w dns.ResponseWriter, req *dns.Msg) {
		resp := evil.Answer(req, false)
		poison, _ := dns.NewRR("www.umass.test. 86400 IN A 6.6.6.6")
		ns, _ := dns.NewRR("umass.test. 86400 IN NS ns.evil.")
		resp.Answer = append(resp.Answer, poison)
		resp.Ns = append(resp.Ns, ns)
		resp.Extra = append(resp.Extra, poison)
		w.WriteMsg(resp)
	})
	// loop.test: refers back up to test.
	l.serveHandler(t, "127.0.53.6", func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		ns, _ := dns.NewRR("test. 3600 IN NS a.tld.test.")
		glue, _ := dns.NewRR("a.tld.test. 3600 IN A 127.0.53.2")
		resp.Ns = []dns.RR{ns}
		resp.Extra = []dns.RR{glue}
		w.WriteMsg(resp)
	})
	// The silent server: reads and drops.
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.53.7:%d", l.port))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return l
}

func (l *lab) serve(t *testing.T, addr string, sp func(net.PacketConn) error, s func(net.Listener) error, shutdown func(context.Context) error) {
	t.Helper()
	pc, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", addr, l.port))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addr, l.port))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sp(pc) }()
	go func() { defer wg.Done(); s(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(ctx)
		wg.Wait()
	})
}

func (l *lab) serveHandler(t *testing.T, addr string, h dns.HandlerFunc) {
	t.Helper()
	pc, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", addr, l.port))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
}

// clock is a settable time source for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (l *lab) resolver(clk *clock) *Resolver {
	r := New(l.roots, 0)
	r.Port = l.port
	r.Timeout = 150 * time.Millisecond
	if clk != nil {
		r.Cache = NewCache(0, clk.Now)
	}
	return r
}

func resolve(t *testing.T, r *Resolver, name string, qtype uint16) *Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := r.Resolve(ctx, name, qtype)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

func rrText(rrs []dns.RR) string {
	var s []string
	for _, rr := range rrs {
		s = append(s, strings.Join(strings.Fields(rr.String()), " "))
	}
	return strings.Join(s, "; ")
}

func TestResolveAndCache(t *testing.T) {
	l := startLab(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	r := l.resolver(clk)
	a := resolve(t, r, "www.umass.test", dns.TypeA)
	if got := rrText(a.Answer); got != "www.umass.test. 300 IN A 128.119.40.186" || a.Cached {
		t.Fatalf("answer %q cached %v", got, a.Cached)
	}
	if up := r.Stats().Upstream; up != 3 {
		t.Errorf("upstream queries %d, want 3 (root, test., umass.test)", up)
	}
	// A second question is answered from the cache, the TTL counted down.
	clk.Advance(5 * time.Second)
	a = resolve(t, r, "www.umass.test", dns.TypeA)
	if got := rrText(a.Answer); got != "www.umass.test. 295 IN A 128.119.40.186" || !a.Cached {
		t.Errorf("from cache: %q cached %v", got, a.Cached)
	}
	if st := r.Stats(); st.Upstream != 3 || st.CacheHits != 1 {
		t.Errorf("after a cache hit: %+v", st)
	}
	// After expiry the resolver asks again, but only umass.test's server:
	// the delegations are still cached.
	clk.Advance(300 * time.Second)
	a = resolve(t, r, "www.umass.test", dns.TypeA)
	if a.Cached || r.Stats().Upstream != 4 || a.Answer[0].Header().Ttl != 300 {
		t.Errorf("after expiry: %v %+v", a, r.Stats())
	}
}

func TestNegativeCaching(t *testing.T) {
	l := startLab(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	r := l.resolver(clk)
	a := resolve(t, r, "nope.umass.test", dns.TypeA)
	if a.Rcode != dns.RcodeNameError || len(a.Ns) != 1 || a.Ns[0].Header().Ttl != 60 {
		t.Fatalf("NXDOMAIN: %+v", a)
	}
	up := r.Stats().Upstream
	clk.Advance(10 * time.Second)
	a = resolve(t, r, "nope.umass.test", dns.TypeMX) // NXDOMAIN covers every type
	if a.Rcode != dns.RcodeNameError || !a.Cached || a.Ns[0].Header().Ttl != 50 {
		t.Errorf("cached NXDOMAIN: %+v", a)
	}
	a = resolve(t, r, "www.umass.test", dns.TypeTXT)
	if a.Rcode != dns.RcodeSuccess || len(a.Answer) != 0 || len(a.Ns) != 1 {
		t.Errorf("NODATA: %+v", a)
	}
	if r.Stats().Upstream != up+1 {
		t.Errorf("upstream %d, want %d", r.Stats().Upstream, up+1)
	}
	clk.Advance(51 * time.Second)
	if a = resolve(t, r, "nope.umass.test", dns.TypeA); a.Cached {
		t.Errorf("after the SOA minimum the NXDOMAIN should be asked again")
	}
}

func TestCNAMEAndGluelessNS(t *testing.T) {
	l := startLab(t)
	r := l.resolver(nil)
	a := resolve(t, r, "alias.umass.test", dns.TypeA)
	want := "alias.umass.test. 300 IN CNAME www.poly.test.; www.poly.test. 300 IN A 128.238.24.30"
	if got := rrText(a.Answer); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	a = resolve(t, r, "inner.umass.test", dns.TypeA)
	if got := rrText(a.Answer); got != "inner.umass.test. 300 IN CNAME www.umass.test.; www.umass.test. 300 IN A 128.119.40.186" {
		t.Errorf("in-zone chain: %q", got)
	}
}

func TestPoisoningFails(t *testing.T) {
	l := startLab(t)
	r := l.resolver(nil)
	// evil.'s server answers www.evil. and slips in www.umass.test and an
	// NS for umass.test: both outside its bailiwick.
	a := resolve(t, r, "www.evil", dns.TypeA)
	if got := rrText(a.Answer); got != "www.evil. 300 IN A 6.6.6.1" {
		t.Errorf("www.evil.: %q", got)
	}
	if rrs, _, _, ok := r.Cache.Lookup("www.umass.test.", dns.TypeA); ok {
		t.Fatalf("the poison is in the cache: %v", rrs)
	}
	if rrs, _, _, ok := r.Cache.Lookup("umass.test.", dns.TypeNS); ok {
		t.Fatalf("the poisoned NS is in the cache: %v", rrs)
	}
	a = resolve(t, r, "www.umass.test", dns.TypeA)
	if got := rrText(a.Answer); got != "www.umass.test. 300 IN A 128.119.40.186" {
		t.Errorf("www.umass.test after the attempt: %q", got)
	}
}

func TestRetryOtherServer(t *testing.T) {
	l := startLab(t)
	for range 3 { // the shuffle picks the silent server first sometimes
		r := l.resolver(nil)
		a := resolve(t, r, "www.slow.test", dns.TypeA)
		if got := rrText(a.Answer); got != "www.slow.test. 300 IN A 10.9.9.9" {
			t.Errorf("%q", got)
		}
	}
}

func TestFailuresEndInServfail(t *testing.T) {
	l := startLab(t)
	r := l.resolver(nil)
	s := &Server{Resolver: r, Host: "resolver"}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	defer func() {
		s.Shutdown(context.Background())
		if err := <-done; err != ErrServerClosed {
			t.Error(err)
		}
	}()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"www.loop.test.", ErrLoop},      // a referral upwards
		{"www.dead.test.", ErrNoServers}, // a server that never answers
		{"www.cyc1.test.", ErrDepth},     // glueless NS names resolving each other
		{"www.nowhere.", ErrNoServers},   // root says NXDOMAIN? no: root has no such TLD
	} {
		_, err := r.Resolve(context.Background(), tc.name, dns.TypeA)
		if tc.name == "www.nowhere." {
			if err != nil {
				t.Errorf("%s: %v, want NXDOMAIN from the root", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		m := new(dns.Msg)
		m.SetQuestion(tc.name, dns.TypeA)
		resp, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, pc.LocalAddr().String())
		if err != nil || resp.Rcode != dns.RcodeServerFailure || !resp.RecursionAvailable {
			t.Errorf("%s through the server: %v %v", tc.name, err, resp)
		}
	}
	// A cut-off budget ends early too.
	r2 := l.resolver(nil)
	r2.MaxQueries = 1
	if _, err := r2.Resolve(context.Background(), "www.umass.test.", dns.TypeA); !errors.Is(err, ErrBudget) {
		t.Errorf("budget 1: %v", err)
	}
}

func TestServer(t *testing.T) {
	l := startLab(t)
	r := l.resolver(nil)
	tr := trace.New()
	sub := tr.Subscribe(256, false)
	defer tr.Close()
	r.Tracer = tr
	s := &Server{Resolver: r, Host: "resolver", Tracer: tr}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	defer func() { s.Shutdown(context.Background()); <-done }()
	c := &dns.Client{Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("www.umass.test.", dns.TypeA)
	for i := range 2 {
		resp, _, err := c.Exchange(m, pc.LocalAddr().String())
		if err != nil || len(resp.Answer) != 1 || !resp.RecursionAvailable || resp.Authoritative {
			t.Fatalf("query %d: %v %v", i, err, resp)
		}
	}
	// Without RD: the cache alone.
	m.RecursionDesired = false
	resp, _, err := c.Exchange(m, pc.LocalAddr().String())
	if err != nil || len(resp.Answer) != 1 {
		t.Errorf("norec, cached: %v %v", err, resp)
	}
	m.SetQuestion("nothing.poly.test.", dns.TypeA)
	m.RecursionDesired = false
	resp, _, err = c.Exchange(m, pc.LocalAddr().String())
	if err != nil || resp.Rcode != dns.RcodeRefused {
		t.Errorf("norec, not cached: %v %v", err, resp)
	}
	// The trace: 3 upstream queries from 3 different source ports, then a
	// note that the second came from the cache.
	ports := map[string]bool{}
	var notes []string
	timeout := time.After(2 * time.Second)
	for len(notes) < 1 {
		select {
		case e := <-sub.C():
			if e.Side == trace.Client && e.Dir == trace.Send {
				ports[e.Local] = true
			}
			if e.Dir == trace.Note {
				notes = append(notes, e.Summary)
			}
		case <-timeout:
			t.Fatalf("trace: ports %v notes %v", ports, notes)
		}
	}
	if len(ports) != 3 || notes[0] != "answered from the cache" {
		t.Errorf("trace: ports %v notes %v", ports, notes)
	}
}

func TestSingleFlight(t *testing.T) {
	var f flights
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	shared := atomic.Int32{}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, sh, _ := f.do(context.Background(), "k", func() (*dns.Msg, error) {
				calls.Add(1)
				<-release
				return new(dns.Msg), nil
			})
			if sh {
				shared.Add(1)
			}
		}()
	}
	// Wait until the nine followers wait on the leader's flight.
	for range 1000 {
		f.mu.Lock()
		n := len(f.m)
		f.mu.Unlock()
		if n == 1 && calls.Load() == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if calls.Load() != 1 || shared.Load() != 9 {
		t.Errorf("calls %d shared %d, want 1 and 9", calls.Load(), shared.Load())
	}
}

func TestCacheLRU(t *testing.T) {
	c := NewCache(2, nil)
	for _, n := range []string{"a.test.", "b.test.", "c.test."} {
		rr, _ := dns.NewRR(n + " 60 IN A 1.2.3.4")
		c.putRRset([]dns.RR{rr}, rankAnswer)
		if n == "b.test." {
			c.Lookup("a.test.", dns.TypeA) // a is used: b is the oldest
		}
	}
	if _, _, _, ok := c.Lookup("b.test.", dns.TypeA); ok || c.Len() != 2 {
		t.Errorf("b should be gone, len %d", c.Len())
	}
	if _, _, _, ok := c.Lookup("a.test.", dns.TypeA); !ok {
		t.Errorf("a should stay")
	}
	// Glue does not replace an answer's RRset.
	auth, _ := dns.NewRR("a.test. 60 IN A 1.2.3.4")
	glue, _ := dns.NewRR("a.test. 60 IN A 6.6.6.6")
	c.putRRset([]dns.RR{auth}, rankAnswer)
	c.putRRset([]dns.RR{glue}, rankGlue)
	if rrs, _, _, _ := c.Lookup("a.test.", dns.TypeA); !strings.Contains(rrs[0].String(), "1.2.3.4") {
		t.Errorf("glue replaced an answer: %v", rrs)
	}
}

func newAuth(set *zone.Set, host string) *authserver.Server {
	s := authserver.New(set)
	s.Host = host
	return s
}
