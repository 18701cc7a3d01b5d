// Package registrar registers a domain the way the course's "Network
// Utopia" example does: it inserts the domain's NS record and the glue A
// record of its name server into the TLD's zone, by a dynamic UPDATE (RFC
// 2136) signed with a TSIG key (RFC 8945).
package registrar

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/trace"
)

// Key is a TSIG key.
type Key struct {
	Name      string // e.g. "registrar."
	Algorithm string // e.g. dns.HmacSHA256
	Secret    string // base64
}

// ParseKey reads a key as dig -y writes it: "[ALG:]NAME:SECRET", ALG
// hmac-sha256 (the default), hmac-sha512, hmac-sha1 or hmac-sha224.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, ":")
	var k Key
	switch len(parts) {
	case 2:
		k = Key{Name: parts[0], Algorithm: dns.HmacSHA256, Secret: parts[1]}
	case 3:
		k = Key{Name: parts[1], Algorithm: dns.Fqdn(strings.ToLower(parts[0])), Secret: parts[2]}
	default:
		return k, fmt.Errorf("registrar: key %q: want [ALG:]NAME:SECRET", s)
	}
	switch k.Algorithm {
	case dns.HmacSHA256, dns.HmacSHA512, dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA384:
	default:
		return k, fmt.Errorf("registrar: key %q: unknown algorithm %s", s, strings.TrimSuffix(k.Algorithm, "."))
	}
	if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || k.Name == "" {
		return k, fmt.Errorf("registrar: key %q: the secret is not base64", s)
	}
	k.Name = dns.CanonicalName(k.Name)
	return k, nil
}

// UpdateError is a server's refusal of an UPDATE.
type UpdateError struct {
	Rcode int
}

func (e *UpdateError) Error() string {
	return "registrar: the server answered " + dns.RcodeToString[e.Rcode]
}

// Client sends signed updates.
type Client struct {
	Key     Key
	Timeout time.Duration // 0: 5s
	Host    string
	Tracer  *trace.Tracer
}

// Update sends m, signed, to server over TCP and checks the signed answer.
func (c *Client) Update(ctx context.Context, server string, m *dns.Msg) (*dns.Msg, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	m.SetTsig(c.Key.Name, c.Key.Algorithm, 300, time.Now().Unix())
	cl := &dns.Client{Net: "tcp", Timeout: timeout, TsigSecret: map[string]string{c.Key.Name: c.Key.Secret}}
	conv := c.Tracer.Conv(c.Host, "dns/tcp", trace.Client, nil, tcpAddr(server))
	if conv != nil {
		conv.Send(dnstrace.Query(m) + " " + updateSummary(m))
	}
	r, _, err := cl.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}
	if conv != nil {
		conv.Recv(dnstrace.Reply(r))
	}
	if r.Rcode != dns.RcodeSuccess {
		return r, &UpdateError{Rcode: r.Rcode}
	}
	return r, nil
}

func tcpAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil
	}
	return a
}

func updateSummary(m *dns.Msg) string {
	var parts []string
	for _, rr := range m.Ns {
		op := "add"
		switch rr.Header().Class {
		case dns.ClassANY:
			op = "delete"
		case dns.ClassNONE:
			op = "remove"
		}
		parts = append(parts, op+" "+dnstrace.RR(rr))
	}
	return strings.Join(parts, "; ")
}

// Parent returns the zone a domain is registered in: its name without the
// first label ("networkutopia.test." -> "test.").
func Parent(domain string) string {
	domain = dns.Fqdn(domain)
	i, end := dns.NextLabel(domain, 0)
	if end {
		return "."
	}
	return domain[i:]
}

// RegisterMsg builds the UPDATE that registers domain with name server ns
// at addr in the TLD's zone: the domain's NS RRset and the server's
// address RRset are replaced by the new ones.
func RegisterMsg(domain, ns string, addr netip.Addr, ttl uint32) (*dns.Msg, error) {
	domain, ns = dns.CanonicalName(domain), dns.CanonicalName(ns)
	if _, ok := dns.IsDomainName(domain); !ok || dns.CountLabel(domain) < 2 {
		return nil, fmt.Errorf("registrar: %q is not a domain below a TLD", domain)
	}
	m := new(dns.Msg)
	m.SetUpdate(Parent(domain))
	nsRR := &dns.NS{Hdr: dns.RR_Header{Name: domain, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}, Ns: ns}
	var glue dns.RR
	if addr.Is4() {
		glue = &dns.A{Hdr: dns.RR_Header{Name: ns, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: addr.AsSlice()}
	} else {
		glue = &dns.AAAA{Hdr: dns.RR_Header{Name: ns, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: addr.AsSlice()}
	}
	m.RemoveRRset([]dns.RR{nsRR})
	m.Insert([]dns.RR{nsRR})
	if dns.IsSubDomain(domain, ns) { // glue only for a server inside the domain
		m.RemoveRRset([]dns.RR{glue})
		m.Insert([]dns.RR{glue})
	}
	return m, nil
}

// Register registers domain at the TLD server.
func (c *Client) Register(ctx context.Context, server, domain, ns string, addr netip.Addr, ttl uint32) error {
	m, err := RegisterMsg(domain, ns, addr, ttl)
	if err != nil {
		return err
	}
	_, err = c.Update(ctx, server, m)
	return err
}
