package queue

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// staticResolver sends every domain's mail to one address.
type staticResolver struct{ ip netip.Addr }

func (r staticResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return []*net.MX{{Host: "mx." + name + ".", Pref: 10}}, nil
}

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{r.ip}, nil
}

const killConcurrency = 4

// TestMain lets the test binary run as a delivery agent child:
// APPNET_QUEUE_CHILD=DIR delivers DIR's queue to 127.0.0.9 on
// APPNET_QUEUE_PORT until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("APPNET_QUEUE_CHILD"); dir != "" {
		port, _ := strconv.Atoi(os.Getenv("APPNET_QUEUE_PORT"))
		q, err := Open(Config{Dir: dir})
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		a := NewAgent(q, AgentConfig{Hostname: "child.test", Resolver: staticResolver{netip.MustParseAddr("127.0.0.9")},
			Port: port, NoSTARTTLS: true, Concurrency: killConcurrency})
		fmt.Println("READY")
		a.Run(context.Background())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var tokRx = regexp.MustCompile(`tok-\d+`)

// A delivery agent killed (SIGKILL) in the middle of delivering loses
// nothing: after a restart every message reaches the remote server. A
// message is delivered twice only if the remote had taken it before the
// restart (its 250 was not yet recorded: the window SMTP cannot close),
// so at most one per delivery under way.
func TestKill9DuringDelivery(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	const n = 100
	for i := range n {
		msg := fmt.Sprintf("Subject: tok-%d\r\n\r\ntok-%d\r\n", i, i)
		if err := q.Enqueue(context.Background(), q.NewID(), "alice@local.test", []string{"bob@remote.test"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	port := freePort(t)
	s := startSink(t, "127.0.0.9:"+strconv.Itoa(port))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "APPNET_QUEUE_CHILD="+dir, "APPNET_QUEUE_PORT="+strconv.Itoa(port))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if l, _ := bufio.NewReader(out).ReadString('\n'); !strings.HasPrefix(l, "READY") {
		t.Fatalf("child: %q", l)
	}
	waitFor(t, "some deliveries", func() bool { return len(s.got()) >= 30 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before := map[string]int{}
	for _, m := range s.got() {
		before[tokRx.FindString(string(m.data))]++
	}
	if len(before) >= n {
		t.Fatal("everything was delivered before the kill: nothing was interrupted")
	}

	e := &env{}
	e.q = openQ(t, dir, 0)
	a := NewAgent(e.q, AgentConfig{Hostname: "parent.test", Resolver: staticResolver{netip.MustParseAddr("127.0.0.9")},
		Port: port, NoSTARTTLS: true, Concurrency: killConcurrency})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; e.q.Close() }()
	waitFor(t, "the queue to empty", func() bool { return e.q.Len() == 0 })

	count := map[string]int{}
	for _, m := range s.got() {
		count[tokRx.FindString(string(m.data))]++
	}
	dups := 0
	for i := range n {
		tok := fmt.Sprintf("tok-%d", i)
		switch c := count[tok]; {
		case c == 0:
			t.Errorf("%s lost", tok)
		case c > 2 || c == 2 && before[tok] != 1:
			t.Errorf("%s delivered %d times (%d before the restart)", tok, c, before[tok])
		case c == 2:
			dups++
		}
	}
	if dups > killConcurrency {
		t.Errorf("%d duplicates, more than the %d deliveries that can be under way", dups, killConcurrency)
	}
	t.Logf("%d delivered before the kill, %d duplicates after restart", len(before), dups)
	_ = time.Second
}
