package smtp

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// Submission with an independent client (go-smtp's): STARTTLS, then
// AUTH, then mail to a foreign domain; the server adds Date and
// Message-ID, and the Received: line says ESMTPSA.
func TestSubmissionSTARTTLSAndAuth(t *testing.T) {
	spool := &memSpool{}
	s := newServer(Submission, spool)
	s.TLSConfig = selfSigned(t)
	addr := serve(t, s)

	c, err := gosmtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
		t.Fatalf("AUTH after STARTTLS: %v %q", ok, mechs)
	}
	err = c.Auth(sasl.NewPlainClient("", "alice", "nope"))
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("bad password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	msg := "From: alice@hamburger.edu\r\nTo: zoe@elsewhere.test\r\nSubject: hi\r\n\r\nhello\r\n"
	if err := c.SendMail("alice@hamburger.edu", []string{"zoe@elsewhere.test"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	c.Quit()
	m := spool.all()
	if len(m) != 1 || m[0].rcpts[0] != "zoe@elsewhere.test" {
		t.Fatalf("queued %+v", m)
	}
	d := string(m[0].data)
	if !strings.Contains(d, " with ESMTPSA id ") || !strings.Contains(d, "\r\nDate: ") || !strings.Contains(d, "\r\nMessage-ID: <") ||
		!strings.HasSuffix(d, msg) {
		t.Errorf("message as queued:\n%s", d)
	}
}

// Submission refuses MAIL before AUTH, and AUTH before STARTTLS; AUTH
// LOGIN works too.
func TestSubmissionRules(t *testing.T) {
	spool := &memSpool{}
	s := newServer(Submission, spool)
	s.TLSConfig = selfSigned(t)
	addr := serve(t, s)
	c := dial(t, addr)
	c.expect(220)
	text := c.cmd("EHLO crepes.fr", 250)
	_ = text
	c.cmd("MAIL FROM:<alice@hamburger.edu>", 530)
	c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 530)
	c.cmd("QUIT", 221)

	// Without TLS configured, loopback with AllowInsecureAuth may AUTH.
	s2 := newServer(Submission, spool)
	s2.AllowInsecureAuth = true
	c2 := dial(t, serve(t, s2))
	c2.expect(220)
	c2.cmd("EHLO crepes.fr", 250)
	c2.cmd("AUTH LOGIN", 334)
	c2.cmd("YWxpY2U=", 334)
	c2.cmd("c2VjcmV0", 235)
	c2.cmd("MAIL FROM:<alice@hamburger.edu>", 250)
	c2.cmd("RCPT TO:<zoe@elsewhere.test>", 250)
	c2.cmd("DATA", 354)
	c2.write("Message-ID: <given@x>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\nbody\r\n")
	c2.cmd(".", 250)
	m := spool.all()
	if len(m) != 1 {
		t.Fatalf("%d queued", len(m))
	}
	if n := bytes.Count(m[0].data, []byte("Message-ID:")); n != 1 {
		t.Errorf("%d Message-ID fields, want the client's only", n)
	}
	if !bytes.Contains(m[0].data, []byte(" with ESMTPA id ")) {
		t.Errorf("message:\n%s", m[0].data)
	}
}
