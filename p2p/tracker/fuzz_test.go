package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"appnet/p2p/bencode"
)

// FuzzAnnounceQuery feeds arbitrary query strings to the HTTP announce
// parser and to the handler: no panic, and every answer is a bencoded
// dict, with a failure reason that names a parameter when the query is
// refused.
func FuzzAnnounceQuery(f *testing.F) {
	good := AnnounceQuery(Request{InfoHash: hash("fuzz-fuzz-fuzz-fuzz-"), PeerID: peerID(1), Port: 6881, Left: 10, Event: Started, NumWant: 5, Key: 7})
	for _, seed := range []string{
		good, good + "&compact=0&no_peer_id=1", good + "&compact=0", strings.Replace(good, "key=00000007", "key=", 1),
		strings.Replace(good, "key=00000007", "key=not-hex-but-fine", 1), strings.Replace(good, "event=started", "event=stopped", 1),
		"", "&&&", "info_hash=%", "info_hash=%zz&peer_id=%",
		"info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0&ip=127.0.0.2",
		"port=-1", "numwant=99999999999999", "event=stopped", "=&=", "info_hash=%00%00", "left=1&left=x",
	} {
		f.Add(seed)
	}
	s := fuzzServer()
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
		// Four hosts, so that the key and address rules come into play.
		req.RemoteAddr = fmt.Sprintf("10.0.0.%d:5000", 1+len(raw)%4)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		checkStore(t, s)
		if err == nil && !s.ShowPeerIDs && strings.Contains(rec.Body.String(), "7:peer id") {
			t.Fatalf("peer id given: %q", rec.Body.Bytes())
		}
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
	s := fuzzServer()
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	id := s.connID(from.Addr(), s.bucket())
	keyed := announcePkt(id, 4, hash("fuzz-udp-fuzz-udp-fu"), peerID(3), 5, Stopped, 6883)
	binary.BigEndian.PutUint32(keyed[88:], 0xfeed)
	f.Add(keyed)
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
		checkStore(t, s)
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

// fuzzServer is a Server with small limits, so that fuzzing reaches them,
// and a clock that moves a second a call, so that the rate limit lets
// some announces through.
func fuzzServer() *Server {
	var tick atomic.Int64
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Server{
		MaxPeersPerAddr: 3, MaxBytes: 20 * peerBytes, AnnounceRate: 1, AnnounceBurst: 5, RateSources: 3,
		Now: func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Second) },
	}
	s.init()
	return s
}

// FuzzStoreOps runs sequences of announces (4 bytes each: peer, source
// and event, key, swarm) against a store with small limits, and checks
// after each that the store's bookkeeping holds, that a refused announce
// changed nothing, that only the peer's key moved, stopped or rekeyed a
// peer with one, and that only its address changed a peer without.
func FuzzStoreOps(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0x31, 1, 0, 0, 0x30, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0x31, 0x80, 0, 0, 0x01, 0x90, 0})
	f.Add([]byte{1, 0, 0, 0, 1, 1, 0, 0, 1, 0x31, 0, 0, 1, 0x30, 0, 0, 2, 2, 2, 2})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := fuzzServer()
		s.MaxBytes = 6*peerBytes + 2*swarmBytes
		s.MaxPeersPerAddr = 2
		s.MaxPeers = 4
		for ; len(ops) >= 4; ops = ops[4:] {
			id := peerID(int(ops[0] % 8))
			// Loopback hosts, which may ask for any loopback address.
			src := netip.AddrFrom4([4]byte{127, 0, 0, 1 + ops[1]%4})
			var ip netip.Addr
			if ops[2]&0x80 != 0 {
				ip = netip.AddrFrom4([4]byte{127, 0, 0, 1 + (ops[2]>>4)%4})
			}
			ev := Event((ops[1] >> 4) % 4)
			key := uint32(ops[2] % 4) // 0: no key
			ih := hash(fmt.Sprintf("swarm-%d", ops[3]%3))
			before, had := s.peerState(ih, id)
			_, err := s.announce(Request{InfoHash: ih, PeerID: id, Port: 1000 + uint16(ops[0]), Left: int64(ops[3] % 2), Event: ev, Key: key, IP: ip}, src, 0)
			checkStore(t, s)
			after, has := s.peerState(ih, id)
			switch {
			case err != nil && (had != has || before.addr != after.addr || before.key != after.key || before.hasKey != after.hasKey):
				t.Fatalf("a refused announce changed the peer: %+v -> %+v (%v)", before, after, err)
			case err == nil && had && before.hasKey && key != before.key && (ev == Stopped || before.addr != after.addr || after.key != before.key):
				t.Fatalf("an announce with key %d moved, stopped or took over a peer with key %d", key, before.key)
			case err == nil && had && !before.hasKey && src != before.fromIP:
				t.Fatalf("an announce from %v was taken for a keyless peer from %v", src, before.fromIP)
			}
		}
	})
}

// peerState returns a copy of a peer of the store.
func (s *Server) peerState(ih, id Hash) (peer, bool) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if sw := s.st.swarms[ih]; sw != nil {
		if p := sw.byID[id]; p != nil {
			return *p, true
		}
	}
	return peer{}, false
}
