package smtp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"appnet/internal/testnet"
	"appnet/mail/queue"
)

// TestMain lets the test binary run as the server child of the kill -9
// tests: APPNET_SMTP_CHILD=DIR serves an MX on a free loopback port with
// the durable queue in DIR, prints the address, and runs until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("APPNET_SMTP_CHILD"); dir != "" {
		q, err := queue.Open(queue.Config{Dir: dir})
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		s := newServer(MX, q)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println("ADDR", ln.Addr())
		s.Serve(ln)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs the test binary as a server child on the queue in dir.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "APPNET_SMTP_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
}

var tokenRx = regexp.MustCompile(`token-\d+-\d+`)

// body is a 2 KiB message that names its token.
func body(tok string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: alice@crepes.fr\r\nSubject: %s\r\n\r\n", tok)
	for b.Len() < 2048 {
		fmt.Fprintf(&b, "%s line %d .\r\n", tok, b.Len())
	}
	return b.String()
}

// The server is killed (SIGKILL) while 200 messages are being submitted
// over 10 connections. After a restart every message that got 250 is in
// the queue exactly once, byte for byte; messages that did not get 250
// are there at most once.
func TestKill9DuringSubmission(t *testing.T) {
	dir := t.TempDir()
	cmd, addr := startChild(t, dir)
	var (
		mu       sync.Mutex
		accepted = map[string]string{}
		sent     atomic.Int32
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	kill := func() { killOnce.Do(func() { cmd.Process.Signal(syscall.SIGKILL) }) }
	for conn := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(c)
			code := func() int {
				for range 100 {
					l, err := r.ReadString('\n')
					if err != nil || len(l) < 4 {
						return 0
					}
					if l[3] == ' ' {
						var n int
						fmt.Sscanf(l[:3], "%d", &n)
						return n
					}
				}
				return 0
			}
			if code() != 220 {
				return
			}
			fmt.Fprintf(c, "EHLO client%d.test\r\n", conn)
			if code() != 250 {
				return
			}
			for i := range 20 {
				tok := fmt.Sprintf("token-%d-%d", conn, i)
				b := body(tok)
				fmt.Fprintf(c, "MAIL FROM:<alice@crepes.fr>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\n")
				for _, want := range []int{250, 250, 354} {
					if code() != want {
						return
					}
				}
				c.Write([]byte(b + ".\r\n"))
				if code() != 250 {
					return
				}
				mu.Lock()
				accepted[tok] = b
				n := len(accepted)
				mu.Unlock()
				sent.Add(1)
				if n == 70 {
					kill()
				}
			}
		}()
	}
	wg.Wait()
	kill()
	cmd.Wait()
	if len(accepted) >= 200 {
		t.Fatalf("all 200 accepted before the kill: the test did not interrupt anything")
	}

	q, err := queue.Open(queue.Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer q.Close()
	seen := map[string]int{}
	for _, in := range q.List() {
		data, err := q.Message(in.ID)
		if err != nil {
			t.Fatal(err)
		}
		tok := tokenRx.FindString(string(data))
		seen[tok]++
		if want, ok := accepted[tok]; ok && !bytes.HasSuffix(data, []byte(want)) {
			t.Errorf("%s: queued bytes differ from those sent", tok)
		}
		if !bytes.HasPrefix(data, []byte("Received: from client")) {
			t.Errorf("%s: no Received: header first", tok)
		}
	}
	for tok := range accepted {
		if seen[tok] != 1 {
			t.Errorf("%s got 250 but is queued %d times", tok, seen[tok])
		}
	}
	for tok, n := range seen {
		if n > 1 {
			t.Errorf("%s queued %d times", tok, n)
		}
	}
	t.Logf("accepted %d of 200 before the kill; %d in the queue after restart", len(accepted), len(seen))
}

// A full disk (a 1 MiB tmpfs) gets 452 4.3.1, and every message accepted
// before is still there, intact, after a restart.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		testnet.Missing(t, "the full-disk test needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		testnet.Missing(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	qdir := filepath.Join(dir, "q")
	q, err := queue.Open(queue.Config{Dir: qdir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	s := newServer(MX, q)
	addr := serve(t, s)
	c := dial(t, addr)
	c.expect(220)
	c.cmd("EHLO crepes.fr", 250)
	accepted := map[string]string{}
	full := false
	for i := 0; i < 100 && !full; i++ {
		tok := fmt.Sprintf("token-0-%d", i)
		b := body(tok) + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 600)
		c.cmd("MAIL FROM:<alice@crepes.fr>", 250)
		c.cmd("RCPT TO:<bob@hamburger.edu>", 250)
		c.cmd("DATA", 354)
		c.write(b + ".\r\n")
		code, text := c.reply()
		switch code {
		case 250:
			accepted[tok] = b
		case 452:
			if !strings.HasPrefix(text, "4.3.1") {
				t.Errorf("full disk: %d %s", code, text)
			}
			full = true
		default:
			t.Fatalf("reply %d %s", code, text)
		}
	}
	if !full {
		t.Fatal("never got 452 on a 1 MiB disk")
	}
	if len(accepted) == 0 {
		t.Fatal("nothing accepted before the disk filled")
	}
	c.cmd("QUIT", 221)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(ctx)
	q.Close()
	q2, err := queue.Open(queue.Config{Dir: qdir})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	q = q2
	list := q.List()
	if len(list) != len(accepted) {
		t.Fatalf("%d messages after restart, %d accepted", len(list), len(accepted))
	}
	for _, in := range list {
		data, _ := q.Message(in.ID)
		tok := tokenRx.FindString(string(data))
		if want, ok := accepted[tok]; !ok || !bytes.HasSuffix(data, []byte(want)) {
			t.Errorf("%s: lost or changed", tok)
		}
	}
	t.Logf("%d accepted before 452", len(accepted))
}
