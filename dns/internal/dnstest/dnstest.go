// Package dnstest starts small DNS hierarchies for tests: authoritative
// servers at several loopback addresses sharing one port, as the lab and
// the resolver's --server-port expect.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"appnet/dns/authserver"
	"appnet/dns/internal/dnstool"
	"appnet/dns/internal/udploop"
	"appnet/dns/zone"
)

// Start runs an authoritative server for each address's zone texts, all
// on one free port, and returns the port. They stop when the test ends.
func Start(t testing.TB, zones map[string][]string) int {
	t.Helper()
	var addrs []string
	for a := range zones {
		addrs = append(addrs, a)
	}
	port := FreePort(t, addrs)
	for addr, texts := range zones {
		var zs []*zone.Zone
		for _, tx := range texts {
			z, err := zone.Parse(strings.NewReader(tx), "", addr)
			if err != nil {
				t.Fatal(err)
			}
			zs = append(zs, z)
		}
		set, err := zone.NewSet(zs...)
		if err != nil {
			t.Fatal(err)
		}
		s := authserver.New(set)
		s.Host = addr
		Serve(t, s, net.JoinHostPort(addr, fmt.Sprint(port)))
	}
	return port
}

// Serve runs s on UDP and TCP at addr until the test ends.
func Serve(t testing.TB, s *authserver.Server, addr string) {
	t.Helper()
	pc, err := udploop.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.ServePacket(pc) }()
	go func() { defer wg.Done(); s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		wg.Wait()
	})
}

// Hierarchy is the zones of a small course-style DNS: a root at base.1, the
// TLD test. at base.2, umass.test at base.3 and poly.test (its NS without
// glue, inside umass.test) at base.4. base is like "127.0.54".
func Hierarchy(base string) map[string][]string {
	return map[string][]string{
		base + ".1": {fmt.Sprintf(`. 86400 IN SOA a.root.test. admin.root.test. 1 3600 600 86400 300
. 86400 IN NS a.root.test.
a.root.test. 86400 IN A %[1]s.1
test. 86400 IN NS a.tld.test.
a.tld.test. 86400 IN A %[1]s.2
`, base)},
		base + ".2": {fmt.Sprintf(`$ORIGIN test.
@ 86400 IN SOA a.tld.test. admin.tld.test. 1 3600 600 86400 300
@ 86400 IN NS a.tld.test.
a.tld 86400 IN A %[1]s.2
umass 3600 IN NS dns.umass
dns.umass 3600 IN A %[1]s.3
poly 3600 IN NS ns-poly.umass.test.
`, base)},
		base + ".3": {fmt.Sprintf(`$ORIGIN umass.test.
@ 300 IN SOA dns admin 1 3600 600 86400 60
@ 300 IN NS dns
dns 300 IN A %[1]s.3
ns-poly 300 IN A %[1]s.4
www 300 IN A 128.119.40.186
`, base)},
		base + ".4": {`$ORIGIN poly.test.
@ 300 IN SOA ns-poly.umass.test. admin 1 3600 600 86400 60
@ 300 IN NS ns-poly.umass.test.
www 300 IN A 128.238.24.30
`},
	}
}

// The real-tool helpers live in dnstool (which the authserver's own tests
// can import); these names keep the callers of dnstest working.
var (
	FreePort   = dnstool.FreePort
	RunTool    = dnstool.RunTool
	WaitAnswer = dnstool.WaitAnswer
	KnotConf   = dnstool.KnotConf
	Dnsperf    = dnstool.Dnsperf
	Alternate  = dnstool.Alternate
)
