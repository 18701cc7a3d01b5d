// Package dnstool runs real DNS programs for tests and benchmarks (knotd,
// unbound, dnsperf) and finds ports free on several loopback addresses.
// It imports none of appnet's DNS packages, so their own tests may use it.
package dnstool

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
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

// Alternate measures two servers (ours, then theirs, then ours...) with
// dnsperf for Rounds rounds of RoundSeconds each and returns the best
// queries/s of each: on a machine shared with other work, the best of
// alternating runs compares the servers more fairly than one run each.
func Alternate(t testing.TB, path, dir, ours, theirs string, port int, queries string) (float64, float64) {
	t.Helper()
	var a, b float64
	for range Rounds {
		a = max(a, Dnsperf(t, path, dir, ours, port, RoundSeconds, queries))
		b = max(b, Dnsperf(t, path, dir, theirs, port, RoundSeconds, queries))
	}
	return a, b
}

// Rounds and RoundSeconds shape Alternate.
var (
	Rounds       = 3
	RoundSeconds = 2
)
