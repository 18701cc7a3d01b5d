package authserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/internal/fastq"
	"appnet/dns/internal/udploop"
	"appnet/dns/zone"
)

func seeds(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"www.umass.test.", dns.TypeA}, {"web.umass.test.", dns.TypeANY}, {"x.cs.umass.test.", dns.TypeNS}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(600, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2})
	f.Add(make([]byte, 12))
	f.Add([]byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01")) // a pointer loop
}

// FuzzAnswer checks that no message, once the codec accepts it, makes the
// answering code panic, and that every answer packs.
func FuzzAnswer(f *testing.F) {
	seeds(f)
	z, err := zone.Parse(strings.NewReader(testZone), "", "t")
	if err != nil {
		f.Fatal(err)
	}
	set, _ := zone.NewSet(z)
	s := New(set)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if m.Unpack(b) != nil {
			return
		}
		for _, tcp := range []bool{false, true} {
			if r := s.Answer(&m, tcp); r != nil {
				out, err := r.Pack()
				if err != nil {
					t.Fatalf("answer does not pack: %v\n%v", err, r)
				}
				if !tcp && len(out) > DefaultUDPSize {
					t.Fatalf("UDP answer of %d bytes", len(out))
				}
			}
		}
	})
}

// FuzzServer throws bytes at a live server over UDP: it answers (FORMERR
// or a real answer) or drops them, and still answers a good query after.
func FuzzServer(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, addr := start(t, testZone)
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(b)
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 65535)
		if n, err := conn.Read(buf); err == nil {
			var r dns.Msg
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("the server sent an unreadable answer: %v", err)
			}
			if !r.Response {
				t.Fatalf("answer without QR: %v", r)
			}
		}
		if r := ask(t, addr, "udp", "www.umass.test.", dns.TypeA, 0); len(r.Answer) != 3 {
			t.Fatalf("after the fuzz input: %v", r)
		}
	})
}

// FuzzPacket throws bytes at the UDP handler (no sockets): it never
// panics, what it sends is a response that unpacks, and the answer from
// the packed answers is byte for byte the answer the full codec path
// gives (rotation off, so both are deterministic).
func FuzzPacket(f *testing.F) {
	seeds(f)
	z, err := zone.Parse(strings.NewReader(bigZone()), "", "t")
	if err != nil {
		f.Fatal(err)
	}
	set, _ := zone.NewSet(z)
	s := New(set)
	s.Rotate = false
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	h := &packetHandler{s: s, l: udploop.New(pc, nil)}
	from := netip.MustParseAddrPort("127.0.0.1:5353")
	f.Fuzz(func(t *testing.T, b []byte) {
		fast := h.handle(b, from, make([]byte, 0, 512))
		if fast != nil {
			var r dns.Msg
			if err := r.Unpack(fast); err != nil || !r.Response {
				t.Fatalf("sent an unreadable answer or no response: %v %v", err, &r)
			}
		}
		if _, _, ok := fastq.Parse(b, nil); ok {
			slow := h.slow(b, from, nil)
			if string(fast) != string(slow) {
				var a, c dns.Msg
				a.Unpack(fast)
				c.Unpack(slow)
				t.Fatalf("packed answer differs from the codec's:\n%v\n---\n%v", &a, &c)
			}
		}
	})
}
