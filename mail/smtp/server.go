// Package smtp is the mail server's SMTP service (RFC 5321): a receiving
// MX (port 25), which takes mail for the server's own domains from
// anyone, and a submission service (port 587, RFC 6409), which takes
// mail for any domain from users who authenticated with SASL PLAIN
// (RFC 4616) or LOGIN after STARTTLS (RFC 3207, RFC 4954). Extensions:
// SIZE (RFC 1870), PIPELINING (RFC 2920), 8BITMIME (RFC 6152),
// ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463), SMTPUTF8 (RFC 6531).
//
// Accepted mail goes to a Spool (the durable queue); 250 is answered only
// after the spool has committed the message to stable storage.
//
// The DATA reader ends a message only at <CR><LF>.<CR><LF>. A bare LF or
// a bare CR inside DATA makes the server answer 521 5.5.2 and close the
// connection, discarding the message, as Postfix's
// smtpd_forbid_bare_newline does: so "<LF>.<CR><LF>", "<CR>.<CR>" and
// friends can never split one message into two here or at a next hop
// (the 2023 SMTP smuggling reports). To type a session by hand use a
// client that sends CRLF: telnet, or nc -C.
//
// Limits: a message with a NUL, or with a line longer than 1000 octets
// with its CRLF (RFC 5321 §4.5.3.1.6), is read to its end and refused
// with 554 5.6.0 rather than folded or cut (so what is queued is what
// was sent); a command line may have 12288 octets (RFC 4954 §4); over
// MaxMessageBytes a message gets 552 5.3.4 and nothing of it is kept.
// CHUNKING (BDAT) is not offered.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"appnet/internal/connlimit"
	"appnet/trace"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("smtp: server closed")

// ErrBadCredentials is what an Authenticator returns for a wrong user
// name or password.
var ErrBadCredentials = errors.New("smtp: invalid credentials")

// Role is what a listener is for.
type Role int

const (
	// MX receives mail for the local domains from anyone, without AUTH.
	MX Role = iota
	// Submission takes mail for any domain from authenticated users.
	Submission
)

func (r Role) String() string {
	if r == Submission {
		return "submission"
	}
	return "mx"
}

// Spool takes accepted messages: the durable queue (*queue.Queue). It
// must return nil only once the message is on stable storage; an error
// that wraps syscall.ENOSPC is answered 452 4.3.1.
type Spool interface {
	NewID() string
	Enqueue(ctx context.Context, id, from string, rcpts []string, msg []byte) error
}

// Recipients says which mail is ours to take.
type Recipients interface {
	// IsLocalDomain reports whether mail for domain (lower case) is
	// delivered here.
	IsLocalDomain(domain string) bool
	// UserExists reports whether addr (local@domain, domain local) has a
	// mailbox.
	UserExists(ctx context.Context, addr string) (bool, error)
}

// Authenticator checks submission users' credentials. It returns nil
// for good ones, ErrBadCredentials (or any error wrapping it) for bad
// ones, and another error when it cannot tell now (454 4.7.0).
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) error
}

// Server is an SMTP server in one role. Set the fields before Serve;
// zero values take the defaults named.
type Server struct {
	Role       Role
	Hostname   string // in the greeting and Received: (default os.Hostname)
	Spool      Spool
	Recipients Recipients    // required for MX; on submission, local mail is checked too
	Auth       Authenticator // required for submission
	TLSConfig  *tls.Config   // offers STARTTLS when set
	// PostmasterDomain qualifies RCPT TO:<Postmaster>, which every server
	// must take without a domain (RFC 5321 §4.5.1); it should be a local
	// domain (default Hostname).
	PostmasterDomain string
	// AllowInsecureAuth lets clients on loopback addresses authenticate
	// without TLS (for the lab and tests). Other clients never may.
	AllowInsecureAuth bool

	MaxMessageBytes int64 // default 10 MiB (Postfix's message_size_limit)
	// MaxBufferedBytes bounds the message bytes all sessions hold in
	// memory at once (default 256 MiB); a message that would pass it is
	// read to its end, dropped, and answered 452 4.3.1.
	MaxBufferedBytes int64
	MaxRecipients    int // per message, default 100 (RFC 5321 §4.5.3.1.8)
	MaxErrors        int // per session before 421 and close, default 10
	MaxHops          int // Received: lines before 554 5.4.6, default 50
	// GreetingTimeout bounds the wait for the first command (default 30 s);
	// CommandTimeout every later read (default 5 min, RFC 5321 §4.5.3.2.7).
	GreetingTimeout, CommandTimeout time.Duration
	// Limits caps connections in total and per client address (default
	// 200 and 50, Postfix's smtpd_client_connection_count_limit).
	Limits *connlimit.Limits
	// AuthDelay is the wait before answering a failed AUTH, doubled with
	// each failure from the same address within AuthWindow, up to
	// AuthDelayMax (defaults 1 s, 30 s, 15 min).
	AuthDelay, AuthDelayMax, AuthWindow time.Duration
	// LookupAddr finds the client's name for Received: (nil: not looked up).
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	Tracer     *trace.Tracer
	Logger     *slog.Logger

	// sleep waits before a failed AUTH's reply (tests record it instead).
	sleep func(ctx context.Context, d time.Duration)

	buffered atomic.Int64 // message bytes held by sessions

	once     sync.Once
	mu       sync.Mutex // guards the fields below
	lns      map[net.Listener]struct{}
	conns    map[*session]struct{}
	closing  bool
	throttle *connlimit.AuthDelay // failed AUTHs per source
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Hostname == "" {
			s.Hostname, _ = os.Hostname()
			if s.Hostname == "" {
				s.Hostname = "localhost"
			}
		}
		if s.MaxMessageBytes <= 0 {
			s.MaxMessageBytes = 10 << 20
		}
		if s.MaxBufferedBytes <= 0 {
			s.MaxBufferedBytes = 256 << 20
		}
		if s.MaxRecipients <= 0 {
			s.MaxRecipients = 100
		}
		if s.MaxErrors <= 0 {
			s.MaxErrors = 10
		}
		if s.MaxHops <= 0 {
			s.MaxHops = 50
		}
		if s.GreetingTimeout <= 0 {
			s.GreetingTimeout = 30 * time.Second
		}
		if s.CommandTimeout <= 0 {
			s.CommandTimeout = 5 * time.Minute
		}
		if s.Limits == nil {
			s.Limits = connlimit.New(200, 50)
		}
		s.throttle = connlimit.NewAuthDelay(s.AuthDelay, s.AuthDelayMax, s.AuthWindow)
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.sleep == nil {
			s.sleep = func(ctx context.Context, d time.Duration) {
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		}
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*session]struct{}{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
	})
}

// ListenAndServe listens on addr (TCP) and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.Spool == nil {
		return errors.New("smtp: no spool")
	}
	if s.Role == MX && s.Recipients == nil {
		return errors.New("smtp: an MX needs Recipients")
	}
	if s.Role == Submission && s.Auth == nil {
		return errors.New("smtp: submission needs an Authenticator")
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("smtp: accept: %w", err)
		}
		delay = 0
		release, lerr := s.Limits.Acquire(c.RemoteAddr())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if lerr != nil {
				s.refuse(c, lerr)
				return
			}
			defer release()
			s.serveConn(c)
		}()
	}
}

// refuse answers a connection over the limits (RFC 5321 §3.1: 421 may be
// the greeting) and closes it.
func (s *Server) refuse(c net.Conn, why error) {
	defer c.Close()
	tc := s.Tracer.Conv(s.Hostname, "smtp", trace.Server, c.LocalAddr(), c.RemoteAddr())
	msg := fmt.Sprintf("421 4.7.0 %s Error: too many connections from your address", s.Hostname)
	if errors.Is(why, connlimit.ErrTotal) {
		msg = fmt.Sprintf("421 4.3.2 %s Error: too many connections, try again later", s.Hostname)
	}
	tc.Send(msg)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(msg + "\r\n"))
}

// Shutdown stops accepting, tells idle sessions 421 and closes them, and
// waits for sessions in the middle of a transaction to finish, until ctx
// ends (then they are closed).
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing = true
	for ln := range s.lns {
		ln.Close()
	}
	for ss := range s.conns {
		ss.interrupt()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closing = true
	for ln := range s.lns {
		ln.Close()
	}
	for ss := range s.conns {
		ss.conn.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return nil
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	return false
}

// hasSpaceError reports whether err is a full disk or quota.
func hasSpaceError(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
