package ua

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"appnet/mail/message"
	"appnet/trace"
)

// Submitter sends messages to one mail server: the submission port 587
// (RFC 6409) with a user name, or a server's port 25.
type Submitter struct {
	Addr      string      // host:port of the server
	LocalName string      // the name given in EHLO; "localhost" when empty
	TLSConfig *tls.Config // roots to trust (nil: the system's); ServerName defaults to Addr's host
	// Insecure lets a message (never a password, unless the server is on
	// loopback) go in clear to a server that does not offer STARTTLS.
	// Without it, STARTTLS is required (RFC 3207; RFC 8314 §3 asks mail
	// clients to insist on TLS).
	Insecure bool
	// Username and Password, when Username is set, authenticate with SASL
	// PLAIN, or LOGIN where the server offers only that (RFC 4954).
	Username, Password string
	Timeout            time.Duration // for the connection and each command; 0: 1 minute
	Host               string        // the name the trace gives this client; "ua" when empty
	Tracer             *trace.Tracer
}

// ErrNoTLS is returned when the server offers no STARTTLS and the
// Submitter is not Insecure.
var ErrNoTLS = errors.New("ua: the server does not offer STARTTLS (give --insecure to send in clear)")

// Send submits msg to the server for env's recipients and returns the
// server's reply to the message's end (which usually names its queue ID).
// It sends EHLO, STARTTLS when offered (and EHLO again over TLS), AUTH when
// a Username is set, MAIL FROM with SIZE, one RCPT TO per recipient, DATA
// and QUIT. A recipient refused stops the submission: nothing is sent.
func (s *Submitter) Send(ctx context.Context, env Envelope, msg []byte) (string, error) {
	if len(env.To) == 0 {
		return "", ErrNoRecipients
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return "", fmt.Errorf("ua: server %q: %w", s.Addr, err)
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return "", fmt.Errorf("ua: %w", err)
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	name := s.Host
	if name == "" {
		name = "ua"
	}
	conv := s.Tracer.Conv(name, "smtp/tcp", trace.Client, raw.LocalAddr(), raw.RemoteAddr())
	tap := &tapConn{Conn: raw, conv: conv}
	local := s.LocalName
	if local == "" {
		local = "localhost"
	}

	// The greeting, EHLO and STARTTLS are spoken here rather than by
	// go-smtp, so that the EHLO name is ours before TLS as after, and a
	// server that sends more after its 220 to STARTTLS (the command
	// injection of CVE-2011-0411) is caught.
	raw.SetDeadline(time.Now().Add(timeout))
	// The greeting, EHLO and STARTTLS replies fit in 64 KiB; a server that
	// sends more (or an endless line) gets an error, not our memory.
	br := bufio.NewReader(io.LimitReader(tap, maxPreTLS))
	tr := textproto.NewReader(br)
	if _, _, err := tr.ReadResponse(220); err != nil {
		return "", fmt.Errorf("ua: greeting: %w", err)
	}
	fmt.Fprintf(tap, "EHLO %s\r\n", local)
	code, ehlo, err := tr.ReadResponse(250)
	startTLS := false
	if err == nil {
		for _, l := range strings.Split(ehlo, "\n")[1:] {
			if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
				startTLS = true
			}
		}
	} else if te := (*textproto.Error)(nil); !errors.As(err, &te) || te.Code/100 != 5 {
		return "", fmt.Errorf("ua: EHLO: %w", err)
	}
	var conn net.Conn
	secure := false
	if startTLS {
		fmt.Fprintf(tap, "STARTTLS\r\n")
		if _, _, err := tr.ReadResponse(220); err != nil {
			return "", fmt.Errorf("ua: STARTTLS: %w", err)
		}
		if br.Buffered() > 0 {
			return "", errors.New("ua: the server sent more after its reply to STARTTLS, a command injection: giving up")
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.TLSConfig != nil {
			cfg = s.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("ua: STARTTLS: %w", err)
		}
		st := tc.ConnectionState()
		conv.Notef("STARTTLS done: %s %s, certificate verified for %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), cfg.ServerName)
		tap = &tapConn{Conn: tc, conv: conv}
		// go-smtp takes over as if the server had just greeted it, and
		// sends EHLO again, as RFC 3207 §4.2 requires after TLS.
		conn = &prefixConn{Conn: tap, r: io.MultiReader(strings.NewReader("220 resumed\r\n"), tap)}
		secure = true
	} else {
		if !s.Insecure {
			fmt.Fprintf(tap, "QUIT\r\n")
			tr.ReadResponse(221)
			return "", ErrNoTLS
		}
		conv.Notef("no STARTTLS: continuing in clear (--insecure)")
		// go-smtp takes over as if the server had just greeted it; its EHLO
		// is answered with the reply the server already gave (and not sent
		// twice), then it goes on, with HELO if EHLO was refused. Bytes the
		// reader already holds follow.
		rest, _ := br.Peek(br.Buffered())
		replay := "220 resumed\r\n" + formatReply(code, ehlo) + string(rest)
		conn = &prefixConn{Conn: tap, r: io.MultiReader(strings.NewReader(replay), tap), swallow: "EHLO " + local + "\r\n"}
	}
	raw.SetDeadline(time.Time{})

	c := smtp.NewClient(conn)
	c.CommandTimeout = timeout
	c.SubmissionTimeout = 2 * timeout
	defer c.Close()
	if err := c.Hello(local); err != nil {
		return "", fmt.Errorf("ua: EHLO: %w", err)
	}

	if s.Username != "" {
		if !secure && !isLoopback(raw.RemoteAddr()) {
			return "", errors.New("ua: will not send a password in clear to a server that is not on loopback")
		}
		var mech sasl.Client
		switch {
		case c.SupportsAuth("PLAIN"):
			mech = sasl.NewPlainClient("", s.Username, s.Password)
		case c.SupportsAuth("LOGIN"):
			mech = sasl.NewLoginClient(s.Username, s.Password)
		default:
			_, offered := c.Extension("AUTH")
			return "", fmt.Errorf("ua: the server offers no AUTH PLAIN or LOGIN (AUTH %q)", offered)
		}
		if err := c.Auth(mech); err != nil {
			return "", fmt.Errorf("ua: AUTH: %w", err)
		}
	}

	opts := &smtp.MailOptions{Size: int64(len(msg))}
	if !message.IsASCII(env.From) || !allASCII(env.To) {
		opts.UTF8 = true
	}
	if err := c.Mail(env.From, opts); err != nil {
		return "", fmt.Errorf("ua: MAIL FROM:<%s>: %w", env.From, err)
	}
	for _, r := range env.To {
		if err := c.Rcpt(r, nil); err != nil {
			c.Reset()
			c.Quit()
			return "", fmt.Errorf("ua: RCPT TO:<%s>: %w (nothing sent)", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", fmt.Errorf("ua: DATA: %w", err)
	}
	// go-smtp bounds each command's reply but not the writing of the
	// message: allow the command timeout and a second per 64 KiB, the pace
	// of a slow link, so a server that stops reading cannot hold us forever.
	raw.SetWriteDeadline(time.Now().Add(timeout + time.Duration(len(msg)>>16)*time.Second))
	if _, err := w.Write(msg); err != nil {
		return "", fmt.Errorf("ua: DATA: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", fmt.Errorf("ua: end of DATA: %w", err)
	}
	if err := c.Quit(); err != nil {
		conv.Notef("QUIT: %v", err)
	}
	return resp.StatusText, nil
}

func allASCII(l []string) bool {
	for _, s := range l {
		if !message.IsASCII(s) {
			return false
		}
	}
	return true
}

func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// prefixConn reads from r (bytes put before the connection's) and writes
// to the connection, except for a first write equal to swallow, whose
// answer is among the bytes put before.
type prefixConn struct {
	net.Conn
	r       io.Reader
	swallow string
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *prefixConn) Write(b []byte) (int, error) {
	if p.swallow != "" {
		want := p.swallow
		p.swallow = ""
		if string(b) != want {
			// The replayed answer would be read as this command's.
			return 0, fmt.Errorf("ua: go-smtp began with %q, not %q", b, want)
		}
		return len(b), nil
	}
	return p.Conn.Write(b)
}

// formatReply writes a reply as textproto.Reader.ReadResponse returned it:
// its lines joined by "\n" (RFC 5321 §4.2.1: "code-" on all but the last).
func formatReply(code int, msg string) string {
	lines := strings.Split(msg, "\n")
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%03d%s%s\r\n", code, sep, l)
	}
	return b.String()
}

// maxPreTLS bounds what the server may send before TLS or go-smtp's
// client, which has limits of its own, takes over.
const maxPreTLS = 64 << 10

// dataLinesShown is how many lines of a message the trace shows before it
// only counts them.
const dataLinesShown = 40

// tapConn reports every line that passes through a connection to a
// conversation of the trace: one event a line, C: for what the client
// writes, S: for what it reads. It is used by one goroutine at a time, as
// an SMTP client is. Credentials after AUTH are hidden, and of a message
// only its first lines are shown.
type tapConn struct {
	net.Conn
	conv      *trace.Conv
	out, in   []byte // partial lines
	afterData bool   // the client sent DATA
	inData    bool   // the server said 354: client lines are the message
	dataLines int
	inAuth    bool
}

func (t *tapConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if t.conv != nil {
		t.out = t.lines(t.out, p[:n], t.sent)
	}
	return n, err
}

func (t *tapConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if t.conv != nil {
		t.in = t.lines(t.in, p[:n], t.received)
	}
	return n, err
}

// lines adds p to the partial line buf and calls emit for each whole line.
// A line longer than 4 KiB is emitted in pieces (the trace shows 240 bytes
// of it anyway).
func (t *tapConn) lines(buf, p []byte, emit func(string)) []byte {
	for len(p) > 0 {
		i := strings.IndexByte(string(p), '\n')
		if i < 0 {
			buf = append(buf, p...)
			if len(buf) > 4096 {
				emit(string(buf))
				buf = buf[:0]
			}
			return buf
		}
		buf = append(buf, p[:i+1]...)
		p = p[i+1:]
		emit(strings.TrimRight(string(buf), "\r\n"))
		buf = buf[:0]
	}
	return buf
}

func (t *tapConn) sent(line string) {
	switch {
	case t.inData:
		if line == "." {
			if t.dataLines > dataLinesShown {
				t.conv.Notef("… %d more lines of the message", t.dataLines-dataLinesShown)
			}
			t.inData, t.dataLines = false, 0
			t.conv.Send(line)
			return
		}
		t.dataLines++
		if t.dataLines <= dataLinesShown {
			t.conv.Send(line)
		}
	case t.inAuth:
		t.conv.Send("(credentials hidden)")
	default:
		f := strings.Fields(line)
		if len(f) >= 1 && strings.EqualFold(f[0], "AUTH") {
			t.inAuth = true
			if len(f) > 2 {
				line = f[0] + " " + f[1] + " (credentials hidden)"
			}
		}
		t.afterData = strings.EqualFold(line, "DATA")
		t.conv.Send(line)
	}
}

func (t *tapConn) received(line string) {
	if len(line) >= 4 && line[3] == ' ' {
		switch {
		case strings.HasPrefix(line, "354") && t.afterData:
			t.inData = true
		case strings.HasPrefix(line, "334"):
		default:
			t.inAuth = false
		}
		t.afterData = false
	}
	t.conv.Recv(line)
}
