// Package dnstest starts small DNS hierarchies for tests: authoritative
// servers at several loopback addresses sharing one port, as the lab and
// the resolver's --server-port expect.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/authserver"
	"appnet/dns/zone"
)

// FreePort returns a port free for UDP and TCP on every address.
func FreePort(t testing.TB, addrs []string) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", addrs[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		ok := true
		for _, a := range addrs {
			hp := net.JoinHostPort(a, fmt.Sprint(port))
			if c, err := net.ListenPacket("udp", hp); err == nil {
				c.Close()
			} else {
				ok = false
			}
			if c, err := net.Listen("tcp", hp); err == nil {
				c.Close()
			} else {
				ok = false
			}
		}
		if ok {
			return port
		}
	}
	t.Fatal("dnstest: no port free on every address")
	return 0
}

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
	pc, err := net.ListenPacket("udp", addr)
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

// RunTool starts a real server program and stops it (SIGTERM, then
// SIGKILL after 5s) when the test ends; its output goes to a file in dir,
// shown when the test failed.
func RunTool(t testing.TB, dir, path string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(path)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s output:\n%s", filepath.Base(path), b)
		}
	})
}

// WaitAnswer asks addr until it answers other than SERVFAIL (at most 100
// tries, 100ms apart), as a readiness probe.
func WaitAnswer(t testing.TB, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	var lastErr error
	for range 100 {
		r, _, err := c.Exchange(m, addr)
		if err == nil && r.Rcode != dns.RcodeServerFailure {
			return r
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dnstest: %s never answered %s: %v", addr, name, lastErr)
	return nil
}

// KnotConf is a knotd configuration serving zone (origin, file) at
// addr@port, with its state in dir.
func KnotConf(dir, addr string, port int, origin, file string) string {
	return fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: %[2]s@%[3]d
database:
    storage: "%[1]s"
control:
    listen: "%[1]s/knot.sock"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "%[1]s"
    semantic-checks: off
zone:
  - domain: %[4]s
    file: "%[5]s"
`, dir, addr, port, origin, file)
}

// Dnsperf runs dnsperf against addr:port for seconds with the queries
// ("name type" lines) and returns the queries per second it reports.
func Dnsperf(t testing.TB, path, dir, addr string, port, seconds int, queries string) float64 {
	t.Helper()
	qf := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qf, []byte(queries), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "-s", addr, "-p", fmt.Sprint(port), "-d", qf, "-l", fmt.Sprint(seconds), "-c", "4", "-q", "200").CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "Queries" && f[1] == "per" && f[2] == "second:" {
			var qps float64
			fmt.Sscan(f[3], &qps)
			if !strings.Contains(string(out), "Queries lost:         0 (") {
				t.Logf("dnsperf against %s lost queries:\n%s", addr, out)
			}
			return qps
		}
	}
	t.Fatalf("dnsperf: no rate in\n%s", out)
	return 0
}
