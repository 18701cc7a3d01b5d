// Package cdn is a content distribution network in small: edge servers that
// are reverse caching proxies for an origin (they reuse web/proxy's RFC 9111
// cache), and the CDN's authoritative DNS server, which answers the CDN's
// names with the edge nearest the client, read from a map of client
// networks. The client's network is the query's source address, or the
// EDNS Client Subnet a resolver sends on its behalf (RFC 7871).
package cdn

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"sort"
	"strings"

	"appnet/web/proxy"
)

// NewEdge returns an edge server for origin: a reverse proxy whose cache is
// cfg.Store (a memory store when nil).
func NewEdge(origin *url.URL, cfg proxy.Config) *proxy.Proxy {
	cfg.Origin = origin
	return proxy.New(cfg)
}

// Map says which edges serve which client networks. Each line of a map
// file is
//
//	PREFIX EDGE [EDGE...]
//
// with PREFIX a CIDR prefix (127.0.0.16/28, 2001:db8::/32) or "default",
// and each EDGE an IP address. The longest prefix that contains the
// client's address decides. Blank lines and # comments are ignored.
type Map struct {
	rules []mapRule // longest prefix first
	def   []netip.Addr
}

type mapRule struct {
	prefix netip.Prefix
	edges  []netip.Addr
}

// ParseMap reads a map file; name is used in errors.
func ParseMap(r io.Reader, name string) (*Map, error) {
	m := &Map{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = t[:i]
		}
		f := strings.Fields(t)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("cdn: %s:%d: want PREFIX EDGE [EDGE...]", name, line)
		}
		var edges []netip.Addr
		for _, e := range f[1:] {
			a, err := netip.ParseAddr(e)
			if err != nil {
				return nil, fmt.Errorf("cdn: %s:%d: edge %q: %w", name, line, e, err)
			}
			edges = append(edges, a.Unmap())
		}
		if f[0] == "default" {
			if m.def != nil {
				return nil, fmt.Errorf("cdn: %s:%d: a second default", name, line)
			}
			m.def = edges
			continue
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return nil, fmt.Errorf("cdn: %s:%d: %w", name, line, err)
		}
		m.rules = append(m.rules, mapRule{p.Masked(), edges})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cdn: %s: %w", name, err)
	}
	if m.def == nil && len(m.rules) == 0 {
		return nil, fmt.Errorf("cdn: %s: no edges", name)
	}
	sort.SliceStable(m.rules, func(i, j int) bool { return m.rules[i].prefix.Bits() > m.rules[j].prefix.Bits() })
	return m, nil
}

// Lookup returns the edges for a client address and the length of the
// prefix that chose them (0 for the default; the ECS scope).
func (m *Map) Lookup(client netip.Addr) ([]netip.Addr, int) {
	client = client.Unmap()
	for _, r := range m.rules {
		if r.prefix.Contains(client) {
			return r.edges, r.prefix.Bits()
		}
	}
	return m.def, 0
}

// LookupPrefix chooses for a client network given as a prefix (an EDNS
// Client Subnet): the longest rule that contains the whole prefix; the
// scope returned is that rule's length.
func (m *Map) LookupPrefix(p netip.Prefix) ([]netip.Addr, int) {
	p = p.Masked()
	for _, r := range m.rules {
		if r.prefix.Bits() <= p.Bits() && r.prefix.Contains(p.Addr()) {
			return r.edges, r.prefix.Bits()
		}
	}
	return m.def, 0
}
