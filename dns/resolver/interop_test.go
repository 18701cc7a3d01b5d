package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/internal/dnstest"
	"appnet/dns/zone"
	"appnet/internal/testnet"
)

// TestKnotInHierarchy: poly.test is served by knotd; the root, test. and
// umass.test by appnet. Our resolver walks through both.
func TestKnotInHierarchy(t *testing.T) {
	knotd := testnet.NeedTool(t, "knotd")
	zones := dnstest.Hierarchy("127.0.56")
	polyText := zones["127.0.56.4"][0]
	delete(zones, "127.0.56.4")
	all := []string{"127.0.56.1", "127.0.56.2", "127.0.56.3", "127.0.56.4"}
	port := dnstest.FreePort(t, all)
	startOn(t, zones, port)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "poly.test.zone"), []byte(polyText), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := dnstest.KnotConf(dir, "127.0.56.4", port, "poly.test", filepath.Join(dir, "poly.test.zone"))
	confPath := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	dnstest.RunTool(t, dir, knotd, "-c", confPath)
	knotAddr := fmt.Sprintf("127.0.56.4:%d", port)
	if r := dnstest.WaitAnswer(t, knotAddr, "www.poly.test.", dns.TypeA); !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("knot answered %v", r)
	}

	r := New([]zone.Server{{Name: "a.root.test.", Addrs: []netip.Addr{netip.MustParseAddr("127.0.56.1")}}}, 0)
	r.Port = port
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
		rcode int
	}{
		{"www.poly.test.", dns.TypeA, "www.poly.test. 300 IN A 128.238.24.30", dns.RcodeSuccess}, // knot, NS without glue
		{"www.umass.test.", dns.TypeA, "www.umass.test. 300 IN A 128.119.40.186", dns.RcodeSuccess},
		{"nope.poly.test.", dns.TypeA, "", dns.RcodeNameError},
		{"www.poly.test.", dns.TypeMX, "", dns.RcodeSuccess},
	} {
		a, err := r.Resolve(ctx, tc.name, tc.qtype)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := rrText(a.Answer); got != tc.want || a.Rcode != tc.rcode {
			t.Errorf("%s %s: %s %q, want %s %q", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[a.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
		}
		if tc.rcode == dns.RcodeNameError && (len(a.Ns) != 1 || a.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: NXDOMAIN from knot without its SOA: %v", tc.name, a.Ns)
		}
	}
}

// startOn runs appnet authoritative servers for zones on port.
func startOn(t *testing.T, zones map[string][]string, port int) {
	t.Helper()
	for addr, texts := range zones {
		var zs []*zone.Zone
		for _, tx := range texts {
			z, err := zone.Parse(strings.NewReader(tx), "", addr)
			if err != nil {
				t.Fatal(err)
			}
			zs = append(zs, z)
		}
		set, _ := zone.NewSet(zs...)
		s := newAuth(set, addr)
		dnstest.Serve(t, s, net.JoinHostPort(addr, fmt.Sprint(port)))
	}
}

// TestUnboundAgrees: unbound, given our root hints, resolves through
// appnet's root, TLD and authoritative servers, and its answers equal our
// resolver's. Unbound asks name servers on port 53 only, so every server
// of this hierarchy listens on 53, which needs the privilege to bind it.
func TestUnboundAgrees(t *testing.T) {
	unbound := testnet.NeedTool(t, "unbound")
	zones := dnstest.Hierarchy("127.0.57")
	if c, err := net.ListenPacket("udp", "127.0.57.1:53"); err != nil {
		t.Skipf("port 53 cannot be bound here (%v): unbound asks name servers on port 53 only", err)
	} else {
		c.Close()
	}
	startOn(t, zones, 53)
	dir := t.TempDir()
	hints := "; lab root hints\n.  3600000 IN NS a.root.test.\na.root.test. 3600000 IN A 127.0.57.1\n"
	hintsPath := filepath.Join(dir, "root.hints")
	os.WriteFile(hintsPath, []byte(hints), 0o644)
	uport := dnstest.FreePort(t, []string{"127.0.57.10"})
	conf := fmt.Sprintf(`server:
    username: ""
    chroot: ""
    directory: "%[1]s"
    pidfile: "%[1]s/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    interface: 127.0.57.10
    port: %[2]d
    do-ip6: no
    do-not-query-localhost: no
    root-hints: "%[3]s"
    module-config: "iterator"
    qname-minimisation: no
    harden-referral-path: no
    harden-glue: yes
    access-control: 127.0.0.0/8 allow
    # test. is a special-use name (RFC 6761) that unbound answers
    # NXDOMAIN for itself unless told not to.
    local-zone: "test." nodefault
    num-threads: 1
remote-control:
    control-enable: no
`, dir, uport, hintsPath)
	confPath := filepath.Join(dir, "unbound.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	dnstest.RunTool(t, dir, unbound, "-d", "-c", confPath)
	uaddr := fmt.Sprintf("127.0.57.10:%d", uport)
	dnstest.WaitAnswer(t, uaddr, "www.umass.test.", dns.TypeA)

	roots, err := zone.ParseHints(strings.NewReader(hints), "root.hints")
	if err != nil {
		t.Fatal(err)
	}
	r := New(roots, 0)
	r.Port = 53
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &dns.Client{Timeout: 3 * time.Second}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"www.umass.test.", dns.TypeA},
		{"www.poly.test.", dns.TypeA}, // NS without glue
		{"nope.umass.test.", dns.TypeA},
		{"www.umass.test.", dns.TypeMX},
		{"umass.test.", dns.TypeNS},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		ub, _, err := c.Exchange(m, uaddr)
		if err != nil {
			t.Fatalf("unbound %s: %v", q.name, err)
		}
		ours, err := r.Resolve(ctx, q.name, q.qtype)
		if err != nil {
			t.Fatalf("ours %s: %v", q.name, err)
		}
		if ub.Rcode != ours.Rcode || !slices.Equal(noTTL(ub.Answer), noTTL(ours.Answer)) {
			t.Errorf("%s %s: unbound %s %q, ours %s %q", q.name, dns.TypeToString[q.qtype], dns.RcodeToString[ub.Rcode], noTTL(ub.Answer), dns.RcodeToString[ours.Rcode], noTTL(ours.Answer))
		}
	}
}

// noTTL returns the records' text without TTLs, sorted.
func noTTL(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		cp := dns.Copy(rr)
		cp.Header().Ttl = 0
		out = append(out, strings.ToLower(cp.String()))
	}
	slices.Sort(out)
	return out
}
