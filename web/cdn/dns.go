package cdn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/dns/serve"
	"appnet/trace"
)

// ErrServerClosed is returned by Serve and ServePacket after Shutdown.
var ErrServerClosed = errors.New("cdn: server closed")

// DefaultTTL is how long resolvers may keep an answer: short, so that a
// change of map (or an edge taken out) takes effect soon.
const DefaultTTL = 20 * time.Second

// DNS is the CDN's authoritative name server: it answers A and AAAA
// questions for Zone and every name below it with the edges the Map gives
// for the client, authoritatively (AA set) and with a short TTL.
type DNS struct {
	Zone   string // e.g. "kingcdn.test."
	Map    *Map
	TTL    time.Duration // default DefaultTTL
	Host   string
	Tracer *trace.Tracer
	Logger *slog.Logger

	group serve.Group // the sockets Serve and ServePacket run
}

// ServePacket answers queries on UDP until Shutdown.
func (d *DNS) ServePacket(pc net.PacketConn) error {
	return d.serve(&dns.Server{PacketConn: pc})
}

// Serve answers queries on TCP until Shutdown.
func (d *DNS) Serve(ln net.Listener) error {
	return d.serve(&dns.Server{Listener: ln})
}

func (d *DNS) serve(srv *dns.Server) error {
	srv.Handler = dns.HandlerFunc(d.serveDNS)
	return serve.Result(d.group.DNS(srv, nil), ErrServerClosed, "cdn")
}

// Shutdown stops every Serve and ServePacket and waits for them (or ctx).
func (d *DNS) Shutdown(ctx context.Context) error {
	if err := d.group.Shutdown(ctx); err != nil {
		return fmt.Errorf("cdn: %w", err)
	}
	return nil
}

func (d *DNS) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp, summary := d.Answer(req, w.RemoteAddr())
	if d.Tracer.Enabled() {
		c, _ := dnstrace.ServerConv(d.Tracer, d.Host, w)
		c.Send(summary)
	}
	w.WriteMsg(resp) //nolint:errcheck
}

// Answer makes the response to req from a client at from, and a one-line
// summary of it for the trace.
func (d *DNS) Answer(req *dns.Msg, from net.Addr) (*dns.Msg, string) {
	resp := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery || req.Response {
		resp.SetRcode(req, dns.RcodeFormatError)
		if req.Opcode != dns.OpcodeQuery {
			resp.Rcode = dns.RcodeNotImplemented
		}
		return resp, "malformed query -> " + dns.RcodeToString[resp.Rcode]
	}
	resp.SetReply(req)
	resp.RecursionAvailable = false
	q := req.Question[0]
	zone := dns.CanonicalName(d.Zone)
	name := dns.CanonicalName(q.Name)
	qs := fmt.Sprintf("%s? %s", dns.TypeToString[q.Qtype], name)
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(zone, name) {
		resp.Rcode = dns.RcodeRefused
		return resp, qs + " -> REFUSED"
	}
	resp.Authoritative = true
	ttl := uint32(d.ttl() / time.Second)

	// The client: its source address, or the subnet a resolver sends for
	// it (RFC 7871 §7.1.1), which is echoed with the scope we used.
	client, _ := serve.AddrIP(from)
	var edges []netip.Addr
	scope := 0
	var ecs *dns.EDNS0_SUBNET
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(1232, false)
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				ecs = s
			}
		}
	}
	if p, ok := ecsPrefix(ecs); ok && p.Bits() > 0 {
		edges, scope = d.Map.LookupPrefix(p)
	} else {
		edges, scope = d.Map.Lookup(client)
	}
	if ecs != nil {
		out := *ecs
		out.SourceScope = uint8(scope)
		if p, ok := ecsPrefix(ecs); ok && p.Bits() == 0 {
			out.SourceScope = 0
		}
		resp.IsEdns0().Option = append(resp.IsEdns0().Option, &out)
	}

	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		for _, e := range edges {
			switch {
			case e.Is4() && q.Qtype != dns.TypeAAAA:
				h := hdr
				h.Rrtype = dns.TypeA
				resp.Answer = append(resp.Answer, &dns.A{Hdr: h, A: net.IP(e.AsSlice())})
			case e.Is6() && q.Qtype != dns.TypeA:
				h := hdr
				h.Rrtype = dns.TypeAAAA
				resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: h, AAAA: net.IP(e.AsSlice())})
			}
		}
	case dns.TypeSOA:
		if name == zone {
			resp.Answer = append(resp.Answer, d.soa())
		}
	case dns.TypeNS:
		if name == zone {
			resp.Answer = append(resp.Answer, &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: "ns." + zone})
		}
	}
	if len(resp.Answer) == 0 {
		resp.Ns = append(resp.Ns, d.soa()) // NODATA (RFC 2308)
		return resp, qs + " -> NODATA"
	}
	var got []string
	for _, rr := range resp.Answer {
		got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	who := client.String()
	if ecs != nil {
		who += " ecs " + ecs.Address.String() + "/" + fmt.Sprint(ecs.SourceNetmask)
	}
	return resp, fmt.Sprintf("%s from %s -> %s", qs, who, strings.Join(got, " "))
}

func (d *DNS) ttl() time.Duration {
	if d.TTL <= 0 {
		return DefaultTTL
	}
	return d.TTL
}

func (d *DNS) soa() dns.RR {
	zone := dns.CanonicalName(d.Zone)
	ttl := uint32(d.ttl() / time.Second)
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl}
}

// ecsPrefix reads an EDNS Client Subnet option (RFC 7871 §6).
func ecsPrefix(o *dns.EDNS0_SUBNET) (netip.Prefix, bool) {
	if o == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(o.Address)
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	if (o.Family == 1 && !ip.Is4()) || (o.Family == 2 && !ip.Is6()) || (o.Family != 1 && o.Family != 2) {
		return netip.Prefix{}, false
	}
	p, err := ip.Prefix(int(o.SourceNetmask))
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}
