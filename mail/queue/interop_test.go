package queue

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// Our queue delivers to Postfix's smtp-sink as a remote MX: every
// message arrives, over persistent connections.
func TestDeliverToPostfixSmtpSink(t *testing.T) {
	sinkBin := testnet.NeedTool(t, "smtp-sink")
	// smtp-sink drops to nobody before it writes the dump: a directory it
	// can reach (t.TempDir's parent is private).
	dir, err := os.MkdirTemp("", "smtpsink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	dump := filepath.Join(dir, "dump")
	port := freePort(t)
	args := []string{"-D", dump, "-h", "sink.test", "127.0.0.11:" + strconv.Itoa(port), "64"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(sinkBin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "smtp-sink to listen", func() bool {
		c, err := (&netDialer{}).dial("127.0.0.11:" + strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	q := openQ(t, t.TempDir(), 0)
	a := NewAgent(q, AgentConfig{Hostname: "crepes.test", Resolver: staticResolver{netip.MustParseAddr("127.0.0.11")}, Port: port, Concurrency: 4})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; q.Close() }()
	const n = 50
	for i := range n {
		msg := fmt.Sprintf("From: alice@crepes.test\r\nSubject: sink-%d\r\n\r\n.dot-stuffed line %d\r\n", i, i)
		if err := q.Enqueue(ctx, q.NewID(), "alice@crepes.test", []string{"bob@hamburger.test"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the queue to empty", func() bool { return q.Len() == 0 })
	cancel()
	<-done
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	for i := range n {
		if !strings.Contains(d, fmt.Sprintf("Subject: sink-%d\r\n", i)) && !strings.Contains(d, fmt.Sprintf("Subject: sink-%d\n", i)) {
			t.Errorf("sink-%d not received", i)
		}
		if !strings.Contains(d, fmt.Sprintf(".dot-stuffed line %d", i)) || strings.Contains(d, fmt.Sprintf("..dot-stuffed line %d", i)) {
			t.Errorf("sink-%d: dot transparency broken", i)
		}
	}
	if c := strings.Count(d, "X-Mail-Args: <alice@crepes.test>"); c != n {
		t.Errorf("%d transactions at the sink, want %d", c, n)
	}
}

type netDialer struct{}

func (netDialer) dial(addr string) (interface{ Close() error }, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}
