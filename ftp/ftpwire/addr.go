package ftpwire

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseHostPort parses the argument of PORT, "h1,h2,h3,h4,p1,p2" (RFC 959
// §4.1.2): an IPv4 address and a port, each number 0 to 255 in decimal.
// Spaces around the numbers are allowed.
func ParseHostPort(arg string) (netip.AddrPort, error) {
	var n [6]byte
	f := strings.Split(arg, ",")
	if len(f) != 6 {
		return netip.AddrPort{}, fmt.Errorf("%w: host-port %q", ErrSyntax, trimS(arg))
	}
	for i, s := range f {
		v, ok := byteNum(strings.TrimSpace(s))
		if !ok {
			return netip.AddrPort{}, fmt.Errorf("%w: host-port %q", ErrSyntax, trimS(arg))
		}
		n[i] = v
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{n[0], n[1], n[2], n[3]}), uint16(n[4])<<8|uint16(n[5])), nil
}

// byteNum parses 1 to 3 decimal digits with a value up to 255.
func byteNum(s string) (byte, bool) {
	if len(s) == 0 || len(s) > 3 {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return byte(v), v <= 255
}

// FormatHostPort returns the "h1,h2,h3,h4,p1,p2" form of an IPv4 address
// (or an IPv4-mapped IPv6 one) and port, for PORT and the 227 reply. It
// returns "" for an IPv6 address, which needs EPRT/EPSV.
func FormatHostPort(ap netip.AddrPort) string {
	a := ap.Addr().Unmap()
	if !a.Is4() {
		return ""
	}
	b := a.As4()
	p := ap.Port()
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d", b[0], b[1], b[2], b[3], p>>8, p&0xff)
}

// ParsePASVReply finds the address in the text of a 227 reply. RFC 1123
// §4.1.2.6 tells clients to scan for the six numbers rather than expect
// "Entering Passive Mode (h1,h2,h3,h4,p1,p2)" exactly, so it takes the
// first six comma-separated numbers of at most three digits each (the
// scan is linear in the text's length).
func ParsePASVReply(text string) (netip.AddrPort, error) {
	for i := 0; i < len(text); i++ {
		if !isDigit(text[i]) || (i > 0 && isDigit(text[i-1])) {
			continue
		}
		if ap, ok := hostPortAt(text[i:]); ok {
			return ap, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%w: no address in 227 reply %q", ErrSyntax, trimS(text))
}

// hostPortAt reads h1,h2,h3,h4,p1,p2 at the start of s, looking at no
// more than 24 bytes.
func hostPortAt(s string) (netip.AddrPort, bool) {
	var n [6]byte
	j := 0
	for k := range 6 {
		start := j
		for j < len(s) && j-start < 4 && isDigit(s[j]) {
			j++
		}
		v, ok := byteNum(s[start:j])
		if !ok {
			return netip.AddrPort{}, false
		}
		n[k] = v
		if k < 5 {
			if j >= len(s) || s[j] != ',' {
				return netip.AddrPort{}, false
			}
			j++
		}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{n[0], n[1], n[2], n[3]}), uint16(n[4])<<8|uint16(n[5])), true
}

// FormatPASVReply returns the text of a 227 reply for ap (IPv4).
func FormatPASVReply(ap netip.AddrPort) string {
	return "Entering Passive Mode (" + FormatHostPort(ap) + ")."
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// ParseEPRT parses the argument of EPRT (RFC 2428 §2): a delimiter
// (any printable ASCII character but a digit; "|" in practice), the
// network protocol (1 for IPv4, 2 for IPv6), the address, the port, each
// followed by the delimiter: "|1|132.235.1.2|6275|", "|2|::1|5282|". The
// address must be of the family named.
func ParseEPRT(arg string) (netip.AddrPort, error) {
	bad := func() (netip.AddrPort, error) {
		return netip.AddrPort{}, fmt.Errorf("%w: EPRT argument %q", ErrSyntax, trimS(arg))
	}
	if len(arg) < 2 {
		return bad()
	}
	d := arg[0]
	if d < 33 || d > 126 || isDigit(d) {
		return bad()
	}
	f := strings.Split(arg[1:], string(d))
	if len(f) != 4 || f[3] != "" {
		return bad()
	}
	a, err := netip.ParseAddr(f[1])
	if err != nil || a.Zone() != "" {
		return bad()
	}
	switch f[0] {
	case "1":
		if !a.Is4() {
			return bad()
		}
	case "2":
		if !a.Is6() {
			return bad()
		}
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: EPRT network protocol %q", ErrUnknownNet, trimS(f[0]))
	}
	p, err := strconv.ParseUint(f[2], 10, 16)
	if err != nil || p == 0 || f[2][0] == '+' {
		return bad()
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// ErrUnknownNet is returned (wrapped) by ParseEPRT for a network protocol
// other than 1 or 2; RFC 2428 §2 has the server answer 522 then.
var ErrUnknownNet = fmt.Errorf("ftpwire: unsupported network protocol")

// FormatEPRT returns the EPRT argument for ap: "|1|a.b.c.d|port|" for an
// IPv4 (or IPv4-mapped) address, "|2|addr|port|" for IPv6.
func FormatEPRT(ap netip.AddrPort) string {
	a := ap.Addr().Unmap().WithZone("")
	proto := "2"
	if a.Is4() {
		proto = "1"
	}
	return "|" + proto + "|" + a.String() + "|" + strconv.Itoa(int(ap.Port())) + "|"
}

// ParseEPSVReply finds the port in the text of a 229 reply (RFC 2428
// §3): "Entering Extended Passive Mode (|||6446|)", where "|" may be any
// delimiter and the network and address fields are empty.
func ParseEPSVReply(text string) (int, error) {
	for i := strings.IndexByte(text, '('); i >= 0; {
		s := text[i+1:]
		if port, ok := epsvPort(s); ok {
			return port, nil
		}
		j := strings.IndexByte(s, '(')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return 0, fmt.Errorf("%w: no port in 229 reply %q", ErrSyntax, trimS(text))
}

func epsvPort(s string) (int, bool) {
	if len(s) < 6 {
		return 0, false
	}
	d := s[0]
	if d < 33 || d > 126 || isDigit(d) || s[1] != d || s[2] != d {
		return 0, false
	}
	end := strings.IndexByte(s[3:min(len(s), 9)], d) // at most 5 digits
	if end <= 0 || len(s) < 3+end+2 || s[3+end+1] != ')' {
		return 0, false
	}
	num := s[3 : 3+end]
	p, err := strconv.ParseUint(num, 10, 16)
	if err != nil || p == 0 || num[0] == '+' {
		return 0, false
	}
	return int(p), true
}

// FormatEPSVReply returns the text of a 229 reply for port.
func FormatEPSVReply(port int) string {
	return "Entering Extended Passive Mode (|||" + strconv.Itoa(port) + "|)"
}
