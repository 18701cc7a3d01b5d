package fastq

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func seeds(f *testing.F) {
	for _, q := range []struct {
		name string
		edns bool
		do   bool
	}{{"www.umass.test.", false, false}, {"WwW.UMass.test.", true, false}, {"x.", true, true}, {".", false, false}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, dns.TypeA)
		if q.edns {
			m.SetEdns0(1232, q.do)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Add([]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"))
}

// FuzzParse: Parse never panics, and what it accepts the full codec reads
// the same way: the question (its name in lower case is the key), the
// EDNS payload size and DO bit; and TTLOffsets never panics.
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		TTLOffsets(b)
		q, key, ok := Parse(b, nil)
		if !ok {
			return
		}
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatalf("Parse accepted what the codec refuses: %v", err)
		}
		if len(m.Question) != 1 || m.Response || m.Opcode != dns.OpcodeQuery || len(m.Answer)+len(m.Ns) != 0 {
			t.Fatalf("not a plain query: %v", m)
		}
		mq := m.Question[0]
		if mq.Qtype != q.Qtype || mq.Qclass != q.Qclass || m.RecursionDesired != q.RD || m.CheckingDisabled != q.CD {
			t.Fatalf("question %v, Parse said %+v", mq, q)
		}
		var want []byte
		want, _ = appendName(want, strings.ToLower(mq.Name))
		if len(key) < len(want) || string(key[:len(want)]) != string(want) {
			t.Fatalf("key %q for %q", key, mq.Name)
		}
		opt := m.IsEdns0()
		if (opt != nil) != q.EDNS || opt != nil && (opt.UDPSize() != q.UDPSize || opt.Do() != q.DO || opt.Version() != 0) {
			t.Fatalf("OPT %v, Parse said %+v", opt, q)
		}
	})
}

// appendName packs name uncompressed.
func appendName(b []byte, name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	return append(b, buf[:n]...), err
}

func TestPatchAndTTLs(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("WWW.umass.test.", dns.TypeA)
	qb, _ := q.Pack()
	pq, _, ok := Parse(qb, nil)
	if !ok {
		t.Fatal("a plain query not accepted")
	}
	a := new(dns.Msg)
	a.SetQuestion("www.umass.test.", dns.TypeA)
	a.Response = true
	rr, _ := dns.NewRR("www.umass.test. 300 IN A 1.2.3.4")
	a.Answer = []dns.RR{rr}
	a.SetEdns0(1232, false)
	ab, _ := a.Pack()
	offs, ok := TTLOffsets(ab)
	if !ok || len(offs) != 1 {
		t.Fatalf("TTL offsets %v %v (the OPT has none)", offs, ok)
	}
	Patch(ab, qb, pq)
	PutTTL(ab, offs[0], 42)
	var got dns.Msg
	if err := got.Unpack(ab); err != nil {
		t.Fatal(err)
	}
	if got.Id != q.Id || !got.RecursionDesired || got.Question[0].Name != "WWW.umass.test." || got.Answer[0].Header().Ttl != 42 {
		t.Errorf("patched: %v", &got)
	}
}

// Decode takes a query, drops a response, answers an opcode it does not
// serve with NOTIMP and a message that is not one question, or does not
// parse, with FORMERR.
func TestDecode(t *testing.T) {
	accept := Accept(dns.OpcodeQuery)
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	q := new(dns.Msg).SetQuestion("www.example.", dns.TypeA)
	if req, rej := Decode(pack(q), accept); req == nil || rej != nil || req.Question[0].Name != "www.example." {
		t.Errorf("query: %v, %v", req, rej)
	}
	resp := new(dns.Msg).SetReply(q)
	if req, rej := Decode(pack(resp), accept); req != nil || rej != nil {
		t.Errorf("response: %v, %v; want it dropped", req, rej)
	}
	notify := new(dns.Msg).SetNotify("example.")
	if _, rej := Decode(pack(notify), accept); rej == nil || rej.Rcode != dns.RcodeNotImplemented || rej.Opcode != dns.OpcodeNotify {
		t.Errorf("NOTIFY to a server of queries: %v", rej)
	}
	if req, _ := Decode(pack(notify), Accept(dns.OpcodeQuery, dns.OpcodeNotify)); req == nil {
		t.Error("NOTIFY to a server of NOTIFY was refused")
	}
	two := new(dns.Msg).SetQuestion("a.example.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "b.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	if _, rej := Decode(pack(two), accept); rej == nil || rej.Rcode != dns.RcodeFormatError || rej.Id != two.Id {
		t.Errorf("two questions: %v", rej)
	}
	broken := pack(q)[:15] // a header promising a question that is cut short
	if _, rej := Decode(broken, accept); rej == nil || rej.Rcode != dns.RcodeFormatError || !rej.Response {
		t.Errorf("truncated question: %v", rej)
	}
}
