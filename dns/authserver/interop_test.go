package authserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/internal/dnstool"
	"appnet/internal/testnet"
)

// digOut runs dig against addr and returns its output.
func digOut(t *testing.T, addr string, args ...string) string {
	t.Helper()
	path := testnet.NeedTool(t, "dig")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all := append([]string{"@" + host, "-p", port, "+tries=1", "+time=2"}, args...)
	out, err := exec.CommandContext(ctx, path, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	return string(out)
}

func TestDigInterop(t *testing.T) {
	_, addr := start(t, bigZone())
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"www.umass.test", "A"}, []string{"status: NOERROR", "flags: qr aa rd;", "ANSWER: 3,", "www.umass.test.\t\t300\tIN\tA\t128.119.40.18"}},
		{[]string{"www.cs.umass.test", "A"}, []string{"status: NOERROR", "flags: qr rd;", "ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 2", ";; AUTHORITY SECTION:\ncs.umass.test.\t\t300\tIN\tNS\tdns.cs.umass.test.", ";; ADDITIONAL SECTION:", "dns.cs.umass.test.\t300\tIN\tA\t127.0.0.9"}},
		{[]string{"nope.umass.test", "A"}, []string{"status: NXDOMAIN", "flags: qr aa rd;", ";; AUTHORITY SECTION:\numass.test.\t\t60\tIN\tSOA\tdns.umass.test. admin.umass.test. 1 3600 600 86400 60"}},
		{[]string{"www.example.com", "A"}, []string{"status: REFUSED"}},
		// dig retries over TCP after TC, and +ignore keeps the truncated answer.
		{[]string{"+noedns", "big.umass.test", "A"}, []string{"Truncated, retrying in TCP mode", "ANSWER: 120,", "(TCP)"}},
		{[]string{"+noedns", "+ignore", "big.umass.test", "A"}, []string{"flags: qr aa tc rd;", "ANSWER: 0,", "(UDP)"}},
		{[]string{"+tcp", "umass.test", "MX"}, []string{"flags: qr aa rd;", "MX\t10 mail.umass.test.", "mail.umass.test.\t300\tIN\tA\t128.119.40.100"}},
		{[]string{"+bufsize=4096", "www.umass.test"}, []string{"; EDNS: version: 0, flags:; udp: 1232"}},
	} {
		out := digOut(t, addr, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("dig %s: no %q in\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
}

// TestDigAXFR: dig transfers the zone from a listed address and is
// refused from an unlisted one.
func TestDigAXFR(t *testing.T) {
	allowed := map[string][]netip.AddrPort{"umass.test.": {netip.MustParseAddrPort("127.0.0.1:53")}}
	s, addr := startWith(t, func(s *Server) { s.AllowTransfer = allowed }, testZone)
	out := digOut(t, addr, "umass.test", "AXFR")
	n := s.zone("umass.test.").Len() + 1
	for _, w := range []string{"umass.test.\t\t300\tIN\tSOA\tdns.umass.test. admin.umass.test. 1 3600 600 86400 60", "www.umass.test.\t\t300\tIN\tA\t128.119.40.187", fmt.Sprintf("XFR size: %d records", n)} {
		if !strings.Contains(out, w) {
			t.Errorf("dig AXFR: no %q in\n%s", w, out)
		}
	}
	_, addr2 := start(t, testZone)
	if out := digOut(t, addr2, "umass.test", "AXFR"); !strings.Contains(out, "Transfer failed") {
		t.Errorf("dig AXFR from an unlisted address:\n%s", out)
	}
}

// TestKnotSecondary: knotd, a secondary of our primary, transfers the
// zone, and after an UPDATE at our primary follows it on our NOTIFY.
func TestKnotSecondary(t *testing.T) {
	knotd := testnet.NeedTool(t, "knotd")
	port := dnstool.FreePort(t, []string{"127.0.56.1", "127.0.56.2"})
	primary, secondary := fmt.Sprintf("127.0.56.1:%d", port), fmt.Sprintf("127.0.56.2:%d", port)
	pc, err := ListenPacket(context.Background(), primary)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", primary)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	startOn(t, pc, ln, func(s *Server) {
		s.Keys = map[string]string{testKeyName: testSecret}
		s.AllowTransfer = map[string][]netip.AddrPort{"umass.test.": {netip.MustParseAddrPort(secondary)}}
	}, testZone)
	dir := t.TempDir()
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.56.2@%[2]d
database:
    storage: "%[1]s"
control:
    listen: "%[1]s/knot.sock"
log:
  - target: stderr
    any: info
remote:
  - id: appnet
    address: 127.0.56.1@%[2]d
    via: 127.0.56.2
acl:
  - id: notify-from-appnet
    address: 127.0.56.1
    action: notify
template:
  - id: default
    storage: "%[1]s"
zone:
  - domain: umass.test
    file: "%[1]s/umass.test.zone"
    master: appnet
    acl: notify-from-appnet
`, dir, port)
	confPath := filepath.Join(dir, "knot.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	dnstool.RunTool(t, dir, knotd, "-c", confPath)
	waitFor(t, secondary, "www.umass.test.", dns.TypeA, "knot's first transfer", func(r *dns.Msg) bool { return len(r.Answer) == 3 })
	if rc := sendUpdate(t, primary, "umass.test.", []string{"new.umass.test. 300 IN A 10.1.2.3"}); rc != dns.RcodeSuccess {
		t.Fatalf("UPDATE: %s", dns.RcodeToString[rc])
	}
	waitFor(t, secondary, "new.umass.test.", dns.TypeA, "knot following our NOTIFY", func(r *dns.Msg) bool { return len(r.Answer) == 1 })
}
