package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"appnet/dns/authserver"
	"appnet/dns/zone"
	"appnet/internal/testnet"
	"appnet/trace"
)

// startDNS runs our authoritative server (dns/authserver) for the zone
// test. with the given records on a loopback UDP port; a name it does
// not hold gets NXDOMAIN. It returns the server's address.
func startDNS(t *testing.T, records ...string) string {
	t.Helper()
	text := "$TTL 60\n" +
		"test. IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n" +
		"test. IN NS ns.test.\n" +
		"ns.test. IN A 127.0.0.1\n" + strings.Join(records, "\n") + "\n"
	z, err := zone.Parse(strings.NewReader(text), "test.", "test.zone")
	if err != nil {
		t.Fatal(err)
	}
	set, err := zone.NewSet(z)
	if err != nil {
		t.Fatal(err)
	}
	srv := authserver.New(set)
	srv.Logger = slog.New(slog.DiscardHandler)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServePacket(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return pc.LocalAddr().String()
}

// sink is an independent SMTP server (go-smtp's) that records what it
// accepts; reject maps a recipient to the error its RCPT gets.
type sink struct {
	mu       sync.Mutex
	msgs     []sunk
	reject   map[string]*smtp.SMTPError
	once     map[string]bool // reject only the first time
	sessions atomic.Int32
	srv      *smtp.Server
	ln       net.Listener
}

type sunk struct {
	from string
	to   []string
	data []byte
}

type sinkSession struct {
	k    *sink
	from string
	to   []string
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	if e := s.k.reject[to]; e != nil {
		if s.k.once[to] {
			delete(s.k.reject, to)
		}
		return e
	}
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	s.k.msgs = append(s.k.msgs, sunk{from: s.from, to: s.to, data: b})
	s.k.mu.Unlock()
	return nil
}

func startSink(t testing.TB, addr string) *sink {
	t.Helper()
	k := &sink{reject: map[string]*smtp.SMTPError{}, once: map[string]bool{}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	k.ln = ln
	k.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		k.sessions.Add(1)
		return &sinkSession{k: k}, nil
	}))
	k.srv.Domain = "sink.test"
	k.srv.ErrorLog = nopLogger{}
	go k.srv.Serve(ln)
	t.Cleanup(func() { k.srv.Close() })
	return k
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...interface{}) {}
func (nopLogger) Println(...interface{})        {}

func (k *sink) got() []sunk {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sunk(nil), k.msgs...)
}

// freePort returns a TCP port free on 127.0.0.2 (and, most likely, on
// the other loopback addresses the test uses).
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type memLocal struct {
	mu   sync.Mutex
	msgs map[string][][]byte
}

func (m *memLocal) Deliver(_ context.Context, rcpt string, msg []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.msgs == nil {
		m.msgs = map[string][][]byte{}
	}
	m.msgs[rcpt] = append(m.msgs[rcpt], append([]byte(nil), msg...))
	return nil
}

func (m *memLocal) get(rcpt string) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.msgs[rcpt]
}

type env struct {
	q     *Queue
	local *memLocal
	port  int
}

func startAgent(t *testing.T, dnsAddr string, port int, tweak func(*AgentConfig)) *env {
	t.Helper()
	q := openQ(t, t.TempDir(), 0)
	e := &env{q: q, local: &memLocal{}, port: port}
	cfg := AgentConfig{
		Hostname:   "mx.local.test",
		IsLocal:    func(d string) bool { return d == "local.test" },
		Local:      e.local,
		Resolver:   NewResolver(dnsAddr),
		Port:       port,
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		NoSTARTTLS: true,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	a := NewAgent(q, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; q.Close() })
	return e
}

// waitFor polls cond (bounded: about 10 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *env) send(t *testing.T, from string, to []string, body string) string {
	t.Helper()
	id := e.q.NewID()
	msg := "From: " + from + "\r\nSubject: " + body + "\r\n\r\n" + body + "\r\n"
	if err := e.q.Enqueue(context.Background(), id, from, to, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	return id
}

// RFC 5321 §5.1: the lowest preference that answers gets the mail; when
// it is down, the next one does.
func TestDeliverMXPreference(t *testing.T) {
	port := freePort(t)
	d := startDNS(t,
		"pref.test. 60 IN MX 20 mx2.pref.test.",
		"pref.test. 60 IN MX 10 mx1.pref.test.",
		"mx1.pref.test. 60 IN A 127.0.0.2",
		"mx2.pref.test. 60 IN A 127.0.0.3",
	)
	s1 := startSink(t, "127.0.0.2:"+strconv.Itoa(port))
	s2 := startSink(t, "127.0.0.3:"+strconv.Itoa(port))
	e := startAgent(t, d, port, nil)
	e.send(t, "alice@local.test", []string{"bob@pref.test"}, "first")
	waitFor(t, "delivery to mx1", func() bool { return len(s1.got()) == 1 })
	if n := len(s2.got()); n != 0 {
		t.Fatalf("mx2 (preference 20) got %d messages while mx1 (10) was up", n)
	}
	m := s1.got()[0]
	if m.from != "alice@local.test" || len(m.to) != 1 || m.to[0] != "bob@pref.test" || !bytes.Contains(m.data, []byte("Subject: first")) {
		t.Errorf("mx1 got %+v", m)
	}
	s1.srv.Close()
	e.send(t, "alice@local.test", []string{"bob@pref.test"}, "second")
	waitFor(t, "delivery to mx2", func() bool { return len(s2.got()) == 1 })
	waitFor(t, "queue empty", func() bool { return e.q.Len() == 0 })
}

// RFC 5321 §5.1: no MX records: the domain's address record is used.
func TestDeliverAFallback(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "nomx.test. 60 IN A 127.0.0.4")
	s := startSink(t, "127.0.0.4:"+strconv.Itoa(port))
	e := startAgent(t, d, port, nil)
	e.send(t, "alice@local.test", []string{"carol@nomx.test"}, "fallback")
	waitFor(t, "delivery to the A record", func() bool { return len(s.got()) == 1 })
	waitFor(t, "queue empty", func() bool { return e.q.Len() == 0 })
}

// A null MX (RFC 7505) and a domain with neither MX nor address bounce at
// once; the bounce is a multipart/report (RFC 3464) with the original.
func TestDeliverNullMXAndNoDomainBounce(t *testing.T) {
	d := startDNS(t, "nullmx.test. 60 IN MX 0 .")
	e := startAgent(t, d, freePort(t), nil)
	e.send(t, "alice@local.test", []string{"x@nullmx.test"}, "to-null-mx")
	e.send(t, "alice@local.test", []string{"y@nonexistent.test"}, "to-nowhere")
	waitFor(t, "two bounces", func() bool { return len(e.local.get("alice@local.test")) == 2 })
	var seen []string
	for _, b := range e.local.get("alice@local.test") {
		s := string(b)
		for _, want := range []string{"Content-Type: multipart/report; report-type=delivery-status", "Content-Type: message/delivery-status",
			"Action: failed", "Content-Type: message/rfc822", "From: Mail Delivery System <MAILER-DAEMON@mx.local.test>", "Auto-Submitted: auto-replied"} {
			if !strings.Contains(s, want) {
				t.Errorf("bounce lacks %q:\n%s", want, s)
			}
		}
		switch {
		case strings.Contains(s, "Subject: to-null-mx"):
			seen = append(seen, "null")
			if !strings.Contains(s, "Status: 5.1.10") || !strings.Contains(s, "Final-Recipient: rfc822; x@nullmx.test") {
				t.Errorf("null MX bounce:\n%s", s)
			}
		case strings.Contains(s, "Subject: to-nowhere"):
			seen = append(seen, "nowhere")
			if !strings.Contains(s, "Status: 5.1.2") {
				t.Errorf("no-domain bounce:\n%s", s)
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("bounces for %v, want both originals attached", seen)
	}
	waitFor(t, "queue empty", func() bool { return e.q.Len() == 0 })
}

// A remote that is down gets the message after a retry once it is up.
func TestDeliverRetryWhenRemoteComesUp(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "later.test. 60 IN MX 10 mx.later.test.", "mx.later.test. 60 IN A 127.0.0.5")
	e := startAgent(t, d, port, func(c *AgentConfig) { c.MinBackoff = 300 * time.Millisecond })
	id := e.send(t, "alice@local.test", []string{"dan@later.test"}, "retry-me")
	waitFor(t, "a failed attempt", func() bool {
		l := e.q.List()
		return len(l) == 1 && l[0].Rcpts[0].Attempts >= 1 && !l[0].Active
	})
	in := e.q.List()[0]
	if in.ID != id || in.Status != "deferred" || in.Rcpts[0].LastError == "" || in.Rcpts[0].NextTry.IsZero() {
		t.Fatalf("after a failed attempt: %+v", in)
	}
	s := startSink(t, "127.0.0.5:"+strconv.Itoa(port))
	waitFor(t, "delivery after retry", func() bool { return len(s.got()) == 1 })
	waitFor(t, "queue empty", func() bool { return e.q.Len() == 0 })
	if !bytes.Contains(s.got()[0].data, []byte("retry-me")) {
		t.Errorf("got %q", s.got()[0].data)
	}
}

// Per-recipient outcomes: of three recipients, one delivered, one
// refused for good (bounced, alone in the bounce), one refused for now
// (retried alone, and delivered then).
func TestDeliverPerRecipient(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "three.test. 60 IN MX 10 mx.three.test.", "mx.three.test. 60 IN A 127.0.0.6")
	s := startSink(t, "127.0.0.6:"+strconv.Itoa(port))
	s.reject["b@three.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	s.reject["c@three.test"] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	s.once["c@three.test"] = true
	e := startAgent(t, d, port, nil)
	e.send(t, "alice@local.test", []string{"a@three.test", "b@three.test", "c@three.test"}, "three")
	waitFor(t, "all done", func() bool { return e.q.Len() == 0 && len(s.got()) == 2 })
	got := s.got()
	if len(got[0].to) != 1 || got[0].to[0] != "a@three.test" {
		t.Errorf("first delivery to %v, want [a@three.test]", got[0].to)
	}
	if len(got[1].to) != 1 || got[1].to[0] != "c@three.test" {
		t.Errorf("retry delivered to %v, want [c@three.test] only", got[1].to)
	}
	bounces := e.local.get("alice@local.test")
	if len(bounces) != 1 {
		t.Fatalf("%d bounces, want 1", len(bounces))
	}
	b := string(bounces[0])
	if !strings.Contains(b, "Final-Recipient: rfc822; b@three.test") || strings.Contains(b, "Final-Recipient: rfc822; a@three.test") ||
		strings.Contains(b, "Final-Recipient: rfc822; c@three.test") || !strings.Contains(b, "Status: 5.1.1") ||
		!strings.Contains(b, "Diagnostic-Code: smtp; 550 5.1.1 no such user") {
		t.Errorf("bounce:\n%s", b)
	}
}

// Mail from the null sender is never bounced (RFC 5321 §4.5.5: no loops).
func TestNoBounceToNullSender(t *testing.T) {
	d := startDNS(t, "nullmx.test. 60 IN MX 0 .")
	e := startAgent(t, d, freePort(t), nil)
	e.send(t, "", []string{"x@nullmx.test"}, "from-null")
	waitFor(t, "queue empty", func() bool { return e.q.Len() == 0 })
	// The one message was finished without queueing anything new.
	time.Sleep(50 * time.Millisecond)
	if e.q.Len() != 0 || len(e.local.msgs) != 0 {
		t.Fatalf("a bounce was made for a null-sender message: queue %d, local %v", e.q.Len(), e.local.msgs)
	}
}

// One connection carries many messages to the same host (RSET between).
func TestDeliverReusesConnection(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "reuse.test. 60 IN MX 10 mx.reuse.test.", "mx.reuse.test. 60 IN A 127.0.0.7")
	s := startSink(t, "127.0.0.7:"+strconv.Itoa(port))
	e := startAgent(t, d, port, func(c *AgentConfig) { c.Concurrency = 1 })
	for i := range 5 {
		e.send(t, "alice@local.test", []string{"eve@reuse.test"}, fmt.Sprint("m", i))
	}
	waitFor(t, "five deliveries", func() bool { return len(s.got()) == 5 })
	if n := s.sessions.Load(); n != 1 {
		t.Errorf("%d SMTP sessions for 5 messages, want 1", n)
	}
}

// A temporary failure past the queue lifetime bounces (status 4.4.7).
func TestLifetimeExpires(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "gone.test. 60 IN MX 10 mx.gone.test.", "mx.gone.test. 60 IN A 127.0.0.8")
	e := startAgent(t, d, port, func(c *AgentConfig) { c.Lifetime = time.Nanosecond })
	e.send(t, "alice@local.test", []string{"f@gone.test"}, "too-late")
	waitFor(t, "bounce", func() bool { return len(e.local.get("alice@local.test")) == 1 })
	if b := string(e.local.get("alice@local.test")[0]); !strings.Contains(b, "Status: 4.4.7") || !strings.Contains(b, "Subject: too-late") {
		t.Errorf("bounce:\n%s", b)
	}
}

// Local domains go through Local.
func TestDeliverLocal(t *testing.T) {
	e := startAgent(t, startDNS(t), freePort(t), nil)
	e.send(t, "x@remote.test", []string{"bob@local.test", "carol@local.test"}, "hello-local")
	waitFor(t, "local delivery", func() bool {
		return len(e.local.get("bob@local.test")) == 1 && len(e.local.get("carol@local.test")) == 1
	})
	waitFor(t, "queue empty", func() bool { return e.q.Len() == 0 })
}

// A server that offers STARTTLS gets the mail over TLS (RFC 3207;
// unauthenticated, as Postfix's "may" level), and the dialogue is traced.
func TestDeliverSTARTTLS(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "tls.test. 60 IN MX 10 mx.tls.test.", "mx.tls.test. 60 IN A 127.0.0.12")
	s := startSink(t, "127.0.0.12:"+strconv.Itoa(port))
	s.srv.TLSConfig, _ = testnet.TLS(t, "mx.tls.test")
	var tlsSessions atomic.Int32
	s.srv.Backend = smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.sessions.Add(1)
		if _, ok := c.TLSConnectionState(); ok {
			tlsSessions.Add(1)
		}
		return &sinkSession{k: s}, nil
	})
	tr := trace.New()
	sub := tr.Subscribe(1000, false)
	e := startAgent(t, d, port, func(c *AgentConfig) { c.NoSTARTTLS = false; c.Tracer = tr })
	e.send(t, "alice@local.test", []string{"tom@tls.test"}, "secret-stuff")
	waitFor(t, "delivery", func() bool { return len(s.got()) == 1 })
	if tlsSessions.Load() != 1 {
		t.Fatalf("%d TLS sessions of %d", tlsSessions.Load(), s.sessions.Load())
	}
	var lines []string
	for len(lines) < 200 {
		select {
		case ev := <-sub.C():
			lines = append(lines, ev.Dir.String()+" "+ev.Summary)
			continue
		default:
		}
		break
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"STARTTLS", "MAIL FROM:<alice@local.test>", "RCPT TO:<tom@tls.test>"} {
		if !strings.Contains(all, want) {
			t.Errorf("trace lacks %q:\n%s", want, all)
		}
	}
}

// A server whose STARTTLS handshake fails still gets the mail, in
// plaintext on a new connection (opportunistic TLS, RFC 7435).
func TestDeliverFallsBackWhenTLSFails(t *testing.T) {
	port := freePort(t)
	d := startDNS(t, "badtls.test. 60 IN MX 10 mx.badtls.test.", "mx.badtls.test. 60 IN A 127.0.0.14")
	s := startSink(t, "127.0.0.14:"+strconv.Itoa(port))
	// A certificate-less config: the server offers STARTTLS, then every
	// handshake fails.
	s.srv.TLSConfig = &tls.Config{}
	e := startAgent(t, d, port, func(c *AgentConfig) { c.NoSTARTTLS = false })
	e.send(t, "alice@local.test", []string{"u@badtls.test"}, "plain-fallback")
	waitFor(t, "delivery in plaintext", func() bool { return len(s.got()) == 1 })
}
