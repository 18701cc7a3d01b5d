package zone

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const umass = `$ORIGIN umass.test.
$TTL 300
@	IN SOA dns.umass.test. admin.umass.test. ( 1 3600 600 86400 60 )
	IN NS dns.umass.test.
	IN NS dns2.umass.test.
	IN MX 10 mail.umass.test.
dns	IN A 127.0.0.6
dns2	IN A 127.0.0.16
www	IN A 128.119.40.186
	IN A 128.119.40.187
www	IN AAAA 2001:db8::1
web	IN CNAME www
alias	IN CNAME web
out	IN CNAME www.example.com.
mail	IN A 128.119.40.100
_http._tcp IN SRV 0 5 80 www
4.3.2.1 IN PTR www
txt	IN TXT "hello world"
a.b.c	IN A 10.0.0.1
*.wild	IN A 10.0.0.2
cs	IN NS dns.cs.umass.test.
cs	IN NS ns.elsewhere.test.
dns.cs	IN A 127.0.0.9
`

func mustParse(t *testing.T, text string) *Zone {
	t.Helper()
	z, err := Parse(strings.NewReader(text), "", "umass.zone")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestParse(t *testing.T) {
	z := mustParse(t, umass)
	if z.Origin != "umass.test." || z.SOA.Minttl != 60 {
		t.Fatalf("origin %q soa %v", z.Origin, z.SOA)
	}
	if z.Len() != 21 {
		t.Errorf("Len = %d, want 21", z.Len())
	}
	if rs := z.Records(); rs[0].Header().Rrtype != dns.TypeSOA || len(rs) != z.Len() {
		t.Errorf("Records: %d, first %v", len(rs), rs[0])
	}
}

func names(rrs []dns.RR) string {
	var s []string
	for _, rr := range rrs {
		s = append(s, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return strings.Join(s, "; ")
}

func TestLookup(t *testing.T) {
	z := mustParse(t, umass)
	for _, tc := range []struct {
		name  string
		qtype uint16
		kind  Kind
		ans   int
		ns    int
		extra int
		want  string // substring of the answer
	}{
		{"www.umass.test.", dns.TypeA, Success, 2, 0, 0, "128.119.40.186"},
		{"WWW.Umass.Test", dns.TypeAAAA, Success, 1, 0, 0, "2001:db8::1"},
		{"alias.umass.test.", dns.TypeA, Success, 4, 0, 0, "alias.umass.test. 300 IN CNAME web.umass.test."},
		{"web.umass.test.", dns.TypeCNAME, Success, 1, 0, 0, "CNAME www"},
		{"out.umass.test.", dns.TypeA, Success, 1, 0, 0, "www.example.com."},
		{"nope.umass.test.", dns.TypeA, NXDomain, 0, 1, 0, ""},
		{"www.umass.test.", dns.TypeMX, NoData, 0, 1, 0, ""},
		{"b.c.umass.test.", dns.TypeA, NoData, 0, 1, 0, ""}, // empty non-terminal
		{"c.umass.test.", dns.TypeA, NoData, 0, 1, 0, ""},
		{"x.wild.umass.test.", dns.TypeA, Success, 1, 0, 0, "x.wild.umass.test. 300 IN A 10.0.0.2"},
		{"x.wild.umass.test.", dns.TypeTXT, NoData, 0, 1, 0, ""},
		{"cs.umass.test.", dns.TypeA, Referral, 0, 2, 1, ""},
		{"www.cs.umass.test.", dns.TypeA, Referral, 0, 2, 1, ""},
		{"www.poly.test.", dns.TypeA, Outside, 0, 0, 0, ""},
		{"umass.test.", dns.TypeANY, Success, 4, 0, 0, "SOA"},
		{"_http._tcp.umass.test.", dns.TypeSRV, Success, 1, 0, 0, "SRV"},
	} {
		r := z.Lookup(tc.name, tc.qtype)
		if r.Kind != tc.kind || len(r.Answer) != tc.ans || len(r.Ns) != tc.ns || len(r.Extra) != tc.extra || !strings.Contains(names(r.Answer), tc.want) {
			t.Errorf("%s %s: %v answer [%s] ns [%s] extra [%s]", tc.name, dns.TypeToString[tc.qtype], r.Kind, names(r.Answer), names(r.Ns), names(r.Extra))
		}
		if tc.kind == NXDomain || tc.kind == NoData {
			if soa, ok := r.Ns[0].(*dns.SOA); !ok || soa.Hdr.Ttl != 60 {
				t.Errorf("%s: negative answer's SOA %v, want TTL = minimum 60", tc.name, r.Ns)
			}
		}
	}
	add := z.Additional(z.Lookup("umass.test.", dns.TypeMX).Answer, nil)
	if len(add) != 1 || !strings.Contains(add[0].String(), "128.119.40.100") {
		t.Errorf("MX additional: %v", add)
	}
}

func TestParseErrors(t *testing.T) {
	head := "$ORIGIN umass.test.\n$TTL 300\n@ IN SOA dns admin 1 2 3 4 5\n@ IN NS dns\ndns IN A 127.0.0.6\n"
	for _, tc := range []struct {
		name, text string
		line       int
		reason     string
	}{
		{"bad address", head + "www IN A 300.1.1.1\n", 6, "bad A"},
		{"bad type", head + "www IN BOGUS x\n", 6, "BOGUS"},
		{"outside", head + "www.poly.test. IN A 1.2.3.4\n", 6, "outside the zone"},
		{"cname and data", head + "www IN A 1.2.3.4\nwww IN CNAME dns\n", 7, "CNAME and other data"},
		{"second soa", head + "\n\n@ IN SOA dns admin 2 2 3 4 5\n", 8, "second SOA"},
		{"below cut", head + "cs IN NS ns.cs\nns.cs IN A 1.2.3.4\nns.cs IN MX 1 ns.cs\n", 7, "below the delegation point"},
		{"unsupported", head + "x IN NAPTR 100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:a@b!\" .\n", 6, "not supported"},
		{"class", head + "x CH A 1.2.3.4\n", 6, "not IN"},
		{"no soa", "$ORIGIN umass.test.\n@ 300 IN NS dns\n", 0, "no SOA"},
		{"no ns", "$ORIGIN umass.test.\n@ 300 IN SOA dns admin 1 2 3 4 5\n", 2, "no NS"},
		{"empty", "; nothing\n", 0, "no records"},
		{"unbalanced", head + "www IN TXT ( \"a\"\n", 6, "unbalanced"},
	} {
		_, err := Parse(strings.NewReader(tc.text), "", "bad.zone")
		var ze *Error
		if !errors.As(err, &ze) {
			t.Errorf("%s: error %v, want *Error", tc.name, err)
			continue
		}
		if ze.File != "bad.zone" || ze.Line != tc.line || !strings.Contains(ze.Reason, tc.reason) {
			t.Errorf("%s: got %q (line %d), want line %d and %q", tc.name, err, ze.Line, tc.line, tc.reason)
		}
		if !strings.HasPrefix(err.Error(), "zone: bad.zone") {
			t.Errorf("%s: %q does not start with the file", tc.name, err)
		}
	}
}

func TestHints(t *testing.T) {
	text := `; root hints
.                        3600000      NS    A.ROOT-SERVERS.TEST.
A.ROOT-SERVERS.TEST.      3600000      A     127.0.0.2
A.ROOT-SERVERS.TEST.      3600000      AAAA  ::1
.                        3600000      NS    B.ROOT-SERVERS.TEST.
B.ROOT-SERVERS.TEST.      3600000      A     127.0.0.12
`
	hs, err := ParseHints(strings.NewReader(text), "root.hints")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Name != "a.root-servers.test." || len(hs[0].Addrs) != 2 || hs[1].Addrs[0].String() != "127.0.0.12" {
		t.Fatalf("%+v", hs)
	}
	again, err := ParseHints(strings.NewReader(FormatHints(hs)), "x")
	if err != nil || len(again) != 2 || len(again[0].Addrs) != 2 {
		t.Fatalf("round trip: %v %+v", err, again)
	}
	for _, bad := range []string{"", ". NS a.test.\n", "x. NS a.test.\na.test. A 1.2.3.4\n", ". NS a.test.\na.test. A 1.2.3\n"} {
		if _, err := ParseHints(strings.NewReader(bad), "bad"); !errors.Is(err, ErrBadHints) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(umass)
	f.Add("$ORIGIN x.\n@ SOA a b 1 2 3 4 5\n@ NS a\n*.b A 1.2.3.4\n")
	f.Fuzz(func(t *testing.T, text string) {
		z, err := Parse(strings.NewReader(text), "", "f")
		if err != nil {
			return
		}
		for _, n := range []string{z.Origin, "www." + z.Origin, "a.b." + z.Origin} {
			for _, q := range []uint16{dns.TypeA, dns.TypeANY, dns.TypeCNAME, dns.TypeDS} {
				z.Lookup(n, q)
			}
		}
	})
}
