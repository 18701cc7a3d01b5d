package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/dns/internal/fastq"
	"appnet/dns/internal/udploop"
	"appnet/dns/serve"
	"appnet/trace"
)

// ErrServerClosed is returned by Serve and ServePacket after Shutdown.
var ErrServerClosed = errors.New("resolver: server closed")

// DefaultQueryTimeout bounds the work for one client question: the client
// gets SERVFAIL rather than silence when it runs out.
const DefaultQueryTimeout = 3 * time.Second

// Server answers clients' questions with a Resolver: the local name
// server. Questions with RD set are resolved; without RD only the cache
// answers (REFUSED on a miss).
type Server struct {
	Resolver     *Resolver
	Host         string
	Tracer       *trace.Tracer
	Logger       *slog.Logger
	QueryTimeout time.Duration // 0: DefaultQueryTimeout

	once   sync.Once
	ctx    context.Context // cancelled by Shutdown: resolutions in flight end
	cancel context.CancelFunc

	packed packedCache // packed answers to repeated questions

	group serve.Group // the sockets Serve and ServePacket run
}

func (s *Server) init() {
	s.once.Do(func() { s.ctx, s.cancel = context.WithCancel(context.Background()) })
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// ServePacket answers queries arriving on pc until Shutdown. A few
// long-lived readers (udploop) answer repeated questions from packed
// answers at once (packedCache); every other question is resolved in a
// goroutine of its own (at most MaxInFlight at once; beyond that the
// question is dropped and the client asks again).
func (s *Server) ServePacket(pc net.PacketConn) error {
	s.init()
	h := &packetHandler{s: s, sem: make(chan struct{}, MaxInFlight)}
	l := udploop.New(pc, h.handle)
	h.l = l
	// Once the loop stops, the resolutions it started finish first.
	return served(s.group.Loop(l, pc, nil, h.wg.Wait))
}

// served turns a serve.Group result into this package's.
func served(err error) error { return serve.Result(err, ErrServerClosed, "resolver") }

// Serve answers queries on the TCP connections ln accepts until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(&dns.Server{Listener: ln, ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }})
}

func (s *Server) serve(srv *dns.Server) error {
	s.init()
	srv.Handler = dns.HandlerFunc(s.serveDNS)
	srv.MsgAcceptFunc = acceptMsg
	return served(s.group.DNS(srv, nil))
}

// Shutdown stops serving, ends resolutions in flight, and waits for the
// server's goroutines (or ctx).
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.cancel()
	if err := s.group.Shutdown(ctx); err != nil {
		return fmt.Errorf("resolver: %w", err)
	}
	return nil
}

// acceptMsg is the first look at a message's header: only QUERY is
// served.
var acceptMsg = fastq.Accept(dns.OpcodeQuery)

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	c, tcp := dnstrace.ServerConv(s.Tracer, s.Host, w)
	if c != nil {
		c.Recv(dnstrace.Query(req))
	}
	resp, _ := s.answer(s.ctx, req, tcp, c)
	if c != nil {
		c.Send(dnstrace.Reply(resp))
	}
	if err := w.WriteMsg(resp); err != nil {
		s.logger().Debug("resolver: writing an answer", "err", err)
	}
}

// Answer resolves req for a client and returns the answer to send.
func (s *Server) Answer(ctx context.Context, req *dns.Msg, tcp bool, c *trace.Conv) *dns.Msg {
	resp, _ := s.answer(ctx, req, tcp, c)
	return resp
}

// answer is Answer; cached says the answer came from the cache alone.
func (s *Server) answer(ctx context.Context, req *dns.Msg, tcp bool, c *trace.Conv) (resp *dns.Msg, cached bool) {
	resp = new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), 1232)
		resp.SetEdns0(1232, false)
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp, false
		}
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp, false
	}
	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET:
		resp.Rcode = dns.RcodeRefused
		return resp, false
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR || q.Qtype == dns.TypeOPT:
		resp.Rcode = dns.RcodeNotImplemented
		return resp, false
	}
	var a *Answer
	if !req.RecursionDesired {
		rrs, rcode, soa, ok := s.Resolver.Cache.Lookup(q.Name, q.Qtype)
		if !ok {
			resp.Rcode = dns.RcodeRefused
			return resp, false
		}
		a = &Answer{Rcode: rcode, Answer: rrs, Cached: true}
		if soa != nil {
			a.Ns = []dns.RR{soa}
		}
	} else {
		timeout := s.QueryTimeout
		if timeout <= 0 {
			timeout = DefaultQueryTimeout
		}
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var err error
		a, err = s.Resolver.Resolve(ctx, q.Name, q.Qtype)
		if err != nil {
			s.logger().Warn("resolver: SERVFAIL", "question", q.Name+" "+dns.TypeToString[q.Qtype], "reason", err)
			c.Notef("SERVFAIL: %v", err)
			resp.Rcode = dns.RcodeServerFailure
			return resp, false
		}
		if a.Cached {
			c.Notef("answered from the cache")
		}
	}
	resp.Rcode = a.Rcode
	resp.Answer = a.Answer
	resp.Ns = a.Ns
	if !tcp && resp.Len() > size {
		resp.Truncated = true
		resp.Answer, resp.Ns = nil, nil
	}
	return resp, a.Cached
}
