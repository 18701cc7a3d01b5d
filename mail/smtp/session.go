package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"appnet/mail/message"
	"appnet/trace"
)

// Line limits. RFC 5321 §4.5.3.1.4 allows 512 octets for a command line,
// more with extensions' parameters; RFC 4954 §4 raises it to 12288 for
// AUTH. RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with
// its CRLF.
const (
	maxCommandLine = 12288
	maxTextLine    = 1000
	traceDataLines = 20 // message lines shown in a trace; the rest are counted
)

type session struct {
	s      *Server
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	tc     *trace.Conv
	remote net.Addr

	first    bool   // the first command is still awaited
	helo     string // "" until HELO/EHLO
	esmtp    bool
	tls      bool
	authUser string
	rdns     string
	errors   int
	closed   atomic.Bool
	busy     atomic.Bool // inside a transaction's DATA or commit
	held     int64       // message bytes counted in the server's budget

	// The transaction (RFC 5321 §3.3).
	inMail   bool
	from     string
	rcpts    []string
	utf8     bool
	declared int64
}

// reply is one SMTP reply.
type reply struct {
	code  int
	ec    string // enhanced status code (RFC 3463), "" for none
	lines []string
}

func (s *Server) serveConn(c net.Conn) {
	ss := &session{
		s: s, conn: c, remote: c.RemoteAddr(), first: true,
		br: bufio.NewReaderSize(c, 4096),
		bw: bufio.NewWriterSize(c, 4096),
		tc: s.Tracer.Conv(s.Hostname, "smtp/"+s.Role.String(), trace.Server, c.LocalAddr(), c.RemoteAddr()),
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[ss] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, ss)
		s.mu.Unlock()
		c.Close()
	}()
	ss.run()
}

// interrupt wakes a session waiting for a command, so it can say 421 and
// go; a session in DATA or committing a message finishes it first.
func (ss *session) interrupt() {
	if !ss.busy.Load() {
		ss.conn.SetReadDeadline(time.Now())
	}
}

func (ss *session) shuttingDown() bool {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	return ss.s.closing
}

func (ss *session) run() {
	s := ss.s
	ss.tc.Notef("connection from %s", ss.remote)
	if s.LookupAddr != nil {
		if ta, ok := ss.remote.(*net.TCPAddr); ok {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			names, err := s.LookupAddr(ctx, ta.IP.String())
			cancel()
			if err == nil && len(names) > 0 {
				ss.rdns = strings.TrimSuffix(names[0], ".")
			}
		}
	}
	// RFC 5321 §4.2: the greeting.
	ss.send(reply{code: 220, lines: []string{s.Hostname + " ESMTP appnet"}})
	for !ss.closed.Load() {
		timeout := s.CommandTimeout
		if ss.first {
			timeout = s.GreetingTimeout
		}
		line, err := ss.readLine(maxCommandLine, timeout)
		if err != nil {
			ss.readFailed(err)
			return
		}
		ss.first = false
		ss.command(line)
		if ss.br.Buffered() == 0 {
			ss.flush()
		}
	}
}

// readFailed ends the session after a failed read.
func (ss *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		ss.send(reply{code: 500, ec: "5.5.2", lines: []string{"Error: line too long"}})
		ss.tc.Notef("closed: command line too long")
	case errors.Is(err, errShuttingDown) || errors.As(err, &ne) && ne.Timeout():
		if ss.shuttingDown() {
			ss.send(reply{code: 421, ec: "4.3.2", lines: []string{ss.s.Hostname + " Service shutting down, closing transmission channel"}})
			ss.tc.Notef("closed: server shutting down")
		} else {
			ss.send(reply{code: 421, ec: "4.4.2", lines: []string{ss.s.Hostname + " Error: timeout exceeded"}})
			ss.tc.Notef("closed: timeout")
		}
	default:
		ss.tc.Notef("connection closed by client (%v)", err)
	}
	ss.flush()
}

var (
	errLineTooLong  = errors.New("smtp: line too long")
	errShuttingDown = errors.New("smtp: shutting down")
)

// readLine reads a command line (CRLF or, leniently, LF ended) of at
// most max octets and returns it without its ending.
func (ss *session) readLine(max int, timeout time.Duration) (string, error) {
	ss.flush()
	ss.conn.SetReadDeadline(time.Now().Add(timeout))
	// Checked after the deadline is set: Shutdown sets the flag before it
	// moves the deadline to now, so one of the two stops the read.
	if ss.shuttingDown() {
		return "", errShuttingDown
	}
	var line []byte
	for {
		chunk, err := ss.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return "", errLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	return string(line), nil
}

func (ss *session) send(r reply) {
	if ss.closed.Load() {
		return
	}
	for i, l := range r.lines {
		sep := "-"
		if i == len(r.lines)-1 {
			sep = " "
		}
		text := l
		if r.ec != "" && (i == len(r.lines)-1 || r.code != 250) {
			text = r.ec + " " + l
		}
		line := strconv.Itoa(r.code) + sep + text
		ss.tc.Send(line)
		ss.bw.WriteString(line)
		ss.bw.WriteString("\r\n")
	}
}

func (ss *session) flush() {
	if ss.bw.Buffered() == 0 || ss.closed.Load() {
		return
	}
	ss.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	if err := ss.bw.Flush(); err != nil {
		ss.closed.Store(true)
	}
}

func (ss *session) close() {
	ss.flush()
	ss.closed.Store(true)
}

func (ss *session) reply(code int, ec string, format string, args ...any) {
	ss.send(reply{code: code, ec: ec, lines: []string{fmt.Sprintf(format, args...)}})
}

// fail answers an error and counts it; too many end the session
// (Postfix's smtpd_hard_error_limit).
func (ss *session) fail(code int, ec string, format string, args ...any) {
	ss.reply(code, ec, format, args...)
	ss.errors++
	if ss.errors >= ss.s.MaxErrors {
		ss.reply(421, "4.7.0", "%s Error: too many errors", ss.s.Hostname)
		ss.tc.Notef("closed: too many errors")
		ss.close()
	}
}

func (ss *session) resetTx() {
	ss.inMail, ss.from, ss.rcpts, ss.utf8, ss.declared = false, "", nil, false, 0
}

func (ss *session) command(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if verb == "AUTH" {
		mech, _, _ := strings.Cut(arg, " ")
		ss.tc.Recv("AUTH " + mech + " ****") // never trace credentials
	} else {
		ss.tc.Recv(line)
	}
	if strings.IndexByte(line, 0) >= 0 || !validCommandText(line) {
		ss.fail(500, "5.5.2", "Error: bad syntax (control characters)")
		return
	}
	switch verb {
	case "HELO", "EHLO":
		ss.hello(verb == "EHLO", strings.TrimSpace(arg))
	case "MAIL":
		ss.mail(arg)
	case "RCPT":
		ss.rcpt(arg)
	case "DATA":
		ss.data(arg)
	case "RSET":
		ss.resetTx()
		ss.reply(250, "2.0.0", "Ok")
	case "NOOP":
		ss.reply(250, "2.0.0", "Ok")
	case "QUIT":
		ss.reply(221, "2.0.0", "Bye")
		ss.tc.Notef("closed by QUIT")
		ss.close()
	case "VRFY":
		// RFC 5321 §3.5.3: 252 neither confirms nor denies.
		ss.reply(252, "2.0.0", "Send some mail, I'll try my best")
	case "EXPN":
		ss.fail(502, "5.5.1", "Error: command not implemented")
	case "HELP":
		ss.reply(214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS AUTH")
	case "STARTTLS":
		ss.startTLS(arg)
	case "AUTH":
		ss.auth(arg)
	default:
		ss.fail(500, "5.5.2", "Error: command not recognized")
	}
}

func validCommandText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// hello answers HELO and EHLO (RFC 5321 §4.1.1.1); either one also
// resets the transaction.
func (ss *session) hello(extended bool, domain string) {
	if domain == "" {
		ss.fail(501, "5.5.4", "Syntax: HELO/EHLO hostname")
		return
	}
	if f := strings.Fields(domain); len(f) > 0 {
		domain = f[0]
	}
	if len(domain) > 255 {
		ss.fail(501, "5.5.4", "Error: hostname too long")
		return
	}
	ss.resetTx()
	ss.helo, ss.esmtp = domain, extended
	if !extended {
		ss.reply(250, "", "%s Hello %s, pleased to meet you", ss.s.Hostname, domain)
		return
	}
	lines := []string{ss.s.Hostname + " Hello " + domain,
		"PIPELINING",
		"SIZE " + strconv.FormatInt(ss.s.MaxMessageBytes, 10),
		"8BITMIME",
		"ENHANCEDSTATUSCODES",
		"SMTPUTF8",
	}
	if ss.s.TLSConfig != nil && !ss.tls {
		lines = append(lines, "STARTTLS")
	}
	if ss.authAllowed() && ss.authUser == "" {
		lines = append(lines, "AUTH PLAIN LOGIN")
	}
	ss.send(reply{code: 250, lines: lines})
}

func (ss *session) authAllowed() bool {
	if ss.s.Auth == nil || ss.s.Role != Submission {
		return false
	}
	return ss.tls || ss.s.AllowInsecureAuth && isLoopback(ss.remote)
}

// startTLS upgrades the connection (RFC 3207 §4).
func (ss *session) startTLS(arg string) {
	switch {
	case ss.s.TLSConfig == nil:
		ss.fail(502, "5.5.1", "Error: command not implemented")
		return
	case ss.tls:
		ss.fail(503, "5.5.1", "Error: TLS already active")
		return
	case arg != "":
		ss.fail(501, "5.5.4", "Syntax: STARTTLS")
		return
	case ss.helo == "":
		ss.fail(503, "5.5.1", "Error: send HELO/EHLO first")
		return
	}
	ss.reply(220, "2.0.0", "Ready to start TLS")
	ss.flush()
	// Anything the client pipelined after STARTTLS arrived in plaintext
	// and is dropped (CVE-2011-0411): only the TLS stream counts.
	tconn := tls.Server(ss.conn, ss.s.TLSConfig)
	tconn.SetDeadline(time.Now().Add(ss.s.GreetingTimeout))
	if err := tconn.HandshakeContext(ss.s.ctx); err != nil {
		ss.tc.Notef("TLS handshake failed: %v", err)
		ss.closed.Store(true)
		return
	}
	tconn.SetDeadline(time.Time{})
	st := tconn.ConnectionState()
	ss.tc.Notef("TLS established: %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	ss.conn = tconn
	ss.br = bufio.NewReaderSize(tconn, 4096)
	ss.bw = bufio.NewWriterSize(tconn, 4096)
	ss.tls = true
	// RFC 3207 §4.2: forget everything learned before TLS.
	ss.helo, ss.esmtp, ss.authUser = "", false, ""
	ss.resetTx()
}

// auth runs AUTH PLAIN (RFC 4616) or LOGIN (RFC 4954 §4, the
// draft-murchison-sasl-login exchange).
func (ss *session) auth(arg string) {
	switch {
	case ss.s.Auth == nil || ss.s.Role != Submission:
		// The MX takes mail for local users only; it has no use for AUTH.
		ss.fail(502, "5.5.1", "Error: authentication not enabled")
		return
	case ss.helo == "" || !ss.esmtp:
		ss.fail(503, "5.5.1", "Error: send EHLO first")
		return
	case ss.authUser != "":
		ss.fail(503, "5.5.1", "Error: already authenticated")
		return
	case ss.inMail:
		ss.fail(503, "5.5.1", "Error: MAIL transaction in progress")
		return
	case !ss.authAllowed():
		ss.fail(530, "5.7.0", "Must issue a STARTTLS command first")
		return
	}
	mech, initial, _ := strings.Cut(strings.TrimSpace(arg), " ")
	var user, pass string
	var ok bool
	switch strings.ToUpper(mech) {
	case "PLAIN":
		resp, good := ss.saslStep(initial, "")
		if !good {
			return
		}
		// authzid NUL authcid NUL passwd
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 || len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1]) {
			ss.fail(501, "5.5.2", "Error: malformed PLAIN response")
			return
		}
		user, pass, ok = string(parts[1]), string(parts[2]), true
	case "LOGIN":
		u, good := ss.saslStep(initial, "VXNlcm5hbWU6") // "Username:"
		if !good {
			return
		}
		p, good := ss.saslStep("", "UGFzc3dvcmQ6") // "Password:"
		if !good {
			return
		}
		user, pass, ok = string(u), string(p), true
	default:
		ss.fail(504, "5.5.4", "Error: unsupported authentication mechanism")
		return
	}
	if !ok {
		return
	}
	err := ss.s.Auth.Authenticate(ss.s.ctx, user, pass)
	switch {
	case err == nil:
		ss.s.throttle.Succeeded(ss.remote)
		ss.authUser = user
		ss.tc.Notef("authenticated as %s", user)
		ss.reply(235, "2.7.0", "Authentication successful")
	case errors.Is(err, ErrBadCredentials):
		d := ss.s.throttle.Failed(ss.remote)
		ss.tc.Notef("authentication failed for %q; answering in %v", user, d)
		ss.flush()
		ss.s.sleep(ss.s.ctx, d)
		ss.fail(535, "5.7.8", "Error: authentication failed")
	default:
		ss.s.Logger.Error("smtp: authenticator", "err", err)
		ss.fail(454, "4.7.0", "Temporary authentication failure")
	}
}

// saslStep returns the client's response: the initial one if given,
// else asks with a 334 challenge.
func (ss *session) saslStep(initial, challenge string) ([]byte, bool) {
	enc := initial
	if enc == "" {
		ss.send(reply{code: 334, lines: []string{challenge}})
		line, err := ss.readLine(maxCommandLine, ss.s.CommandTimeout)
		if err != nil {
			ss.readFailed(err)
			ss.closed.Store(true)
			return nil, false
		}
		ss.tc.Recv("****")
		enc = line
	}
	if enc == "*" {
		ss.fail(501, "5.7.0", "Authentication aborted")
		return nil, false
	}
	if enc == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		ss.fail(501, "5.5.2", "Error: invalid base64 data")
		return nil, false
	}
	return b, true
}

// mail answers MAIL FROM (RFC 5321 §4.1.1.2).
func (ss *session) mail(arg string) {
	switch {
	case ss.helo == "":
		ss.fail(503, "5.5.1", "Error: send HELO/EHLO first")
		return
	case ss.inMail:
		ss.fail(503, "5.5.1", "Error: nested MAIL command")
		return
	case ss.s.Role == Submission && ss.authUser == "":
		if ss.s.TLSConfig != nil && !ss.tls {
			ss.fail(530, "5.7.0", "Must issue a STARTTLS command first")
		} else {
			ss.fail(530, "5.7.0", "Authentication required")
		}
		return
	}
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		ss.fail(501, "5.5.4", "Syntax: MAIL FROM:<address>")
		return
	}
	addr, params, err := parsePath(rest)
	if err != nil {
		ss.fail(501, "5.1.7", "Bad sender address syntax")
		return
	}
	var size int64
	utf8 := false
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				ss.fail(501, "5.5.4", "Bad SIZE parameter")
				return
			}
			size = n
		case "BODY":
			if !strings.EqualFold(v, "7BIT") && !strings.EqualFold(v, "8BITMIME") {
				ss.fail(501, "5.5.4", "Bad BODY parameter")
				return
			}
		case "SMTPUTF8":
			utf8 = true
		case "AUTH":
			// RFC 4954 §5: accepted and not trusted.
		default:
			ss.fail(555, "5.5.4", "Unsupported option: %s", k)
			return
		}
	}
	if !utf8 && !message.IsASCII(addr) {
		ss.fail(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
		return
	}
	if size > ss.s.MaxMessageBytes {
		// RFC 1870 §6.
		ss.reply(552, "5.3.4", "Message size exceeds fixed limit")
		return
	}
	ss.inMail, ss.from, ss.utf8, ss.declared, ss.rcpts = true, addr, utf8, size, nil
	ss.reply(250, "2.1.0", "Ok")
}

// rcpt answers RCPT TO (RFC 5321 §4.1.1.3).
func (ss *session) rcpt(arg string) {
	if !ss.inMail {
		ss.fail(503, "5.5.1", "Error: need MAIL command")
		return
	}
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		ss.fail(501, "5.5.4", "Syntax: RCPT TO:<address>")
		return
	}
	addr, params, err := parsePath(rest)
	postmaster := false
	if pm, p2, ok := unqualifiedPostmaster(rest); ok {
		// RFC 5321 §4.5.1: <Postmaster> without a domain is always taken.
		d := ss.s.PostmasterDomain
		if d == "" {
			d = ss.s.Hostname
		}
		addr, params, err, postmaster = pm+"@"+d, p2, nil, true
	}
	if err != nil || addr == "" {
		ss.fail(501, "5.1.3", "Bad recipient address syntax")
		return
	}
	if len(params) > 0 {
		ss.fail(555, "5.5.4", "Unsupported option: %s", params[0])
		return
	}
	if !ss.utf8 && !message.IsASCII(addr) {
		ss.fail(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
		return
	}
	if len(ss.rcpts) >= ss.s.MaxRecipients {
		// RFC 5321 §4.5.3.1.10: the client sends the rest later.
		ss.reply(452, "4.5.3", "Error: too many recipients")
		return
	}
	domain := strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
	local := ss.s.Recipients != nil && ss.s.Recipients.IsLocalDomain(domain)
	if postmaster {
		ss.rcpts = append(ss.rcpts, addr)
		ss.reply(250, "2.1.5", "Ok")
		return
	}
	if !local && ss.authUser == "" {
		// No open relay: only our own domains, unless authenticated.
		ss.fail(554, "5.7.1", "<%s>: Relay access denied", addr)
		return
	}
	if local {
		exists, err := ss.s.Recipients.UserExists(ss.s.ctx, addr)
		if err != nil {
			ss.s.Logger.Error("smtp: user lookup", "err", err)
			ss.reply(451, "4.3.0", "<%s>: Temporary lookup failure", addr)
			return
		}
		if !exists {
			ss.fail(550, "5.1.1", "<%s>: Recipient address rejected: User unknown", addr)
			return
		}
	}
	ss.rcpts = append(ss.rcpts, addr)
	ss.reply(250, "2.1.5", "Ok")
}

// data reads the message (RFC 5321 §4.1.1.4, §4.5.2), commits it to the
// spool and answers.
func (ss *session) data(arg string) {
	switch {
	case arg != "":
		ss.fail(501, "5.5.4", "Syntax: DATA")
		return
	case !ss.inMail:
		ss.fail(503, "5.5.1", "Error: need MAIL command")
		return
	case len(ss.rcpts) == 0:
		ss.fail(503, "5.5.1", "Error: need RCPT command")
		return
	}
	ss.busy.Store(true)
	defer ss.busy.Store(false)
	defer func() {
		// The message's bytes leave the server's memory budget once the
		// spool has them (or they were refused).
		ss.s.buffered.Add(-ss.held)
		ss.held = 0
	}()
	ss.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	ss.flush()
	msg, problem, err := ss.readData()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			ss.reply(421, "4.4.2", "%s Error: timeout exceeded", ss.s.Hostname)
		}
		ss.tc.Notef("closed during DATA: %v", err)
		ss.close()
		return
	}
	defer ss.resetTx()
	if problem != nil {
		ss.send(*problem)
		if problem.code == 521 {
			ss.close()
		}
		return
	}
	if h := message.CountReceived(msg); h > ss.s.MaxHops {
		ss.reply(554, "5.4.6", "Error: too many hops (%d Received: headers): mail loop?", h)
		return
	}
	id := ss.s.Spool.NewID()
	var head bytes.Buffer
	ss.received(&head, id)
	if ss.s.Role == Submission {
		// RFC 6409 §8.2, §8.3: the submission server may add Date and
		// Message-ID where the client left them out.
		if ensured, err := message.EnsureSubmissionHeaders(msg, ss.s.Hostname, time.Now()); err == nil {
			msg = ensured
		} else {
			ss.s.Logger.Warn("smtp: Date and Message-ID not added", "err", err)
		}
	}
	full := append(head.Bytes(), msg...)
	if err := ss.s.Spool.Enqueue(ss.s.ctx, id, ss.from, ss.rcpts, full); err != nil {
		ss.s.Logger.Error("smtp: enqueue", "err", err)
		if hasSpaceError(err) {
			ss.reply(452, "4.3.1", "Error: insufficient system storage")
		} else {
			ss.reply(451, "4.3.0", "Error: queue file write error")
		}
		return
	}
	ss.tc.Notef("queued as %s (%d bytes, %d recipients)", id, len(full), len(ss.rcpts))
	ss.reply(250, "2.0.0", "Ok: queued as %s", id)
}

// received writes the Received: field (RFC 5321 §4.4; protocol names of
// RFC 3848).
func (ss *session) received(w *bytes.Buffer, id string) {
	ip := ss.remote.String()
	if ta, ok := ss.remote.(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	rdns := ss.rdns
	if rdns == "" {
		rdns = "unknown"
	}
	// RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA), RFC 6531 §3.7.3 (UTF8SMTP...).
	with := "SMTP"
	if ss.esmtp {
		with = "ESMTP"
		if ss.utf8 {
			with = "UTF8SMTP"
		}
		if ss.tls {
			with += "S"
		}
		if ss.authUser != "" {
			with += "A"
		}
	}
	fmt.Fprintf(w, "Received: from %s (%s [%s])\r\n\tby %s (appnet) with %s id %s", sanitize(ss.helo), sanitize(rdns), ip, ss.s.Hostname, with, id)
	if len(ss.rcpts) == 1 {
		fmt.Fprintf(w, "\r\n\tfor <%s>", sanitize(ss.rcpts[0]))
	}
	fmt.Fprintf(w, "; %s\r\n", time.Now().Format(time.RFC1123Z))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, s)
}

// readData reads the message text up to the end-of-data line
// <CR><LF>.<CR><LF>, undoing dot-stuffing (RFC 5321 §4.5.2). It returns
// an error only for a failed read (the session ends); a message it will
// not take comes back as the reply to give, after the whole of it was
// read (or at once for a bare CR or LF, which closes the session).
func (ss *session) readData() ([]byte, *reply, error) {
	limit := ss.s.MaxMessageBytes
	var (
		noMemory bool
		msg      bytes.Buffer
		lineLen  int
		start    = true // at the start of a line
		oversize bool
		longLine bool
		nul      bool
		prevCR   bool
		nlines   int
		total    int64
	)
	for {
		ss.conn.SetReadDeadline(time.Now().Add(ss.s.CommandTimeout))
		chunk, err := ss.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return nil, nil, err
		}
		complete := err == nil
		total += int64(len(chunk))
		if total > 4*limit+1<<20 {
			// Reading on and discarding (RFC 5321 wants the whole of it
			// read) has a bound too.
			return nil, nil, errors.New("smtp: client sent far more than the size limit")
		}
		if start && complete && string(chunk) == ".\r\n" {
			break
		}
		// A CR must be followed by LF, and an LF preceded by CR.
		if prevCR && len(chunk) > 0 && chunk[0] != '\n' {
			return nil, &reply{code: 521, ec: "5.5.2", lines: []string{ss.s.Hostname + " Error: bare <CR> received"}}, nil
		}
		for i, c := range chunk {
			switch {
			case c == '\n' && !(i > 0 && chunk[i-1] == '\r' || i == 0 && prevCR):
				return nil, &reply{code: 521, ec: "5.5.2", lines: []string{ss.s.Hostname + " Error: bare <LF> received"}}, nil
			case c == '\r' && (i+1 < len(chunk) && chunk[i+1] != '\n'):
				return nil, &reply{code: 521, ec: "5.5.2", lines: []string{ss.s.Hostname + " Error: bare <CR> received"}}, nil
			case c == 0:
				nul = true
			}
		}
		if len(chunk) > 0 {
			prevCR = chunk[len(chunk)-1] == '\r'
		}
		data := chunk
		if start && len(data) > 0 && data[0] == '.' {
			data = data[1:] // RFC 5321 §4.5.2: transparency
		}
		lineLen += len(chunk)
		if lineLen > maxTextLine {
			longLine = true
		}
		if nlines < traceDataLines && complete {
			ss.tc.RecvBytes(chunk)
		}
		if complete {
			nlines++
			lineLen = 0
		}
		start = complete
		if !oversize && int64(msg.Len()+len(data)) > limit {
			oversize = true
			msg = bytes.Buffer{} // keep nothing of a message we refuse
		}
		if !oversize && !noMemory {
			if ss.s.buffered.Add(int64(len(data))) > ss.s.MaxBufferedBytes {
				ss.s.buffered.Add(-int64(len(data)))
				noMemory = true
				msg = bytes.Buffer{}
			} else {
				ss.held += int64(len(data))
				msg.Write(data)
			}
		}
	}
	if nlines > traceDataLines {
		ss.tc.Notef("... %d more message lines", nlines-traceDataLines)
	}
	ss.tc.Recv(".")
	switch {
	case oversize:
		return nil, &reply{code: 552, ec: "5.3.4", lines: []string{"Error: message size exceeds fixed limit"}}, nil
	case noMemory:
		return nil, &reply{code: 452, ec: "4.3.1", lines: []string{"Error: insufficient system resources, try again later"}}, nil
	case nul:
		return nil, &reply{code: 554, ec: "5.6.0", lines: []string{"Error: message contains NUL characters"}}, nil
	case longLine:
		return nil, &reply{code: 554, ec: "5.6.0", lines: []string{fmt.Sprintf("Error: message has a line longer than %d octets (RFC 5321 §4.5.3.1.6)", maxTextLine)}}, nil
	}
	return msg.Bytes(), nil, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// unqualifiedPostmaster recognizes "<Postmaster> params" (any case).
func unqualifiedPostmaster(s string) (string, []string, bool) {
	s = strings.TrimLeft(s, " ")
	if len(s) < 12 || !strings.EqualFold(s[:12], "<postmaster>") {
		return "", nil, false
	}
	return s[1:11], strings.Fields(s[12:]), true
}

// parsePath parses "<address> params..." (RFC 5321 §4.1.2), leniently
// allowing a space before "<" as real clients send. A source route
// (<@a,@b:user@c>) is dropped, as §4.1.1.3 allows. The null path <>
// gives "".
func parsePath(s string) (string, []string, error) {
	s = strings.TrimLeft(s, " ")
	if !strings.HasPrefix(s, "<") {
		return "", nil, errors.New("no <")
	}
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return "", nil, errors.New("no >")
	}
	addr := s[1:end]
	params := strings.Fields(s[end+1:])
	if strings.HasPrefix(addr, "@") {
		i := strings.IndexByte(addr, ':')
		if i < 0 {
			return "", nil, errors.New("bad source route")
		}
		addr = addr[i+1:]
	}
	if addr == "" {
		return "", params, nil
	}
	if len(addr) > 254 || strings.ContainsAny(addr, " \t<>") {
		return "", nil, errors.New("bad address")
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || len(addr)-at-1 > 253 || at > 64 {
		return "", nil, errors.New("bad address")
	}
	return addr, params, nil
}
