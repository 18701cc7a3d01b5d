package authserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/zone"
)

const (
	testKeyName = "registrar."
	testSecret  = "c2VjcmV0IGtleSBvZiB0aGUgcmVnaXN0cmFy"
)

// sendUpdate sends a signed UPDATE of zone to addr and returns the rcode.
func sendUpdate(t *testing.T, addr, zoneName string, insert []string) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(zoneName)
	var rrs []dns.RR
	for _, s := range insert {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	m.Insert(rrs)
	m.SetTsig(testKeyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Timeout: 5 * time.Second, TsigSecret: map[string]string{testKeyName: testSecret}}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("UPDATE: %v", err)
	}
	return r.Rcode
}

// waitFor asks addr (bounded: 100 tries, 50ms apart) until check holds.
func waitFor(t *testing.T, addr, name string, qtype uint16, what string, check func(*dns.Msg) bool) *dns.Msg {
	t.Helper()
	c := &dns.Client{Timeout: time.Second}
	var last *dns.Msg
	for range 100 {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if r, _, err := c.Exchange(m, addr); err == nil {
			last = r
			if check(r) {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never happened; last answer: %v", what, last)
	return nil
}

func axfr(t *testing.T, addr, name string) ([]dns.RR, int) {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr(name)
	tr := &dns.Transfer{}
	env, err := tr.In(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	rcode := dns.RcodeSuccess
	for e := range env {
		if e.Error != nil {
			if strings.Contains(e.Error.Error(), "REFUSED") || strings.Contains(e.Error.Error(), "bad xfr rcode: 5") {
				rcode = dns.RcodeRefused
			} else {
				t.Logf("axfr: %v", e.Error)
				rcode = -1
			}
			continue
		}
		rrs = append(rrs, e.RR...)
	}
	return rrs, rcode
}

func TestAXFRListedOnly(t *testing.T) {
	allowed := map[string][]netip.AddrPort{"umass.test.": {netip.MustParseAddrPort("127.0.0.1:53")}}
	s, addr := startWith(t, func(s *Server) { s.AllowTransfer = allowed }, testZone, bigZone2)
	z := s.zone("umass.test.")
	rrs, rcode := axfr(t, addr, "umass.test.")
	if rcode != dns.RcodeSuccess || len(rrs) != z.Len()+1 {
		t.Fatalf("AXFR from a listed address: rcode %d, %d records, want %d", rcode, len(rrs), z.Len()+1)
	}
	if rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Errorf("AXFR not framed by the SOA: %v ... %v", rrs[0], rrs[len(rrs)-1])
	}
	// The other zone lists nobody: refused.
	if _, rcode := axfr(t, addr, "poly.test."); rcode != dns.RcodeRefused {
		t.Errorf("AXFR of an unlisted zone: rcode %d, want REFUSED", rcode)
	}
	// A server that lists another address refuses 127.0.0.1.
	other := map[string][]netip.AddrPort{"umass.test.": {netip.MustParseAddrPort("127.0.0.2:53")}}
	_, addr2 := startWith(t, func(s *Server) { s.AllowTransfer = other }, testZone)
	if _, rcode := axfr(t, addr2, "umass.test."); rcode != dns.RcodeRefused {
		t.Errorf("AXFR from an unlisted address: rcode %d, want REFUSED", rcode)
	}
}

const bigZone2 = `$ORIGIN poly.test.
@ 300 IN SOA dns admin 1 3600 600 86400 60
@ 300 IN NS dns
dns 300 IN A 127.0.0.7
`

// TestSecondaryFollowsPrimary: a secondary transfers the zone at start,
// and after an UPDATE at the primary it serves the new record, moved by
// the primary's NOTIFY (the SOA refresh timer is an hour).
func TestSecondaryFollowsPrimary(t *testing.T) {
	pcP, lnP := listenBoth(t)
	pcS, lnS := listenBoth(t)
	primaryAddr, secondaryAddr := pcP.LocalAddr().String(), pcS.LocalAddr().String()
	startOn(t, pcP, lnP, func(s *Server) {
		s.Keys = map[string]string{testKeyName: testSecret}
		s.AllowTransfer = map[string][]netip.AddrPort{"umass.test.": {netip.MustParseAddrPort(secondaryAddr)}}
	}, testZone)
	sec, _ := startOn(t, pcS, lnS, func(s *Server) {
		s.Primaries = map[string]string{"umass.test.": primaryAddr}
	})
	r := waitFor(t, secondaryAddr, "www.umass.test.", dns.TypeA, "the first transfer", func(r *dns.Msg) bool { return len(r.Answer) == 3 && r.Authoritative })
	_ = r
	if rc := sendUpdate(t, primaryAddr, "umass.test.", []string{"new.umass.test. 300 IN A 10.1.2.3"}); rc != dns.RcodeSuccess {
		t.Fatalf("UPDATE: %s", dns.RcodeToString[rc])
	}
	waitFor(t, secondaryAddr, "new.umass.test.", dns.TypeA, "the secondary following the UPDATE", func(r *dns.Msg) bool {
		return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "10.1.2.3"
	})
	if got := sec.zone("umass.test.").SOA.Serial; got != 2 {
		t.Errorf("secondary serial %d, want 2", got)
	}
	// NOTIFY from anyone but the primary is refused (RFC 1996 §3.10).
	m := new(dns.Msg)
	m.SetNotify("umass.test.")
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(secondaryAddr)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	co := &dns.Conn{Conn: conn}
	co.WriteMsg(m)
	co.SetReadDeadline(time.Now().Add(2 * time.Second))
	if r, err := co.ReadMsg(); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("NOTIFY from 127.0.0.2: %v %v, want REFUSED", err, r)
	}
}

// TestReloadKeepsAnswering: zones replaced (a SIGHUP reload, an UPDATE,
// a transfer) while a client asks without pause: every question is
// answered, and the first answer after a change is the new data, never a
// packed answer of the old zones.
func TestReloadKeepsAnswering(t *testing.T) {
	s, addr := start(t, testZone)
	v2 := strings.Replace(testZone, "mail\tIN A 128.119.40.100", "mail\tIN A 128.119.40.200", 1)
	sets := make([]*zone.Set, 2)
	for i, text := range []string{testZone, v2} {
		z, err := zone.Parse(strings.NewReader(text), "", "test.zone")
		if err != nil {
			t.Fatal(err)
		}
		sets[i], _ = zone.NewSet(z)
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	for i := range 100 {
		s.SetZones(sets[i%2])
		want := []string{"128.119.40.100", "128.119.40.200"}[i%2]
		for range 3 { // the first builds the packed answer, the next use it
			m := new(dns.Msg)
			m.SetQuestion("mail.umass.test.", dns.TypeA)
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				t.Fatalf("round %d: a question went unanswered: %v", i, err)
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
				t.Fatalf("round %d: %v, want %s", i, r.Answer, want)
			}
		}
	}
}
