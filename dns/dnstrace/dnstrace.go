// Package dnstrace writes the one-line summaries of DNS messages (RFC 1035
// §4) that appnet's DNS servers, resolver and client report to a
// trace.Tracer: "A? www.umass.test. rd" for a query, "NOERROR aa
// www.umass.test. A 128.119.40.186" for an answer, "referral to umass.test.
// (NS dns.umass.test., glue 1)" for a referral.
package dnstrace

import (
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"appnet/trace"
)

// ServerConv opens the trace of one exchange that a DNS server answers on
// w, as "dns/tcp" or "dns/udp" after w's transport (nil when t records
// nothing), and reports whether w is TCP.
func ServerConv(t *trace.Tracer, host string, w dns.ResponseWriter) (*trace.Conv, bool) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	proto := "dns/udp"
	if tcp {
		proto = "dns/tcp"
	}
	return t.Conv(host, proto, trace.Server, w.LocalAddr(), w.RemoteAddr()), tcp
}

// Query summarises a question: "A? www.umass.test. rd id 4660".
func Query(m *dns.Msg) string {
	var b strings.Builder
	if m.Opcode != dns.OpcodeQuery {
		b.WriteString(dns.OpcodeToString[m.Opcode])
		b.WriteByte(' ')
	}
	if len(m.Question) > 0 {
		q := m.Question[0]
		fmt.Fprintf(&b, "%s? %s", dns.TypeToString[q.Qtype], q.Name)
	} else {
		b.WriteString("(no question)")
	}
	if m.RecursionDesired {
		b.WriteString(" rd")
	}
	if o := m.IsEdns0(); o != nil {
		fmt.Fprintf(&b, " edns %d", o.UDPSize())
	}
	fmt.Fprintf(&b, " id %d", m.Id)
	return b.String()
}

// Reply summarises an answer by what it is: records, a referral, or a
// negative answer.
func Reply(m *dns.Msg) string {
	var b strings.Builder
	b.WriteString(dns.RcodeToString[m.Rcode])
	for _, f := range []struct {
		on   bool
		name string
	}{{m.Authoritative, "aa"}, {m.Truncated, "tc"}, {m.RecursionAvailable, "ra"}} {
		if f.on {
			b.WriteString(" " + f.name)
		}
	}
	switch {
	case len(m.Answer) > 0:
		for i, rr := range m.Answer {
			if i == 4 {
				fmt.Fprintf(&b, " (+%d more)", len(m.Answer)-4)
				break
			}
			sep := " "
			if i > 0 {
				sep = ", "
			}
			b.WriteString(sep + RR(rr))
		}
	case IsReferral(m):
		var ns []string
		for _, rr := range m.Ns {
			if n, ok := rr.(*dns.NS); ok {
				ns = append(ns, n.Ns)
			}
		}
		glue := 0
		for _, rr := range m.Extra {
			if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
				glue++
			}
		}
		fmt.Fprintf(&b, " referral to %s (NS %s, glue %d)", m.Ns[0].Header().Name, strings.Join(ns, " "), glue)
	default:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				fmt.Fprintf(&b, " SOA %s ttl %d", soa.Hdr.Name, soa.Hdr.Ttl)
			}
		}
	}
	fmt.Fprintf(&b, " id %d", m.Id)
	return b.String()
}

// RR summarises one record: "www.umass.test. A 128.119.40.186".
func RR(rr dns.RR) string {
	h := rr.Header()
	s := rr.String()
	// The text form is NAME TTL CLASS TYPE RDATA; keep NAME TYPE RDATA.
	f := strings.SplitN(s, "\t", 5)
	if len(f) == 5 {
		return h.Name + " " + f[3] + " " + f[4]
	}
	return s
}

// IsReferral reports whether m is a referral: no answer, not
// authoritative, NS records in the authority section (RFC 1034 §4.3.2,
// step 3b).
func IsReferral(m *dns.Msg) bool {
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) > 0 || m.Authoritative {
		return false
	}
	for _, rr := range m.Ns {
		if rr.Header().Rrtype == dns.TypeNS {
			return true
		}
	}
	return false
}
