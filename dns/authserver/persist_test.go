package authserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/zone"
)

// childEnv makes the test binary a server (runChild) instead of running
// tests: the zone file in AUTH_ZONE, served with Persist at AUTH_ADDR.
const childEnv = "APPNET_AUTHSERVER_CHILD"

// runChild serves AUTH_ZONE at AUTH_ADDR with UPDATEs persisted, prints
// "ready", and serves until SIGTERM (or SIGKILL).
func runChild() {
	z, err := zone.Load(os.Getenv("AUTH_ZONE"), "")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	set, _ := zone.NewSet(z)
	s := New(set)
	s.Persist = true
	s.Keys = map[string]string{testKeyName: testSecret}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(os.Getenv("AUTH_ADDR")) }()
	time.Sleep(50 * time.Millisecond)
	fmt.Println("ready")
	select {
	case <-ctx.Done():
		s.Shutdown(context.Background())
	case err := <-errc:
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

// startChild runs the test binary as a server and waits for its "ready".
func startChild(t *testing.T, zoneFile, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "AUTH_ZONE="+zoneFile, "AUTH_ADDR="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child: %q", line)
	}
	return cmd
}

// TestUpdateSurvivesKill: an UPDATE acknowledged with NOERROR is in the
// zone file before the answer leaves, so a server killed with SIGKILL
// right after serves it again when it starts (and a reload, which reads
// the same file, keeps it).
func TestUpdateSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "umass.test.zone")
	if err := os.WriteFile(file, []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	pc, ln := listenBoth(t)
	addr := pc.LocalAddr().String()
	pc.Close()
	ln.Close()
	child := startChild(t, file, addr)
	waitFor(t, addr, "umass.test.", dns.TypeSOA, "the child serving", func(r *dns.Msg) bool { return len(r.Answer) == 1 })
	if rc := sendUpdate(t, addr, "umass.test.", []string{"new.umass.test. 300 IN A 10.1.2.3", "new.umass.test. 300 IN TXT \"kept\""}); rc != dns.RcodeSuccess {
		t.Fatalf("UPDATE: %s", dns.RcodeToString[rc])
	}
	child.Process.Signal(syscall.SIGKILL) // no chance to save anything more
	child.Wait()
	startChild(t, file, addr)
	r := waitFor(t, addr, "new.umass.test.", dns.TypeA, "the update after the restart", func(r *dns.Msg) bool { return len(r.Answer) == 1 })
	if r.Answer[0].(*dns.A).A.String() != "10.1.2.3" {
		t.Errorf("after kill -9: %v", r.Answer)
	}
	soa := waitFor(t, addr, "umass.test.", dns.TypeSOA, "the SOA", func(r *dns.Msg) bool { return len(r.Answer) == 1 })
	if got := soa.Answer[0].(*dns.SOA).Serial; got != 2 {
		t.Errorf("serial after the restart %d, want 2", got)
	}
	// What SIGHUP reloads is this file: it parses and holds the update.
	z, err := zone.Load(file, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(z.RRset("new.umass.test.", dns.TypeTXT)) != 1 || len(z.RRset("www.umass.test.", dns.TypeA)) != 3 {
		t.Errorf("reloaded zone: %v", z.Records())
	}
}
