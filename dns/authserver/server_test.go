package authserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"appnet/dns/zone"
	"appnet/internal/testnet"
	"appnet/trace"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	goleak.VerifyTestMain(m)
}

const testZone = `$ORIGIN umass.test.
$TTL 300
@	IN SOA dns.umass.test. admin.umass.test. ( 1 3600 600 86400 60 )
	IN NS dns.umass.test.
	IN MX 10 mail.umass.test.
dns	IN A 127.0.0.6
www	IN A 128.119.40.186
	IN A 128.119.40.187
	IN A 128.119.40.188
web	IN CNAME www
mail	IN A 128.119.40.100
_http._tcp IN SRV 0 5 80 www
cs	IN NS dns.cs.umass.test.
dns.cs	IN A 127.0.0.9
`

func bigZone() string {
	var b strings.Builder
	b.WriteString(testZone)
	for i := range 120 {
		fmt.Fprintf(&b, "big IN A 10.0.%d.%d\n", i/250, i%250+1)
	}
	return b.String()
}

// start runs a server for text on UDP and TCP at one loopback port.
func start(t *testing.T, texts ...string) (*Server, string) {
	t.Helper()
	return startWith(t, nil, texts...)
}

// startWith is start with a chance to set the server's fields first.
func startWith(t *testing.T, configure func(*Server), texts ...string) (*Server, string) {
	t.Helper()
	pc, ln := listenBoth(t)
	return startOn(t, pc, ln, configure, texts...)
}

// startOn serves texts on the sockets given.
func startOn(t *testing.T, pc net.PacketConn, ln net.Listener, configure func(*Server), texts ...string) (*Server, string) {
	t.Helper()
	var zs []*zone.Zone
	for _, text := range texts {
		z, err := zone.Parse(strings.NewReader(text), "", "test.zone")
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	set, err := zone.NewSet(zs...)
	if err != nil {
		t.Fatal(err)
	}
	s := New(set)
	s.Host = "auth"
	if configure != nil {
		configure(s)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.ServePacket(pc) }()
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		for range 2 {
			if err := <-errc; err != ErrServerClosed {
				t.Errorf("serve returned %v, want ErrServerClosed", err)
			}
		}
	})
	return s, pc.LocalAddr().String()
}

// listenBoth opens UDP (with SO_REUSEPORT, as the CLI does) and TCP on
// one free loopback port.
func listenBoth(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	return testnet.ListenBoth(t, func(addr string) (net.PacketConn, error) { return ListenPacket(context.Background(), addr) })
}

func ask(t *testing.T, addr, network, name string, qtype uint16, edns int) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(uint16(edns), false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	_, addr := start(t, testZone, strings.Replace(testZone, "umass.test.", "poly.test.", 1))
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range []struct {
			name              string
			qtype             uint16
			rcode             int
			aa                bool
			answer, ns, extra int
			firstAnswer, inNs string
		}{
			{"www.umass.test.", dns.TypeA, dns.RcodeSuccess, true, 3, 0, 0, "A", ""},
			{"web.umass.test.", dns.TypeA, dns.RcodeSuccess, true, 4, 0, 0, "CNAME", ""},
			{"umass.test.", dns.TypeMX, dns.RcodeSuccess, true, 1, 0, 1, "MX", ""},
			{"umass.test.", dns.TypeNS, dns.RcodeSuccess, true, 1, 0, 1, "NS", ""},
			{"_http._tcp.umass.test.", dns.TypeSRV, dns.RcodeSuccess, true, 1, 0, 3, "SRV", ""},
			{"nope.umass.test.", dns.TypeA, dns.RcodeNameError, true, 0, 1, 0, "", "SOA"},
			{"www.umass.test.", dns.TypeTXT, dns.RcodeSuccess, true, 0, 1, 0, "", "SOA"},
			{"www.cs.umass.test.", dns.TypeA, dns.RcodeSuccess, false, 0, 1, 1, "", "NS"},
			{"www.example.com.", dns.TypeA, dns.RcodeRefused, false, 0, 0, 0, "", ""},
			{"www.poly.test.", dns.TypeA, dns.RcodeSuccess, true, 3, 0, 0, "A", ""},
		} {
			r := ask(t, addr, network, tc.name, tc.qtype, 0)
			ok := r.Rcode == tc.rcode && r.Authoritative == tc.aa && len(r.Answer) == tc.answer && len(r.Ns) == tc.ns && len(r.Extra) == tc.extra && !r.RecursionAvailable
			if ok && tc.firstAnswer != "" {
				ok = dns.TypeToString[r.Answer[0].Header().Rrtype] == tc.firstAnswer
			}
			if ok && tc.inNs != "" {
				ok = dns.TypeToString[r.Ns[0].Header().Rrtype] == tc.inNs
			}
			if !ok {
				t.Errorf("%s: %s %s:\n%v", network, tc.name, dns.TypeToString[tc.qtype], r)
			}
		}
	}
}

func TestNegativeSOATTL(t *testing.T) {
	_, addr := start(t, testZone)
	r := ask(t, addr, "udp", "nope.umass.test.", dns.TypeA, 0)
	if soa, ok := r.Ns[0].(*dns.SOA); !ok || soa.Hdr.Ttl != 60 {
		t.Errorf("SOA in NXDOMAIN: %v, want TTL 60 (RFC 2308 §3)", r.Ns)
	}
}

func TestRotation(t *testing.T) {
	_, addr := start(t, testZone)
	firsts := map[string]int{}
	for range 6 {
		r := ask(t, addr, "udp", "www.umass.test.", dns.TypeA, 0)
		firsts[r.Answer[0].(*dns.A).A.String()]++
		if len(r.Answer) != 3 {
			t.Fatalf("%v", r)
		}
	}
	if len(firsts) != 3 {
		t.Errorf("first addresses over 6 answers: %v, want all three in turn", firsts)
	}
}

func TestEDNSAndTruncation(t *testing.T) {
	_, addr := start(t, bigZone())
	// No EDNS: 512 bytes, so 120 A records do not fit.
	r := ask(t, addr, "udp", "big.umass.test.", dns.TypeA, 0)
	if !r.Truncated || r.IsEdns0() != nil {
		t.Errorf("plain UDP: tc=%v opt=%v, want TC and no OPT", r.Truncated, r.IsEdns0())
	}
	// EDNS with 4096: capped at 1232 (120*16+... = ~1950 bytes): still TC.
	r = ask(t, addr, "udp", "big.umass.test.", dns.TypeA, 4096)
	if !r.Truncated || r.IsEdns0() == nil || r.IsEdns0().UDPSize() != DefaultUDPSize {
		t.Errorf("EDNS 4096: tc=%v opt=%v", r.Truncated, r.IsEdns0())
	}
	// A small answer with EDNS: OPT echoed, no TC.
	r = ask(t, addr, "udp", "www.umass.test.", dns.TypeA, 1232)
	if r.Truncated || r.IsEdns0() == nil || len(r.Answer) != 3 {
		t.Errorf("EDNS small: %v", r)
	}
	// TCP carries it all.
	r = ask(t, addr, "tcp", "big.umass.test.", dns.TypeA, 0)
	if r.Truncated || len(r.Answer) != 120 {
		t.Errorf("TCP: tc=%v answers %d", r.Truncated, len(r.Answer))
	}
	// EDNS version 1: BADVERS.
	m := new(dns.Msg)
	m.SetQuestion("www.umass.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: %v %v", err, r)
	}
}

func TestFormErrAndNotImp(t *testing.T) {
	_, addr := start(t, testZone)
	c := &dns.Client{Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("www.umass.test.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	r, _, err := c.Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v %v", err, r)
	}
	m = new(dns.Msg)
	m.SetQuestion("www.umass.test.", dns.TypeA)
	m.Opcode = dns.OpcodeStatus
	r, _, err = c.Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("STATUS: %v %v", err, r)
	}
	m = new(dns.Msg)
	m.SetQuestion("umass.test.", dns.TypeAXFR)
	r, _, err = c.Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("AXFR over UDP: %v %v", err, r)
	}
}

func TestTrace(t *testing.T) {
	tr := trace.New()
	sub := tr.Subscribe(16, true)
	defer tr.Close()
	_, addr := startWith(t, func(s *Server) { s.Tracer = tr }, testZone)
	ask(t, addr, "udp", "www.cs.umass.test.", dns.TypeA, 0)
	var got []string
	for len(got) < 2 {
		select {
		case e := <-sub.C():
			got = append(got, e.Speaker()+": "+e.Summary)
		case <-time.After(2 * time.Second):
			t.Fatalf("trace: %q", got)
		}
	}
	if !strings.HasPrefix(got[0], "C: A? www.cs.umass.test.") || !strings.Contains(got[1], "S: NOERROR referral to cs.umass.test. (NS dns.cs.umass.test., glue 1)") {
		t.Errorf("trace: %q", got)
	}
}

func TestShutdownBeforeServe(t *testing.T) {
	s := New(nil)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ServePacket(pc); err != ErrServerClosed {
		t.Errorf("ServePacket after Shutdown: %v", err)
	}
}
