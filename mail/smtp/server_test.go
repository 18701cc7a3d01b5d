package smtp

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"appnet/internal/connlimit"
	"appnet/trace"
)

// The course's sample session (Kurose & Ross, §2.3), typed line by line,
// gets the course's reply codes, and the message lands in the queue with
// a Received: header before its exact bytes.
func TestCourseSession(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	if text := c.expect(220); !strings.HasPrefix(text, "hamburger.edu") {
		t.Errorf("greeting %q", text)
	}
	c.cmd("HELO crepes.fr", 250)
	c.cmd("MAIL FROM: <alice@crepes.fr>", 250)
	c.cmd("RCPT TO: <bob@hamburger.edu>", 250)
	c.cmd("DATA", 354)
	c.write("Do you like ketchup?\r\n")
	c.write("How about pickles?\r\n")
	c.cmd(".", 250)
	c.cmd("QUIT", 221)
	if !c.closed() {
		t.Error("connection open after QUIT")
	}
	msgs := spool.all()
	if len(msgs) != 1 {
		t.Fatalf("%d messages queued, want 1", len(msgs))
	}
	m := msgs[0]
	if m.from != "alice@crepes.fr" || len(m.rcpts) != 1 || m.rcpts[0] != "bob@hamburger.edu" {
		t.Errorf("envelope %q -> %q", m.from, m.rcpts)
	}
	body := "Do you like ketchup?\r\nHow about pickles?\r\n"
	if !bytes.HasSuffix(m.data, []byte(body)) {
		t.Errorf("message %q does not end with the lines sent", m.data)
	}
	rx := regexp.MustCompile(`^Received: from crepes\.fr \(unknown \[127\.0\.0\.1\]\)\r\n\tby hamburger\.edu \(appnet\) with SMTP id ` +
		m.id + `\r\n\tfor <bob@hamburger\.edu>; [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n`)
	head := strings.TrimSuffix(string(m.data), body)
	if !rx.MatchString(head) || len(rx.FindString(head)) != len(head) {
		t.Errorf("trace header %q does not match %s", head, rx)
	}
}

// No open relay: an unauthenticated client cannot send to a foreign
// domain, nor to an unknown local user, and nothing is queued.
func TestNoOpenRelay(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("EHLO spammer.test", 250)
	c.cmd("MAIL FROM:<x@spammer.test>", 250)
	if text := c.cmd("RCPT TO:<victim@elsewhere.test>", 554); !strings.Contains(text, "5.7.1") || !strings.Contains(text, "Relay access denied") {
		t.Errorf("relay refusal %q", text)
	}
	if text := c.cmd("RCPT TO:<nobody@hamburger.edu>", 550); !strings.HasPrefix(text, "5.1.1") {
		t.Errorf("unknown user %q", text)
	}
	c.cmd("DATA", 503)
	// AUTH is not offered on the MX, so there is no way round.
	c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), 502)
	c.cmd("QUIT", 221)
	if n := len(spool.all()); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
}

// SMTP smuggling (2023): no bare LF or bare CR sequence ends DATA. The
// server refuses the message (521 and close) and queues nothing: neither
// the first message nor the smuggled second one.
func TestSmuggling(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	smuggled := "MAIL FROM:<admin@hamburger.edu>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\nFrom: admin@hamburger.edu\r\n\r\nsmuggled\r\n.\r\n"
	for _, end := range []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r.\r", "\r\n.\n", "\n..\n", "\r\n\x00.\r\n"} {
		t.Run(fmt.Sprintf("%q", end), func(t *testing.T) {
			before := len(spool.all())
			c := dial(t, addr)
			c.expect(220)
			c.cmd("EHLO attacker.test", 250)
			c.cmd("MAIL FROM:<x@attacker.test>", 250)
			c.cmd("RCPT TO:<bob@hamburger.edu>", 250)
			c.cmd("DATA", 354)
			c.write("Subject: first\r\n\r\nfirst" + end + smuggled + "QUIT\r\n")
			var codes []int
			for i := 0; i < 10; i++ {
				code, _ := c.reply()
				if code == 0 {
					break
				}
				codes = append(codes, code)
			}
			for _, m := range spool.all()[before:] {
				if bytes.Contains(m.data, []byte("smuggled")) && !bytes.Contains(m.data, []byte("first")) {
					t.Fatalf("smuggled message queued on its own: %q", m.data)
				}
			}
			if end == "\r\n\x00.\r\n" {
				// No bare CR or LF: one message ending at the final dot,
				// refused for its NUL; the smuggled lines are text.
				if len(codes) < 2 || codes[0] != 554 || len(spool.all()) != before {
					t.Errorf("replies %v, %d queued", codes, len(spool.all())-before)
				}
				return
			}
			if len(codes) != 1 || codes[0] != 521 {
				t.Errorf("replies %v, want [521] and close", codes)
			}
			if n := len(spool.all()) - before; n != 0 {
				t.Errorf("%d messages queued", n)
			}
		})
	}
}

func transaction(c *client, rcpt string) {
	c.t.Helper()
	c.cmd("MAIL FROM:<alice@crepes.fr>", 250)
	c.cmd("RCPT TO:<"+rcpt+">", 250)
	c.cmd("DATA", 354)
}

// An oversize message gets 552 5.3.4 and nothing of it is kept; the
// session goes on. A SIZE= over the limit is refused at MAIL.
func TestOversize(t *testing.T) {
	spool := &memSpool{}
	s := newServer(MX, spool)
	s.MaxMessageBytes = 1000
	addr := serve(t, s)
	c := dial(t, addr)
	c.expect(220)
	if text := c.cmd("EHLO crepes.fr", 250); text != "SMTPUTF8" && !strings.Contains(text, "") {
		t.Log(text)
	}
	c.cmd("MAIL FROM:<alice@crepes.fr> SIZE=5000", 552)
	transaction(c, "bob@hamburger.edu")
	c.write(strings.Repeat("0123456789012345678\r\n", 100)) // 2100 bytes
	if text := c.cmd(".", 552); !strings.HasPrefix(text, "5.3.4") {
		t.Errorf("oversize reply %q", text)
	}
	if n := len(spool.all()); n != 0 {
		t.Fatalf("%d messages kept after 552", n)
	}
	transaction(c, "bob@hamburger.edu")
	c.write("small\r\n")
	c.cmd(".", 250)
	if n := len(spool.all()); n != 1 {
		t.Fatalf("%d messages after a small one, want 1", n)
	}
}

// NUL characters and lines over 1000 octets (RFC 5321 §4.5.3.1.6) are
// refused after the message; 1000 octets with CRLF is fine.
func TestNULAndLineLength(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("HELO crepes.fr", 250)
	transaction(c, "bob@hamburger.edu")
	c.write("a\x00b\r\n")
	c.cmd(".", 554)
	transaction(c, "bob@hamburger.edu")
	c.write(strings.Repeat("x", 999) + "\r\n") // 1001 octets
	c.cmd(".", 554)
	if n := len(spool.all()); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
	transaction(c, "bob@hamburger.edu")
	c.write(strings.Repeat("y", 998) + "\r\n") // 1000 octets
	c.cmd(".", 250)
	if m := spool.all(); len(m) != 1 || !bytes.Contains(m[0].data, []byte(strings.Repeat("y", 998)+"\r\n")) {
		t.Fatal("the 1000-octet line was not queued intact")
	}
	// A command line with a NUL is a syntax error.
	c.cmd("NOOP\x00", 500)
	// An endless command line closes the session.
	c.write(strings.Repeat("z", 20000) + "\r\n")
	if code, _ := c.reply(); code != 500 || !c.closed() {
		t.Errorf("over-long command: %d, want 500 and close", code)
	}
}

// Commands out of order get 503 (RFC 5321 §4.3.2, §3.3).
func TestOutOfOrder(t *testing.T) {
	addr := serve(t, newServer(MX, &memSpool{}))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("MAIL FROM:<a@crepes.fr>", 503)
	c.cmd("HELO crepes.fr", 250)
	c.cmd("RCPT TO:<bob@hamburger.edu>", 503)
	c.cmd("DATA", 503)
	c.cmd("MAIL FROM:<a@crepes.fr>", 250)
	c.cmd("MAIL FROM:<a@crepes.fr>", 503)
	c.cmd("DATA", 503)
	c.cmd("RSET", 250)
	c.cmd("RCPT TO:<bob@hamburger.edu>", 503)
	c.cmd("BOGUS", 500)
	c.cmd("QUIT", 221)
}

// 1,000 recipients, pipelined: the first 100 accepted, the rest 452
// 4.5.3 (the client sends them in another transaction), and the message
// goes to the 100.
func TestThousandRecipients(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("EHLO crepes.fr", 250)
	var b strings.Builder
	b.WriteString("MAIL FROM:<alice@crepes.fr>\r\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "RCPT TO:<user%d@hamburger.edu>\r\n", i)
	}
	b.WriteString("DATA\r\n")
	go c.conn.Write([]byte(b.String()))
	c.expect(250)
	counts := map[int]int{}
	for range 1000 {
		code, text := c.reply()
		counts[code]++
		if code == 452 && !strings.HasPrefix(text, "4.5.3") {
			t.Fatalf("452 without 4.5.3: %q", text)
		}
	}
	if counts[250] != 100 || counts[452] != 900 {
		t.Fatalf("replies %v, want 100 x 250 and 900 x 452", counts)
	}
	c.expect(354)
	c.write("hi\r\n")
	c.cmd(".", 250)
	if m := spool.all(); len(m) != 1 || len(m[0].rcpts) != 100 || m[0].rcpts[99] != "user99@hamburger.edu" {
		t.Fatalf("queued %d messages", len(m))
	}
}

// Failed AUTH is answered later and later from the same address (up to
// a cap), not from another; a success clears the count.
func TestAuthBruteForceSlowed(t *testing.T) {
	s := newServer(Submission, &memSpool{})
	s.AllowInsecureAuth = true
	s.AuthDelay, s.AuthDelayMax = 10*time.Millisecond, 50*time.Millisecond
	var mu sync.Mutex
	var delays []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) { mu.Lock(); delays = append(delays, d); mu.Unlock() }
	addr := serve(t, s)
	bad := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00guess"))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("EHLO attacker.test", 250)
	for range 5 {
		c.cmd(bad, 535)
	}
	// LOGIN counts the same.
	c.cmd("AUTH LOGIN", 334)
	c.cmd(base64.StdEncoding.EncodeToString([]byte("alice")), 334)
	c.cmd(base64.StdEncoding.EncodeToString([]byte("wrong")), 535)
	// Another address starts afresh.
	c2 := dialFrom(t, "127.0.0.2", addr)
	c2.expect(220)
	c2.cmd("EHLO other.test", 250)
	c2.cmd(bad, 535)
	mu.Lock()
	got := append([]time.Duration(nil), delays...)
	mu.Unlock()
	want := []time.Duration{10, 20, 40, 50, 50, 50, 10}
	if len(got) != len(want) {
		t.Fatalf("delays %v, want %v ms", got, want)
	}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), 235)
	c3 := dial(t, addr)
	c3.expect(220)
	c3.cmd("EHLO x.test", 250)
	c3.cmd(bad, 535)
	mu.Lock()
	defer mu.Unlock()
	if d := delays[len(delays)-1]; d != 10*time.Millisecond {
		t.Errorf("after a success the delay is %v, want the base again", d)
	}
}

// Too many errors in one session: 421 and close.
func TestErrorLimit(t *testing.T) {
	s := newServer(MX, &memSpool{})
	s.MaxErrors = 3
	addr := serve(t, s)
	c := dial(t, addr)
	c.expect(220)
	c.cmd("FOO", 500)
	c.cmd("BAR", 500)
	c.write("BAZ\r\n")
	c.expect(500)
	if text := c.expect(421); !strings.Contains(text, "too many errors") {
		t.Errorf("421 text %q", text)
	}
	if !c.closed() {
		t.Error("still open")
	}
}

// A client that says nothing after the greeting is dropped in seconds.
func TestGreetingTimeout(t *testing.T) {
	s := newServer(MX, &memSpool{})
	s.GreetingTimeout = 100 * time.Millisecond
	addr := serve(t, s)
	c := dial(t, addr)
	c.expect(220)
	if text := c.expect(421); !strings.HasPrefix(text, "4.4.2") {
		t.Errorf("timeout reply %q", text)
	}
	if !c.closed() {
		t.Error("still open")
	}
}

// Connections per client address are capped; another address still gets in.
func TestConnectionsPerAddress(t *testing.T) {
	s := newServer(MX, &memSpool{})
	s.Limits = connlimit.New(100, 2)
	addr := serve(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.expect(220)
	b.expect(220)
	c := dial(t, addr)
	if code, text := c.reply(); code != 421 || !strings.Contains(text, "too many connections") {
		t.Errorf("third connection: %d %s", code, text)
	}
	d := dialFrom(t, "127.0.0.3", addr)
	d.expect(220)
}

// A message with more Received: lines than MaxHops is a loop: 554 5.4.6.
func TestMailLoop(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("HELO crepes.fr", 250)
	transaction(c, "bob@hamburger.edu")
	c.write(strings.Repeat("Received: from a by b; Wed, 2 Dec 2026 10:00:00 +0000\r\n", 51) + "\r\nbody\r\n")
	if text := c.cmd(".", 554); !strings.HasPrefix(text, "5.4.6") {
		t.Errorf("loop reply %q", text)
	}
	transaction(c, "bob@hamburger.edu")
	c.write(strings.Repeat("Received: from a by b; Wed, 2 Dec 2026 10:00:00 +0000\r\n", 50) + "\r\nbody\r\n")
	c.cmd(".", 250)
}

// When the queue cannot store the message (full disk), the client gets
// 452 4.3.1, not 250.
func TestSpoolFull(t *testing.T) {
	spool := &memSpool{err: errNoSpace}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	c.expect(220)
	c.cmd("HELO crepes.fr", 250)
	transaction(c, "bob@hamburger.edu")
	c.write("x\r\n")
	if text := c.cmd(".", 452); !strings.HasPrefix(text, "4.3.1") {
		t.Errorf("full-disk reply %q", text)
	}
}

// A whole transaction in one write (PIPELINING, RFC 2920) gets its
// replies in order.
func TestPipelining(t *testing.T) {
	spool := &memSpool{}
	addr := serve(t, newServer(MX, spool))
	c := dial(t, addr)
	c.expect(220)
	c.write("EHLO crepes.fr\r\nMAIL FROM:<a@crepes.fr>\r\nRCPT TO:<bob@hamburger.edu>\r\nRCPT TO:<nobody@hamburger.edu>\r\nDATA\r\n")
	for _, want := range []int{250, 250, 250, 550, 354} {
		c.expect(want)
	}
	c.write("one\r\n.\r\nMAIL FROM:<a@crepes.fr>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n")
	for _, want := range []int{250, 250, 250, 354, 250, 221} {
		c.expect(want)
	}
	if n := len(spool.all()); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}
}

// Shutdown tells an idle client 421 and closes.
func TestShutdownSays421(t *testing.T) {
	s := newServer(MX, &memSpool{})
	ln := listen(t)
	go s.Serve(ln)
	c := dial(t, ln.Addr().String())
	c.expect(220)
	c.cmd("HELO crepes.fr", 250)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	if text := c.expect(421); !strings.HasPrefix(text, "4.3.2") {
		t.Errorf("shutdown reply %q", text)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Every command and reply goes to the tracer, in order; credentials
// never do.
func TestTrace(t *testing.T) {
	tr := trace.New()
	sub := tr.Subscribe(1000, true)
	defer sub.Close()
	s := newServer(Submission, &memSpool{})
	s.AllowInsecureAuth = true
	s.Tracer = tr
	c := dial(t, serve(t, s))
	c.expect(220)
	c.cmd("EHLO crepes.fr", 250)
	c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")), 235)
	c.cmd("QUIT", 221)
	c.closed()
	var got []string
	for len(got) < 100 {
		select {
		case ev := <-sub.C():
			if ev.Dir != trace.Note {
				got = append(got, ev.Speaker()+": "+ev.Summary)
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	all := strings.Join(got, "\n")
	want := []string{"S: 220 hamburger.edu ESMTP appnet", "C: EHLO crepes.fr", "S: 250-hamburger.edu Hello crepes.fr",
		"S: 250 AUTH PLAIN LOGIN", "C: AUTH PLAIN ****", "S: 235 2.7.0 Authentication successful", "C: QUIT", "S: 221 2.0.0 Bye"}
	at := 0
	for _, w := range want {
		i := strings.Index(all[at:], w)
		if i < 0 {
			t.Fatalf("trace lacks %q after position %d:\n%s", w, at, all)
		}
		at += i + len(w)
	}
	if strings.Contains(all, base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))) {
		t.Error("credentials in the trace")
	}
}

// Message bytes held in memory by all sessions together are bounded:
// past the budget a message is dropped and answered 452 4.3.1; the
// budget comes back once a message is committed.
func TestMemoryBudget(t *testing.T) {
	spool := &memSpool{}
	s := newServer(MX, spool)
	s.MaxBufferedBytes = 3000
	addr := serve(t, s)
	c := dial(t, addr)
	c.expect(220)
	c.cmd("HELO crepes.fr", 250)
	transaction(c, "bob@hamburger.edu")
	c.write(strings.Repeat("0123456789012345678\r\n", 200)) // 4200 bytes
	if text := c.cmd(".", 452); !strings.HasPrefix(text, "4.3.1") {
		t.Errorf("over budget: %q", text)
	}
	for range 3 { // the budget is given back after each message
		transaction(c, "bob@hamburger.edu")
		c.write(strings.Repeat("0123456789012345678\r\n", 100)) // 2100 bytes
		c.cmd(".", 250)
	}
	if s.buffered.Load() != 0 {
		t.Errorf("%d bytes still counted", s.buffered.Load())
	}
}

// RCPT TO:<Postmaster> without a domain is taken (RFC 5321 §4.5.1), and
// qualified with the postmaster domain.
func TestUnqualifiedPostmaster(t *testing.T) {
	spool := &memSpool{}
	s := newServer(MX, spool)
	s.PostmasterDomain = "hamburger.edu"
	c := dial(t, serve(t, s))
	c.expect(220)
	c.cmd("HELO crepes.fr", 250)
	c.cmd("MAIL FROM:<a@crepes.fr>", 250)
	c.cmd("RCPT TO:<Postmaster>", 250)
	c.cmd("RCPT TO:<other>", 501)
	c.cmd("DATA", 354)
	c.cmd("hi\r\n.", 250)
	if m := spool.all(); len(m) != 1 || len(m[0].rcpts) != 1 || m[0].rcpts[0] != "Postmaster@hamburger.edu" {
		t.Fatalf("queued %+v", m)
	}
}
