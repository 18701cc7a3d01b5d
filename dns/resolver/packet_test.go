package resolver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestServerPackedAnswers: over UDP, with tracing off, a repeated question
// is answered from the packed answer the cache gave: the client's ID and
// letter case come back, the TTLs count down with the cache's clock, the
// counters say cache hit with no upstream query, the EDNS record is there
// only when asked for, and after expiry (positive, and negative at the
// SOA minimum) the resolver asks upstream again.
func TestServerPackedAnswers(t *testing.T) {
	l := startLab(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	r := l.resolver(clk)
	s := &Server{Resolver: r, Host: "resolver"}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	defer func() { s.Shutdown(context.Background()); <-done }()
	c := &dns.Client{Timeout: 5 * time.Second}
	ask := func(name string, qtype uint16, edns bool) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if edns {
			m.SetEdns0(1232, false)
		}
		resp, _, err := c.Exchange(m, pc.LocalAddr().String())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.Id != m.Id || resp.Question[0].Name != name || !resp.RecursionAvailable || !resp.RecursionDesired {
			t.Fatalf("%s: header or question not the client's: %v", name, resp)
		}
		if (resp.IsEdns0() != nil) != edns {
			t.Errorf("%s: OPT %v, asked with EDNS %v", name, resp.IsEdns0(), edns)
		}
		return resp
	}
	ask("www.umass.test.", dns.TypeA, true) // resolved
	ask("www.umass.test.", dns.TypeA, true) // from the cache: packed and kept
	up := r.Stats().Upstream
	hits := r.Stats().CacheHits
	for i, name := range []string{"WwW.UmAsS.TeSt.", "www.umass.test.", "WWW.UMASS.TEST."} {
		clk.Advance(5 * time.Second)
		resp := ask(name, dns.TypeA, true)
		if len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != uint32(300-5*(i+1)) {
			t.Errorf("packed answer %d: %v, want TTL %d", i, resp.Answer, 300-5*(i+1))
		}
	}
	if st := r.Stats(); st.Upstream != up || st.CacheHits != hits+3 {
		t.Errorf("after 3 packed answers: %+v (upstream was %d, hits %d)", st, up, hits)
	}
	s.packed.mu.RLock()
	n := len(s.packed.m)
	s.packed.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d packed answers kept, want 1", n)
	}
	// Without EDNS: a packed answer of its own, no OPT.
	ask("www.umass.test.", dns.TypeA, false)
	if resp := ask("www.umass.test.", dns.TypeA, false); resp.Answer[0].Header().Ttl != 285 {
		t.Errorf("without EDNS: %v", resp.Answer)
	}
	// After expiry: upstream again, the full TTL.
	clk.Advance(300 * time.Second)
	if resp := ask("www.umass.test.", dns.TypeA, true); r.Stats().Upstream == up || resp.Answer[0].Header().Ttl != 300 {
		t.Errorf("after expiry: %v %+v", resp.Answer, r.Stats())
	}
	// NXDOMAIN: the SOA's TTL counts down from the SOA minimum (60).
	ask("nope.umass.test.", dns.TypeA, true)
	ask("nope.umass.test.", dns.TypeA, true)
	up = r.Stats().Upstream
	clk.Advance(10 * time.Second)
	resp := ask("nope.umass.test.", dns.TypeA, true)
	if resp.Rcode != dns.RcodeNameError || len(resp.Ns) != 1 || resp.Ns[0].Header().Ttl != 50 || r.Stats().Upstream != up {
		t.Errorf("packed NXDOMAIN: %v", resp)
	}
	clk.Advance(51 * time.Second)
	ask("nope.umass.test.", dns.TypeA, true)
	if r.Stats().Upstream == up {
		t.Errorf("after the SOA minimum the NXDOMAIN should be asked again")
	}
}
