package authserver

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

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
