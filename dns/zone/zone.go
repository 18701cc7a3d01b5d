// Package zone holds DNS zones: it loads RFC 1035 master files (§5) with the
// record types an authoritative server of the course needs (A, AAAA, NS,
// CNAME, MX, SOA, TXT, PTR, SRV, plus CAA and HINFO), refuses a zone with
// errors naming file, line and reason, and answers lookups the way RFC 1034
// §4.3.2 describes: an exact match, a CNAME (followed inside the zone), a
// referral at a delegation point (NS below the apex, with glue), NXDOMAIN
// or NODATA with the SOA for negative caching (RFC 2308 §3), and wildcards
// (RFC 4592). It also reads root hints files in the named.root format.
//
// The package is a codec and a data structure: it imports no network code.
// The wire types are github.com/miekg/dns's.
package zone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Error is a problem in a zone or hints file, at a line.
type Error struct {
	File   string
	Line   int // 0: the file as a whole
	Reason string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("zone: %s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("zone: %s:%d: %s", e.File, e.Line, e.Reason)
}

// Supported lists the record types a zone may hold.
var Supported = map[uint16]bool{
	dns.TypeA: true, dns.TypeAAAA: true, dns.TypeNS: true, dns.TypeCNAME: true,
	dns.TypeMX: true, dns.TypeSOA: true, dns.TypeTXT: true, dns.TypePTR: true,
	dns.TypeSRV: true, dns.TypeCAA: true, dns.TypeHINFO: true,
}

// Zone is one zone's data: every record from its apex (Origin) down to its
// delegation points. A Zone is not changed after Parse returns, so any
// number of goroutines may look names up in it.
type Zone struct {
	Origin string   // the apex, lower case, fully qualified ("umass.test.")
	SOA    *dns.SOA // the apex SOA
	File   string   // where it was loaded from
	nodes  map[string]*node
	count  int
}

// node is one name of the zone. A node without records is an empty
// non-terminal (RFC 8020 §1: it exists, so its answer is NODATA).
type node struct {
	rrsets map[uint16][]dns.RR
}

// Len returns the number of records in the zone.
func (z *Zone) Len() int { return z.count }

// Records returns every record of the zone, the SOA first (the order of an
// AXFR, RFC 5936 §2.2, without the closing SOA).
func (z *Zone) Records() []dns.RR {
	out := []dns.RR{z.SOA}
	names := make([]string, 0, len(z.nodes))
	for n := range z.nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		nd := z.nodes[n]
		types := make([]uint16, 0, len(nd.rrsets))
		for t := range nd.rrsets {
			types = append(types, t)
		}
		slices.Sort(types)
		for _, t := range types {
			if t == dns.TypeSOA {
				continue
			}
			out = append(out, nd.rrsets[t]...)
		}
	}
	return out
}

// Load reads the master file path for the zone origin. When origin is
// empty, the owner of the file's SOA record is the origin.
func Load(path, origin string) (*Zone, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	return Parse(bytes.NewReader(b), origin, path)
}

// byteReader hands out one byte per Read, so that the parser, which reads
// through a buffer, never holds more than one byte of look-ahead and the
// lines it has consumed say where the record it returns ends.
type byteReader struct {
	r     io.Reader
	lines int
}

func (b *byteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.r.Read(p[:1])
	if n == 1 && p[0] == '\n' {
		b.lines++
	}
	return n, err
}

// parseErrRE takes miekg/dns's ParseError text apart: "FILE: dns: REASON:
// "TOKEN" at line: L:C".
var parseErrRE = regexp.MustCompile(`^(?:.*?: )?dns: (.*): ("(?:[^"\\]|\\.)*") at line: (\d+):\d+$`)

func convertParseError(file string, err error) *Error {
	m := parseErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{File: file, Reason: err.Error()}
	}
	line, _ := strconv.Atoi(m[3])
	reason := m[1]
	if tok, _ := strconv.Unquote(m[2]); tok != "" {
		reason += " near " + m[2]
	}
	return &Error{File: file, Line: line, Reason: reason}
}

// Parse reads a master file from r. file names it in errors. The first
// error found is returned as an *Error with its line.
func Parse(r io.Reader, origin, file string) (*Zone, error) {
	br := &byteReader{r: r}
	zp := dns.NewZoneParser(br, origin, file)
	zp.SetDefaultTTL(3600)
	var all []entry
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		line := br.lines
		if line == 0 {
			line = 1
		}
		all = append(all, entry{rr, line})
	}
	if err := zp.Err(); err != nil {
		return nil, convertParseError(file, err)
	}
	return build(origin, file, all)
}

// entry is a record and the line it ends on (0: not from a file).
type entry struct {
	rr   dns.RR
	line int
}

// FromRecords builds a zone from records, checking them as Parse does
// (the records are the zone's afterwards: do not change them). An UPDATE
// (RFC 2136) makes its new version of a zone this way.
func FromRecords(origin, file string, rrs []dns.RR) (*Zone, error) {
	all := make([]entry, len(rrs))
	for i, rr := range rrs {
		all[i] = entry{rr: rr}
	}
	return build(origin, file, all)
}

func build(origin, file string, all []entry) (*Zone, error) {
	z := &Zone{File: file, nodes: map[string]*node{}}
	if origin != "" {
		z.Origin = canonical(origin)
	}
	if len(all) == 0 {
		return nil, &Error{File: file, Reason: "no records (a zone needs at least an SOA and an NS record)"}
	}
	// The SOA fixes the apex.
	for _, e := range all {
		if soa, ok := e.rr.(*dns.SOA); ok {
			owner := canonical(soa.Hdr.Name)
			if z.SOA != nil {
				return nil, &Error{File: file, Line: e.line, Reason: "a second SOA record (a zone has exactly one, at its apex)"}
			}
			if z.Origin == "" {
				z.Origin = owner
			}
			if owner != z.Origin {
				return nil, &Error{File: file, Line: e.line, Reason: fmt.Sprintf("SOA owner %s is not the zone's apex %s", owner, z.Origin)}
			}
			z.SOA = soa
		}
	}
	if z.SOA == nil {
		return nil, &Error{File: file, Reason: "no SOA record at the apex"}
	}
	lines := map[string]int{} // owner -> first line, for errors about names
	for _, e := range all {
		h := e.rr.Header()
		h.Name = canonical(h.Name)
		if h.Class != dns.ClassINET {
			return nil, &Error{File: file, Line: e.line, Reason: fmt.Sprintf("class %s is not IN", dns.ClassToString[h.Class])}
		}
		if !Supported[h.Rrtype] {
			return nil, &Error{File: file, Line: e.line, Reason: fmt.Sprintf("record type %s is not supported", dns.TypeToString[h.Rrtype])}
		}
		if !dns.IsSubDomain(z.Origin, h.Name) {
			return nil, &Error{File: file, Line: e.line, Reason: fmt.Sprintf("%s is outside the zone %s", h.Name, z.Origin)}
		}
		if h.Rrtype == dns.TypeNS {
			ns := e.rr.(*dns.NS)
			ns.Ns = canonical(ns.Ns)
		}
		nd := z.add(h.Name)
		if _, seen := lines[h.Name]; !seen {
			lines[h.Name] = e.line
		}
		// RFC 2181 §5.2: the records of one RRset share a TTL.
		if set := nd.rrsets[h.Rrtype]; len(set) > 0 {
			if dup := slices.ContainsFunc(set, func(o dns.RR) bool { return dns.IsDuplicate(o, e.rr) }); dup {
				continue // RFC 2181 §5: an RRset holds no duplicates
			}
			if set[0].Header().Ttl != h.Ttl {
				h.Ttl = set[0].Header().Ttl
			}
		}
		nd.rrsets[h.Rrtype] = append(nd.rrsets[h.Rrtype], e.rr)
		z.count++
		// RFC 1034 §3.6.2: a CNAME has no other data beside it.
		_, cname := nd.rrsets[dns.TypeCNAME]
		if cname && len(nd.rrsets) > 1 {
			return nil, &Error{File: file, Line: e.line, Reason: fmt.Sprintf("%s has a CNAME and other data", h.Name)}
		}
		if h.Rrtype == dns.TypeCNAME && len(nd.rrsets[dns.TypeCNAME]) > 1 {
			return nil, &Error{File: file, Line: e.line, Reason: fmt.Sprintf("%s has more than one CNAME", h.Name)}
		}
	}
	if len(z.nodes[z.Origin].rrsets[dns.TypeNS]) == 0 {
		return nil, &Error{File: file, Line: lines[z.Origin], Reason: "no NS records at the apex " + z.Origin}
	}
	// Below a delegation point only glue (addresses) may live (RFC 1034
	// §4.2.1).
	for name, nd := range z.nodes {
		cut := z.cutAbove(name)
		if cut == "" {
			continue
		}
		for t := range nd.rrsets {
			if t != dns.TypeA && t != dns.TypeAAAA && !(name == cut && t == dns.TypeNS) {
				return nil, &Error{File: file, Line: lines[name], Reason: fmt.Sprintf("%s %s is below the delegation point %s (only glue addresses may be)", name, dns.TypeToString[t], cut)}
			}
		}
	}
	return z, nil
}

// cutAbove returns the highest delegation point (a name below the apex with
// NS records) at or above name, or "".
func (z *Zone) cutAbove(name string) string {
	labels := dns.SplitDomainName(name)
	apex := dns.CountLabel(z.Origin)
	for i := len(labels) - apex - 1; i >= 0; i-- {
		n := dns.Fqdn(strings.Join(labels[i:], "."))
		if nd := z.nodes[n]; nd != nil && len(nd.rrsets[dns.TypeNS]) > 0 {
			return n
		}
	}
	return ""
}

// add returns the node of name, creating it and its ancestors up to the
// apex (the empty non-terminals).
func (z *Zone) add(name string) *node {
	nd := z.nodes[name]
	if nd == nil {
		nd = &node{rrsets: map[uint16][]dns.RR{}}
		z.nodes[name] = nd
		if name != z.Origin {
			if i, end := dns.NextLabel(name, 0); !end {
				z.add(name[i:])
			}
		}
	}
	return nd
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// ErrBadHints is wrapped by every error about a root hints file.
var ErrBadHints = errors.New("zone: bad root hints")
