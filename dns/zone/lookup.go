package zone

import (
	"strings"

	"github.com/miekg/dns"
)

// Kind says what sort of answer a lookup found.
type Kind uint8

// Kinds of answers (RFC 1034 §4.3.2).
const (
	// Success: Answer holds the records (after any CNAMEs).
	Success Kind = iota
	// Referral: the name is at or below a delegation point; Ns holds the
	// child's NS records and Extra the glue.
	Referral
	// NXDomain: the name does not exist; Ns holds the SOA (RFC 2308 §2.1).
	NXDomain
	// NoData: the name exists without records of the type; Ns holds the
	// SOA (RFC 2308 §2.2).
	NoData
	// Outside: the name is not in this zone.
	Outside
)

func (k Kind) String() string {
	return [...]string{"success", "referral", "nxdomain", "nodata", "outside"}[k]
}

// Result is the outcome of a lookup, as the sections of an answer.
type Result struct {
	Kind   Kind
	Answer []dns.RR
	Ns     []dns.RR
	Extra  []dns.RR
}

// MaxChain bounds the CNAMEs followed inside one zone.
const MaxChain = 16

// Lookup answers the question (qname, qtype) from the zone's data. qtype
// ANY returns every RRset of the name. CNAMEs are followed while their
// targets stay in the zone; a CNAME leading out of it ends the answer with
// the CNAME (the asker resolves the rest). The returned records are the
// zone's own: callers copy before changing them.
func (z *Zone) Lookup(qname string, qtype uint16) Result {
	qname = canonical(qname)
	var res Result
	seen := map[string]bool{}
	for range MaxChain {
		if !dns.IsSubDomain(z.Origin, qname) {
			if len(res.Answer) > 0 {
				return res // a chain that leaves the zone
			}
			res.Kind = Outside
			return res
		}
		if cut := z.cutAbove(qname); cut != "" && !(qtype == dns.TypeDS && cut == qname) {
			if len(res.Answer) > 0 {
				return res // the asker follows the chain through the referral
			}
			res.Kind = Referral
			res.Ns = z.nodes[cut].rrsets[dns.TypeNS]
			res.Extra = z.glue(res.Ns)
			return res
		}
		nd := z.nodes[qname]
		owner := qname
		if nd == nil {
			nd, owner = z.wildcard(qname)
			if nd == nil {
				res.Kind = NXDomain
				res.Ns = []dns.RR{z.negativeSOA()}
				return res
			}
		}
		synth := func(rrs []dns.RR) []dns.RR {
			if owner == qname {
				return rrs
			}
			out := make([]dns.RR, len(rrs))
			for i, rr := range rrs {
				out[i] = dns.Copy(rr)
				out[i].Header().Name = qname
			}
			return out
		}
		if qtype == dns.TypeANY && len(nd.rrsets) > 0 {
			for _, t := range sortedTypes(nd) {
				res.Answer = append(res.Answer, synth(nd.rrsets[t])...)
			}
			return res
		}
		if set := nd.rrsets[qtype]; len(set) > 0 {
			res.Answer = append(res.Answer, synth(set)...)
			return res
		}
		if c := nd.rrsets[dns.TypeCNAME]; len(c) > 0 && qtype != dns.TypeCNAME {
			res.Answer = append(res.Answer, synth(c)...)
			seen[qname] = true
			qname = canonical(c[0].(*dns.CNAME).Target)
			if seen[qname] {
				return res // a loop: the asker sees the CNAMEs and gives up
			}
			continue
		}
		if len(res.Answer) > 0 {
			return res // RFC 2308 §2.2: the chain's end has no data; rcode NOERROR
		}
		res.Kind = NoData
		res.Ns = []dns.RR{z.negativeSOA()}
		return res
	}
	return res
}

// wildcard returns the node of the wildcard that covers qname (RFC 4592
// §3.3.1: "*." and the closest encloser), or nil.
func (z *Zone) wildcard(qname string) (*node, string) {
	for name := qname; ; {
		i, end := dns.NextLabel(name, 0)
		if end {
			return nil, ""
		}
		name = name[i:]
		if !dns.IsSubDomain(z.Origin, name) {
			return nil, ""
		}
		if z.nodes[name] != nil { // the closest encloser
			w := "*." + name
			return z.nodes[w], w
		}
	}
}

// negativeSOA returns the SOA for a negative answer, its TTL the smaller
// of the SOA's own and its MINIMUM field (RFC 2308 §3).
func (z *Zone) negativeSOA() dns.RR {
	soa := dns.Copy(z.SOA).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// glue returns the addresses of the NS targets the zone holds.
func (z *Zone) glue(ns []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range ns {
		out = append(out, z.Addresses(rr.(*dns.NS).Ns)...)
	}
	return out
}

// Addresses returns the A and AAAA records the zone holds for name,
// glue included.
func (z *Zone) Addresses(name string) []dns.RR {
	nd := z.nodes[canonical(name)]
	if nd == nil {
		return nil
	}
	out := append([]dns.RR(nil), nd.rrsets[dns.TypeA]...)
	return append(out, nd.rrsets[dns.TypeAAAA]...)
}

// Additional returns the addresses of the names the records point at (NS,
// MX, SRV targets: RFC 1035 §3.3, RFC 2782) that the zone holds and that
// are not already among have.
func (z *Zone) Additional(rrs []dns.RR, have []dns.RR) []dns.RR {
	var out []dns.RR
	seen := map[string]bool{}
	for _, rr := range have {
		seen[strings.ToLower(rr.Header().Name)] = true
	}
	for _, rr := range rrs {
		var target string
		switch r := rr.(type) {
		case *dns.NS:
			target = r.Ns
		case *dns.MX:
			target = r.Mx
		case *dns.SRV:
			target = r.Target
		default:
			continue
		}
		target = canonical(target)
		if seen[target] {
			continue
		}
		seen[target] = true
		out = append(out, z.Addresses(target)...)
	}
	return out
}

func sortedTypes(nd *node) []uint16 {
	types := make([]uint16, 0, len(nd.rrsets))
	for t := range nd.rrsets {
		types = append(types, t)
	}
	for i := 1; i < len(types); i++ {
		for j := i; j > 0 && types[j] < types[j-1]; j-- {
			types[j], types[j-1] = types[j-1], types[j]
		}
	}
	return types
}

// Set is the zones one server is authoritative for.
type Set struct {
	zones []*Zone
}

// NewSet returns a set of zones; two zones with one apex are an error.
func NewSet(zones ...*Zone) (*Set, error) {
	seen := map[string]string{}
	for _, z := range zones {
		if f, dup := seen[z.Origin]; dup {
			return nil, &Error{File: z.File, Reason: "zone " + z.Origin + " is also loaded from " + f}
		}
		seen[z.Origin] = z.File
	}
	return &Set{zones: zones}, nil
}

// Zones returns the zones of the set.
func (s *Set) Zones() []*Zone { return s.zones }

// Find returns the zone with the longest apex that contains name, or nil.
func (s *Set) Find(name string) *Zone {
	if s == nil {
		return nil
	}
	var best *Zone
	for _, z := range s.zones {
		if dns.IsSubDomain(z.Origin, name) && (best == nil || dns.CountLabel(z.Origin) > dns.CountLabel(best.Origin)) {
			best = z
		}
	}
	return best
}

// RRset returns the zone's records of one name and type (the zone's own:
// do not change them).
func (z *Zone) RRset(name string, qtype uint16) []dns.RR {
	if nd := z.nodes[canonical(name)]; nd != nil {
		return nd.rrsets[qtype]
	}
	return nil
}

// NameInUse reports whether name owns any record (RFC 2136 §2.4.4).
func (z *Zone) NameInUse(name string) bool {
	nd := z.nodes[canonical(name)]
	return nd != nil && len(nd.rrsets) > 0
}
