// Package authserver is an authoritative DNS name server (RFC 1034 §4.3.2,
// RFC 1035): it answers questions about the zones it holds with the AA
// flag, follows CNAME chains inside them, refers the asker to the servers
// of a delegated child (NS in the authority section, glue in the
// additional), gives NXDOMAIN and NODATA with the zone's SOA for negative
// caching (RFC 2308), adds the addresses of NS, MX and SRV targets, and
// refuses names outside its zones. It serves UDP and TCP, speaks EDNS0
// (RFC 6891) and sets TC when an answer does not fit the asker's UDP
// buffer (RFC 1035 §4.2.1, RFC 2181 §9). Several address records of one
// name are rotated between answers, the course's load distribution.
//
// More servers can carry a zone: a primary lets the secondaries listed
// for a zone transfer it (AXFR over TCP, RFC 5936) and sends them NOTIFY
// (RFC 1996) when its serial changes; a secondary follows its primary by
// SOA serial checks and transfers, on NOTIFY and on the SOA refresh
// timer. Dynamic UPDATEs (RFC 2136) signed with TSIG (RFC 8945) change
// the zones; with Persist each is written to the zone file, atomically
// and synced, before it is acknowledged.
//
// UDP is served by a few long-lived readers per socket (one socket each
// when the socket allows SO_REUSEPORT, see ListenPacket), reading and
// writing many datagrams per system call; an answer to a plain query is
// packed once per version of the zones and question, and sent again with
// the ID, flags and letter case patched (see answerCache). The message
// codec and TCP plumbing are github.com/miekg/dns's; what the server
// answers is decided here.
package authserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/dns/internal/fastq"
	"appnet/dns/internal/udploop"
	"appnet/dns/serve"
	"appnet/dns/zone"
	"appnet/trace"
)

// ErrServerClosed is returned by Serve and ServePacket after Shutdown.
var ErrServerClosed = errors.New("authserver: server closed")

// DefaultUDPSize is the EDNS0 UDP payload size the server advertises and
// the most it sends over UDP (the DNS flag day 2020 value).
const DefaultUDPSize = 1232

// Server is an authoritative name server. Set its fields before serving;
// zones may be replaced at any time with SetZones (a reload), without
// dropping queries.
type Server struct {
	Host    string        // the name reported to the tracer
	Tracer  *trace.Tracer // nil: off
	Logger  *slog.Logger  // nil: slog.Default()
	UDPSize int           // 0: DefaultUDPSize
	// Rotate turns the rotation of address RRsets between answers on.
	Rotate bool
	// Keys are the TSIG keys (RFC 8945) allowed to UPDATE the zones
	// (RFC 2136): key name (fully qualified) -> base64 secret. No keys:
	// every UPDATE is refused.
	Keys map[string]string
	// AllowTransfer lists, per zone apex, its secondaries: they may
	// transfer the zone (AXFR over TCP from that address; others are
	// refused), and each is sent NOTIFY at that address and port when the
	// zone's serial changes (RFC 1996).
	AllowTransfer map[string][]netip.AddrPort
	// Primaries makes this server a secondary (RFC 1996, RFC 5936): zone
	// apex -> its primary's host:port. The zone is transferred from the
	// primary when serving starts, on the primary's NOTIFY and on the SOA
	// refresh timer, whenever the primary's serial is newer.
	Primaries map[string]string
	// Persist makes every accepted UPDATE durable before it is answered:
	// the zone's file (Zone.File) is rewritten atomically, with the new
	// serial, and synced, so a kill -9 or a reload keeps it.
	Persist bool

	zones    atomic.Pointer[zone.Set]
	answers  atomic.Pointer[answerCache] // packed answers of the current zones
	turn     atomic.Uint32
	updateMu sync.Mutex // one UPDATE at a time

	group serve.Group // the sockets Serve and ServePacket run

	mu       sync.Mutex
	closed   bool           // no new background work after Shutdown
	bg       sync.WaitGroup // NOTIFY senders, secondary refreshers
	bgCtx    context.Context
	bgCancel context.CancelFunc

	secOnce, secStart sync.Once
	secondaries       []*secondaryZone
}

// New returns a server for the zones in set, with rotation on.
func New(set *zone.Set) *Server {
	s := &Server{Rotate: true}
	s.SetZones(set)
	return s
}

// SetZones replaces the zones the server answers from. Queries being
// answered finish with the zones they started with.
func (s *Server) SetZones(set *zone.Set) {
	prev := s.zones.Swap(set)
	s.answers.Store(newAnswerCache(set))
	s.notifyChanged(prev, set)
}

// Zones returns the zones the server answers from.
func (s *Server) Zones() *zone.Set { return s.zones.Load() }

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) udpSize() int {
	if s.UDPSize > 0 {
		return s.UDPSize
	}
	return DefaultUDPSize
}

// ServePacket answers queries arriving on pc until Shutdown, with a few
// long-lived reader goroutines (udploop.Readers) that answer repeated
// questions from packed answers (see answerCache).
func (s *Server) ServePacket(pc net.PacketConn) error {
	h := &packetHandler{s: s}
	l := udploop.New(pc, h.handle)
	h.l = l
	// Secondaries start once the socket is registered: transfers go out
	// from its address (see source), which a primary's transfer list names.
	return served(s.group.Loop(l, pc, s.startSecondaries, nil))
}

// served turns a serve.Group result into this package's.
func served(err error) error { return serve.Result(err, ErrServerClosed, "authserver") }

// Serve answers queries on the TCP connections ln accepts until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(&dns.Server{Listener: ln, ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }})
}

// ListenPacket opens a UDP socket at addr for ServePacket (of this
// package or of dns/resolver) with SO_REUSEPORT set, so that each of the
// server's readers gets a socket of its own on the same address, which on
// Linux spreads the datagrams over the readers instead of queueing them on
// one socket.
func ListenPacket(ctx context.Context, addr string) (net.PacketConn, error) {
	return udploop.ListenPacket(ctx, "udp", addr)
}

// ListenAndServe serves UDP and TCP on addr (host:port) until Shutdown.
func (s *Server) ListenAndServe(addr string) error {
	pc, err := udploop.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return fmt.Errorf("authserver: %w", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("authserver: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	err = s.ServePacket(pc)
	return errors.Join(err, <-errc)
}

func (s *Server) serve(srv *dns.Server) error {
	srv.Handler = dns.HandlerFunc(s.serveDNS)
	srv.MsgAcceptFunc = acceptMsg
	if len(s.Keys) > 0 {
		srv.TsigSecret = map[string]string{}
		for k, v := range s.Keys {
			srv.TsigSecret[dns.CanonicalName(k)] = v
		}
	}
	return served(s.group.DNS(srv, s.startSecondaries))
}

// Shutdown stops every Serve and ServePacket, lets answers being written
// finish, and waits for the server's goroutines (or ctx).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.bgCancel != nil {
		s.bgCancel()
	}
	s.mu.Unlock()
	var errs []error
	if err := s.group.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("authserver: %w", err))
	}
	bgDone := make(chan struct{})
	go func() { s.bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// acceptMsg is the first look at a message's header: QUERY, UPDATE
// and NOTIFY are served.
var acceptMsg = fastq.Accept(dns.OpcodeQuery, dns.OpcodeUpdate, dns.OpcodeNotify)

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	c, tcp := dnstrace.ServerConv(s.Tracer, s.Host, w)
	if c != nil {
		c.Recv(dnstrace.Query(req))
	}
	var resp *dns.Msg
	switch {
	case req.Opcode == dns.OpcodeUpdate:
		resp = s.update(req, w.TsigStatus())
	case req.Opcode == dns.OpcodeNotify:
		resp = s.notifyIn(req, w.RemoteAddr())
	case tcp && req.Opcode == dns.OpcodeQuery && len(req.Question) == 1 && (req.Question[0].Qtype == dns.TypeAXFR || req.Question[0].Qtype == dns.TypeIXFR):
		s.transferOut(w, req, c)
		return
	default:
		resp = s.Answer(req, tcp)
	}
	if resp == nil {
		c.Notef("dropped")
		return
	}
	if c != nil {
		c.Send(dnstrace.Reply(resp))
	}
	if err := w.WriteMsg(resp); err != nil {
		s.logger().Debug("authserver: writing an answer", "err", err, "to", w.RemoteAddr())
	}
}

// Answer returns the server's answer to req as received over TCP (tcp) or
// UDP, or nil when the message is to be dropped. It never changes the
// zones' records.
func (s *Server) Answer(req *dns.Msg, tcp bool) *dns.Msg {
	return s.answer(s.Zones(), req, tcp, -1)
}

// answer is Answer from the zones of set; turn >= 0 rotates every
// address RRset by turn places instead of by the server's counter.
func (s *Server) answer(set *zone.Set, req *dns.Msg, tcp bool, turn int) *dns.Msg {
	if req.Response {
		return nil
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = false
	resp.Authoritative = false
	size := dns.MinMsgSize // RFC 1035 §4.2.1: 512 without EDNS
	if opt := req.IsEdns0(); opt != nil {
		// RFC 6891 §6.2.5: a buffer below 512 is taken as 512.
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), s.udpSize())
		resp.SetEdns0(uint16(s.udpSize()), false)
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers // RFC 6891 §6.1.3
			return resp
		}
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		resp.Rcode = dns.RcodeRefused
		return resp
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR || q.Qtype == dns.TypeMAILA || q.Qtype == dns.TypeMAILB || q.Qtype == dns.TypeOPT:
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	z := set.Find(q.Name)
	if z == nil {
		resp.Rcode = dns.RcodeRefused // RFC 8906 §3.1.5: not our zone
		return resp
	}
	r := z.Lookup(q.Name, q.Qtype)
	switch r.Kind {
	case zone.Success:
		resp.Authoritative = true
		resp.Answer = s.rotate(r.Answer, turn)
		resp.Extra = append(resp.Extra, z.Additional(r.Answer, r.Answer)...)
	case zone.Referral:
		resp.Ns = r.Ns
		resp.Extra = append(resp.Extra, r.Extra...)
	case zone.NXDomain:
		resp.Authoritative = true
		resp.Rcode = dns.RcodeNameError
		resp.Ns = r.Ns
	case zone.NoData:
		resp.Authoritative = true
		resp.Ns = r.Ns
	default:
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if opt := resp.IsEdns0(); opt != nil {
		// The OPT record goes last in the additional section.
		resp.Extra = append(resp.Extra[1:], resp.Extra[0])
	}
	if !tcp {
		fit(resp, size)
	}
	return resp
}

// fit makes resp fit in size bytes: the additional section is dropped
// first (RFC 2181 §9: that needs no TC), then the answer is cut and TC set.
func fit(resp *dns.Msg, size int) {
	if resp.Len() <= size {
		return
	}
	opt := resp.IsEdns0()
	resp.Extra = nil
	if opt != nil {
		resp.Extra = []dns.RR{opt}
	}
	if resp.Len() <= size {
		return
	}
	resp.Truncated = true
	resp.Answer, resp.Ns = nil, nil
}

// rotate returns the records with every address RRset of more than one
// record turned by one place more than the previous answer's.
func (s *Server) rotate(rrs []dns.RR, turn int) []dns.RR {
	if !s.Rotate {
		return rrs
	}
	out := rrs
	copied := false
	for i := 0; i < len(rrs); {
		j := i + 1
		h := rrs[i].Header()
		for j < len(rrs) && rrs[j].Header().Rrtype == h.Rrtype && rrs[j].Header().Name == h.Name {
			j++
		}
		if n := j - i; n > 1 && (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA) {
			if !copied {
				out = append([]dns.RR(nil), rrs...)
				copied = true
			}
			k := turn % n
			if turn < 0 {
				k = int(s.turn.Add(1)-1) % n
			}
			for m := range n {
				out[i+m] = rrs[i+(m+k)%n]
			}
		}
		i = j
	}
	return out
}
