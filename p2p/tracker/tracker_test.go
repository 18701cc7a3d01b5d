package tracker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/internal/testnet"
	"appnet/p2p/bencode"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(trackerProcess())
	}
	goleak.VerifyTestMain(m)
}

// clock is a settable time for Server.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// running is a server on loopback with its URLs.
type running struct {
	srv     *Server
	httpURL string // http://127.0.0.1:P/announce
	udpURL  string // udp://127.0.0.1:P
	udpAddr *net.UDPAddr
}

// start serves s over HTTP and UDP on 127.0.0.1 until the test ends.
func start(t testing.TB, s *Server) *running {
	t.Helper()
	ln := testnet.ListenTCP(t)
	pc := testnet.ListenUDP(t)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.ServeUDP(pc); !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeUDP: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
	})
	return &running{
		srv:     s,
		httpURL: "http://" + ln.Addr().String() + "/announce",
		udpURL:  "udp://" + pc.LocalAddr().String(),
		udpAddr: pc.LocalAddr().(*net.UDPAddr),
	}
}

func hash(s string) Hash {
	var h Hash
	copy(h[:], s)
	return h
}

func peerID(i int) Hash { return hash(fmt.Sprintf("-AN0001-%012d", i)) }

// get fetches u and decodes the bencoded body into a map.
func get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := bencode.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: body %q is not a bencoded dict: %v", u, body, err)
	}
	return resp.StatusCode, m
}

func TestAnnounceParameterErrors(t *testing.T) {
	r := start(t, &Server{})
	ih := "info_hash=" + escapeBinary([]byte("aaaaaaaaaaaaaaaaaaaa"))
	pid := "&peer_id=" + escapeBinary([]byte("-AN0001-000000000001"))
	ok := ih + pid + "&port=6881&left=10"
	tests := []struct {
		name, query, param string
	}{
		{"missing info_hash", pid[1:] + "&port=1&left=0", "info_hash"},
		{"short info_hash", "info_hash=abc" + pid + "&port=1&left=0", "info_hash"},
		{"long info_hash", "info_hash=" + strings.Repeat("a", 21) + pid + "&port=1&left=0", "info_hash"},
		{"bad escape", "info_hash=%zz" + pid, "info_hash"},
		{"missing peer_id", ih + "&port=1&left=0", "peer_id"},
		{"short peer_id", ih + "&peer_id=abc&port=1&left=0", "peer_id"},
		{"missing port", ih + pid + "&left=0", "port"},
		{"port zero", ih + pid + "&port=0&left=0", "port"},
		{"port too big", ih + pid + "&port=65536&left=0", "port"},
		{"port not a number", ih + pid + "&port=http&left=0", "port"},
		{"missing left", ih + pid + "&port=1", "left"},
		{"negative left", ok + "&left=-1", "left"}, // the first left counts, so put the bad one first below
		{"bad left", ih + pid + "&port=1&left=ten", "left"},
		{"bad uploaded", ok + "&uploaded=1e6", "uploaded"},
		{"negative downloaded", ok + "&downloaded=-5", "downloaded"},
		{"huge uploaded", ok + "&uploaded=99999999999999999999", "uploaded"},
		{"unknown event", ok + "&event=finished", "event"},
		{"bad numwant", ok + "&numwant=lots", "numwant"},
		{"bad compact", ok + "&compact=yes", "compact"},
		{"bad no_peer_id", ok + "&no_peer_id=2", "no_peer_id"},
		{"long key", ok + "&key=" + strings.Repeat("k", 65), "key"},
		{"long trackerid", ok + "&trackerid=" + strings.Repeat("t", 65), "trackerid"},
		{"too many parameters", ok + strings.Repeat("&x=1", maxParams), "query"},
	}
	// "negative left" must have the bad value first.
	tests[11].query = ih + pid + "&port=1&left=-1"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, m := get(t, r.httpURL+"?"+tc.query)
			if code != http.StatusOK {
				t.Errorf("status %d, want 200", code)
			}
			reason, _ := m["failure reason"].(string)
			if !strings.HasPrefix(reason, tc.param+": ") {
				t.Errorf("failure reason %q does not name %s", reason, tc.param)
			}
		})
	}
	// And the well-formed one is answered.
	if _, m := get(t, r.httpURL+"?"+ok); m["failure reason"] != nil {
		t.Errorf("good announce refused: %v", m["failure reason"])
	}
	if got := r.srv.Failures.Load(); got != uint64(len(tests)) {
		t.Errorf("Failures = %d, want %d", got, len(tests))
	}
}

func TestScrapeAndPathErrors(t *testing.T) {
	r := start(t, &Server{MaxScrape: 2})
	base := strings.TrimSuffix(r.httpURL, "/announce")
	h := "info_hash=" + escapeBinary([]byte("aaaaaaaaaaaaaaaaaaaa"))
	for _, tc := range []struct{ path, want string }{
		{"/scrape", "info_hash: missing"},
		{"/scrape?info_hash=short", "info_hash: 5 bytes"},
		{"/scrape?" + h + "&" + h + "&" + h, "info_hash: more than 2"},
		{"/favicon.ico", "not found"},
	} {
		_, m := get(t, base+tc.path)
		if reason, _ := m["failure reason"].(string); !strings.HasPrefix(reason, tc.want) {
			t.Errorf("GET %s: failure reason %q, want %q…", tc.path, reason, tc.want)
		}
	}
}

// addPeers puts peers into a swarm directly, with any address.
func addPeers(t *testing.T, s *Server, ih Hash, peers []Peer, left int64) {
	t.Helper()
	for _, p := range peers {
		req := Request{InfoHash: ih, PeerID: p.ID, Port: p.Addr.Port(), Left: left, Event: Started}
		if _, err := s.announce(req, p.Addr.Addr(), 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEncodings(t *testing.T) {
	r := start(t, &Server{TrackerID: "appnet-test", ShowPeerIDs: true})
	ih := hash("encodings-encodings-")
	want := map[netip.AddrPort]Hash{}
	var peers []Peer
	for i, a := range []string{"10.0.0.1:1001", "10.0.0.2:1002", "[2001:db8::1]:1003", "[2001:db8::2]:1004", "192.0.2.7:65535"} {
		p := Peer{ID: peerID(i), Addr: netip.MustParseAddrPort(a)}
		peers = append(peers, p)
		want[p.Addr] = p.ID
	}
	addPeers(t, r.srv, ih, peers, 100)
	// Without compact=1, so that the subtests can add their compact value.
	me := strings.Replace(AnnounceQuery(Request{InfoHash: ih, PeerID: peerID(99), Port: 7000, Left: 5}), "&compact=1", "", 1)

	t.Run("compact", func(t *testing.T) {
		_, m := get(t, r.httpURL+"?"+me)
		p4, _ := m["peers"].(string)
		p6, _ := m["peers6"].(string)
		if len(p4) != 6*3 || len(p6) != 18*2 {
			t.Fatalf("peers %d bytes, peers6 %d bytes; want 18 and 36", len(p4), len(p6))
		}
		got4, _ := parseCompact([]byte(p4), 4)
		got6, _ := parseCompact([]byte(p6), 6)
		for _, p := range append(got4, got6...) {
			if _, ok := want[p.Addr]; !ok {
				t.Errorf("unexpected peer %v", p.Addr)
			}
		}
		if m["complete"] != int64(0) || m["incomplete"] != int64(6) || m["interval"] != int64(1800) || m["min interval"] != int64(900) {
			t.Errorf("counts/intervals: %v", m)
		}
		if m["tracker id"] != "appnet-test" {
			t.Errorf("tracker id %v", m["tracker id"])
		}
	})
	t.Run("dictionary", func(t *testing.T) {
		_, m := get(t, r.httpURL+"?"+me+"&compact=0")
		list, _ := m["peers"].([]any)
		if len(list) != 5 {
			t.Fatalf("got %d peers, want 5: %v", len(list), m)
		}
		for _, e := range list {
			d := e.(map[string]any)
			ap := netip.AddrPortFrom(netip.MustParseAddr(d["ip"].(string)), uint16(d["port"].(int64)))
			if id, ok := want[ap]; !ok || d["peer id"] != string(id[:]) {
				t.Errorf("peer %v: %v", ap, d)
			}
		}
	})
	t.Run("no_peer_id", func(t *testing.T) {
		_, m := get(t, r.httpURL+"?"+me+"&compact=0&no_peer_id=1")
		for _, e := range m["peers"].([]any) {
			if _, has := e.(map[string]any)["peer id"]; has {
				t.Errorf("peer id present: %v", e)
			}
		}
	})
	t.Run("client", func(t *testing.T) {
		for _, noCompact := range []bool{false, true} {
			resp, err := AnnounceHTTP(t.Context(), r.httpURL, Request{InfoHash: ih, PeerID: peerID(99), Port: 7000, Left: 5, NoCompact: noCompact})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Peers) != 5 || resp.TrackerID != "appnet-test" || resp.Interval != 30*time.Minute {
				t.Errorf("compact=%v: %+v", !noCompact, resp)
			}
			for _, p := range resp.Peers {
				if _, ok := want[p.Addr]; !ok {
					t.Errorf("unexpected peer %v", p.Addr)
				}
				if noCompact && p.ID != want[p.Addr] {
					t.Errorf("peer %v: id %q", p.Addr, p.ID[:])
				}
			}
		}
	})
}

func TestEventsAndScrape(t *testing.T) {
	r := start(t, &Server{})
	ctx := t.Context()
	ih := hash("events-events-events")
	var c Client
	for _, url := range []string{r.httpURL, r.udpURL} {
		t.Run(url[:4], func(t *testing.T) {
			ann := func(id int, left int64, ev Event) Response {
				t.Helper()
				resp, err := c.Announce(ctx, url, Request{InfoHash: ih, PeerID: peerID(id), Port: uint16(6000 + id), Left: left, Event: ev})
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			scrape := func() ScrapeStats {
				t.Helper()
				m, err := c.Scrape(ctx, url, ih)
				if err != nil {
					t.Fatal(err)
				}
				return m[ih]
			}
			before := scrape().Downloaded
			ann(1, 0, Started)   // a seeder
			ann(2, 100, Started) // a leecher
			if resp := ann(3, 100, Started); resp.Complete != 1 || resp.Incomplete != 2 || len(resp.Peers) != 2 {
				t.Errorf("third peer: %+v", resp)
			}
			ann(2, 0, Completed)
			if st := scrape(); st.Complete != 2 || st.Incomplete != 1 || st.Downloaded != before+1 {
				t.Errorf("after completed: %+v", st)
			}
			ann(2, 0, Completed) // a repeated completed is counted once
			if st := scrape(); st.Downloaded != before+1 {
				t.Errorf("repeated completed counted: %+v", st)
			}
			ann(3, 100, Stopped)
			ann(1, 0, Stopped)
			ann(2, 0, Stopped)
			if st := scrape(); st.Complete != 0 || st.Incomplete != 0 {
				t.Errorf("after stopped: %+v", st)
			}
			if n, _ := r.srv.Size(); n != 0 {
				t.Errorf("an empty swarm is kept")
			}
		})
	}
}

func TestNumwantAndSelection(t *testing.T) {
	s := &Server{MaxNumwant: 30, AnnounceRate: -1}
	s.init()
	ih := hash("numwant-numwant-numw")
	var seeders, leechers []Peer
	for i := range 60 {
		p := Peer{ID: peerID(i), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i%250 + 1)}), 6881)}
		if i < 40 {
			seeders = append(seeders, p)
		} else {
			leechers = append(leechers, p)
		}
	}
	addPeers(t, s, ih, seeders, 0)
	addPeers(t, s, ih, leechers, 10)
	from := map[Hash]netip.Addr{}
	for _, p := range append(seeders, leechers...) {
		from[p.ID] = p.Addr.Addr()
	}
	ann := func(id Hash, left int64, numwant int) []Peer {
		src, ok := from[id] // a peer announces again from its own address
		if !ok {
			src = netip.MustParseAddr("10.9.9.9")
		}
		out, err := s.announce(Request{InfoHash: ih, PeerID: id, Port: 1, Left: left, NumWant: numwant}, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		return out.peers
	}
	isSeeder := map[Hash]bool{}
	for _, p := range seeders {
		isSeeder[p.ID] = true
	}
	for _, tc := range []struct {
		numwant, want int
	}{{0, 30}, {-1, 30}, {10, 10}, {1000, 30}} {
		if got := len(ann(peerID(1000), 5, tc.numwant)); got != tc.want {
			t.Errorf("numwant %d: got %d peers, want %d", tc.numwant, got, tc.want)
		}
	}
	s.DefaultNumwant = 7
	if got := len(ann(peerID(1000), 5, 0)); got != 7 {
		t.Errorf("default numwant 7: got %d", got)
	}
	// A peer never gets itself back, over many random draws.
	for range 200 {
		for _, p := range ann(peerID(41), 10, 30) {
			if p.ID == peerID(41) {
				t.Fatal("a peer got itself back")
			}
		}
	}
	// A seeder gets leechers only (21 of them: 40-59 and peer 1000).
	got := ann(peerID(0), 0, 30)
	if len(got) != 21 {
		t.Errorf("seeder got %d peers, want the 21 leechers", len(got))
	}
	for _, p := range got {
		if isSeeder[p.ID] {
			t.Errorf("seeder got seeder %v", p.Addr)
		}
	}
	// ... unless there are no leechers.
	ih2 := hash("seeders-only-seeders")
	addPeers(t, s, ih2, seeders[:5], 0)
	out, _ := s.announce(Request{InfoHash: ih2, PeerID: peerID(0), Port: 1, Left: 0}, netip.MustParseAddr("10.0.0.1"), 0)
	if len(out.peers) != 4 {
		t.Errorf("seeder in a seeders-only swarm got %d peers, want the 4 others", len(out.peers))
	}
	// Random selection: over many draws of 10 of 60, every peer shows up.
	seen := map[Hash]bool{}
	for range 100 {
		for _, p := range ann(peerID(1000), 5, 10) {
			seen[p.ID] = true
		}
	}
	if len(seen) != 60 {
		t.Errorf("random selection reached %d of 60 peers", len(seen))
	}
}

func TestExpiry(t *testing.T) {
	clk := newClock()
	s := &Server{Now: clk.Now, Interval: time.Minute, PeerTTL: 3 * time.Minute}
	s.init()
	ih := hash("expiry-expiry-expiry")
	addPeers(t, s, ih, []Peer{{ID: peerID(1), Addr: netip.MustParseAddrPort("10.0.0.1:1")}}, 10)
	clk.Advance(2 * time.Minute)
	addPeers(t, s, ih, []Peer{{ID: peerID(2), Addr: netip.MustParseAddrPort("10.0.0.2:1")}}, 0)
	if n := s.Expire(); n != 0 {
		t.Errorf("expired %d peers too early", n)
	}
	clk.Advance(90 * time.Second) // peer 1 silent for 3.5 min, peer 2 for 1.5
	if n := s.Expire(); n != 1 {
		t.Errorf("expired %d peers, want 1", n)
	}
	if st := s.Stats(ih); st.Complete != 1 || st.Incomplete != 0 {
		t.Errorf("after expiry: %+v", st)
	}
	clk.Advance(time.Hour)
	s.Expire()
	if n, p := s.Size(); n != 0 || p != 0 {
		t.Errorf("after all expired: %d torrents, %d peers", n, p)
	}
}

// The server's own ticker expires silent peers (by the injected clock).
func TestJanitor(t *testing.T) {
	clk := newClock()
	r := start(t, &Server{Now: clk.Now, PeerTTL: time.Minute, ExpireEvery: 5 * time.Millisecond})
	if _, err := AnnounceHTTP(t.Context(), r.httpURL, Request{InfoHash: hash("janitor"), PeerID: peerID(1), Port: 1}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	for i := 0; ; i++ {
		if _, peers := r.srv.Size(); peers == 0 {
			break
		}
		if i == 1000 {
			t.Fatal("the janitor never expired the silent peer")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLimitsAndWhitelist(t *testing.T) {
	allowed := hash("allowed-allowed-allo")
	s := &Server{MaxTorrents: 2, MaxPeers: 3, Whitelist: map[Hash]bool{allowed: true, hash("second-second-second"): true, hash("third-third-third-th"): true}}
	s.init()
	src := netip.MustParseAddr("10.0.0.1")
	if _, err := s.announce(Request{InfoHash: hash("other-other-other-ot"), PeerID: peerID(1), Port: 1}, src, 0); err == nil || !strings.HasPrefix(err.Error(), "info_hash: ") {
		t.Errorf("not whitelisted: %v", err)
	}
	for i := range 5 {
		out, err := s.announce(Request{InfoHash: allowed, PeerID: peerID(i), Port: uint16(i + 1), Left: 1}, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if out.stored != (i < 3) {
			t.Errorf("peer %d stored=%v", i, out.stored)
		}
	}
	if st := s.Stats(allowed); st.Incomplete != 3 {
		t.Errorf("a full swarm grew: %+v", st)
	}
	s.announce(Request{InfoHash: hash("second-second-second"), PeerID: peerID(1), Port: 1}, src, 0)
	if _, err := s.announce(Request{InfoHash: hash("third-third-third-th"), PeerID: peerID(1), Port: 1}, src, 0); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("third torrent: %v", err)
	}
}

func TestIPParameterAndKey(t *testing.T) {
	s := &Server{}
	s.init()
	ih := hash("ip-ip-ip-ip-ip-ip-ip")
	lab := netip.MustParseAddr("127.0.0.42")
	for _, tc := range []struct {
		source, ip, want string
	}{
		{"127.0.0.1", "127.0.0.42", "127.0.0.42"}, // loopback to loopback: honoured
		{"127.0.0.1", "::1", "::1"},
		{"10.0.0.1", "10.0.0.1", "10.0.0.1"},  // itself
		{"10.0.0.1", "10.0.0.99", "10.0.0.1"}, // someone else: ignored
		{"10.0.0.1", "127.0.0.1", "10.0.0.1"}, // loopback from afar: ignored
		{"::ffff:10.0.0.1", "", "10.0.0.1"},   // mapped addresses are unmapped
		{"127.0.0.1", "0.0.0.0", "127.0.0.1"}, // unspecified: ignored
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		got := peerAddr(netip.MustParseAddr(tc.source), ip, 1)
		if got.Addr().String() != tc.want {
			t.Errorf("source %s ip %s: %v, want %s", tc.source, tc.ip, got, tc.want)
		}
	}
	_ = lab
	// key: once given, another address must present the same key.
	req := Request{InfoHash: ih, PeerID: peerID(1), Port: 1, Key: 0xdead}
	if _, err := s.announce(req, netip.MustParseAddr("10.0.0.1"), 0); err != nil {
		t.Fatal(err)
	}
	req.Key = 0xbeef
	if _, err := s.announce(req, netip.MustParseAddr("10.0.0.2"), 0); err == nil || !strings.HasPrefix(err.Error(), "key: ") {
		t.Errorf("wrong key from another address: %v", err)
	}
	req.Key = 0xdead
	if _, err := s.announce(req, netip.MustParseAddr("10.0.0.2"), 0); err != nil {
		t.Errorf("right key from another address: %v", err)
	}
}

// udpCall sends one raw datagram to the server and returns the reply, or
// nil after a short wait.
func udpCall(t *testing.T, conn *net.UDPConn, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func connectPkt(tid uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, udpProtocolID)
	b = binary.BigEndian.AppendUint32(b, actionConnect)
	return binary.BigEndian.AppendUint32(b, tid)
}

func announcePkt(connID uint64, tid uint32, ih, id Hash, left uint64, ev Event, port uint16) []byte {
	b := binary.BigEndian.AppendUint64(nil, connID)
	b = binary.BigEndian.AppendUint32(b, actionAnnounce)
	b = binary.BigEndian.AppendUint32(b, tid)
	b = append(b, ih[:]...)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint64(b, left)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(ev))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, ^uint32(0))
	return binary.BigEndian.AppendUint16(b, port)
}

func TestUDPProtocol(t *testing.T) {
	clk := newClock()
	r := start(t, &Server{Now: clk.Now})
	conn, err := net.DialUDP("udp", nil, r.udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const wait = 2 * time.Second
	ih := hash("udp-udp-udp-udp-udp-")

	reply := udpCall(t, conn, connectPkt(7), wait)
	if len(reply) != 16 || binary.BigEndian.Uint32(reply) != actionConnect || binary.BigEndian.Uint32(reply[4:]) != 7 {
		t.Fatalf("connect reply %x", reply)
	}
	id := binary.BigEndian.Uint64(reply[8:])

	reply = udpCall(t, conn, announcePkt(id, 8, ih, peerID(1), 0, Started, 6881), wait)
	if len(reply) != 20 || binary.BigEndian.Uint32(reply) != actionAnnounce || binary.BigEndian.Uint32(reply[4:]) != 8 {
		t.Fatalf("announce reply %x", reply)
	}
	if iv, le, se := binary.BigEndian.Uint32(reply[8:]), binary.BigEndian.Uint32(reply[12:]), binary.BigEndian.Uint32(reply[16:]); iv != 1800 || le != 0 || se != 1 {
		t.Errorf("interval %d leechers %d seeders %d", iv, le, se)
	}
	reply = udpCall(t, conn, announcePkt(id, 9, ih, peerID(2), 5, Started, 6882), wait)
	if len(reply) != 26 || !strings.HasPrefix(string(reply[20:]), "\x7f\x00\x00\x01\x1a\xe1") {
		t.Errorf("second announce reply %x, want 127.0.0.1:6881", reply)
	}

	scrape := binary.BigEndian.AppendUint64(nil, id)
	scrape = binary.BigEndian.AppendUint32(scrape, actionScrape)
	scrape = binary.BigEndian.AppendUint32(scrape, 10)
	scrape = append(scrape, ih[:]...)
	other := hash("nobody-nobody-nobody")
	scrape = append(scrape, other[:]...)
	reply = udpCall(t, conn, scrape, wait)
	want := []uint32{actionScrape, 10, 1, 0, 1, 0, 0, 0}
	for i, w := range want {
		if len(reply) != 32 || binary.BigEndian.Uint32(reply[4*i:]) != w {
			t.Fatalf("scrape reply %x, want words %v", reply, want)
		}
	}

	errorReply := func(name string, pkt []byte, tid uint32, wantMsg string) {
		t.Helper()
		reply := udpCall(t, conn, pkt, wait)
		if len(reply) < 8 || binary.BigEndian.Uint32(reply) != actionError || binary.BigEndian.Uint32(reply[4:]) != tid || !strings.HasPrefix(string(reply[8:]), wantMsg) {
			t.Errorf("%s: reply %q, want error %q", name, reply, wantMsg)
		}
	}
	errorReply("forged connection ID", announcePkt(id^1, 11, ih, peerID(3), 1, None, 1), 11, "connection ID")
	errorReply("short announce", announcePkt(id, 12, ih, peerID(3), 1, None, 1)[:90], 12, "announce: 90 bytes")
	errorReply("bad event", announcePkt(id, 13, ih, peerID(3), 1, Event(9), 1), 13, "event: ")
	errorReply("port 0", announcePkt(id, 14, ih, peerID(3), 1, None, 0), 14, "port: ")
	errorReply("huge left", announcePkt(id, 15, ih, peerID(3), 1<<63, None, 1), 15, "left: ")
	errorReply("unknown action", append(binary.BigEndian.AppendUint64(nil, id), 0, 0, 0, 9, 0, 0, 0, 16), 16, "action: ")
	errorReply("ragged scrape", append(scrape[:16:16], 1, 2, 3), 10, "scrape: ")
	errorReply("empty scrape", scrape[:16], 10, "scrape: ")

	for name, pkt := range map[string][]byte{
		"short":          {1, 2, 3},
		"bad magic":      append(binary.BigEndian.AppendUint64(nil, 12345), 0, 0, 0, 0, 0, 0, 0, 1),
		"empty":          {},
		"header only 15": connectPkt(1)[:15],
	} {
		if reply := udpCall(t, conn, pkt, 100*time.Millisecond); reply != nil {
			t.Errorf("%s: got a reply %x, want none", name, reply)
		}
	}

	// The connection ID lives one to two minutes.
	clk.Advance(70 * time.Second)
	if reply := udpCall(t, conn, announcePkt(id, 20, ih, peerID(1), 0, None, 6881), wait); binary.BigEndian.Uint32(reply) != actionAnnounce {
		t.Errorf("connection ID refused after 70 s: %q", reply)
	}
	clk.Advance(60 * time.Second)
	errorReply("expired connection ID", announcePkt(id, 21, ih, peerID(1), 0, None, 6881), 21, "connection ID")
	// A connection ID is bound to the client's address.
	if r.srv.validConnID(r.srv.connID(netip.MustParseAddr("127.0.0.1"), r.srv.bucket()), netip.MustParseAddr("127.0.0.2")) {
		t.Error("a connection ID is valid from another address")
	}
}

func TestUDPClientRetransmits(t *testing.T) {
	// A tracker that ignores the first two datagrams it gets.
	s := &Server{}
	s.init()
	pc := testnet.ListenUDP(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for n := 0; ; n++ {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 2 {
				continue
			}
			ua := addr.(*net.UDPAddr)
			if out := s.handlePacket(buf[:k], ua.AddrPort(), nil, nil); out != nil {
				pc.WriteTo(out, addr)
			}
		}
	}()
	defer func() { pc.Close(); <-done }()
	c := &Client{UDPBase: 20 * time.Millisecond, UDPRetries: 4}
	resp, err := c.AnnounceUDP(t.Context(), "udp://"+pc.LocalAddr().String(), Request{InfoHash: hash("retry"), PeerID: peerID(1), Port: 1, Left: 1})
	if err != nil {
		t.Fatalf("after retransmissions: %v", err)
	}
	if resp.Incomplete != 1 {
		t.Errorf("response %+v", resp)
	}
	// A tracker that never answers: ErrTimeout after the retries.
	silent := testnet.ListenUDP(t)
	c = &Client{UDPBase: 5 * time.Millisecond, UDPRetries: 2}
	_, err = c.AnnounceUDP(t.Context(), "udp://"+silent.LocalAddr().String(), Request{Port: 1})
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("silent tracker: %v, want ErrTimeout", err)
	}
}

func TestFailureError(t *testing.T) {
	r := start(t, &Server{Whitelist: map[Hash]bool{}})
	var c Client
	for _, u := range []string{r.httpURL, r.udpURL} {
		_, err := c.Announce(t.Context(), u, Request{InfoHash: hash("x"), PeerID: peerID(1), Port: 1})
		var fe *FailureError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Reason, "info_hash: ") {
			t.Errorf("%s: %v, want a *FailureError about info_hash", u, err)
		}
	}
	if _, err := c.Announce(t.Context(), "ftp://x/announce", Request{}); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestScrapeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://t.test/announce":           "http://t.test/scrape",
		"http://t.test/x/announce.php?k=1": "http://t.test/x/scrape.php?k=1",
		"http://t.test/a":                  "",
		"http://t.test/announce/x":         "",
	} {
		got, err := ScrapeURL(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ScrapeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestTiers(t *testing.T) {
	r := start(t, &Server{})
	dead := testnet.ListenUDP(t) // never answers
	c := &Client{UDPBase: 5 * time.Millisecond, UDPRetries: 1}
	deadURL := "udp://" + dead.LocalAddr().String()
	tr := NewTiers(c, "", [][]string{{deadURL}, {r.httpURL}})
	tr.MinBackoff = time.Millisecond
	req := Request{InfoHash: hash("tiers"), PeerID: peerID(1), Port: 1, Left: 1}
	_, u, err := tr.Announce(t.Context(), req)
	if err != nil || u != r.httpURL {
		t.Fatalf("Announce: %q, %v; want the second tier's tracker", u, err)
	}
	if st := tr.Status(); st.Err != nil || st.URL != r.httpURL || st.Failures != 0 {
		t.Errorf("status after success: %+v", st)
	}
	// Every tracker unreachable: the error is kept, the backoff doubles.
	tr = NewTiers(c, deadURL, nil)
	tr.MinBackoff, tr.MaxBackoff = 10*time.Millisecond, 25*time.Millisecond
	var backoffs []time.Duration
	for range 3 {
		if _, _, err := tr.Announce(t.Context(), req); !errors.Is(err, ErrTimeout) {
			t.Errorf("unreachable: %v", err)
		}
		backoffs = append(backoffs, tr.Backoff())
	}
	if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 25 * time.Millisecond}; fmt.Sprint(backoffs) != fmt.Sprint(want) {
		t.Errorf("backoffs %v, want %v", backoffs, want)
	}
	if st := tr.Status(); st.Err == nil || st.Failures != 3 || st.URL != deadURL || st.RetryAt.IsZero() {
		t.Errorf("status after failures: %+v", st)
	}
	_, _, err = tr.AnnounceRetry(t.Context(), req, 2)
	if !errors.Is(err, ErrTimeout) || tr.Status().Failures != 5 {
		t.Errorf("AnnounceRetry: %v, %d failures", err, tr.Status().Failures)
	}
	if _, _, err := NewTiers(c, "", nil).Announce(t.Context(), req); !errors.Is(err, ErrNoTracker) {
		t.Errorf("no tracker: %v", err)
	}
}

func TestConcurrentAnnounces(t *testing.T) {
	// Every worker is on 127.0.0.1: no per-address limits.
	r := start(t, &Server{MaxPeers: 50, MaxPeersPerAddr: -1, AnnounceRate: -1})
	c := &Client{UDPBase: time.Second}
	var wg sync.WaitGroup
	const workers, each = 12, 25
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := r.httpURL
			if w%2 == 1 {
				url = r.udpURL
			}
			for i := range each {
				ih := hash(fmt.Sprintf("swarm-%d", i%3))
				ev := []Event{Started, None, Completed, Stopped}[i%4]
				req := Request{InfoHash: ih, PeerID: peerID(w*1000 + i%7), Port: uint16(1000 + w), Left: int64(i % 2), Event: ev, NumWant: 20}
				if _, err := c.Announce(t.Context(), url, req); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					if _, err := c.Scrape(t.Context(), url, ih); err != nil {
						t.Error(err)
						return
					}
				}
				if i%10 == 0 {
					r.srv.Expire()
				}
			}
		}()
	}
	wg.Wait()
	if got := r.srv.Announces.Load(); got != workers*each {
		t.Errorf("%d announces answered, want %d", got, workers*each)
	}
}

func TestShutdown(t *testing.T) {
	s := &Server{ExpireEvery: time.Millisecond}
	ln := testnet.ListenTCP(t)
	pc := testnet.ListenUDP(t)
	errs := make(chan error, 2)
	go func() { errs <- s.Serve(ln) }()
	go func() { errs <- s.ServeUDP(pc) }()
	// Wait until both serve: an announce over each answers.
	var c Client
	req := Request{InfoHash: hash("shutdown"), PeerID: peerID(1), Port: 1}
	if _, err := c.Announce(t.Context(), "http://"+ln.Addr().String()+"/announce", req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Announce(t.Context(), "udp://"+pc.LocalAddr().String(), req); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}
	if err := s.Serve(testnet.ListenTCP(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestReadWhitelist(t *testing.T) {
	m, err := ReadWhitelist(strings.NewReader("# comment\n\n" + strings.Repeat("ab", 20) + "\n  " + strings.Repeat("CD", 20) + "  \n"))
	if err != nil || len(m) != 2 || !m[hash(strings.Repeat("\xab", 20))] || !m[hash(strings.Repeat("\xcd", 20))] {
		t.Errorf("ReadWhitelist: %v, %v", m, err)
	}
	if _, err := ReadWhitelist(strings.NewReader("abc\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: %v", err)
	}
}

// Over UDP on IPv6 the peers are 18-byte entries (BEP 15 §IPv6); over
// HTTP an IPv6 peer comes in peers6 (BEP 7).
func TestIPv6(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		pc.Close()
		t.Skipf("no IPv6 loopback: %v", err)
	}
	s := &Server{}
	done := make(chan struct{}, 2)
	go func() { s.ServeUDP(pc); done <- struct{}{} }()
	go func() { s.Serve(ln); done <- struct{}{} }()
	defer func() { s.Shutdown(context.Background()); <-done; <-done }()
	ih := hash("ipv6-ipv6-ipv6-ipv6-")
	s.announce(Request{InfoHash: ih, PeerID: peerID(1), Port: 1111}, netip.MustParseAddr("10.0.0.1"), 0)
	s.announce(Request{InfoHash: ih, PeerID: peerID(2), Port: 2222}, netip.MustParseAddr("2001:db8::2"), 0)
	var c Client
	resp, err := c.AnnounceUDP(t.Context(), "udp://"+pc.LocalAddr().String(), Request{InfoHash: ih, PeerID: peerID(3), Port: 3333, Left: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 1 || resp.Peers[0].Addr != netip.MustParseAddrPort("[2001:db8::2]:2222") {
		t.Errorf("UDP over IPv6: peers %v, want only the IPv6 one", resp.Peers)
	}
	resp, err = c.AnnounceHTTP(t.Context(), "http://"+ln.Addr().String()+"/announce", Request{InfoHash: ih, PeerID: peerID(4), Port: 4444, Left: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 3 { // 10.0.0.1, 2001:db8::2, and peer 3 at ::1
		t.Errorf("HTTP over IPv6: peers %v, want 3", resp.Peers)
	}
}

// A client connection that has sent nothing does not hold Shutdown up
// (net/http would wait 5 s for it).
func TestShutdownClosesSilentConnections(t *testing.T) {
	s := &Server{}
	ln := testnet.ListenTCP(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let the server take it
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a silent connection open: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}
