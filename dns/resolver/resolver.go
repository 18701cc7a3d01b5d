// Package resolver is a caching iterative DNS resolver, the course's local
// name server (RFC 1034 §5.3.3, RFC 1035 §7): for a client that asks with
// RD set it starts at the root servers named in a root hints file, follows
// referrals down to the authoritative servers, follows CNAMEs, resolves
// the names of name servers that came without glue, and answers with RA
// set. It caches RRsets and negative answers (RFC 2308) for their TTLs in a
// bounded LRU cache, counting the TTLs down; it accepts from a referral
// only records inside the bailiwick of the server that sent it (RFC 2181
// §5.4.1), asks from a fresh random source port with a random ID each time,
// retries other servers on timeout, merges identical concurrent upstream
// queries, and caps the work one question may cause (depth, number of
// queries, time), answering SERVFAIL with a logged reason when it gives up.
//
// Resolver is the library; Server puts it on UDP and TCP sockets. Over
// UDP a question the cache alone answered is kept as a packed answer with
// each record's absolute expiry, and the same question again is answered
// by copying it and patching the ID, flags, letter case and counted-down
// TTLs in place, while the cache has stored nothing since (packedCache).
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/dns/zone"
	"appnet/trace"
)

// Defaults of a Resolver's limits.
const (
	DefaultTimeout    = 800 * time.Millisecond // one upstream query
	DefaultMaxQueries = 48                     // upstream queries for one question
	DefaultMaxDepth   = 6                      // nested resolutions (NS names)
	DefaultMaxCNAME   = 8                      // CNAMEs followed
	DefaultMaxSteps   = 16                     // referrals followed in one walk
	DefaultPort       = 53
)

// Errors of a failed resolution; each wraps into a *Error with the
// question.
var (
	ErrBudget    = errors.New("resolver: too many upstream queries for one question")
	ErrDepth     = errors.New("resolver: name server names nest too deep")
	ErrNoServers = errors.New("resolver: no server answered")
	ErrLoop      = errors.New("resolver: referral or CNAME loop")
)

// Error is a failed resolution: the question and why.
type Error struct {
	Name  string
	Qtype uint16
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("resolver: %s %s: %v", e.Name, dns.TypeToString[e.Qtype], strings.TrimPrefix(e.Err.Error(), "resolver: "))
}

func (e *Error) Unwrap() error { return e.Err }

// Stats counts what a resolver did.
type Stats struct {
	Questions uint64 // Resolve calls
	CacheHits uint64 // questions answered from the cache alone
	Upstream  uint64 // queries sent to name servers
	Shared    uint64 // upstream queries answered by another's identical query in flight
}

// Resolver resolves names iteratively from the root. Set its fields before
// the first Resolve; it is safe for concurrent use afterwards.
type Resolver struct {
	Roots      []zone.Server // the root hints
	Port       int           // the port every name server listens on; 0: 53
	Timeout    time.Duration // for one upstream query; 0: DefaultTimeout
	MaxQueries int           // 0: DefaultMaxQueries
	MaxDepth   int           // 0: DefaultMaxDepth
	Host       string        // reported to the tracer
	Tracer     *trace.Tracer
	Logger     *slog.Logger
	// Cache holds what the resolver learned; nil: a DefaultCacheSize one
	// made by New.
	Cache *Cache

	flights flights
	stats   struct{ questions, hits, upstream, shared atomic.Uint64 }
}

// New returns a resolver starting from roots with a cache of cacheSize
// entries (0: DefaultCacheSize).
func New(roots []zone.Server, cacheSize int) *Resolver {
	return &Resolver{Roots: roots, Cache: NewCache(cacheSize, nil)}
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	return Stats{r.stats.questions.Load(), r.stats.hits.Load(), r.stats.upstream.Load(), r.stats.shared.Load()}
}

// Answer is the outcome of a resolution.
type Answer struct {
	Rcode  int      // NOERROR or NXDOMAIN
	Answer []dns.RR // the CNAME chain, then the records
	Ns     []dns.RR // the SOA of a negative answer
	Cached bool     // answered from the cache without asking anyone
}

// work is the budget one client question shares with the resolutions it
// starts.
type work struct {
	queries int
	max     int
}

func (r *Resolver) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// Resolve answers (name, qtype) from the cache or by iteration.
func (r *Resolver) Resolve(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	r.stats.questions.Add(1)
	w := &work{max: r.MaxQueries}
	if w.max <= 0 {
		w.max = DefaultMaxQueries
	}
	before := w.queries
	a, err := r.resolve(ctx, w, strings.ToLower(dns.Fqdn(name)), qtype, 0)
	if err != nil {
		return nil, &Error{Name: name, Qtype: qtype, Err: err}
	}
	if w.queries == before {
		a.Cached = true
		r.stats.hits.Add(1)
	}
	return a, nil
}

func (r *Resolver) maxDepth() int {
	if r.MaxDepth > 0 {
		return r.MaxDepth
	}
	return DefaultMaxDepth
}

// resolve follows CNAMEs around lookups in the cache and walks from the
// closest known delegation (RFC 1034 §5.3.3).
func (r *Resolver) resolve(ctx context.Context, w *work, qname string, qtype uint16, depth int) (*Answer, error) {
	if depth > r.maxDepth() {
		return nil, ErrDepth
	}
	var chain []dns.RR
	seen := map[string]bool{}
	for range DefaultMaxCNAME + 1 {
		if seen[qname] {
			return nil, fmt.Errorf("%w: %s again", ErrLoop, qname)
		}
		seen[qname] = true
		// The cache first: the records, a negative answer, or a CNAME.
		if rrs, rcode, soa, ok := r.Cache.Lookup(qname, qtype); ok {
			a := &Answer{Rcode: rcode, Answer: append(chain, rrs...)}
			if soa != nil {
				a.Ns = []dns.RR{soa}
			}
			return a, nil
		}
		if qtype != dns.TypeCNAME {
			if rrs, _, _, ok := r.Cache.Lookup(qname, dns.TypeCNAME); ok && len(rrs) > 0 {
				chain = append(chain, rrs...)
				qname = strings.ToLower(rrs[0].(*dns.CNAME).Target)
				continue
			}
		}
		resp, bailiwick, err := r.walk(ctx, w, qname, qtype, depth)
		if err != nil {
			return nil, err
		}
		a, next := r.absorb(resp, bailiwick, qname, qtype)
		a.Answer = append(chain, a.Answer...)
		if next == "" {
			return a, nil
		}
		chain, qname = a.Answer, next
	}
	return nil, fmt.Errorf("%w: more than %d CNAMEs", ErrLoop, DefaultMaxCNAME)
}

// absorb takes the final answer of a walk apart: it caches the records
// inside the bailiwick, follows the CNAMEs among them, and returns the
// answer so far and the name still to resolve ("" when done).
func (r *Resolver) absorb(resp *dns.Msg, bailiwick, qname string, qtype uint16) (*Answer, string) {
	var in []dns.RR
	for _, rr := range resp.Answer {
		if dns.IsSubDomain(bailiwick, rr.Header().Name) && rr.Header().Class == dns.ClassINET {
			in = append(in, rr)
		}
	}
	for _, set := range splitRRsets(in) {
		r.Cache.putRRset(set, rankAnswer)
	}
	a := &Answer{Rcode: dns.RcodeSuccess}
	cur := qname
	for range DefaultMaxCNAME + 1 {
		var found, cname []dns.RR
		for _, rr := range in {
			h := rr.Header()
			if !strings.EqualFold(h.Name, cur) {
				continue
			}
			if h.Rrtype == qtype || qtype == dns.TypeANY {
				found = append(found, rr)
			} else if h.Rrtype == dns.TypeCNAME {
				cname = append(cname, rr)
			}
		}
		switch {
		case len(found) > 0:
			a.Answer = append(a.Answer, found...)
			return a, ""
		case len(cname) > 0:
			a.Answer = append(a.Answer, cname[0])
			cur = strings.ToLower(dns.Fqdn(cname[0].(*dns.CNAME).Target))
			continue
		}
		break
	}
	if cur != qname && resp.Rcode == dns.RcodeSuccess && !hasSOA(resp) {
		return a, cur // the chain leaves what this server answered: go on
	}
	// A negative answer about cur (RFC 2308 §2.1, §2.2).
	if resp.Rcode == dns.RcodeNameError {
		a.Rcode = dns.RcodeNameError
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(bailiwick, soa.Hdr.Name) && dns.IsSubDomain(soa.Hdr.Name, cur) {
			r.Cache.putNegative(cur, qtype, a.Rcode, soa)
			neg := dns.Copy(soa).(*dns.SOA)
			neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			a.Ns = []dns.RR{neg}
			break
		}
	}
	return a, ""
}

func hasSOA(m *dns.Msg) bool {
	for _, rr := range m.Ns {
		if rr.Header().Rrtype == dns.TypeSOA {
			return true
		}
	}
	return false
}

// nameserver is one server of a zone: its name and the addresses known.
type nameserver struct {
	name  string
	addrs []netip.Addr
}

// closest returns the deepest zone above qname whose NS set the cache
// holds, with the addresses it knows; the root hints otherwise.
func (r *Resolver) closest(qname string) (string, []nameserver) {
	for name := qname; ; {
		if name != "." {
			if rrs, _, _, ok := r.Cache.Lookup(name, dns.TypeNS); ok && len(rrs) > 0 {
				servers := r.serversOf(rrs)
				for _, s := range servers {
					if len(s.addrs) > 0 {
						return name, servers
					}
				}
			}
		}
		i, end := dns.NextLabel(name, 0)
		if end || name == "." {
			break
		}
		name = name[i:]
	}
	var roots []nameserver
	for _, s := range r.Roots {
		roots = append(roots, nameserver{name: s.Name, addrs: s.Addrs})
	}
	return ".", roots
}

// serversOf turns an NS RRset into servers with the addresses cached.
func (r *Resolver) serversOf(ns []dns.RR) []nameserver {
	var out []nameserver
	for _, rr := range ns {
		n, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		s := nameserver{name: strings.ToLower(n.Ns)}
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if rrs, _, _, ok := r.Cache.Lookup(s.name, t); ok {
				for _, a := range rrs {
					s.addrs = append(s.addrs, addrOf(a)...)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

func addrOf(rr dns.RR) []netip.Addr {
	switch a := rr.(type) {
	case *dns.A:
		if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
			return []netip.Addr{ip}
		}
	case *dns.AAAA:
		if ip, ok := netip.AddrFromSlice(a.AAAA.To16()); ok {
			return []netip.Addr{ip}
		}
	}
	return nil
}

// walk asks the servers of the closest known zone and follows referrals
// until a server answers for qname (RFC 1034 §5.3.3 step 4). It returns
// that answer and the zone of the server that gave it: the bailiwick its
// records must lie in.
func (r *Resolver) walk(ctx context.Context, w *work, qname string, qtype uint16, depth int) (*dns.Msg, string, error) {
	zoneName, servers := r.closest(qname)
	for range DefaultMaxSteps {
		resp, err := r.ask(ctx, w, zoneName, servers, qname, qtype, depth)
		if err != nil {
			return nil, "", err
		}
		if !dnstrace.IsReferral(resp) {
			return resp, zoneName, nil
		}
		child, ns := referral(resp)
		// Glue: addresses of the child's servers, inside the bailiwick of
		// the zone that referred us (RFC 2181 §5.4.1); anything else in
		// the additional section is ignored.
		targets := map[string]bool{}
		for _, rr := range ns {
			targets[strings.ToLower(rr.(*dns.NS).Ns)] = true
		}
		r.Cache.putRRset(ns, rankGlue)
		var glue []dns.RR
		for _, rr := range resp.Extra {
			h := rr.Header()
			name := strings.ToLower(h.Name)
			if (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA) && targets[name] && dns.IsSubDomain(zoneName, name) {
				glue = append(glue, rr)
			}
		}
		for _, set := range splitRRsets(glue) {
			r.Cache.putRRset(set, rankGlue)
		}
		zoneName, servers = child, r.serversOfGlue(ns, glue)
	}
	return nil, "", fmt.Errorf("%w: more than %d referrals for %s", ErrLoop, DefaultMaxSteps, qname)
}

// serversOfGlue builds the servers of a referral from its glue, then the
// cache.
func (r *Resolver) serversOfGlue(ns, glue []dns.RR) []nameserver {
	servers := r.serversOf(ns)
	for i := range servers {
		for _, g := range glue {
			if strings.EqualFold(g.Header().Name, servers[i].name) {
				for _, a := range addrOf(g) {
					if !contains(servers[i].addrs, a) {
						servers[i].addrs = append(servers[i].addrs, a)
					}
				}
			}
		}
	}
	return servers
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, b := range as {
		if a == b {
			return true
		}
	}
	return false
}

// referral returns the child zone and NS records of a referral.
func referral(m *dns.Msg) (string, []dns.RR) {
	var ns []dns.RR
	child := ""
	for _, rr := range m.Ns {
		if n, ok := rr.(*dns.NS); ok {
			if child == "" {
				child = strings.ToLower(n.Hdr.Name)
			}
			if strings.EqualFold(n.Hdr.Name, child) {
				ns = append(ns, n)
			}
		}
	}
	return child, ns
}

// check vets a response of a server of zoneName to (qname, qtype): an
// error makes the resolver try another server.
func check(resp *dns.Msg, zoneName, qname string) error {
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return fmt.Errorf("answered %s", dns.RcodeToString[resp.Rcode])
	}
	if dnstrace.IsReferral(resp) {
		child, _ := referral(resp)
		// The child must be below the zone asked and above the name: a
		// referral sideways or upwards is a loop or a poisoning attempt.
		if !dns.IsSubDomain(zoneName, child) || dns.CountLabel(child) <= dns.CountLabel(zoneName) || !dns.IsSubDomain(child, qname) {
			return fmt.Errorf("%w: referral from a server of %s to %s for %s", ErrLoop, zoneName, child, qname)
		}
		return nil
	}
	if resp.Rcode == dns.RcodeSuccess && len(resp.Answer) == 0 && !hasSOA(resp) && !resp.Authoritative {
		return fmt.Errorf("lame: neither an answer, a referral nor authoritative")
	}
	return nil
}

// ask sends the question to the servers of zoneName in random order until
// one answers usefully. Servers without addresses are resolved last.
func (r *Resolver) ask(ctx context.Context, w *work, zoneName string, servers []nameserver, qname string, qtype uint16, depth int) (*dns.Msg, error) {
	servers = append([]nameserver(nil), servers...)
	rand.Shuffle(len(servers), func(i, j int) { servers[i], servers[j] = servers[j], servers[i] })
	var lastErr error
	tried := 0
	try := func(addrs []netip.Addr) (*dns.Msg, error) {
		for _, a := range addrs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if w.queries >= w.max {
				return nil, ErrBudget
			}
			w.queries++
			tried++
			resp, err := r.exchange(ctx, netip.AddrPortFrom(a, uint16(r.port())), qname, qtype)
			if err == nil {
				err = check(resp, zoneName, qname)
			}
			if err == nil {
				return resp, nil
			}
			lastErr = fmt.Errorf("%s: %w", a, err)
			r.logger().Debug("resolver: server failed", "zone", zoneName, "server", a, "err", err)
		}
		return nil, nil
	}
	for _, s := range servers {
		if resp, err := try(s.addrs); resp != nil || err != nil {
			return resp, err
		}
	}
	// Then the servers that came without glue: resolve their names
	// (RFC 1034 §5.3.3 step 4: start a sub-resolution), unless the name
	// lies inside the zone they serve, which no one could answer.
	for _, s := range servers {
		if len(s.addrs) > 0 || dns.IsSubDomain(zoneName, s.name) {
			continue
		}
		var addrs []netip.Addr
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			a, err := r.resolve(ctx, w, s.name, t, depth+1)
			if errors.Is(err, ErrBudget) || errors.Is(err, ErrDepth) || ctx.Err() != nil {
				return nil, errors.Join(err, ctx.Err())
			}
			if err != nil {
				lastErr = fmt.Errorf("address of %s: %w", s.name, err)
				continue
			}
			for _, rr := range a.Answer {
				if rr.Header().Rrtype == t {
					addrs = append(addrs, addrOf(rr)...)
				}
			}
		}
		if resp, err := try(addrs); resp != nil || err != nil {
			return resp, err
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no addresses")
	}
	return nil, fmt.Errorf("%w for %s (%d tried): %w", ErrNoServers, zoneName, tried, lastErr)
}

func (r *Resolver) port() int {
	if r.Port > 0 {
		return r.Port
	}
	return DefaultPort
}

// exchange sends one query, merging it with an identical one in flight.
func (r *Resolver) exchange(ctx context.Context, server netip.AddrPort, qname string, qtype uint16) (*dns.Msg, error) {
	k := server.String() + " " + qname + " " + strconv.Itoa(int(qtype))
	resp, shared, err := r.flights.do(ctx, k, func() (*dns.Msg, error) {
		r.stats.upstream.Add(1)
		return r.query(ctx, server, qname, qtype)
	})
	if shared {
		r.stats.shared.Add(1)
	}
	return resp, err
}

// query sends one question over UDP from a fresh socket (a random source
// port, RFC 5452 §9.2) with a random ID, and over TCP when the answer is
// truncated (RFC 7766 §5).
func (r *Resolver) query(ctx context.Context, server netip.AddrPort, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.Id = dns.Id()
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	resp, err := r.send(ctx, "udp", server, m)
	if err == nil && resp.Truncated {
		resp, err = r.send(ctx, "tcp", server, m)
	}
	return resp, err
}

func (r *Resolver) send(ctx context.Context, network string, server netip.AddrPort, m *dns.Msg) (*dns.Msg, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c := r.Tracer.Conv(r.Host, "dns/"+network, trace.Client, conn.LocalAddr(), conn.RemoteAddr())
	if c != nil {
		c.Send(dnstrace.Query(m))
	}
	co := &dns.Conn{Conn: conn, UDPSize: dns.MaxMsgSize}
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	// Read until the answer to this question comes (a datagram with
	// another ID or question is someone's forgery or a stale answer) or
	// the deadline passes; each read consumes a datagram, so the loop ends.
	for range 16 {
		resp, err := co.ReadMsg()
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("timeout after %v", r.timeout())
			}
			c.Notef("%v", err)
			if errors.Is(err, dns.ErrId) || isFormat(err) {
				continue
			}
			return nil, err
		}
		if resp.Id != m.Id || !resp.Response || len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) || resp.Question[0].Qtype != m.Question[0].Qtype {
			c.Notef("ignored a mismatched answer (id %d)", resp.Id)
			continue
		}
		if c != nil {
			c.Recv(dnstrace.Reply(resp))
		}
		return resp, nil
	}
	return nil, errors.New("too many mismatched answers")
}

func isFormat(err error) bool {
	var ne net.Error
	return !errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) && err != nil && strings.HasPrefix(err.Error(), "dns: ")
}

// flights merges identical concurrent upstream queries: the first caller
// asks, the others wait for its answer.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done chan struct{}
	resp *dns.Msg
	err  error
}

func (f *flights) do(ctx context.Context, k string, fn func() (*dns.Msg, error)) (*dns.Msg, bool, error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	if fl, ok := f.m[k]; ok {
		f.mu.Unlock()
		select {
		case <-fl.done:
			return fl.resp, true, fl.err
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
	fl := &flight{done: make(chan struct{})}
	f.m[k] = fl
	f.mu.Unlock()
	fl.resp, fl.err = fn()
	f.mu.Lock()
	delete(f.m, k)
	f.mu.Unlock()
	close(fl.done)
	return fl.resp, false, fl.err
}
