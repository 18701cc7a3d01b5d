// Package mailserver assembles one mail server from its parts, as the
// course draws it: an SMTP server that takes mail for its domains (the MX
// role, port 25) and from its own users (the submission role, port 587),
// the durable queue the accepted mail waits in, the delivery agent that
// empties the queue (into local mailboxes, or over SMTP to the MX that
// DNS names for another domain), and the mailbox store that holds the
// users, their passwords and their mailboxes (mail/store). `appnet mail
// serve` and the lab's mail kind both run one.
package mailserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"appnet/internal/connlimit"
	"appnet/mail/queue"
	"appnet/mail/smtp"
	"appnet/mail/store"
	"appnet/trace"
)

// Config is one mail server's settings; zero values take the parts'
// defaults.
type Config struct {
	Domains  []string      // the local mail domains (at least one)
	Hostname string        // in greetings, Received: and bounces
	QueueDir string        // the durable queue's directory
	Store    store.Backend // users and mailboxes; the caller opens and closes it
	TLS      *tls.Config   // STARTTLS for both roles; nil: none (submission then only on loopback with AllowInsecureAuth)
	// ClientTLS verifies other servers' certificates when they offer
	// STARTTLS; nil: encryption without authentication (RFC 7435).
	ClientTLS         *tls.Config
	Resolver          queue.Resolver // MX and address lookups; nil: the system's
	RemotePort        int            // other servers' SMTP port (default 25)
	AllowInsecureAuth bool           // loopback clients may AUTH without TLS
	Hold              bool           // queue mail but deliver none
	MaxMessageBytes   int64
	MaxConns          int // per role; default 200
	MaxConnsPerAddr   int // per role; default 50
	MinBackoff        time.Duration
	MaxBackoff        time.Duration
	Lifetime          time.Duration
	Tracer            *trace.Tracer
	Logger            *slog.Logger
}

// Server is a running mail server.
type Server struct {
	cfg     Config
	q       *queue.Queue
	agent   *queue.Agent
	users   *Recipients
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	servers []*smtp.Server
	errs    []error
}

// Start opens the queue and starts the delivery agent (unless Hold) and
// the queue's control socket. Serve then runs each SMTP role on a
// listener.
func Start(cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("mailserver: no local domain")
	}
	if cfg.Store == nil {
		return nil, errors.New("mailserver: no mailbox store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q, err := openQueue(queue.Config{Dir: cfg.QueueDir, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	users := NewRecipients(cfg.Store, cfg.Domains)
	s := &Server{cfg: cfg, q: q, users: users}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.agent = queue.NewAgent(q, queue.AgentConfig{
		Hostname: cfg.Hostname, IsLocal: users.IsLocalDomain, Local: cfg.Store, Resolver: cfg.Resolver,
		Port: cfg.RemotePort, TLS: cfg.ClientTLS, MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff,
		Lifetime: cfg.Lifetime, Logger: cfg.Logger, Tracer: cfg.Tracer,
	})
	s.run(func() error { return q.ServeControl(s.ctx) })
	if !cfg.Hold {
		s.run(func() error { return s.agent.Run(s.ctx) })
	}
	return s, nil
}

// lockWait is how long Start waits for a queue another process holds:
// `appnet mail queue list` with no server running opens the queue itself
// for a moment, and a server starting then must not fail.
const lockWait = 5 * time.Second

func openQueue(cfg queue.Config) (*queue.Queue, error) {
	deadline := time.Now().Add(lockWait)
	for {
		q, err := queue.Open(cfg)
		if !errors.Is(err, queue.ErrLocked) || time.Now().After(deadline) {
			return q, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) run(f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			s.cfg.Logger.Error("mail server", "err", err)
		}
	}()
}

// Queue returns the server's queue.
func (s *Server) Queue() *queue.Queue { return s.q }

// NewSMTP returns an SMTP server of the given role on this mail server's
// queue, users and settings, for the caller to Serve.
func (s *Server) NewSMTP(role smtp.Role) *smtp.Server {
	c := s.cfg
	srv := &smtp.Server{
		Role: role, Hostname: c.Hostname, Spool: s.q, Recipients: s.users, Auth: Authenticator{c.Store},
		TLSConfig: c.TLS, PostmasterDomain: c.Domains[0], AllowInsecureAuth: c.AllowInsecureAuth,
		MaxMessageBytes: c.MaxMessageBytes,
		Limits:          connlimit.New(cmp.Or(c.MaxConns, 200), cmp.Or(c.MaxConnsPerAddr, 50)),
		Tracer:          c.Tracer, Logger: c.Logger,
	}
	if r, ok := c.Resolver.(*net.Resolver); ok {
		srv.LookupAddr = r.LookupAddr
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	return srv
}

// Serve runs an SMTP server of the given role on ln until Shutdown; it
// returns nil then.
func (s *Server) Serve(role smtp.Role, ln net.Listener) error {
	if err := s.NewSMTP(role).Serve(ln); !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the SMTP servers (a message being received is answered
// 421 and not kept), then the agent and the control socket, and closes the
// queue. The store is the caller's to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.stop()
	s.wg.Wait()
	if err := s.q.Close(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	errs = append(errs, s.errs...)
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Recipients answers the SMTP server's questions from a store: which
// domains are local, which users exist.
type Recipients struct {
	st      store.Backend
	domains map[string]bool
}

// NewRecipients returns Recipients for the local domains.
func NewRecipients(st store.Backend, domains []string) *Recipients {
	r := &Recipients{st: st, domains: map[string]bool{}}
	for _, d := range domains {
		r.domains[strings.ToLower(strings.TrimSuffix(d, "."))] = true
	}
	return r
}

// IsLocalDomain reports whether mail to domain is delivered here.
func (r *Recipients) IsLocalDomain(domain string) bool {
	return r.domains[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// UserExists reports whether the store has a user for addr.
func (r *Recipients) UserExists(ctx context.Context, addr string) (bool, error) {
	return r.st.UserExists(ctx, addr)
}

// Authenticator checks submission passwords against the store.
type Authenticator struct{ Store store.Backend }

// Authenticate logs the user in and out; a wrong password or an unknown
// user is smtp.ErrBadCredentials.
func (a Authenticator) Authenticate(ctx context.Context, user, pass string) error {
	sess, err := a.Store.Login(ctx, user, pass)
	if errors.Is(err, store.ErrAuthFailed) || errors.Is(err, store.ErrNoUser) {
		return smtp.ErrBadCredentials
	}
	if err != nil {
		return fmt.Errorf("mailserver: %w", err)
	}
	return sess.Close()
}
