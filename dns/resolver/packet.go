package resolver

import (
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"

	"appnet/dns/dnstrace"
	"appnet/dns/internal/fastq"
	"appnet/dns/internal/udploop"
	"appnet/trace"
)

// MaxInFlight bounds the questions a Server resolves at once over UDP.
const MaxInFlight = 4096

// maxPacked bounds the packed answers a Server keeps; past it the store
// starts empty again.
const maxPacked = 20000

// packedCache keeps the packed answers that the cache alone gave to
// plain questions with RD set, keyed by the question and the EDNS and DO
// flags (fastq.Parse), so that the next identical question is answered
// by copying bytes and patching the ID, the flags, the question's letter
// case and every TTL (counted down from each record's absolute expiry).
// An answer is used only while every record in it lives and only while
// the cache has stored nothing since it was made (Cache.gen), so it never
// says other than what the cache would.
type packedCache struct {
	mu sync.RWMutex
	m  map[string]*packedAnswer
}

type packedAnswer struct {
	msg     []byte  // ID 0, RD and CD clear
	ttlOffs []int   // where each record's TTL is in msg
	expires []int64 // when each record dies, Unix nanoseconds
	dies    int64   // the earliest of expires
	gen     uint64  // Cache.gen when it was made
}

func (p *packedCache) get(key []byte) *packedAnswer {
	p.mu.RLock()
	e := p.m[string(key)]
	p.mu.RUnlock()
	return e
}

func (p *packedCache) put(key []byte, e *packedAnswer) {
	p.mu.Lock()
	if p.m == nil || len(p.m) >= maxPacked {
		p.m = map[string]*packedAnswer{}
	}
	p.m[string(key)] = e
	p.mu.Unlock()
}

// packetHandler answers the datagrams of one socket.
type packetHandler struct {
	s   *Server
	l   *udploop.Loop
	wg  sync.WaitGroup
	sem chan struct{}
}

func limit(q fastq.Query) int {
	if !q.EDNS {
		return dns.MinMsgSize
	}
	return min(max(int(q.UDPSize), dns.MinMsgSize), 1232)
}

// handle answers a repeated plain question from its packed answer, in
// the reader; anything else is resolved in a goroutine of its own.
func (h *packetHandler) handle(b []byte, from netip.AddrPort, out []byte) []byte {
	s := h.s
	if !s.Tracer.Enabled() && !s.Resolver.Tracer.Enabled() {
		var kb [fastq.MaxKey]byte
		if q, key, ok := fastq.Parse(b, kb[:0]); ok && q.RD {
			if e := s.packed.get(key); e != nil {
				c := s.Resolver.Cache
				now := c.now().UnixNano()
				if e.gen == c.gen.Load() && now < e.dies && len(e.msg) <= limit(q) {
					out = append(out, e.msg...)
					fastq.Patch(out, b, q)
					for i, off := range e.ttlOffs {
						fastq.PutTTL(out, off, uint32((e.expires[i]-now)/1e9))
					}
					s.Resolver.stats.questions.Add(1)
					s.Resolver.stats.hits.Add(1)
					return out
				}
			}
		}
	}
	if len(b) < 12 {
		return nil
	}
	select {
	case h.sem <- struct{}{}:
	default:
		return nil // too many questions in flight: the client asks again
	}
	req := append([]byte(nil), b...)
	h.wg.Add(1)
	go func() {
		defer func() { <-h.sem; h.wg.Done() }()
		if resp := h.slow(req, from); resp != nil {
			h.l.WriteTo(resp, from)
		}
	}()
	return nil
}

// slow answers b as miekg/dns's server would (a rejected message gets
// FORMERR or NOTIMP), through serveDNS's steps, and keeps the packed
// answer when the cache alone gave it.
func (h *packetHandler) slow(b []byte, from netip.AddrPort) []byte {
	s := h.s
	req, reject := fastq.Decode(b, acceptMsg)
	if req == nil {
		if reject == nil {
			return nil
		}
		out, _ := reject.Pack()
		return out
	}
	c := s.Tracer.Conv(s.Host, "dns/udp", trace.Server, h.l.LocalAddr(), net.UDPAddrFromAddrPort(from))
	if c != nil {
		c.Recv(dnstrace.Query(req))
	}
	cache := s.Resolver.Cache
	gen := cache.gen.Load()
	before := cache.now().UnixNano()
	resp, cached := s.answer(s.ctx, req, false, c)
	if c != nil {
		c.Send(dnstrace.Reply(resp))
	}
	out, err := resp.Pack()
	if err != nil {
		s.logger().Debug("resolver: packing an answer", "err", err)
		return nil
	}
	if cached && c == nil && !resp.Truncated && (resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError) {
		var kb [fastq.MaxKey]byte
		if q, key, ok := fastq.Parse(b, kb[:0]); ok && q.RD {
			h.keep(key, resp, gen, before)
		}
	}
	return out
}

// keep stores resp's packed form, its records' expiry counted from
// before (the time just before the cache was read, so never later than
// the cache's own).
func (h *packetHandler) keep(key []byte, resp *dns.Msg, gen uint64, before int64) {
	id, rd, cd := resp.Id, resp.RecursionDesired, resp.CheckingDisabled
	resp.Id, resp.RecursionDesired, resp.CheckingDisabled = 0, false, false
	msg, err := resp.Pack()
	resp.Id, resp.RecursionDesired, resp.CheckingDisabled = id, rd, cd
	if err != nil {
		return
	}
	offs, ok := fastq.TTLOffsets(msg)
	if !ok {
		return
	}
	e := &packedAnswer{msg: msg, ttlOffs: offs, gen: gen, dies: before + MaxTTL*1e9}
	for _, off := range offs {
		ttl := int64(uint32(msg[off])<<24 | uint32(msg[off+1])<<16 | uint32(msg[off+2])<<8 | uint32(msg[off+3]))
		exp := before + ttl*1e9
		e.expires = append(e.expires, exp)
		e.dies = min(e.dies, exp)
	}
	h.s.packed.put(key, e)
}
