// Package dig is a DNS client (RFC 1035 §4, §7) that prints what it gets
// in the layout of BIND's dig: the header and flags, the QUESTION, ANSWER,
// AUTHORITY and ADDITIONAL sections, the query time and the server. Trace
// performs an iterated resolution itself, from the root hints down to the
// authoritative server, printing each step as the course's figure shows it
// (root -> TLD -> authoritative: who was asked and what it answered).
package dig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/dns/resolver"
	"appnet/dns/zone"
	"appnet/trace"
)

// Options configure a query.
type Options struct {
	Server  string        // host:port
	TCP     bool          // use TCP from the start
	NoRec   bool          // clear RD
	NoEDNS  bool          // send no OPT record
	Ignore  bool          // keep a truncated UDP answer instead of retrying over TCP
	Timeout time.Duration // per try; 0: 5s
	Host    string        // reported to the tracer
	Tracer  *trace.Tracer
}

// Result is one answer and how it came.
type Result struct {
	Msg    *dns.Msg
	RTT    time.Duration
	Server string // host:port
	Proto  string // "UDP" or "TCP"
	Size   int    // bytes received
	When   time.Time
	Notes  []string // e.g. ";; Truncated, retrying in TCP mode."
}

// Query asks Server for (name, qtype) once and, after a truncated UDP
// answer, again over TCP (RFC 7766 §5) unless Ignore is set.
func Query(ctx context.Context, o Options, name string, qtype uint16) (*Result, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = dns.Id()
	m.RecursionDesired = !o.NoRec
	if !o.NoEDNS {
		m.SetEdns0(1232, false)
	}
	res := &Result{Server: o.Server, When: time.Now()}
	network := "udp"
	if o.TCP {
		network = "tcp"
	}
	for {
		start := time.Now()
		resp, size, err := exchange(ctx, o, network, m)
		if err != nil {
			return nil, err
		}
		res.Msg, res.RTT, res.Size, res.Proto = resp, time.Since(start), size, strings.ToUpper(network)
		if resp.Truncated && network == "udp" && !o.Ignore {
			res.Notes = append(res.Notes, ";; Truncated, retrying in TCP mode.")
			network = "tcp"
			continue
		}
		return res, nil
	}
}

func exchange(ctx context.Context, o Options, network string, m *dns.Msg) (*dns.Msg, int, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, o.Server)
	if err != nil {
		return nil, 0, fmt.Errorf("dig: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c := o.Tracer.Conv(o.Host, "dns/"+network, trace.Client, conn.LocalAddr(), conn.RemoteAddr())
	if c != nil {
		c.Send(dnstrace.Query(m))
	}
	co := &dns.Conn{Conn: conn, UDPSize: dns.MaxMsgSize}
	if err := co.WriteMsg(m); err != nil {
		return nil, 0, fmt.Errorf("dig: %w", err)
	}
	for range 16 {
		raw, err := co.ReadMsgHeader(nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, fmt.Errorf("dig: no answer from %s within %v", o.Server, timeout)
			}
			return nil, 0, fmt.Errorf("dig: %w", err)
		}
		var resp dns.Msg
		if err := resp.Unpack(raw); err != nil {
			c.Notef("unreadable answer: %v", err)
			continue
		}
		if resp.Id != m.Id {
			continue
		}
		if c != nil {
			c.Recv(dnstrace.Reply(&resp))
		}
		return &resp, len(raw), nil
	}
	return nil, 0, errors.New("dig: too many mismatched answers")
}

// Print writes r in dig's layout.
func Print(w io.Writer, r *Result, cmdline string) {
	m := r.Msg
	fmt.Fprintf(w, "\n; <<>> appnet dig <<>> %s\n", cmdline)
	for _, n := range r.Notes {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintf(w, ";; Got answer:\n")
	fmt.Fprintf(w, ";; ->>HEADER<<- opcode: %s, status: %s, id: %d\n", dns.OpcodeToString[m.Opcode], dns.RcodeToString[m.Rcode], m.Id)
	extra := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra++
		}
	}
	opt := m.IsEdns0()
	addCount := extra
	if opt != nil {
		addCount++
	}
	fmt.Fprintf(w, ";; flags: %s; QUERY: %d, ANSWER: %d, AUTHORITY: %d, ADDITIONAL: %d\n", flags(m), len(m.Question), len(m.Answer), len(m.Ns), addCount)
	if m.RecursionDesired && !m.RecursionAvailable {
		fmt.Fprintln(w, ";; WARNING: recursion requested but not available")
	}
	fmt.Fprintln(w)
	if opt != nil {
		fmt.Fprintf(w, ";; OPT PSEUDOSECTION:\n; EDNS: version: %d, flags:", opt.Version())
		if opt.Do() {
			fmt.Fprint(w, " do")
		}
		fmt.Fprintf(w, "; udp: %d\n", opt.UDPSize())
	}
	fmt.Fprintln(w, ";; QUESTION SECTION:")
	for _, q := range m.Question {
		fmt.Fprintf(w, ";%s\t\t\t%s\t%s\n", q.Name, dns.ClassToString[q.Qclass], dns.TypeToString[q.Qtype])
	}
	section := func(title string, rrs []dns.RR) {
		var lines []string
		for _, rr := range rrs {
			if rr.Header().Rrtype != dns.TypeOPT {
				lines = append(lines, rr.String())
			}
		}
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "\n;; %s SECTION:\n%s\n", title, strings.Join(lines, "\n"))
	}
	section("ANSWER", m.Answer)
	section("AUTHORITY", m.Ns)
	section("ADDITIONAL", m.Extra)
	host, port, _ := net.SplitHostPort(r.Server)
	fmt.Fprintf(w, "\n;; Query time: %d msec\n", r.RTT.Milliseconds())
	fmt.Fprintf(w, ";; SERVER: %s#%s(%s) (%s)\n", host, port, host, r.Proto)
	fmt.Fprintf(w, ";; WHEN: %s\n", r.When.Format("Mon Jan 02 15:04:05 MST 2006"))
	fmt.Fprintf(w, ";; MSG SIZE  rcvd: %d\n\n", r.Size)
}

func flags(m *dns.Msg) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{m.Response, "qr"}, {m.Authoritative, "aa"}, {m.Truncated, "tc"}, {m.RecursionDesired, "rd"}, {m.RecursionAvailable, "ra"}, {m.AuthenticatedData, "ad"}, {m.CheckingDisabled, "cd"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, " ")
}

// TraceOptions configure Trace.
type TraceOptions struct {
	Roots   []zone.Server
	Port    int           // every name server's port; 0: 53
	Timeout time.Duration // per query; 0: 2s
	Host    string
	Tracer  *trace.Tracer
}

// Step is one query of an iterated resolution.
type Step struct {
	Zone       string // the zone the asked server serves
	ServerName string
	Server     string // host:port
	Result     *Result
}

// MaxSteps bounds the referrals Trace follows.
const MaxSteps = 16

// Trace resolves (name, qtype) iteratively, as the local name server
// would, printing every step to w, and returns the steps. Each query goes
// without RD to one server of the zone the previous step referred to; a
// server that does not answer is skipped for the next one. Name servers
// without glue are looked up with a quiet resolver.
func Trace(ctx context.Context, w io.Writer, o TraceOptions, name string, qtype uint16) ([]Step, error) {
	port := o.Port
	if port <= 0 {
		port = 53
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	name = dns.Fqdn(name)
	fmt.Fprintf(w, "\n; <<>> appnet dig <<>> +trace %s %s\n;; global options: +cmd\n", name, dns.TypeToString[qtype])
	for _, s := range o.Roots {
		fmt.Fprintf(w, ".\t\t\t3600000\tIN\tNS\t%s\n", s.Name)
	}
	fmt.Fprintf(w, ";; Root hints: %d servers\n\n", len(o.Roots))
	type server struct {
		name  string
		addrs []netip.Addr
	}
	var servers []server
	for _, s := range o.Roots {
		servers = append(servers, server{s.Name, s.Addrs})
	}
	zoneName := "."
	var quiet *resolver.Resolver
	var steps []Step
	for step := 1; step <= MaxSteps; step++ {
		var res *Result
		var asked server
		var addr string
		var lastErr error
		for _, s := range servers {
			addrs := s.addrs
			if len(addrs) == 0 {
				if quiet == nil {
					quiet = resolver.New(o.Roots, 0)
					quiet.Port, quiet.Timeout = port, timeout
				}
				for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
					if a, err := quiet.Resolve(ctx, s.name, t); err == nil {
						for _, rr := range a.Answer {
							switch v := rr.(type) {
							case *dns.A:
								ip, _ := netip.AddrFromSlice(v.A.To4())
								addrs = append(addrs, ip)
							case *dns.AAAA:
								ip, _ := netip.AddrFromSlice(v.AAAA)
								addrs = append(addrs, ip)
							}
						}
					}
				}
			}
			for _, a := range addrs {
				addr = netip.AddrPortFrom(a, uint16(port)).String()
				r, err := Query(ctx, Options{Server: addr, NoRec: true, Timeout: timeout, Host: o.Host, Tracer: o.Tracer}, name, qtype)
				if err == nil {
					res, asked = r, s
					break
				}
				lastErr = err
				fmt.Fprintf(w, ";; no answer from %s(%s): %v\n", addr, s.name, err)
			}
			if res != nil {
				break
			}
		}
		if res == nil {
			if lastErr == nil {
				lastErr = errors.New("no addresses")
			}
			return steps, fmt.Errorf("dig: no server of %s answered: %w", zoneName, lastErr)
		}
		steps = append(steps, Step{Zone: zoneName, ServerName: asked.name, Server: addr, Result: res})
		m := res.Msg
		for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
			fmt.Fprintln(w, rr.String())
		}
		for _, rr := range m.Extra {
			if rr.Header().Rrtype != dns.TypeOPT {
				fmt.Fprintln(w, rr.String())
			}
		}
		host, p, _ := net.SplitHostPort(addr)
		fmt.Fprintf(w, ";; Received %d bytes from %s#%s(%s) in %d ms\n", res.Size, host, p, asked.name, res.RTT.Milliseconds())
		fmt.Fprintf(w, ";; step %d: %s server %s: %s\n\n", step, zoneLabel(zoneName), asked.name, what(m))
		if !dnstrace.IsReferral(m) {
			return steps, nil
		}
		child := strings.ToLower(m.Ns[0].Header().Name)
		if !dns.IsSubDomain(zoneName, child) || child == zoneName {
			return steps, fmt.Errorf("dig: %s referred sideways or up, to %s", asked.name, child)
		}
		zoneName = child
		servers = nil
		for _, rr := range m.Ns {
			ns, ok := rr.(*dns.NS)
			if !ok {
				continue
			}
			s := server{name: strings.ToLower(ns.Ns)}
			for _, g := range m.Extra {
				if strings.EqualFold(g.Header().Name, ns.Ns) {
					switch v := g.(type) {
					case *dns.A:
						ip, _ := netip.AddrFromSlice(v.A.To4())
						s.addrs = append(s.addrs, ip)
					case *dns.AAAA:
						ip, _ := netip.AddrFromSlice(v.AAAA)
						s.addrs = append(s.addrs, ip)
					}
				}
			}
			servers = append(servers, s)
		}
	}
	return steps, fmt.Errorf("dig: more than %d referrals", MaxSteps)
}

func zoneLabel(z string) string {
	switch dns.CountLabel(z) {
	case 0:
		return "root"
	case 1:
		return "TLD " + z
	}
	return "authoritative " + z
}

// what says in a few words what a server answered.
func what(m *dns.Msg) string {
	switch {
	case dnstrace.IsReferral(m):
		return "referral to " + m.Ns[0].Header().Name
	case m.Rcode == dns.RcodeNameError:
		return "NXDOMAIN (no such name)"
	case m.Rcode != dns.RcodeSuccess:
		return dns.RcodeToString[m.Rcode]
	case len(m.Answer) == 0:
		return "no records of that type (NODATA)"
	}
	return strconv.Itoa(len(m.Answer)) + " answer record(s), authoritative=" + strconv.FormatBool(m.Authoritative)
}
