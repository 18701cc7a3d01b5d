package authserver

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/zone"
)

// update applies a dynamic UPDATE (RFC 2136) authenticated with TSIG (RFC
// 8945). signed says whether the request carried a TSIG that verified
// with one of Keys. It returns the answer to send.
func (s *Server) update(req *dns.Msg, tsigErr error) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	t := req.IsTsig()
	switch {
	case t == nil:
		resp.Rcode = dns.RcodeRefused // RFC 2136 §3.3: only signed updates here
		return resp
	case s.Keys == nil || !s.hasKey(t.Hdr.Name):
		resp.Rcode = dns.RcodeNotAuth
		s.logger().Warn("authserver: UPDATE with an unknown TSIG key", "key", t.Hdr.Name)
		return resp
	case tsigErr != nil:
		resp.Rcode = dns.RcodeNotAuth // RFC 8945 §5.2
		s.logger().Warn("authserver: UPDATE with a bad TSIG", "key", t.Hdr.Name, "err", tsigErr)
		return resp
	}
	signed := func(m *dns.Msg) *dns.Msg {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		return m
	}
	// §3.1: the zone section names one zone, type SOA.
	if len(req.Question) != 1 || req.Question[0].Qtype != dns.TypeSOA {
		resp.Rcode = dns.RcodeFormatError
		return signed(resp)
	}
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	set := s.Zones()
	origin := strings.ToLower(dns.Fqdn(req.Question[0].Name))
	var z *zone.Zone
	for _, c := range set.Zones() {
		if c.Origin == origin {
			z = c
		}
	}
	if z == nil {
		resp.Rcode = dns.RcodeNotAuth // §3.1.2: not authoritative for it
		return signed(resp)
	}
	if rcode := prerequisites(z, req.Answer); rcode != dns.RcodeSuccess {
		resp.Rcode = rcode
		return signed(resp)
	}
	next, rcode, err := applyUpdates(z, req.Ns)
	if rcode != dns.RcodeSuccess {
		resp.Rcode = rcode
		if err != nil {
			s.logger().Warn("authserver: UPDATE refused", "zone", origin, "err", err)
		}
		return signed(resp)
	}
	if next != nil {
		zs := make([]*zone.Zone, 0, len(set.Zones()))
		for _, c := range set.Zones() {
			if c == z {
				c = next
			}
			zs = append(zs, c)
		}
		ns, err := zone.NewSet(zs...)
		if err != nil {
			resp.Rcode = dns.RcodeServerFailure
			return signed(resp)
		}
		if s.Persist {
			// Durable before it is acknowledged (and before it is served).
			if err := writeZoneFile(next); err != nil {
				s.logger().Error("authserver: UPDATE not applied: the zone could not be saved", "zone", origin, "err", err)
				resp.Rcode = dns.RcodeServerFailure
				return signed(resp)
			}
		}
		s.SetZones(ns)
		s.logger().Info("authserver: zone updated", "zone", origin, "serial", next.SOA.Serial, "key", t.Hdr.Name)
	}
	return signed(resp)
}

// prerequisites checks the prerequisite section (RFC 2136 §3.2).
func prerequisites(z *zone.Zone, prereqs []dns.RR) int {
	for _, rr := range prereqs {
		h := rr.Header()
		if h.Ttl != 0 {
			return dns.RcodeFormatError
		}
		if !dns.IsSubDomain(z.Origin, h.Name) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassANY: // §2.4.1, §2.4.4: name in use, RRset exists
			if h.Rrtype == dns.TypeANY {
				if !z.NameInUse(h.Name) {
					return dns.RcodeNameError
				}
			} else if len(z.RRset(h.Name, h.Rrtype)) == 0 {
				return dns.RcodeNXRrset
			}
		case dns.ClassNONE: // §2.4.5, §2.4.3: name not in use, RRset does not exist
			if h.Rrtype == dns.TypeANY {
				if z.NameInUse(h.Name) {
					return dns.RcodeYXDomain
				}
			} else if len(z.RRset(h.Name, h.Rrtype)) > 0 {
				return dns.RcodeYXRrset
			}
		case dns.ClassINET: // §2.4.2: this RR exists (value dependent)
			found := false
			for _, have := range z.RRset(h.Name, h.Rrtype) {
				if dns.IsDuplicate(have, rr) {
					found = true
				}
			}
			if !found {
				return dns.RcodeNXRrset
			}
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

// applyUpdates makes the zone's next version (RFC 2136 §3.4), with the
// SOA serial incremented (§3.6). It returns nil when nothing changed.
func applyUpdates(z *zone.Zone, updates []dns.RR) (*zone.Zone, int, error) {
	// §3.4.1: prescan.
	for _, rr := range updates {
		h := rr.Header()
		if !dns.IsSubDomain(z.Origin, h.Name) {
			return nil, dns.RcodeNotZone, nil
		}
		switch h.Class {
		case dns.ClassINET:
			if h.Rrtype == dns.TypeANY || h.Rrtype == dns.TypeAXFR || h.Rrtype == dns.TypeIXFR || !zone.Supported[h.Rrtype] {
				return nil, dns.RcodeFormatError, nil
			}
		case dns.ClassANY, dns.ClassNONE:
			if h.Ttl != 0 {
				return nil, dns.RcodeFormatError, nil
			}
		default:
			return nil, dns.RcodeFormatError, nil
		}
	}
	// Copies: building the next version canonicalizes the records in
	// place, and the current version is being read by other queries.
	rrs := z.Records()
	for i, rr := range rrs {
		rrs[i] = dns.Copy(rr)
	}
	soa := dns.Copy(z.SOA).(*dns.SOA)
	rrs[0] = soa
	changed := false
	apex := func(name string, t uint16) bool {
		return strings.EqualFold(name, z.Origin) && (t == dns.TypeSOA || t == dns.TypeNS)
	}
	remove := func(keep func(dns.RR) bool) {
		out := rrs[:0:0]
		for _, have := range rrs {
			if keep(have) {
				out = append(out, have)
			} else {
				changed = true
			}
		}
		rrs = out
	}
	for _, rr := range updates {
		h := rr.Header()
		switch h.Class {
		case dns.ClassINET:
			if h.Rrtype == dns.TypeSOA {
				if n := rr.(*dns.SOA); strings.EqualFold(h.Name, z.Origin) && n.Serial > soa.Serial {
					soa = dns.Copy(n).(*dns.SOA)
					rrs[0], changed = soa, true
				}
				continue
			}
			dup := false
			for _, have := range rrs {
				if dns.IsDuplicate(have, rr) {
					dup = true
				}
			}
			if !dup {
				cp := dns.Copy(rr)
				cp.Header().Name = strings.ToLower(cp.Header().Name)
				rrs = append(rrs, cp)
				changed = true
			}
		case dns.ClassANY:
			remove(func(have dns.RR) bool {
				hh := have.Header()
				return !strings.EqualFold(hh.Name, h.Name) || (h.Rrtype != dns.TypeANY && hh.Rrtype != h.Rrtype) || apex(hh.Name, hh.Rrtype)
			})
		case dns.ClassNONE:
			target := dns.Copy(rr)
			target.Header().Class = dns.ClassINET
			remove(func(have dns.RR) bool {
				return !dns.IsDuplicate(have, target) || have.Header().Rrtype == dns.TypeSOA
			})
		}
	}
	if !changed {
		return nil, dns.RcodeSuccess, nil
	}
	if len(z.RRset(z.Origin, dns.TypeNS)) > 0 && !hasApexNS(rrs, z.Origin) {
		return nil, dns.RcodeRefused, fmt.Errorf("authserver: the update would remove every NS at the apex")
	}
	if rrs[0] == z.SOA || soa.Serial == z.SOA.Serial {
		soa.Serial++ // §3.6
	}
	next, err := zone.FromRecords(z.Origin, z.File, rrs)
	if err != nil {
		return nil, dns.RcodeRefused, err
	}
	return next, dns.RcodeSuccess, nil
}

func hasApexNS(rrs []dns.RR, origin string) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeNS && strings.EqualFold(rr.Header().Name, origin) {
			return true
		}
	}
	return false
}

func (s *Server) hasKey(name string) bool {
	for k := range s.Keys {
		if dns.CanonicalName(k) == dns.CanonicalName(name) {
			return true
		}
	}
	return false
}
