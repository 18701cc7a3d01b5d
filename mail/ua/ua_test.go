package ua

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"appnet/internal/testnet"
	"appnet/mail/message"
	"appnet/trace"
)

// received is what the test server got in one transaction.
type received struct {
	user, pass string
	from       string
	to         []string
	data       []byte
}

type backend struct {
	mu    sync.Mutex
	got   []received
	deny  string   // a recipient refused with 550
	mechs []string // SASL mechanisms offered; nil: PLAIN
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b   *backend
	cur received
}

func (s *session) AuthMechanisms() []string {
	if s.b.mechs != nil {
		return s.b.mechs
	}
	return []string{sasl.Plain}
}

func (s *session) check(user, pass string) error {
	if user != "alice" || pass != "wonder land" {
		return smtp.ErrAuthFailed
	}
	s.cur.user, s.cur.pass = user, pass
	return nil
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech == sasl.Login {
		return &loginServer{check: s.check}, nil
	}
	return sasl.NewPlainServer(func(_, user, pass string) error { return s.check(user, pass) }), nil
}

// loginServer is the server side of SASL LOGIN (draft-murchison-sasl-login),
// which go-sasl has only as a client: "Username:", "Password:", with the
// user name possibly given as the initial response.
type loginServer struct {
	check func(user, pass string) error
	user  *string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case l.user == nil && resp == nil:
		l.user = new(string)
		return []byte("Username:"), false, nil
	case l.user == nil || *l.user == "":
		u := string(resp)
		l.user = &u
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(*l.user, string(resp))
	}
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.b.deny {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.b.mu.Lock()
	s.b.got = append(s.b.got, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{user: s.cur.user, pass: s.cur.pass} }
func (s *session) Logout() error { return nil }

// startServer runs a go-smtp server on loopback: with STARTTLS when tlsOn,
// AUTH PLAIN only after TLS.
func startServer(t *testing.T, tlsOn bool) (*backend, string, *x509.CertPool) {
	t.Helper()
	be := &backend{}
	s := smtp.NewServer(be)
	s.Domain = "hamburger.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.MaxMessageBytes = 1 << 20
	s.ErrorLog = log.New(io.Discard, "", 0)
	var pool *x509.CertPool
	if tlsOn {
		s.TLSConfig, pool = testnet.TLS(t, "mail.hamburger.test")
	}
	addr := testnet.Serve(t, s, testnet.ListenTCP(t), nil) // go-smtp's Serve returns nil after Shutdown
	return be, addr, pool
}

func compose(t *testing.T) ([]byte, Envelope) {
	t.Helper()
	dir := t.TempDir()
	att := filepath.Join(dir, "photo.png")
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, 0xfe}, 300)...)
	if err := os.WriteFile(att, png, 0o644); err != nil {
		t.Fatal(err)
	}
	msg, env, err := Build(&Compose{
		From:    "Alice <alice@crepes.test>",
		To:      []string{"Bob <bob@hamburger.test>"},
		Cc:      []string{"carol@hamburger.test, Zoë Çelik <zoe@hamburger.test>"},
		Bcc:     []string{"eve@hamburger.test"},
		Subject: "Do you like ketchup?",
		Text:    "How about pickles?\n.\n..\n",
		Attach:  []string{att},
		Date:    time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	return msg, env
}

// TestSubmitSTARTTLSAuth submits over STARTTLS with AUTH PLAIN to a server
// that checks the password, and compares what the server received with
// what was built: the exact bytes, and an envelope with the Bcc recipient
// that no header names.
func TestSubmitSTARTTLSAuth(t *testing.T) {
	be, addr, pool := startServer(t, true)
	msg, env := compose(t)
	s := &Submitter{Addr: addr, LocalName: "crepes.test", TLSConfig: &tls.Config{RootCAs: pool}, Username: "alice", Password: "wonder land", Timeout: 10 * time.Second}
	reply, err := s.Send(context.Background(), env, msg)
	if err != nil {
		t.Fatal(err)
	}
	if reply == "" {
		t.Error("no reply text")
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.got) != 1 {
		t.Fatalf("%d messages received", len(be.got))
	}
	g := be.got[0]
	if g.user != "alice" || g.from != "alice@crepes.test" {
		t.Errorf("user %q from %q", g.user, g.from)
	}
	want := []string{"bob@hamburger.test", "carol@hamburger.test", "zoe@hamburger.test", "eve@hamburger.test"}
	if strings.Join(g.to, " ") != strings.Join(want, " ") {
		t.Errorf("RCPT %v, want %v", g.to, want)
	}
	if !bytes.Equal(g.data, msg) {
		t.Errorf("received %d bytes differ from the %d built", len(g.data), len(msg))
	}
	if bytes.Contains(g.data, []byte("eve@")) || message.HasField(g.data, "Bcc") {
		t.Error("the Bcc recipient is in the message")
	}
	root := message.Parse(g.data)
	if len(root.Parts) != 2 || root.Parts[1].MediaType != "image/png" || root.Parts[1].Filename != "photo.png" {
		t.Errorf("received tree: %d parts", len(root.Parts))
	}
}

func TestSubmitRefusals(t *testing.T) {
	msg, env := compose(t)
	ctx := context.Background()

	// A server without STARTTLS: refused unless Insecure; a password goes
	// in clear only to loopback.
	be, addr, _ := startServer(t, false)
	if _, err := (&Submitter{Addr: addr, Timeout: 10 * time.Second}).Send(ctx, env, msg); !errors.Is(err, ErrNoTLS) {
		t.Errorf("no STARTTLS: %v, want ErrNoTLS", err)
	}
	if _, err := (&Submitter{Addr: addr, Insecure: true, Timeout: 10 * time.Second}).Send(ctx, env, msg); err != nil {
		t.Errorf("insecure: %v", err)
	}
	be.mu.Lock()
	n := len(be.got)
	be.mu.Unlock()
	if n != 1 {
		t.Errorf("%d messages after one refused and one insecure submission", n)
	}

	// A wrong password, and a refused recipient, send nothing.
	be, addr, pool := startServer(t, true)
	s := &Submitter{Addr: addr, TLSConfig: &tls.Config{RootCAs: pool}, Username: "alice", Password: "guess", Timeout: 10 * time.Second}
	var se *smtp.SMTPError
	if _, err := s.Send(ctx, env, msg); !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("wrong password: %v", err)
	}
	be.deny = "carol@hamburger.test"
	s.Password = "wonder land"
	if _, err := s.Send(ctx, env, msg); !errors.As(err, &se) || se.Code != 550 || !strings.Contains(err.Error(), "carol@") {
		t.Errorf("refused recipient: %v", err)
	}
	// A certificate nobody vouches for is refused.
	s.TLSConfig = nil
	if _, err := s.Send(ctx, env, msg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.got) != 0 {
		t.Errorf("%d messages delivered", len(be.got))
	}
}

// TestSubmitTranscript checks the dialogue as traced, line by line, in the
// course's C:/S: style: the server's greeting, EHLO, STARTTLS, EHLO again
// over TLS, AUTH with the credentials hidden, the envelope, the message
// (its first lines, then a count) and QUIT.
func TestSubmitTranscript(t *testing.T) {
	_, addr, pool := startServer(t, true)
	msg, env := compose(t)
	tr := trace.New()
	sub := tr.Subscribe(4096, true)
	s := &Submitter{Addr: addr, LocalName: "crepes.test", TLSConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS13}, Username: "alice", Password: "wonder land", Timeout: 10 * time.Second, Tracer: tr}
	if _, err := s.Send(context.Background(), env, msg); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	var lines []string
	for done := false; !done; {
		select {
		case e := <-sub.C():
			if e.Proto != "smtp/tcp" || e.Host != "ua" || e.ServerAddr() != addr {
				t.Errorf("event %+v", e)
			}
			lines = append(lines, e.Speaker()+": "+e.Summary)
		default:
			done = true
		}
	}
	msgLines := strings.Split(strings.TrimSuffix(string(msg), "\r\n"), "\r\n")
	want := []string{
		"S: 220 hamburger.test ESMTP Service Ready",
	}
	// go-smtp's server lists the same extensions before and after TLS but
	// STARTTLS, then AUTH (offered only over TLS).
	ehlo := func(ext string) []string {
		return []string{"C: EHLO crepes.test", "S: 250-Hello crepes.test", "S: 250-PIPELINING", "S: 250-8BITMIME",
			"S: 250-ENHANCEDSTATUSCODES", "S: 250-CHUNKING", "S: 250-" + ext, "S: 250 SIZE 1048576"}
	}
	want = append(want, ehlo("STARTTLS")...)
	want = append(want,
		"C: STARTTLS",
		"S: 220 2.0.0 Ready to start TLS",
		"*: STARTTLS done: TLS 1.3 (a cipher suite), certificate verified for 127.0.0.1")
	want = append(want, ehlo("AUTH PLAIN")...)
	want = append(want,
		"C: AUTH PLAIN (credentials hidden)",
		"S: 235 2.0.0 Authentication succeeded",
		"C: MAIL FROM:<alice@crepes.test> BODY=8BITMIME SIZE="+itoa(len(msg)),
		"S: 250 2.0.0 Roger, accepting mail from <alice@crepes.test>",
		"C: RCPT TO:<bob@hamburger.test>",
		"S: 250 2.0.0 I'll make sure <bob@hamburger.test> gets this",
		"C: RCPT TO:<carol@hamburger.test>",
		"S: 250 2.0.0 I'll make sure <carol@hamburger.test> gets this",
		"C: RCPT TO:<zoe@hamburger.test>",
		"S: 250 2.0.0 I'll make sure <zoe@hamburger.test> gets this",
		"C: RCPT TO:<eve@hamburger.test>",
		"S: 250 2.0.0 I'll make sure <eve@hamburger.test> gets this",
		"C: DATA",
		"S: 354 Go ahead. End your data with <CR><LF>.<CR><LF>",
	)
	for i, l := range msgLines {
		if i == dataLinesShown {
			break
		}
		if strings.HasPrefix(l, ".") { // dot-stuffing, RFC 5321 §4.5.2
			l = "." + l
		}
		want = append(want, "C: "+trace.Clean(l))
	}
	want = append(want,
		"*: … "+itoa(len(msgLines)-dataLinesShown)+" more lines of the message",
		"C: .",
		"S: 250 2.0.0 OK: queued",
		"C: QUIT",
		"S: 221 2.0.0 Bye",
	)
	// The cipher suite depends on the machine's AES support.
	for i, l := range lines {
		if strings.HasPrefix(l, "*: STARTTLS done: TLS 1.3 TLS_") && strings.HasSuffix(l, ", certificate verified for 127.0.0.1") {
			lines[i] = "*: STARTTLS done: TLS 1.3 (a cipher suite), certificate verified for 127.0.0.1"
		}
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("transcript:\n%s\n\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(strings.Join(lines, "\n"), "wonder") {
		t.Error("the password is in the trace")
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestSubmitAuthLogin authenticates with LOGIN where the server offers only
// that, the user name as the initial response.
func TestSubmitAuthLogin(t *testing.T) {
	be, addr, pool := startServer(t, true)
	be.mechs = []string{sasl.Login}
	msg, env := compose(t)
	s := &Submitter{Addr: addr, TLSConfig: &tls.Config{RootCAs: pool}, Username: "alice", Password: "wonder land", Timeout: 10 * time.Second}
	if _, err := s.Send(context.Background(), env, msg); err != nil {
		t.Fatal(err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.got) != 1 || be.got[0].user != "alice" || !bytes.Equal(be.got[0].data, msg) {
		t.Errorf("%d messages", len(be.got))
	}
}

// fakeServer accepts one connection on loopback and plays script: for
// each entry, it waits for one line from the client when the entry is "<",
// and otherwise writes the entry. It closes after the script and reports
// the lines it read; accepted is closed once the client is connected.
func fakeServer(t *testing.T, script ...string) (addr string, accepted <-chan struct{}, got <-chan []string) {
	t.Helper()
	ln := testnet.ListenTCP(t)
	gotc, acc := make(chan []string, 1), make(chan struct{})
	go func() {
		var lines []string
		defer func() { gotc <- lines }()
		c, err := ln.Accept()
		close(acc)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		for _, s := range script {
			if s == "<" {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				lines = append(lines, strings.TrimRight(l, "\r\n"))
				continue
			}
			if _, err := io.WriteString(c, s); err != nil {
				return
			}
		}
		io.Copy(io.Discard, r) // until the client closes
	}()
	return ln.Addr().String(), acc, gotc
}

// TestSubmitSTARTTLSInjection: a server (or a man in the middle) that
// sends a reply after its 220 to STARTTLS, in the clear, would have it read
// as if it came over TLS (CVE-2011-0411 and kin). The client gives up.
func TestSubmitSTARTTLSInjection(t *testing.T) {
	addr, _, got := fakeServer(t, "220 mx ESMTP\r\n", "<", "250-mx\r\n250 STARTTLS\r\n", "<",
		"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
	_, env := compose(t)
	_, err := (&Submitter{Addr: addr, Timeout: 10 * time.Second}).Send(context.Background(), env, []byte("x\r\n"))
	if err == nil || !strings.Contains(err.Error(), "injection") {
		t.Errorf("err = %v, want the injection refused", err)
	}
	if lines := <-got; strings.Join(lines, "|") != "EHLO localhost|STARTTLS" {
		t.Errorf("the server read %q", lines)
	}
}

// TestSubmitCancel: a server that never greets holds the client only until
// its context ends.
func TestSubmitCancel(t *testing.T) {
	addr, accepted, got := fakeServer(t, "<")
	_, env := compose(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := (&Submitter{Addr: addr, Timeout: time.Hour}).Send(ctx, env, []byte("x\r\n"))
		done <- err
	}()
	<-accepted
	cancel()
	if err := <-done; err == nil {
		t.Error("no error after cancel")
	}
	<-got
}

// FuzzTapLines feeds what a server might send, in chunks of any size, to
// the trace's line splitter: one event per line, whatever the chunking,
// and the client-side state (AUTH, DATA) never panics.
func FuzzTapLines(f *testing.F) {
	f.Add([]byte("220 mx ESMTP\r\n250-mx\r\n250 AUTH PLAIN\r\n334 \r\n235 ok\r\n354 go\r\n"), uint8(3))
	f.Add([]byte("no newline at all"), uint8(1))
	f.Add(bytes.Repeat([]byte("x"), 5000), uint8(200))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		tr := trace.New()
		sub := tr.Subscribe(8192, false)
		tap := &tapConn{conv: tr.Conv("ua", "smtp/tcp", trace.Client, nil, nil)}
		n := int(chunk) + 1
		for i := 0; i < len(in); i += n {
			tap.in = tap.lines(tap.in, in[i:min(i+n, len(in))], tap.received)
			tap.out = tap.lines(tap.out, in[i:min(i+n, len(in))], tap.sent)
		}
		tr.Close()
		events := 0
		for len(sub.C()) > 0 {
			<-sub.C()
			events++
		}
		if nl := bytes.Count(in, []byte("\n")); len(in) < 4096 && events > 2*nl+2 {
			t.Errorf("%d events for %d lines", events, nl)
		}
		if len(in) < 4096 && events < bytes.Count(in, []byte("\n")) {
			t.Errorf("%d events for %d lines", events, bytes.Count(in, []byte("\n")))
		}
	})
}

// TestCourseSession replays the course's sample session: a server that
// knows only HELO (EHLO gets 502), no TLS (so --insecure), the message
// "Do you like ketchup? How about pickles?". The server reads exactly the
// course's commands, and the trace reads as the course prints it.
func TestCourseSession(t *testing.T) {
	addr, _, got := fakeServer(t,
		"220 hamburger.edu\r\n", "<", "502 5.5.2 Error: command not recognized\r\n",
		"<", "250 Hello crepes.fr, pleased to meet you\r\n",
		"<", "250 alice@crepes.fr ... Sender ok\r\n",
		"<", "250 bob@hamburger.edu ... Recipient ok\r\n",
		"<", "354 Enter mail, end with \".\" on a line by itself\r\n",
		"<", "<", "<", "250 Message accepted for delivery\r\n",
		"<", "221 hamburger.edu closing connection\r\n")
	tr := trace.New()
	sub := tr.Subscribe(256, true)
	s := &Submitter{Addr: addr, LocalName: "crepes.fr", Insecure: true, Timeout: 10 * time.Second, Tracer: tr}
	env := Envelope{From: "alice@crepes.fr", To: []string{"bob@hamburger.edu"}}
	if _, err := s.Send(context.Background(), env, []byte("Do you like ketchup?\r\nHow about pickles?\r\n")); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	wantServer := []string{"EHLO crepes.fr", "HELO crepes.fr", "MAIL FROM:<alice@crepes.fr>", "RCPT TO:<bob@hamburger.edu>",
		"DATA", "Do you like ketchup?", "How about pickles?", ".", "QUIT"}
	if lines := <-got; strings.Join(lines, "\n") != strings.Join(wantServer, "\n") {
		t.Errorf("the server read:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantServer, "\n"))
	}
	var lines []string
	for len(sub.C()) > 0 {
		e := <-sub.C()
		lines = append(lines, e.Speaker()+": "+e.Summary)
	}
	want := []string{
		"S: 220 hamburger.edu",
		"C: EHLO crepes.fr",
		"S: 502 5.5.2 Error: command not recognized",
		"*: no STARTTLS: continuing in clear (--insecure)",
		"C: HELO crepes.fr",
		"S: 250 Hello crepes.fr, pleased to meet you",
		"C: MAIL FROM:<alice@crepes.fr>",
		"S: 250 alice@crepes.fr ... Sender ok",
		"C: RCPT TO:<bob@hamburger.edu>",
		"S: 250 bob@hamburger.edu ... Recipient ok",
		"C: DATA",
		`S: 354 Enter mail, end with "." on a line by itself`,
		"C: Do you like ketchup?",
		"C: How about pickles?",
		"C: .",
		"S: 250 Message accepted for delivery",
		"C: QUIT",
		"S: 221 hamburger.edu closing connection",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("transcript:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestSubmitEndlessGreeting: a server that never ends its greeting line
// costs a bounded read, then an error.
func TestSubmitEndlessGreeting(t *testing.T) {
	addr, _, got := fakeServer(t, "220-"+strings.Repeat("x", maxPreTLS+10))
	_, env := compose(t)
	if _, err := (&Submitter{Addr: addr, Timeout: 10 * time.Second}).Send(context.Background(), env, []byte("x\r\n")); err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Errorf("err = %v", err)
	}
	<-got
}
