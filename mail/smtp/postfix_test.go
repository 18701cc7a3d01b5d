package smtp

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

	"appnet/internal/testnet"
	"appnet/mail/queue"
)

const postfixMaster = "/usr/lib/postfix/sbin/master"

// startPostfix runs a private Postfix (master, smtpd, cleanup, qmgr and
// the smtp client) on 127.0.0.1 at a free port, relaying everything to
// relay (host:port). It is stopped by its PID when the test ends. It
// returns its SMTP address.
func startPostfix(t *testing.T, relay string) string {
	t.Helper()
	testnet.NeedTool(t, "postfix")
	if _, err := os.Stat(postfixMaster); err != nil || os.Geteuid() != 0 {
		testnet.Missing(t, "a private Postfix needs %s and root", postfixMaster)
	}
	// Postfix's daemons run as the postfix user: the directory must be
	// reachable by it (t.TempDir's parent is private).
	dir, err := os.MkdirTemp("", "postfix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	etc, spool, data := filepath.Join(dir, "etc"), filepath.Join(dir, "spool"), filepath.Join(dir, "data")
	for _, d := range []string{etc, data} {
		os.MkdirAll(d, 0o755)
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
relayhost = [%s]:%s
smtp_dns_support_level = disabled
smtp_tls_security_level = none
maillog_file = /dev/stdout
`, spool, data, strings.Split(relay, ":")[0], strings.Split(relay, ":")[1])
	master := addr + ` inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
rewrite unix - - n - - trivial-rewrite
qmgr unix n - n 300 1 qmgr
smtp unix - - n - - smtp
relay unix - - n - - smtp
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
error unix - - n - - error
retry unix - - n - - error
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
proxymap unix - - n - - proxymap
postlog unix-dgram n - n - 1 postlogd
`
	os.WriteFile(filepath.Join(etc, "main.cf"), []byte(main), 0o644)
	os.WriteFile(filepath.Join(etc, "master.cf"), []byte(master), 0o644)
	for _, d := range []string{"incoming", "active", "deferred", "defer", "bounce", "hold", "corrupt", "maildrop", "saved", "flush", "trace", "public", "private", "pid"} {
		p := filepath.Join(spool, d)
		os.MkdirAll(p, 0o700)
		if d != "pid" {
			exec.Command("chown", "postfix", p).Run()
		}
	}
	exec.Command("chown", "postfix", data).Run()
	os.Chmod(filepath.Join(spool, "public"), 0o710)
	exec.Command("chgrp", "postdrop", filepath.Join(spool, "public"), filepath.Join(spool, "maildrop")).Run()
	os.Chmod(filepath.Join(spool, "maildrop"), 0o730)
	os.Chmod(spool, 0o755)
	// -s: log to stdout (maillog_file); -d: stay in the foreground, so
	// the PID is the master's; -e: gone after 5 minutes whatever happens.
	cmd := exec.Command(postfixMaster, "-c", etc, "-s", "-d", "-e", "300")
	logf, _ := os.Create(filepath.Join(dir, "maillog"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix log:\n%s", b)
		}
	})
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "maillog"))
	t.Fatalf("postfix did not start:\n%s", b)
	return ""
}

// Postfix delivers to our MX: messages sent into a private Postfix
// (by its smtp-source) are relayed by its queue manager and smtp client
// to our server, which queues them.
func TestPostfixDeliversToOurMX(t *testing.T) {
	src := testnet.NeedTool(t, "smtp-source")
	q, err := queue.Open(queue.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ours := serve(t, newServer(MX, q))
	pf := startPostfix(t, ours)
	out, err := exec.Command(src, "-m", "10", "-s", "2", "-l", "1024", "-f", "alice@crepes.fr", "-t", "bob@hamburger.edu", pf).CombinedOutput()
	if err != nil {
		t.Fatalf("smtp-source into postfix: %v\n%s", err, out)
	}
	for i := 0; i < 1000 && q.Len() < 10; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	list := q.List()
	if len(list) != 10 {
		t.Fatalf("%d messages reached our MX through Postfix, want 10", len(list))
	}
	for _, in := range list {
		b, _ := q.Message(in.ID)
		if in.From != "alice@crepes.fr" || in.Rcpts[0].Addr != "bob@hamburger.edu" ||
			!strings.HasPrefix(string(b), "Received: from postfix.test (unknown [127.0.0.1])") ||
			!strings.Contains(string(b), "by postfix.test (Postfix)") {
			t.Errorf("message %s from %s: %.300q", in.ID, in.From, b)
		}
	}
}
