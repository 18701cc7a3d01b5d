package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	"appnet/dns/internal/dnstest"
	"appnet/dns/internal/udploop"
	"appnet/dns/zone"
	"appnet/internal/testnet"
)

// BenchmarkCacheHitsVsUnbound measures answers from the cache: our resolver
// and unbound, both warmed with the same names, asked by dnsperf in the
// same run. Unbound reaches umass.test through a stub zone (it asks name
// servers on port 53 only, and this needs no privilege); ours walks from
// the root hints. It runs once, whatever b.N.
//
//	go test -run '^$' -bench CacheHitsVsUnbound ./dns/resolver
func BenchmarkCacheHitsVsUnbound(b *testing.B) {
	dnsperf := testnet.NeedTool(b, "dnsperf")
	unbound := testnet.NeedTool(b, "unbound")
	port := dnstest.Start(b, dnstest.Hierarchy("127.0.59"))
	dir := b.TempDir()
	lport := dnstest.FreePort(b, []string{"127.0.59.10", "127.0.59.11"})
	// Ours.
	r := New([]zone.Server{{Name: "a.root.test.", Addrs: []netip.Addr{netip.MustParseAddr("127.0.59.1")}}}, 0)
	r.Port = port
	s := &Server{Resolver: r}
	pc, err := udploop.ListenPacket(context.Background(), "udp", fmt.Sprintf("127.0.59.10:%d", lport))
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	b.Cleanup(func() { s.Shutdown(context.Background()); <-done })
	// Unbound.
	conf := fmt.Sprintf(`server:
    username: ""
    chroot: ""
    directory: "%[1]s"
    pidfile: "%[1]s/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    interface: 127.0.59.11
    port: %[2]d
    do-ip6: no
    do-not-query-localhost: no
    module-config: "iterator"
    local-zone: "test." nodefault
    access-control: 127.0.0.0/8 allow
    num-threads: 2
remote-control:
    control-enable: no
stub-zone:
    name: "umass.test."
    stub-addr: 127.0.59.3@%[3]d
`, dir, lport, port)
	confPath := filepath.Join(dir, "unbound.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	dnstest.RunTool(b, dir, unbound, "-d", "-c", confPath)
	ours := fmt.Sprintf("127.0.59.10:%d", lport)
	theirs := fmt.Sprintf("127.0.59.11:%d", lport)
	for _, a := range []string{ours, theirs} {
		if m := dnstest.WaitAnswer(b, a, "www.umass.test.", dns.TypeA); len(m.Answer) != 1 {
			b.Fatalf("%s: %v", a, m)
		}
	}
	queries := "www.umass.test A\n"
	b.ResetTimer()
	oq, uq := dnstest.Alternate(b, dnsperf, dir, "127.0.59.10", "127.0.59.11", lport, queries)
	b.StopTimer()
	b.ReportMetric(oq, "appnet-q/s")
	b.ReportMetric(uq, "unbound-q/s")
	b.ReportMetric(oq/uq, "ratio")
	b.ReportMetric(0, "ns/op")
}
