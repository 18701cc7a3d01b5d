package tracker

import (
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"appnet/p2p/bencode"
)

// FuzzAnnounceQuery feeds arbitrary query strings to the HTTP announce
// parser and to the handler: no panic, and every answer is a bencoded
// dict, with a failure reason that names a parameter when the query is
// refused.
func FuzzAnnounceQuery(f *testing.F) {
	good := AnnounceQuery(Request{InfoHash: hash("fuzz-fuzz-fuzz-fuzz-"), PeerID: peerID(1), Port: 6881, Left: 10, Event: Started, NumWant: 5, Key: 7})
	for _, seed := range []string{
		good, good + "&compact=0&no_peer_id=1", "", "&&&", "info_hash=%", "info_hash=%zz&peer_id=%",
		"info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0&ip=127.0.0.2",
		"port=-1", "numwant=99999999999999", "event=stopped", "=&=", "info_hash=%00%00", "left=1&left=x",
	} {
		f.Add(seed)
	}
	s := &Server{}
	s.init()
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseAnnounce(raw)
		var pe *paramError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("error %v is not a *paramError", err)
		}
		if err == nil && q.Port == 0 {
			t.Fatalf("accepted port 0: %q", raw)
		}
		req := httptest.NewRequest(http.MethodGet, "/announce", nil)
		req.URL.RawQuery = raw
		req.RemoteAddr = "127.0.0.1:5000"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var m map[string]any
		if err := bencode.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("answer %q is not a bencoded dict: %v", rec.Body.Bytes(), err)
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		if reason, ok := m["failure reason"].(string); ok && err != nil && !strings.Contains(reason, ": ") {
			t.Fatalf("failure reason %q names no parameter", reason)
		}
		if n, _ := s.Size(); n > 100 {
			s.st.expire(s.now().Add(1 << 40)) // keep the store small
		}
	})
}

// FuzzUDPPacket feeds arbitrary datagrams to the UDP request parser and
// handler: no panic; an answer, if any, is an error or the reply to the
// request's action with its transaction ID.
func FuzzUDPPacket(f *testing.F) {
	s := &Server{}
	s.init()
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	id := s.connID(from.Addr(), s.bucket())
	ih := hash("fuzz-udp-fuzz-udp-fu")
	f.Add(connectPkt(1))
	f.Add(announcePkt(id, 2, ih, peerID(1), 0, Started, 6881))
	f.Add(announcePkt(id, 3, ih, peerID(2), 10, Completed, 6882))
	f.Add(announcePkt(id, 3, ih, peerID(2), 10, Event(7), 0))
	f.Add(append(binary.BigEndian.AppendUint64(nil, id), append([]byte{0, 0, 0, 2, 0, 0, 0, 4}, ih[:]...)...))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add(make([]byte, 2000))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) >= 8 && binary.BigEndian.Uint64(pkt) == 0x0102030405060708 {
			// Let the fuzzer reach the handlers past the connection ID.
			binary.BigEndian.PutUint64(pkt, id)
		}
		_, perr := parseUDPRequest(pkt, s.maxScrape())
		reply := s.handlePacket(pkt, from, nil, nil)
		if reply == nil {
			if perr == nil || !errors.Is(perr, errDrop) {
				t.Fatalf("no reply to %x (parse: %v)", pkt, perr)
			}
			return
		}
		if len(reply) < 8 {
			t.Fatalf("reply %x too short", reply)
		}
		action := binary.BigEndian.Uint32(reply)
		if action != actionError && action != binary.BigEndian.Uint32(pkt[8:]) {
			t.Fatalf("reply action %d to request action %d", action, binary.BigEndian.Uint32(pkt[8:]))
		}
		if binary.BigEndian.Uint32(reply[4:]) != binary.BigEndian.Uint32(pkt[12:]) {
			t.Fatal("transaction ID not echoed")
		}
		if n, _ := s.Size(); n > 100 {
			s.st.expire(s.now().Add(1 << 40))
		}
	})
}
