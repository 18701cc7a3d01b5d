package registrar

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"appnet/dns/authserver"
	"appnet/dns/internal/dnstest"
	"appnet/dns/zone"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "c2VjcmV0IGtleSBvZiB0aGUgcmVnaXN0cmFy" // "secret key of the registrar"

const tld = `$ORIGIN test.
@ 172800 IN SOA a.tld.test. admin.tld.test. 7 1800 900 604800 3600
@ 172800 IN NS a.tld.test.
a.tld 172800 IN A 127.0.60.1
umass 172800 IN NS dns.umass
dns.umass 172800 IN A 127.0.0.6
`

func startTLD(t *testing.T) (*authserver.Server, string) {
	t.Helper()
	z, err := zone.Parse(strings.NewReader(tld), "", "tld")
	if err != nil {
		t.Fatal(err)
	}
	set, _ := zone.NewSet(z)
	s := authserver.New(set)
	s.Keys = map[string]string{"registrar.": secret}
	addr := fmt.Sprintf("127.0.60.1:%d", dnstest.FreePort(t, []string{"127.0.60.1"}))
	dnstest.Serve(t, s, addr)
	return s, addr
}

func TestRegisterNetworkUtopia(t *testing.T) {
	s, addr := startTLD(t)
	key, err := ParseKey("hmac-sha256:registrar:" + secret)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Key: key}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Register(ctx, addr, "networkutopia.test", "dns1.networkutopia.test", netip.MustParseAddr("212.212.212.1"), 172800); err != nil {
		t.Fatal(err)
	}
	// The TLD now refers www.networkutopia.test to dns1 with its glue.
	m := new(dns.Msg)
	m.SetQuestion("www.networkutopia.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Ns) != 1 || r.Ns[0].(*dns.NS).Ns != "dns1.networkutopia.test." || len(r.Extra) < 1 || !strings.Contains(r.Extra[0].String(), "212.212.212.1") {
		t.Errorf("referral after registration: %v", r)
	}
	if serial := s.Zones().Find("test.").SOA.Serial; serial != 8 {
		t.Errorf("serial %d, want 8 (RFC 2136 §3.6)", serial)
	}
	// Registering again with a new address replaces the glue.
	if err := c.Register(ctx, addr, "networkutopia.test", "dns1.networkutopia.test", netip.MustParseAddr("212.212.212.2"), 172800); err != nil {
		t.Fatal(err)
	}
	if g := s.Zones().Find("test.").RRset("dns1.networkutopia.test.", dns.TypeA); len(g) != 1 || !strings.Contains(g[0].String(), "212.212.212.2") {
		t.Errorf("glue after re-registration: %v", g)
	}
}

func TestUpdateRefusals(t *testing.T) {
	_, addr := startTLD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	good, _ := ParseKey("registrar:" + secret)
	for _, tc := range []struct {
		name  string
		key   Key
		msg   func() *dns.Msg
		rcode int
	}{
		{"name in use", good, func() *dns.Msg {
			m, _ := RegisterMsg("umass.test", "dns.umass.test", netip.MustParseAddr("1.2.3.4"), 60)
			rr, _ := dns.NewRR("umass.test. 0 IN NS dns.umass.test.")
			m.NameNotUsed([]dns.RR{rr})
			return m
		}, dns.RcodeYXDomain},
		{"not our zone", good, func() *dns.Msg {
			m, _ := RegisterMsg("a.example.com", "ns.a.example.com", netip.MustParseAddr("1.2.3.4"), 60)
			return m
		}, dns.RcodeNotAuth},
		{"outside the zone", good, func() *dns.Msg {
			m := new(dns.Msg)
			m.SetUpdate("test.")
			rr, _ := dns.NewRR("www.example.com. 60 IN A 1.2.3.4")
			m.Insert([]dns.RR{rr})
			return m
		}, dns.RcodeNotZone},
		{"unknown key", Key{Name: "other.", Algorithm: dns.HmacSHA256, Secret: secret}, func() *dns.Msg {
			m, _ := RegisterMsg("x.test", "ns.x.test", netip.MustParseAddr("1.2.3.4"), 60)
			return m
		}, dns.RcodeNotAuth},
	} {
		c := &Client{Key: tc.key}
		_, err := c.Update(ctx, addr, tc.msg())
		var ue *UpdateError
		if !errors.As(err, &ue) || ue.Rcode != tc.rcode {
			// miekg/dns's client reports a NOTAUTH answer as ErrAuth.
			if tc.rcode == dns.RcodeNotAuth && errors.Is(err, dns.ErrAuth) {
				continue
			}
			t.Errorf("%s: %v, want %s", tc.name, err, dns.RcodeToString[tc.rcode])
		}
	}
	// Unsigned: REFUSED.
	m, _ := RegisterMsg("x.test", "ns.x.test", netip.MustParseAddr("1.2.3.4"), 60)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("unsigned update: %v %v", err, r)
	}
}

func TestParseKey(t *testing.T) {
	for _, bad := range []string{"", "x", "a:b:c:d", "md5:k:" + secret, "k:not base64!"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if k, err := ParseKey("hmac-sha512:Reg:" + secret); err != nil || k.Algorithm != dns.HmacSHA512 || k.Name != "reg." {
		t.Errorf("%+v %v", k, err)
	}
	if Parent("networkutopia.test") != "test." {
		t.Error(Parent("networkutopia.test"))
	}
}
