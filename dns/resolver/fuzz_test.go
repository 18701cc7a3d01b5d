package resolver

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"appnet/dns/internal/udploop"
)

// FuzzServerHandler throws bytes at the resolver's UDP handler (no root
// servers, so a question ends in SERVFAIL at once): it never panics, and
// what it sends is a response that unpacks (FORMERR, NOTIMP, REFUSED,
// SERVFAIL or an answer), or nothing.
func FuzzServerHandler(f *testing.F) {
	for _, name := range []string{"www.umass.test.", "."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(4096, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Add([]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	s := &Server{Resolver: New(nil, 0)}
	s.init()
	defer s.Shutdown(context.Background())
	h := &packetHandler{s: s, l: udploop.New(pc, nil), sem: make(chan struct{}, 1)}
	from := netip.MustParseAddrPort("127.0.0.1:5353")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 12 {
			if h.handle(b, from, nil) != nil {
				t.Fatal("answered a message without a header")
			}
			return
		}
		if out := h.slow(b, from); out != nil {
			var r dns.Msg
			if err := r.Unpack(out); err != nil || !r.Response {
				t.Fatalf("unreadable answer or no response: %v %v", err, &r)
			}
		}
	})
}
