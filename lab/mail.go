package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"appnet/mail/mailserver"
	"appnet/mail/queue"
	"appnet/mail/smtp"
	"appnet/mail/store"
	_ "appnet/mail/store/sqlite" // the lab's mailboxes
	"appnet/mail/ua"
)

// MailConfig is the [host.NAME.mail] table: one mail domain's server (an
// SMTP MX and submission service, the durable queue and its delivery
// agent, and a mailbox store), as mail/mailserver assembles it.
type MailConfig struct {
	Domain     string        `toml:"domain"`      // the local mail domain
	Hostname   string        `toml:"hostname"`    // in greetings and Received:; default mail.DOMAIN
	MX         int           `toml:"mx"`          // SMTP port for mail from other servers (25)
	Submission int           `toml:"submission"`  // port for the domain's own users (587); 0: none
	Resolver   string        `toml:"resolver"`    // DNS server for MX lookups, ADDR:PORT (its port is mapped like every lab port)
	Users      []string      `toml:"users"`       // "name:password" of the domain's users
	MinBackoff time.Duration `toml:"min_backoff"` // first retry after a temporary failure
	// CheckFrom and CheckTo: lab --check has the user CheckFrom submit a
	// message to the address CheckTo (another lab domain's user) and
	// finds it in that user's INBOX.
	CheckFrom string `toml:"check_from"`
	CheckTo   string `toml:"check_to"`
}

func init() {
	Register("mail", "a mail server: SMTP MX and submission, durable queue, delivery by MX lookup, mailboxes (mail/)",
		func() *MailConfig { return &MailConfig{MX: 25, Submission: 587, MinBackoff: 30 * time.Second} },
		validateMail, startMail)
}

func validateMail(c *MailConfig) error {
	if c.Domain == "" {
		return errors.New("set domain, the local mail domain")
	}
	if strings.ContainsAny(c.Domain, " @/") {
		return FieldError("domain", "%q is not a domain name", c.Domain)
	}
	if err := CheckPort("mx", c.MX); err != nil {
		return err
	}
	if c.MX == 0 {
		return FieldError("mx", "a mail server needs its MX port")
	}
	if err := CheckPort("submission", c.Submission); err != nil {
		return err
	}
	if c.Resolver != "" {
		if _, err := netip.ParseAddrPort(c.Resolver); err != nil {
			return FieldError("resolver", "%q is not ADDR:PORT", c.Resolver)
		}
	}
	for _, u := range c.Users {
		if n, p, ok := strings.Cut(u, ":"); !ok || n == "" || p == "" {
			return FieldError("users", "%q is not name:password", u)
		}
	}
	if c.MinBackoff <= 0 {
		return FieldError("min_backoff", "must be positive")
	}
	if (c.CheckFrom == "") != (c.CheckTo == "") {
		return errors.New("check_from and check_to go together")
	}
	if c.CheckFrom != "" && c.password(c.CheckFrom) == "" {
		return FieldError("check_from", "%q is not one of the users", c.CheckFrom)
	}
	if c.CheckTo != "" && !strings.Contains(c.CheckTo, "@") {
		return FieldError("check_to", "%q is not an address", c.CheckTo)
	}
	return nil
}

func (c *MailConfig) password(user string) string {
	for _, u := range c.Users {
		if n, p, _ := strings.Cut(u, ":"); n == user {
			return p
		}
	}
	return ""
}

// labStores finds a running lab's mail stores by lab state folder and
// domain, so that one domain's check can look into another's mailboxes.
var labStores sync.Map // labStoreKey -> store.Backend

type labStoreKey struct{ lab, domain string }

type mailService struct {
	env       *Env
	cfg       *MailConfig
	st        store.Backend
	ms        *mailserver.Server
	key       labStoreKey
	hostname  string
	endpoints []Endpoint
	wg        sync.WaitGroup
}

func startMail(ctx context.Context, env *Env, c *MailConfig) (Service, error) {
	m := &mailService{env: env, cfg: c, hostname: c.Hostname}
	if m.hostname == "" {
		m.hostname = "mail." + c.Domain
	}
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(env.Dir, "mailboxes.db"), store.Options{})
	if err != nil {
		return nil, err
	}
	m.st = st
	for _, u := range c.Users {
		name, pass, _ := strings.Cut(u, ":")
		err := st.AddUser(ctx, name, pass)
		if errors.Is(err, store.ErrUserExists) {
			err = st.SetPassword(ctx, name, pass)
		}
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("user %s: %w", name, err)
		}
	}
	tlsConf, err := env.TLSConfig(m.hostname)
	if err != nil {
		st.Close()
		return nil, err
	}
	var res queue.Resolver
	if c.Resolver != "" {
		ap := netip.MustParseAddrPort(c.Resolver) // validated
		res = queue.NewResolver(netip.AddrPortFrom(ap.Addr(), uint16(env.Ports.Map(int(ap.Port())))).String())
	}
	m.ms, err = mailserver.Start(mailserver.Config{
		Domains: []string{c.Domain}, Hostname: m.hostname, QueueDir: filepath.Join(env.Dir, "queue"),
		Store: st, TLS: tlsConf, ClientTLS: &tls.Config{RootCAs: env.CA.Pool(), MinVersion: tls.VersionTLS12},
		Resolver: res, RemotePort: env.Ports.Map(25), MinBackoff: c.MinBackoff,
		Tracer: env.Tracer, Logger: env.Logger,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, l := range []struct {
		port  int
		role  smtp.Role
		proto string
	}{{c.MX, smtp.MX, "smtp"}, {c.Submission, smtp.Submission, "submission"}} {
		if l.port == 0 {
			continue
		}
		ln, err := env.Listen(ctx, l.port)
		if err != nil {
			m.Shutdown(ctx) //nolint:errcheck
			return nil, err
		}
		m.endpoints = append(m.endpoints, Endpoint{Proto: l.proto, Addr: netip.MustParseAddrPort(ln.Addr().String())})
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.ms.Serve(l.role, ln); err != nil {
				env.Logger.Error("mail server stopped", "err", err)
			}
		}()
	}
	m.key = labStoreKey{filepath.Dir(env.Dir), strings.ToLower(c.Domain)}
	labStores.Store(m.key, st)
	return m, nil
}

func (m *mailService) Endpoints() []Endpoint { return m.endpoints }

func (m *mailService) endpoint(proto string) (netip.AddrPort, bool) {
	for _, ep := range m.endpoints {
		if ep.Proto == proto {
			return ep.Addr, true
		}
	}
	return netip.AddrPort{}, false
}

func (m *mailService) Try() []string {
	var out []string
	if mx, ok := m.endpoint("smtp"); ok {
		out = append(out, fmt.Sprintf("nc -C %s %d      # the course's session: HELO crepes.fr, MAIL FROM:<alice@crepes.fr>, RCPT TO:<%s>, DATA, ..., QUIT",
			mx.Addr(), mx.Port(), m.firstUserAddr()))
	}
	if sub, ok := m.endpoint("submission"); ok && len(m.cfg.Users) > 0 {
		user, _, _ := strings.Cut(m.cfg.Users[0], ":")
		to := m.cfg.CheckTo
		if to == "" {
			to = m.firstUserAddr()
		}
		out = append(out, fmt.Sprintf("appnet --trace mail send --server %s --ca %s --user %s --from %s@%s --to %s --subject hello --body 'Hi!'",
			sub, m.env.CA.RootFile(), user, user, m.cfg.Domain, to))
	}
	out = append(out, fmt.Sprintf("appnet mail queue list --queue %s", filepath.Join(m.env.Dir, "queue")))
	return out
}

func (m *mailService) firstUserAddr() string {
	if len(m.cfg.Users) == 0 {
		return "postmaster@" + m.cfg.Domain
	}
	user, _, _ := strings.Cut(m.cfg.Users[0], ":")
	return user + "@" + m.cfg.Domain
}

// Check types the course's SMTP session at the MX, and with check_from
// and check_to, has a user submit a message over STARTTLS and AUTH that
// the queue delivers, by MX lookup, to another lab domain's mailbox.
func (m *mailService) Check(ctx context.Context) []Probe {
	var probes []Probe
	if mx, ok := m.endpoint("smtp"); ok {
		probes = append(probes, m.checkSession(ctx, mx))
	}
	if sub, ok := m.endpoint("submission"); ok && m.cfg.CheckFrom != "" {
		probes = append(probes, m.checkDelivery(ctx, sub))
	}
	return probes
}

// checkSession is the course's sample session, line by line over TCP.
func (m *mailService) checkSession(ctx context.Context, mx netip.AddrPort) Probe {
	p := Probe{What: "smtp " + mx.String()}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", mx.String())
	if err != nil {
		p.Err = err
		return p
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl) //nolint:errcheck
	}
	r := bufio.NewReader(c)
	var codes []string
	for _, line := range []string{"", "HELO crepes.fr", "MAIL FROM:<alice@crepes.fr>", "RCPT TO:<" + m.firstUserAddr() + ">", "DATA",
		"Subject: lab check\r\n\r\nDo you like ketchup?\r\nHow about pickles?\r\n.", "QUIT"} {
		if line != "" {
			if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
				p.Err = err
				return p
			}
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			p.Err = fmt.Errorf("after %q: %w", line, err)
			return p
		}
		codes = append(codes, reply[:min(3, len(reply))])
	}
	got := strings.Join(codes, " ")
	if got != "220 250 250 250 354 250 221" {
		p.Err = fmt.Errorf("the course's session got %s, want 220 250 250 250 354 250 221", got)
		return p
	}
	p.Detail = "HELO, MAIL, RCPT, DATA, QUIT: " + got
	return p
}

// checkDelivery submits CheckFrom's message to CheckTo and waits for it in
// the recipient's INBOX.
func (m *mailService) checkDelivery(ctx context.Context, sub netip.AddrPort) Probe {
	p := Probe{What: fmt.Sprintf("mail %s@%s -> %s", m.cfg.CheckFrom, m.cfg.Domain, m.cfg.CheckTo)}
	_, toDomain, _ := strings.Cut(m.cfg.CheckTo, "@")
	v, ok := labStores.Load(labStoreKey{m.key.lab, strings.ToLower(toDomain)})
	if !ok {
		p.Err = fmt.Errorf("no mail server of the lab serves %s", toDomain)
		return p
	}
	dest := v.(store.Backend)
	var tok [8]byte
	rand.Read(tok[:])
	subject := "lab check " + hex.EncodeToString(tok[:])
	msg, env, err := ua.Build(&ua.Compose{From: m.cfg.CheckFrom + "@" + m.cfg.Domain, To: []string{m.cfg.CheckTo}, Subject: subject,
		Text: "Alice's message to Bob, through her server's queue and his MX.\n"})
	if err != nil {
		p.Err = err
		return p
	}
	start := time.Now()
	s := ua.Submitter{Addr: sub.String(), TLSConfig: &tls.Config{RootCAs: m.env.CA.Pool(), ServerName: m.hostname},
		Username: m.cfg.CheckFrom, Password: m.cfg.password(m.cfg.CheckFrom), Timeout: 5 * time.Second, Host: "lab-check", Tracer: m.env.Tracer}
	if _, err := s.Send(ctx, env, msg); err != nil {
		p.Err = fmt.Errorf("submission: %w", err)
		return p
	}
	rcptUser, _, _ := strings.Cut(m.cfg.CheckTo, "@")
	for {
		msgs, err := store.ReadMailbox(ctx, dest, rcptUser, "INBOX")
		if err != nil {
			p.Err = err
			return p
		}
		for _, got := range msgs {
			if strings.Contains(string(got.Body), "Subject: "+subject) {
				p.Detail = fmt.Sprintf("submitted with STARTTLS and AUTH, delivered by MX lookup into %s's INBOX in %v", m.cfg.CheckTo, time.Since(start).Round(time.Millisecond))
				return p
			}
		}
		select {
		case <-ctx.Done():
			p.Err = fmt.Errorf("not in %s's INBOX after %v (appnet mail queue list --queue %s)", m.cfg.CheckTo, time.Since(start).Round(time.Millisecond), filepath.Join(m.env.Dir, "queue"))
			return p
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *mailService) Shutdown(ctx context.Context) error {
	labStores.CompareAndDelete(m.key, m.st)
	err := m.ms.Shutdown(ctx)
	m.wg.Wait()
	return errors.Join(err, m.st.Close())
}
