package authserver

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"

	"appnet/dns/internal/fastq"
	"appnet/dns/internal/udploop"
	"appnet/dns/zone"
)

// maxCached bounds the packed answers kept for one version of the zones;
// past it the cache starts empty again (a flood of random names cannot
// make it grow).
const maxCached = 20000

// maxVariants bounds the precomputed orderings of one rotated answer: an
// answer whose RRsets' sizes need more (their least common multiple) is
// not cached.
const maxVariants = 12

// answerCache holds packed answers to plain queries for one version of
// the zones (SetZones, a reload or an UPDATE, starts a new one, so a
// change is never hidden). The key is the question in lower case and the
// EDNS and DO flags (fastq.Parse); an answer is kept in as many orderings
// as the rotation of its address RRsets goes through, so that rotation
// goes on answer after answer.
type answerCache struct {
	set *zone.Set
	mu  sync.RWMutex
	m   map[string]*cachedAnswer
}

type cachedAnswer struct {
	variants [][]byte // packed with ID 0, RD and CD clear
}

func newAnswerCache(set *zone.Set) *answerCache {
	return &answerCache{set: set, m: map[string]*cachedAnswer{}}
}

func (c *answerCache) get(key []byte) *cachedAnswer {
	c.mu.RLock()
	e := c.m[string(key)]
	c.mu.RUnlock()
	return e
}

func (c *answerCache) put(key []byte, e *cachedAnswer) {
	c.mu.Lock()
	if len(c.m) >= maxCached {
		c.m = map[string]*cachedAnswer{}
	}
	c.m[string(key)] = e
	c.mu.Unlock()
}

// packetHandler answers the datagrams of one socket.
type packetHandler struct {
	s *Server
	l *udploop.Loop
}

// handle answers one datagram: from the packed answers when the question
// is a plain query asked before (and tracing is off), else through the
// codec and serveDNS.
func (h *packetHandler) handle(b []byte, from netip.AddrPort, out []byte) []byte {
	s := h.s
	if !s.Tracer.Enabled() {
		var kb [fastq.MaxKey]byte
		if q, key, ok := fastq.Parse(b, kb[:0]); ok {
			if c := s.answers.Load(); c != nil {
				e := c.get(key)
				if e == nil {
					e = h.build(c, b, key)
				}
				if e != nil {
					v := e.variants[0]
					if len(e.variants) > 1 {
						v = e.variants[int(s.turn.Add(1)-1)%len(e.variants)]
					}
					if len(v) <= s.limit(q) {
						out = append(out, v...)
						fastq.Patch(out, b, q)
						return out
					}
				}
			}
		}
	}
	return h.slow(b, from, out)
}

// limit is the largest UDP answer to q (RFC 1035 §4.2.1, RFC 6891 §6.2.5).
func (s *Server) limit(q fastq.Query) int {
	if !q.EDNS {
		return dns.MinMsgSize
	}
	return min(max(int(q.UDPSize), dns.MinMsgSize), s.udpSize())
}

// build computes and keeps the packed answer (every ordering of it) to
// the plain query b, or returns nil when it is not to be kept.
func (h *packetHandler) build(c *answerCache, b, key []byte) *cachedAnswer {
	s := h.s
	var req dns.Msg
	if req.Unpack(b) != nil {
		return nil
	}
	first := s.answer(c.set, &req, true, 0)
	if first == nil {
		return nil
	}
	n := 1
	if s.Rotate {
		n = rotationPeriod(first.Answer)
	}
	if n > maxVariants {
		return nil
	}
	e := &cachedAnswer{}
	for v := range n {
		resp := first
		if v > 0 {
			resp = s.answer(c.set, &req, true, v)
		}
		resp.Id, resp.RecursionDesired, resp.CheckingDisabled = 0, false, false
		p, err := resp.Pack()
		if err != nil {
			return nil
		}
		e.variants = append(e.variants, p)
	}
	c.put(key, e)
	return e
}

// rotationPeriod is the number of answers after which the rotation of
// the address RRsets in rrs comes back to the start.
func rotationPeriod(rrs []dns.RR) int {
	period := 1
	for i := 0; i < len(rrs); {
		j := i + 1
		h := rrs[i].Header()
		for j < len(rrs) && rrs[j].Header().Rrtype == h.Rrtype && rrs[j].Header().Name == h.Name {
			j++
		}
		if n := j - i; n > 1 && (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA) {
			period = lcm(period, n)
			if period > maxVariants {
				return period
			}
		}
		i = j
	}
	return period
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// slow answers b as miekg/dns's server would: a header that does not
// parse is dropped, a rejected message gets FORMERR or NOTIMP, a TSIG is
// verified, and serveDNS decides.
func (h *packetHandler) slow(b []byte, from netip.AddrPort, out []byte) []byte {
	s := h.s
	if len(b) < 12 {
		return nil // no header: no answer (it could be used to amplify)
	}
	w := &packetWriter{local: h.l.LocalAddr(), remote: net.UDPAddrFromAddrPort(from), out: out, s: s}
	req, reject := fastq.Decode(b, acceptMsg)
	if req == nil {
		if reject == nil {
			return nil
		}
		w.WriteMsg(reject)
		return w.out
	}
	if t := req.IsTsig(); t != nil {
		w.tsigMAC = t.MAC
		secret, ok := s.secret(t.Hdr.Name)
		if !ok {
			w.tsigStatus = dns.ErrSecret
		} else {
			w.tsigStatus = dns.TsigVerify(b, secret, "", false)
		}
	}
	s.serveDNS(w, req)
	if !w.wrote {
		return nil
	}
	return w.out
}

func (s *Server) secret(name string) (string, bool) {
	for k, v := range s.Keys {
		if dns.CanonicalName(k) == dns.CanonicalName(name) {
			return v, true
		}
	}
	return "", false
}

// packetWriter is the dns.ResponseWriter of one datagram: the answer is
// packed (and signed when the question was) into out, which the loop
// sends.
type packetWriter struct {
	s             *Server
	local, remote net.Addr
	out           []byte
	wrote         bool
	tsigStatus    error
	tsigMAC       string
	timersOnly    bool
}

func (w *packetWriter) LocalAddr() net.Addr  { return w.local }
func (w *packetWriter) RemoteAddr() net.Addr { return w.remote }
func (w *packetWriter) Network() string      { return "udp" }
func (w *packetWriter) TsigStatus() error    { return w.tsigStatus }
func (w *packetWriter) TsigTimersOnly(b bool) {
	w.timersOnly = b
}
func (w *packetWriter) Hijack()      {}
func (w *packetWriter) Close() error { return nil }

func (w *packetWriter) WriteMsg(m *dns.Msg) error {
	if t := m.IsTsig(); t != nil {
		if secret, ok := w.s.secret(t.Hdr.Name); ok {
			b, _, err := dns.TsigGenerate(m, secret, w.tsigMAC, w.timersOnly)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}
	}
	b, err := m.PackBuffer(w.out[:0:cap(w.out)])
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *packetWriter) Write(b []byte) (int, error) {
	if w.wrote {
		return 0, errors.New("authserver: a second answer to one datagram")
	}
	w.wrote = true
	w.out = append(w.out[:0], b...)
	return len(b), nil
}
