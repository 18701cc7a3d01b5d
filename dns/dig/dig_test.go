package dig

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"appnet/dns/internal/dnstest"
	"appnet/dns/zone"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQueryAndPrint(t *testing.T) {
	port := dnstest.Start(t, dnstest.Hierarchy("127.0.54"))
	r, err := Query(context.Background(), Options{Server: fmt.Sprintf("127.0.54.3:%d", port)}, "www.umass.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	Print(&b, r, "www.umass.test A")
	out := b.String()
	for _, want := range []string{
		";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: ",
		";; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n",
		";; WARNING: recursion requested but not available",
		"; EDNS: version: 0, flags:; udp: 1232",
		";; QUESTION SECTION:\n;www.umass.test.\t\t\tIN\tA\n",
		";; ANSWER SECTION:\nwww.umass.test.\t300\tIN\tA\t128.119.40.186\n",
		fmt.Sprintf(";; SERVER: 127.0.54.3#%d(127.0.54.3) (UDP)", port),
		";; MSG SIZE  rcvd: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestTrace(t *testing.T) {
	port := dnstest.Start(t, dnstest.Hierarchy("127.0.54"))
	roots := []zone.Server{{Name: "a.root.test.", Addrs: []netip.Addr{netip.MustParseAddr("127.0.54.1")}}}
	var b bytes.Buffer
	steps, err := Trace(context.Background(), &b, TraceOptions{Roots: roots, Port: port}, "www.poly.test", dns.TypeA)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Zone+"@"+s.ServerName)
	}
	if strings.Join(got, " ") != ".@a.root.test. test.@a.tld.test. poly.test.@ns-poly.umass.test." {
		t.Errorf("steps %q", got)
	}
	out := b.String()
	for _, want := range []string{
		";; step 1: root server a.root.test.: referral to test.",
		";; step 2: TLD test. server a.tld.test.: referral to poly.test.",
		";; step 3: authoritative poly.test. server ns-poly.umass.test.: 1 answer record(s), authoritative=true",
		"www.poly.test.\t300\tIN\tA\t128.238.24.30",
		";; Received ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
