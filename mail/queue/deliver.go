package queue

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"appnet/mail/message"
	"appnet/trace"
)

// Local delivers mail for the server's own domains (into a mailbox
// store). An error that is Permanent (or an *smtp.SMTPError with a 5xx
// code) bounces the recipient; any other error is retried.
type Local interface {
	Deliver(ctx context.Context, rcpt string, msg []byte) error
}

// LocalFunc adapts a function to Local.
type LocalFunc func(ctx context.Context, rcpt string, msg []byte) error

// Deliver calls f.
func (f LocalFunc) Deliver(ctx context.Context, rcpt string, msg []byte) error {
	return f(ctx, rcpt, msg)
}

// Resolver looks up where a domain's mail goes. *net.Resolver implements
// it; NewResolver returns one that asks a given DNS server. A lookup
// that finds no such name or no records answers an error for which
// IsNotFound is true (as *net.DNSError does).
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// NewResolver returns a resolver that sends its queries to the DNS server
// at addr (host:port; the lab's dns/resolver, say), or the system's
// resolver when addr is "".
func NewResolver(addr string) Resolver {
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// IsNotFound reports whether a resolver's error says the name or the
// records do not exist (NXDOMAIN or no data), rather than that the
// lookup failed for now.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// PermanentError marks a delivery failure that retrying cannot cure.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a permanent failure (the recipient bounces).
func Permanent(err error) error { return &PermanentError{Err: err} }

// IsPermanent reports whether err is a permanent failure: a
// PermanentError or an SMTP 5xx reply.
func IsPermanent(err error) bool {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return true
	}
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}

// AgentConfig configures a delivery agent. Zero values take the defaults
// shown.
type AgentConfig struct {
	Hostname string // our name: EHLO, Received:, bounces' From (default "localhost")
	// IsLocal reports whether a domain is ours; its mail goes to Local.
	IsLocal func(domain string) bool
	Local   Local
	// Resolver finds MX and address records (default: the system's).
	Resolver Resolver
	// Port is the remote SMTP port (default 25; tests use another).
	Port int
	// Dial opens connections (default a net.Dialer with a 30 s timeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS is the client configuration for STARTTLS, which is used when a
	// server offers it. nil means encryption without authentication
	// (RFC 7435 opportunistic security, Postfix's "may" level).
	TLS        *tls.Config
	NoSTARTTLS bool
	// MinBackoff is the wait before the first retry (default 5 min); each
	// further retry waits twice as long, up to MaxBackoff (default 4 h).
	MinBackoff, MaxBackoff time.Duration
	// Lifetime is how long a message may stay queued before it bounces
	// (default 5 days, as Postfix's maximal_queue_lifetime).
	Lifetime time.Duration
	// Concurrency bounds deliveries under way (default 20).
	Concurrency int
	// IdleTimeout closes a cached connection unused this long (default
	// 10 s); MaxReuse bounds the messages sent over one (default 100).
	IdleTimeout time.Duration
	MaxReuse    int
	Logger      *slog.Logger
	Tracer      *trace.Tracer
}

// Agent delivers the queue's mail: local domains through Local, others
// over SMTP to the domain's mail exchangers.
type Agent struct {
	q   *Queue
	cfg AgentConfig
	log *slog.Logger

	mu       sync.Mutex // guards idle and noTLS
	idle     map[string][]*pooled
	noTLS    map[string]bool
	finished chan struct{}
}

type pooled struct {
	c    *smtp.Client
	conn net.Conn
	uses int
	last time.Time
}

// NewAgent returns a delivery agent for q; Run starts it.
func NewAgent(q *Queue, cfg AgentConfig) *Agent {
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.IsLocal == nil {
		cfg.IsLocal = func(string) bool { return false }
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Port == 0 {
		cfg.Port = 25
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second}
		cfg.Dial = d.DialContext
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 5 * time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 4 * time.Hour
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 5 * 24 * time.Hour
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.MaxReuse <= 0 {
		cfg.MaxReuse = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{q: q, cfg: cfg, log: cfg.Logger, idle: map[string][]*pooled{}, noTLS: map[string]bool{},
		finished: make(chan struct{}, 1)}
}

// job is the delivery of one message to the recipients it has in one
// domain.
type job struct {
	id, from, domain string
	arrived          time.Time
	idx              []int
	rcpts            []Recipient
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// due collects up to max jobs whose recipients are due, marks them in
// flight, and returns when the next one falls due.
func (q *Queue) due(now time.Time, max int) ([]*job, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var next time.Time
	var jobs []*job
	byKey := map[[2]string]*job{}
	// Map order: no message is always first. The scan stops once max
	// jobs are found (then the next round comes at once), so a large
	// queue costs a round only what it hands out and what it skips.
	for id, e := range q.entries {
		if len(jobs) >= max {
			next = now
			break
		}
		for i, r := range e.env.Rcpts {
			if r.State != Pending || e.inflight[i] {
				continue
			}
			if r.NextTry.After(now) {
				if next.IsZero() || r.NextTry.Before(next) {
					next = r.NextTry
				}
				continue
			}
			d := domainOf(r.Addr)
			k := [2]string{id, d}
			j := byKey[k]
			if j == nil {
				j = &job{id: id, from: e.env.From, domain: d, arrived: e.env.Arrived}
				byKey[k] = j
				jobs = append(jobs, j)
			}
			e.inflight[i] = true
			j.idx = append(j.idx, i)
			j.rcpts = append(j.rcpts, r)
		}
	}
	return jobs, next
}

func (q *Queue) release(id string, idx []int) {
	q.mu.Lock()
	if e := q.entries[id]; e != nil {
		for _, i := range idx {
			e.inflight[i] = false
		}
	}
	q.mu.Unlock()
}

// Run delivers until ctx is canceled, then waits for the deliveries under
// way to stop (they are canceled too: their recipients stay pending).
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		a.closeIdle(time.Time{})
	}()
	sem := make(chan struct{}, a.cfg.Concurrency)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		free := a.cfg.Concurrency - len(sem)
		var jobs []*job
		var next time.Time
		if free > 0 {
			jobs, next = a.q.due(time.Now(), free)
		}
		for _, j := range jobs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.run(ctx, j)
				<-sem
				select {
				case a.finished <- struct{}{}:
				default:
				}
			}()
		}
		a.closeIdle(time.Now().Add(-a.cfg.IdleTimeout))
		wait := a.cfg.IdleTimeout
		if !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		timer.Reset(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-a.q.kick:
		case <-a.finished:
		case <-timer.C:
		}
	}
}

// run delivers one job and records the outcome of each recipient.
func (a *Agent) run(ctx context.Context, j *job) {
	defer a.q.release(j.id, j.idx)
	msg, err := a.q.Message(j.id)
	if err != nil {
		return // deleted meanwhile
	}
	var results []error
	if a.cfg.IsLocal(j.domain) {
		results = make([]error, len(j.rcpts))
		for i, r := range j.rcpts {
			if a.cfg.Local == nil {
				results[i] = errors.New("queue: no local delivery configured")
				continue
			}
			results[i] = a.cfg.Local.Deliver(ctx, r.Addr, msg)
		}
	} else {
		results = a.remote(ctx, j, msg)
	}
	if ctx.Err() != nil {
		return // shutting down: the recipients stay as they were
	}
	a.record(ctx, j, msg, results)
}

// record turns results into recipient states. A bounce notice is queued
// before the recipients it reports are marked bounced, so a crash in
// between repeats the notice rather than losing it.
func (a *Agent) record(ctx context.Context, j *job, msg []byte, results []error) {
	now := time.Now().UTC()
	states := map[int]Recipient{}
	var failed []failure
	for k, err := range results {
		r := j.rcpts[k]
		r.Attempts++
		switch {
		case err == nil:
			r.State, r.LastError, r.NextTry = Delivered, "", time.Time{}
		case IsPermanent(err):
			r.State, r.LastError = Bounced, err.Error()
			failed = append(failed, failure{rcpt: r.Addr, err: err})
		case now.Sub(j.arrived) >= a.cfg.Lifetime:
			r.State, r.LastError = Bounced, err.Error()
			failed = append(failed, failure{rcpt: r.Addr, err: fmt.Errorf("delivery time expired after %d attempts: %w", r.Attempts, err), expired: true})
		default:
			r.LastError = err.Error()
			r.NextTry = now.Add(a.backoff(r.Attempts))
		}
		states[j.idx[k]] = r
	}
	if len(failed) > 0 && j.from != "" {
		if err := a.bounce(ctx, j, msg, failed, now); err != nil {
			// Keep the recipients pending: the notice must not be lost.
			a.log.Error("queue: cannot queue a bounce; the recipients stay pending", "id", j.id, "err", err)
			for i, r := range states {
				if r.State == Bounced {
					r.State, r.NextTry = Pending, now.Add(a.cfg.MinBackoff)
					states[i] = r
				}
			}
		}
	}
	if err := a.q.setStates(ctx, j.id, states); err != nil {
		a.log.Error("queue: cannot record delivery results", "id", j.id, "err", err)
	}
}

// backoff is the wait after the n-th failed attempt: MinBackoff doubled
// n-1 times, at most MaxBackoff.
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.MinBackoff
	for i := 1; i < n && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, a.cfg.MaxBackoff)
}

// setStates records several recipients' states of one message in one
// commit.
func (q *Queue) setStates(ctx context.Context, id string, states map[int]Recipient) error {
	idx := make([]int, 0, len(states))
	for i := range states {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return q.commit(ctx, func(buf []byte, _ *segment, _ int64) []byte {
		q.mu.Lock()
		defer q.mu.Unlock()
		e := q.entries[id]
		if e == nil {
			return buf
		}
		for _, i := range idx {
			if i >= len(e.env.Rcpts) {
				continue
			}
			r := states[i]
			e.env.Rcpts[i] = r
			b, _ := marshalState(id, i, r)
			buf = appendRecord(buf, recState, b)
		}
		if !e.live() {
			delete(q.entries, id)
		}
		return buf
	})
}

// route returns the hosts that take mail for domain, best first (RFC
// 5321 §5.1), and whether they are the domain itself for want of MX
// records.
func (a *Agent) route(ctx context.Context, domain string) (hosts []string, implicit bool, err error) {
	mxs, err := a.cfg.Resolver.LookupMX(ctx, domain)
	if err != nil && !IsNotFound(err) {
		return nil, false, fmt.Errorf("MX lookup for %s: %w", domain, err)
	}
	if len(mxs) == 0 {
		// RFC 5321 §5.1: no MX records: the domain is its own mail
		// exchanger, at preference 0.
		return []string{domain}, true, nil
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		// RFC 7505 §3: a null MX: the domain accepts no mail.
		return nil, false, Permanent(&smtp.SMTPError{Code: 556, EnhancedCode: smtp.EnhancedCode{5, 1, 10},
			Message: fmt.Sprintf("domain %s does not accept mail (null MX)", domain)})
	}
	// Lowest preference first; equal preferences in random order
	// (RFC 5321 §5.1).
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	for _, mx := range mxs {
		if mx.Host == "." {
			continue
		}
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	return hosts, false, nil
}

// remote delivers j over SMTP. It returns one result per recipient.
func (a *Agent) remote(ctx context.Context, j *job, msg []byte) []error {
	all := func(err error) []error { return all(len(j.rcpts), err) }
	hosts, implicit, err := a.route(ctx, j.domain)
	if err != nil {
		return all(err)
	}
	var last error
	for _, h := range hosts {
		addrs, err := a.cfg.Resolver.LookupNetIP(ctx, "ip", h)
		if err != nil || len(addrs) == 0 {
			if err == nil || IsNotFound(err) {
				if implicit {
					// RFC 5321 §5.1: neither MX nor address records.
					return all(Permanent(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2},
						Message: fmt.Sprintf("no mail exchanger or address for %s", j.domain)}))
				}
				last = fmt.Errorf("mail exchanger %s has no address", h)
			} else {
				last = fmt.Errorf("address lookup for %s: %w", h, err)
			}
			continue
		}
		for _, ip := range addrs {
			addr := net.JoinHostPort(ip.String(), strconv.Itoa(a.cfg.Port))
			res, err := a.send(ctx, addr, h, j, msg)
			if err == nil {
				return res
			}
			last = fmt.Errorf("%s[%s]: %w", h, ip, err)
			if ctx.Err() != nil {
				return all(last)
			}
		}
	}
	if last == nil {
		last = errors.New("no mail exchanger answered")
	}
	return all(last)
}

// send delivers j to one server. A non-nil error means the server could
// not take the transaction (connection failure, a 4xx or 5xx to MAIL or
// DATA): for a 4xx or connection failure the caller tries the next
// server. Otherwise the results are per recipient.
func (a *Agent) send(ctx context.Context, addr, host string, j *job, msg []byte) ([]error, error) {
	p, err := a.get(ctx, addr, host)
	if err != nil {
		return nil, err
	}
	res, err := a.transaction(p.c, j, msg)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			// The server answered: the connection is still good.
			a.put(addr, p)
			if se.Code >= 500 {
				// A 5xx to MAIL FROM or to the data: a permanent refusal
				// of the message, not worth another server.
				return all(len(j.rcpts), Permanent(err)), nil
			}
			return nil, err
		}
		p.c.Close()
		return nil, err
	}
	a.put(addr, p)
	return res, nil
}

func all(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// transaction runs MAIL, RCPT..., DATA (RFC 5321 §3.3) on c.
func (a *Agent) transaction(c *smtp.Client, j *job, msg []byte) ([]error, error) {
	var opts *smtp.MailOptions
	if ok, _ := c.Extension("8BITMIME"); ok && !is7bit(msg) {
		opts = &smtp.MailOptions{Body: smtp.Body8BitMIME}
	}
	utf8 := !message.IsASCII(j.from)
	for _, r := range j.rcpts {
		utf8 = utf8 || !message.IsASCII(r.Addr)
	}
	if utf8 {
		if opts == nil {
			opts = &smtp.MailOptions{}
		}
		opts.UTF8 = true
	}
	if ok, _ := c.Extension("SIZE"); ok {
		if opts == nil {
			opts = &smtp.MailOptions{}
		}
		opts.Size = int64(len(msg))
	}
	if err := c.Mail(j.from, opts); err != nil {
		return nil, err
	}
	res := make([]error, len(j.rcpts))
	accepted := 0
	for i, r := range j.rcpts {
		if err := c.Rcpt(r.Addr, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return nil, err
			}
			res[i] = err
			continue
		}
		accepted++
	}
	if accepted == 0 {
		if err := c.Reset(); err != nil {
			return nil, err
		}
		return res, nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	// The server's 250 to the final dot: from here on the message is its
	// responsibility (RFC 5321 §4.1.1.4, §6.1).
	return res, nil
}

// get returns a cached connection to addr, checked with RSET, or a new
// one.
func (a *Agent) get(ctx context.Context, addr, host string) (*pooled, error) {
	for {
		a.mu.Lock()
		l := a.idle[addr]
		var p *pooled
		if n := len(l); n > 0 {
			p = l[n-1]
			a.idle[addr] = l[:n-1]
		}
		a.mu.Unlock()
		if p == nil {
			break
		}
		// RFC 5321 §4.1.1.5: RSET between transactions on a reused
		// connection; a connection that does not answer is dropped.
		if err := p.c.Reset(); err == nil {
			p.uses++
			return p, nil
		}
		p.c.Close()
	}
	return a.dial(ctx, addr, host)
}

func (a *Agent) put(addr string, p *pooled) {
	if p.uses+1 >= a.cfg.MaxReuse {
		p.c.Quit()
		p.c.Close()
		return
	}
	p.last = time.Now()
	a.mu.Lock()
	a.idle[addr] = append(a.idle[addr], p)
	a.mu.Unlock()
}

// closeIdle closes cached connections unused since before t (all, for
// the zero t), with QUIT.
func (a *Agent) closeIdle(t time.Time) {
	var old []*pooled
	a.mu.Lock()
	for addr, l := range a.idle {
		keep := l[:0]
		for _, p := range l {
			if t.IsZero() || p.last.Before(t) {
				old = append(old, p)
			} else {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			delete(a.idle, addr)
		} else {
			a.idle[addr] = keep
		}
	}
	a.mu.Unlock()
	for _, p := range old {
		p.conn.SetDeadline(time.Now().Add(5 * time.Second))
		p.c.Quit()
		p.c.Close()
	}
}

// dial connects to addr, reads the greeting and says EHLO; when the
// server offers STARTTLS (RFC 3207) it is used.
func (a *Agent) dial(ctx context.Context, addr, host string) (*pooled, error) {
	raw, err := a.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := a.cfg.Tracer.Conv(a.cfg.Hostname, "smtp", trace.Client, raw.LocalAddr(), raw.RemoteAddr())
	var conn net.Conn = raw
	if tc != nil {
		conn = &traceConn{Conn: raw, tc: tc}
	}
	// RFC 5321 §4.5.3.2: 5 minutes for the greeting and for most replies.
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	br := bufio.NewReader(conn)
	code, _, err := readReply(br)
	if err == nil && code/100 != 2 {
		err = &smtp.SMTPError{Code: code, Message: "greeting refused"}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	a.mu.Lock()
	skipTLS := a.cfg.NoSTARTTLS || a.noTLS[addr]
	a.mu.Unlock()
	var replay io.Reader = br
	if !skipTLS {
		fmt.Fprintf(conn, "EHLO %s\r\n", a.cfg.Hostname)
		code, lines, err := readReply(br)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("EHLO: %w", err)
		}
		offered := false
		for _, l := range lines[1:] {
			offered = offered || strings.EqualFold(strings.TrimSpace(l), "STARTTLS")
		}
		if code == 250 && offered {
			fmt.Fprintf(conn, "STARTTLS\r\n")
			code, _, err := readReply(br)
			if err != nil || code != 220 {
				conn.Close()
				return a.plainAfterTLSFailure(ctx, addr, host, fmt.Errorf("STARTTLS refused (%d): %v", code, err))
			}
			cfg := a.cfg.TLS
			if cfg == nil {
				cfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
			}
			cfg = cfg.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = host
			}
			tlsConn := tls.Client(raw, cfg)
			if err := tlsConn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return a.plainAfterTLSFailure(ctx, addr, host, fmt.Errorf("TLS handshake: %w", err))
			}
			conn = tlsConn
			if tc != nil {
				conn = &traceConn{Conn: tlsConn, tc: tc}
			}
			replay = conn
		} else {
			a.mu.Lock()
			a.noTLS[addr] = true
			a.mu.Unlock()
		}
	}
	conn.SetDeadline(time.Time{})
	// go-smtp's client reads a greeting first: give it the one we read.
	c := smtp.NewClient(&replayConn{Conn: conn, r: io.MultiReader(strings.NewReader("220 "+host+"\r\n"), replay)})
	c.CommandTimeout = 5 * time.Minute     // RFC 5321 §4.5.3.2.2-4
	c.SubmissionTimeout = 10 * time.Minute // §4.5.3.2.6: the final dot's reply
	if err := c.Hello(a.cfg.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return &pooled{c: c, conn: conn}, nil
}

// plainAfterTLSFailure remembers that TLS with addr fails and connects
// again without it, as opportunistic TLS does (RFC 7435 §3; Postfix's
// "may" level). With a TLS config of one's own (verification wanted),
// there is no fallback.
func (a *Agent) plainAfterTLSFailure(ctx context.Context, addr, host string, err error) (*pooled, error) {
	if a.cfg.TLS != nil {
		return nil, err
	}
	a.log.Info("queue: TLS failed; sending in plaintext", "server", addr, "err", err)
	a.mu.Lock()
	a.noTLS[addr] = true
	a.mu.Unlock()
	return a.dial(ctx, addr, host)
}

// readReply reads one SMTP reply (RFC 5321 §4.2), lines without codes.
func readReply(br *bufio.Reader) (int, []string, error) {
	var lines []string
	code := 0
	for n := 0; n < 100; n++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, nil, fmt.Errorf("malformed reply %q", line)
		}
		c, err := strconv.Atoi(line[:3])
		if err != nil || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
			// RFC 5321 §4.2: three digits, the first 2 to 5.
			return 0, nil, fmt.Errorf("malformed reply %q", line)
		}
		code = c
		lines = append(lines, strings.TrimPrefix(line[3:], "-"))
		if len(line) == 3 || line[3] == ' ' {
			return code, lines, nil
		}
	}
	return 0, nil, errors.New("reply too long")
}

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// traceConn reports each line sent and received to a trace conversation.
type traceConn struct {
	net.Conn
	tc   *trace.Conv
	rbuf []byte
	wbuf []byte
}

func (c *traceConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rbuf = emitLines(append(c.rbuf, b[:n]...), c.tc.RecvBytes)
	return n, err
}

func (c *traceConn) Write(b []byte) (int, error) {
	c.wbuf = emitLines(append(c.wbuf, b...), c.tc.SendBytes)
	return c.Conn.Write(b)
}

func emitLines(buf []byte, emit func([]byte)) []byte {
	for {
		i := strings.IndexByte(string(buf), '\n')
		if i < 0 {
			if len(buf) > 4096 {
				emit(buf)
				return buf[:0]
			}
			return buf
		}
		emit(buf[:i+1])
		buf = buf[i+1:]
	}
}

func is7bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
