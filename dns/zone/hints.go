package zone

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// Server is one name server of a hints file: its name and addresses.
type Server struct {
	Name  string
	Addrs []netip.Addr
}

// LoadHints reads a root hints file (the named.root format: NS records
// for "." and A/AAAA records for their names).
func LoadHints(path string) ([]Server, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	defer f.Close()
	return ParseHints(f, path)
}

// ParseHints reads root hints from r; file names it in errors. Every NS
// must have at least one address.
func ParseHints(r io.Reader, file string) ([]Server, error) {
	zp := dns.NewZoneParser(r, ".", file)
	zp.SetDefaultTTL(3600000)
	var names []string
	addrs := map[string][]netip.Addr{}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch r := rr.(type) {
		case *dns.NS:
			if r.Hdr.Name != "." {
				return nil, fmt.Errorf("%w: %s: NS record for %s, want \".\"", ErrBadHints, file, r.Hdr.Name)
			}
			names = append(names, canonical(r.Ns))
		case *dns.A:
			a, _ := netip.AddrFromSlice(r.A.To4())
			addrs[canonical(r.Hdr.Name)] = append(addrs[canonical(r.Hdr.Name)], a)
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(r.AAAA.To16())
			addrs[canonical(r.Hdr.Name)] = append(addrs[canonical(r.Hdr.Name)], a)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHints, convertParseError(file, err))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s: no NS records for \".\"", ErrBadHints, file)
	}
	var out []Server
	for _, n := range names {
		if len(addrs[n]) == 0 {
			return nil, fmt.Errorf("%w: %s: no address for root server %s", ErrBadHints, file, n)
		}
		out = append(out, Server{Name: n, Addrs: addrs[n]})
	}
	return out, nil
}

// FormatHints writes servers as a root hints file.
func FormatHints(servers []Server) string {
	var b strings.Builder
	b.WriteString("; root hints\n")
	for _, s := range servers {
		fmt.Fprintf(&b, ".\t3600000\tIN\tNS\t%s\n", s.Name)
	}
	for _, s := range servers {
		for _, a := range s.Addrs {
			t := "A"
			if a.Is6() && !a.Is4In6() {
				t = "AAAA"
			}
			fmt.Fprintf(&b, "%s\t3600000\tIN\t%s\t%s\n", s.Name, t, a)
		}
	}
	return b.String()
}
