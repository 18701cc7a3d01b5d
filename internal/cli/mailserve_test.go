package cli

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/mail/queue"
	"appnet/mail/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// mail serve takes the course's session and delivers it to Bob's INBOX
// in the mailbox store; mail queue lists, flushes and deletes through the
// control socket.
func TestMailServeAndQueue(t *testing.T) {
	dir := t.TempDir()
	qdir := filepath.Join(dir, "q")
	dsn := "sqlite:" + filepath.Join(dir, "mailboxes.db")
	st, err := store.Open(context.Background(), dsn, store.Options{WeakPasswordHash: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddUser(context.Background(), "bob", "hungry"); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"mail", "serve", "--domain", "hamburger.edu", "--mx", addr, "--queue", qdir,
			"--hostname", "hamburger.edu", "--resolver", "127.0.0.1:1", "--min-backoff", "1h", "--store", dsn}, &out, &errb)
	}()
	defer func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("serve exited %d: %s", code, errb.String())
		}
	}()
	var c net.Conn
	for i := 0; i < 500; i++ {
		var err error
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c == nil {
		t.Fatalf("server did not start: %s", errb.String())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var codes []string
	for _, line := range []string{"", "HELO crepes.fr", "MAIL FROM: <alice@crepes.fr>", "RCPT TO: <bob@hamburger.edu>", "DATA",
		"Do you like ketchup?\r\nHow about pickles?\r\n.", "QUIT"} {
		if line != "" {
			fmt.Fprintf(c, "%s\r\n", line)
		}
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, l[:3])
	}
	if got := strings.Join(codes, " "); got != "220 250 250 250 354 250 221" {
		t.Fatalf("codes %s", got)
	}
	// A user the store does not have is refused at RCPT.
	if got := rcptCode(t, addr, "nobody@hamburger.edu"); got != "550" {
		t.Errorf("RCPT TO an unknown user: %s, want 550", got)
	}
	var inbox []byte
	for i := 0; i < 500 && inbox == nil; i++ {
		inbox = firstMessage(t, st, "bob")
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasSuffix(string(inbox), "Do you like ketchup?\r\nHow about pickles?\r\n") || !strings.HasPrefix(string(inbox), "Received: from crepes.fr") {
		t.Errorf("Bob's INBOX holds %q", inbox)
	}

	// The delivered message has left the queue; the control socket says so.
	rep, err := queue.Control(context.Background(), qdir, queue.ControlRequest{Op: "list"})
	if err != nil || !rep.Running || len(rep.List) != 0 {
		t.Fatalf("list: %+v %v", rep, err)
	}
	code, stdout, stderr := run(t, "mail", "queue", "list", "--queue", qdir)
	if code != ExitOK || !strings.Contains(stdout, "mail queue is empty") {
		t.Fatalf("list: %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = run(t, "mail", "queue", "flush", "--queue", qdir)
	if code != ExitOK || !strings.Contains(stdout, "0 messages scheduled") {
		t.Errorf("flush: %d %q", code, stdout)
	}
	code, stdout, _ = run(t, "mail", "queue", "delete", "--queue", qdir, "NOSUCHID")
	if code != ExitOK || !strings.Contains(stdout, "0 messages deleted") {
		t.Errorf("delete: %d %q", code, stdout)
	}
}

// With no server running, mail queue works on the directory itself.
func TestMailQueueOffline(t *testing.T) {
	qdir := t.TempDir()
	q, err := queue.Open(queue.Config{Dir: qdir})
	if err != nil {
		t.Fatal(err)
	}
	id := q.NewID()
	if err := q.Enqueue(context.Background(), id, "alice@crepes.fr", []string{"bob@far.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	q.Close()
	code, stdout, _ := run(t, "mail", "queue", "list", "--queue", qdir)
	if code != ExitOK || !strings.Contains(stdout, id) || !strings.Contains(stdout, "bob@far.test") || !strings.Contains(stdout, "alice@crepes.fr") {
		t.Fatalf("list: %d %q", code, stdout)
	}
	code, stdout, _ = run(t, "mail", "queue", "delete", "--queue", qdir, id)
	if code != ExitOK || !strings.Contains(stdout, "1 messages deleted") {
		t.Fatalf("delete: %d %q", code, stdout)
	}
	code, stdout, _ = run(t, "mail", "queue", "list", "--queue", qdir)
	if code != ExitOK || !strings.Contains(stdout, "empty") {
		t.Fatalf("list after delete: %d %q", code, stdout)
	}
}

// rcptCode returns the server's reply code to RCPT TO:<rcpt>.
func rcptCode(t *testing.T, addr, rcpt string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var last string
	for _, line := range []string{"", "HELO crepes.fr", "MAIL FROM:<alice@crepes.fr>", "RCPT TO:<" + rcpt + ">"} {
		if line != "" {
			fmt.Fprintf(c, "%s\r\n", line)
		}
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		last = l
	}
	return last[:3]
}

// firstMessage returns the first message in user's INBOX, or nil.
func firstMessage(t *testing.T, st store.Backend, user string) []byte {
	t.Helper()
	msgs, err := store.ReadMailbox(context.Background(), st, user, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0].Body
}
