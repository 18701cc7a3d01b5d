package smtp

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"appnet/internal/connlimit"
	"appnet/internal/testnet"
	"appnet/mail/queue"
)

func needSwaksTLS(t *testing.T) string {
	swaks := testnet.NeedTool(t, "swaks")
	out, _ := exec.Command(swaks, "--support").CombinedOutput()
	if !strings.Contains(string(out), "=== TLS supported") {
		testnet.Missing(t, "swaks has no TLS support here (libnet-ssleay-perl is missing):\n%s", out)
	}
	return swaks
}

// swaks submits with STARTTLS and AUTH (PLAIN and LOGIN) to a foreign
// domain, and sends to our MX; it cannot relay through the MX.
func TestSwaksInterop(t *testing.T) {
	swaks := needSwaksTLS(t)
	spool := &memSpool{}
	sub := newServer(Submission, spool)
	sub.TLSConfig = selfSigned(t)
	subAddr := serve(t, sub)
	mxAddr := serve(t, newServer(MX, spool))

	for _, mech := range []string{"PLAIN", "LOGIN"} {
		out, err := exec.Command(swaks, "--server", subAddr, "--tls", "--auth", mech, "--auth-user", "alice", "--auth-password", "secret",
			"--from", "alice@hamburger.edu", "--to", "zoe@elsewhere.test", "--header", "Subject: swaks "+mech, "--body", "hello from swaks").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks submission (%s): %v\n%s", mech, err, out)
		}
	}
	out, err := exec.Command(swaks, "--server", mxAddr, "--from", "carol@crepes.fr", "--to", "bob@hamburger.edu",
		"--header", "Subject: swaks mx", "--body", "to the mx").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks to MX: %v\n%s", err, out)
	}
	out, err = exec.Command(swaks, "--server", mxAddr, "--from", "carol@crepes.fr", "--to", "zoe@elsewhere.test").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "554 5.7.1") {
		t.Fatalf("swaks relayed through the MX: %v\n%s", err, out)
	}
	m := spool.all()
	if len(m) != 3 {
		t.Fatalf("%d queued, want 3", len(m))
	}
	for i, want := range []string{"Subject: swaks PLAIN", "Subject: swaks LOGIN", "Subject: swaks mx"} {
		d := string(m[i].data)
		if !strings.Contains(d, want) {
			t.Errorf("message %d lacks %q", i, want)
		}
		if i < 2 && !strings.Contains(d, "with ESMTPSA") || i == 2 && !strings.Contains(d, "with ESMTP id") {
			t.Errorf("message %d Received: %s", i, d[:strings.Index(d, "\r\n\r\n")])
		}
	}
}

func python(t *testing.T) string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return testnet.NeedTool(t, "python3")
}

// Python's smtplib submits (STARTTLS, login) and sends to the MX.
func TestPythonSmtplibInterop(t *testing.T) {
	py := python(t)
	spool := &memSpool{}
	sub := newServer(Submission, spool)
	sub.TLSConfig = selfSigned(t)
	subAddr := serve(t, sub)
	mxAddr := serve(t, newServer(MX, spool))
	script := `
import smtplib, ssl, sys
from email.message import EmailMessage
sh, sp = sys.argv[1].rsplit(":", 1)
mh, mp = sys.argv[2].rsplit(":", 1)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = EmailMessage()
m["From"] = "alice@hamburger.edu"
m["To"] = "zoe@elsewhere.test"
m["Subject"] = "smtplib submission"
m.set_content("héllo from python\n")
with smtplib.SMTP(sh, int(sp)) as s:
    s.starttls(context=ctx)
    s.login("alice", "secret")
    s.send_message(m)
m2 = EmailMessage()
m2["From"] = "carol@crepes.fr"
m2["To"] = "bob@hamburger.edu"
m2["Subject"] = "smtplib mx"
m2.set_content("to the mx\n")
with smtplib.SMTP(mh, int(mp)) as s:
    s.send_message(m2)
    try:
        s.sendmail("carol@crepes.fr", ["zoe@elsewhere.test"], "Subject: relay\r\n\r\nno\r\n")
        print("RELAYED")
    except smtplib.SMTPRecipientsRefused as e:
        print("REFUSED", e.recipients["zoe@elsewhere.test"][0])
`
	out, err := exec.Command(py, "-c", script, subAddr, mxAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "REFUSED 554") {
		t.Errorf("relay attempt: %s", out)
	}
	m := spool.all()
	if len(m) != 2 || !strings.Contains(string(m[0].data), "Subject: smtplib submission") || !strings.Contains(string(m[1].data), "Subject: smtplib mx") {
		t.Fatalf("queued %d: %+v", len(m), m)
	}
	if m[0].rcpts[0] != "zoe@elsewhere.test" || !strings.Contains(string(m[0].data), "with ESMTPSA") {
		t.Errorf("submission %q", m[0].data)
	}
}

// Postfix's smtp-source sends to our MX (20 sessions, with and without a
// new connection per message); every message is in the queue.
func TestPostfixSmtpSourceInterop(t *testing.T) {
	src := testnet.NeedTool(t, "smtp-source")
	q, err := queue.Open(queue.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s := newServer(MX, q)
	s.Limits = connlimit.New(1000, 100)
	addr := serve(t, s)
	for _, mode := range [][]string{{}, {"-d"}} {
		before := q.Len()
		args := append([]string{"-s", "20", "-m", "100", "-l", "2048", "-f", "alice@crepes.fr", "-t", "bob@hamburger.edu"}, mode...)
		out, err := exec.Command(src, append(args, addr)...).CombinedOutput()
		if err != nil {
			t.Fatalf("smtp-source %v: %v\n%s", mode, err, out)
		}
		if n := q.Len() - before; n != 100 {
			t.Errorf("smtp-source %v: %d queued, want 100\n%s", mode, n, out)
		}
	}
}
