package authserver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"appnet/dns/authserver"
	"appnet/dns/internal/dnstest"
	"appnet/dns/zone"
	"appnet/internal/testnet"
)

// BenchmarkDnsperfVsKnot serves one zone with appnet and with knotd in the
// same run and measures both with dnsperf: queries/s of each and the ratio
// (the goal is at least 1.0). It runs once, whatever b.N.
//
//	go test -run '^$' -bench DnsperfVsKnot ./dns/authserver
func BenchmarkDnsperfVsKnot(b *testing.B) {
	dnsperf := testnet.NeedTool(b, "dnsperf")
	knotd := testnet.NeedTool(b, "knotd")
	dir := b.TempDir()
	zoneFile := filepath.Join(dir, "umass.test.zone")
	if err := os.WriteFile(zoneFile, []byte(benchZone), 0o644); err != nil {
		b.Fatal(err)
	}
	port := dnstest.FreePort(b, []string{"127.0.58.1", "127.0.58.2"})
	z, err := zone.Load(zoneFile, "")
	if err != nil {
		b.Fatal(err)
	}
	set, _ := zone.NewSet(z)
	dnstest.Serve(b, authserver.New(set), fmt.Sprintf("127.0.58.1:%d", port))
	conf := filepath.Join(dir, "knot.conf")
	os.WriteFile(conf, []byte(dnstest.KnotConf(dir, "127.0.58.2", port, "umass.test", zoneFile)), 0o644)
	dnstest.RunTool(b, dir, knotd, "-c", conf)
	dnstest.WaitAnswer(b, fmt.Sprintf("127.0.58.2:%d", port), "www.umass.test.", dns.TypeA)
	queries := strings.Join([]string{"www.umass.test A", "web.umass.test A", "nope.umass.test A", "umass.test MX", "www.cs.umass.test A", "_http._tcp.umass.test SRV"}, "\n") + "\n"
	b.ResetTimer()
	ours, knot := dnstest.Alternate(b, dnsperf, dir, "127.0.58.1", "127.0.58.2", port, queries)
	b.StopTimer()
	b.ReportMetric(ours, "appnet-q/s")
	b.ReportMetric(knot, "knot-q/s")
	b.ReportMetric(ours/knot, "ratio")
	b.ReportMetric(0, "ns/op")
}

const benchZone = `$ORIGIN umass.test.
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
