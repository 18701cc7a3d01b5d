package tracker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkStore verifies the store's bookkeeping: the list by last announce
// holds every peer once, in order, the per-source counts add up, and the
// bytes counted are those of the peers and swarms held.
func checkStore(t testing.TB, s *Server) {
	t.Helper()
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	var prev *peer
	for p := st.oldest; p != nil; p = p.newer {
		if p.older != prev {
			t.Fatalf("list: peer %d's older link is wrong", n)
		}
		if prev != nil && p.last.Before(prev.last) {
			t.Fatalf("list: peer %d is older than the one before it", n)
		}
		if p.sw == nil || p.sw.byID[p.id] != p || st.swarms[p.sw.hash] != p.sw {
			t.Fatalf("list: peer %d is not in its swarm", n)
		}
		if n++; n > st.peers {
			t.Fatalf("list: more than the %d peers counted", st.peers)
		}
		prev = p
	}
	if prev != st.newest || n != st.peers {
		t.Fatalf("list: %d peers, %d counted", n, st.peers)
	}
	total := 0
	for _, sw := range st.swarms {
		per := map[srcKey]int32{}
		for _, p := range sw.list {
			per[p.src]++
		}
		if len(per) != len(sw.perSrc) || len(sw.list) == 0 {
			t.Fatalf("swarm %s: %d sources, %d counted, %d peers", sw.hash.short(), len(per), len(sw.perSrc), len(sw.list))
		}
		for k, v := range per {
			if sw.perSrc[k] != v {
				t.Fatalf("swarm %s: source count %d, want %d", sw.hash.short(), sw.perSrc[k], v)
			}
		}
		total += len(sw.list)
	}
	if total != st.peers || st.bytes != int64(st.peers)*peerBytes+int64(len(st.swarms))*swarmBytes {
		t.Fatalf("%d peers in swarms, %d counted, %d bytes", total, st.peers, st.bytes)
	}
}

// udpAnnouncer plays one host announcing over UDP from a 127.0.0.x
// address of its own.
type udpAnnouncer struct {
	t    testing.TB
	conn *net.UDPConn
	id   uint64
	buf  []byte
}

func newUDPAnnouncer(t testing.TB, server *net.UDPAddr, from string) *udpAnnouncer {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	u := &udpAnnouncer{t: t, conn: conn, buf: make([]byte, 2048)}
	reply := u.call(connectPkt(1))
	if len(reply) != 16 || binary.BigEndian.Uint32(reply) != actionConnect {
		t.Fatalf("connect from %s: %x", from, reply)
	}
	u.id = binary.BigEndian.Uint64(reply[8:])
	return u
}

// call sends pkt and returns the reply (nil after 2 s of silence).
func (u *udpAnnouncer) call(pkt []byte) []byte {
	u.t.Helper()
	if _, err := u.conn.Write(pkt); err != nil {
		u.t.Fatal(err)
	}
	u.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := u.conn.Read(u.buf)
	if err != nil {
		return nil
	}
	return u.buf[:n]
}

// announce sends an announce with key (0: none) and returns the peers
// answered, or the error action's message.
func (u *udpAnnouncer) announce(ih, id Hash, port uint16, key uint32, ev Event) ([]netip.AddrPort, error) {
	u.t.Helper()
	pkt := announcePkt(u.id, 7, ih, id, 1, ev, port)
	binary.BigEndian.PutUint32(pkt[88:], key)
	binary.BigEndian.PutUint32(pkt[92:], 200) // numwant
	reply := u.call(pkt)
	switch {
	case len(reply) >= 8 && binary.BigEndian.Uint32(reply) == actionError:
		return nil, errors.New(string(reply[8:]))
	case len(reply) < 20 || binary.BigEndian.Uint32(reply) != actionAnnounce:
		u.t.Fatalf("announce: reply %x", reply)
	}
	peers, err := parseCompact(reply[20:], 4)
	if err != nil {
		u.t.Fatal(err)
	}
	var out []netip.AddrPort
	for _, p := range peers {
		out = append(out, p.Addr)
	}
	return out, nil
}

// The finding: 20,000 fake peers from one source filled a swarm
// (MaxPeers) in 1.4 s, after which real newcomers were never stored or
// handed out. Now one address holds MaxPeersPerAddr peers of a swarm and
// is refused beyond them with an error action; newcomers from other
// addresses are stored and handed out.
func TestFakePeersFromOneAddress(t *testing.T) {
	const fakes = 20_000
	// The rate limit would refuse most of the flood by itself; it is off
	// here so that every fake reaches the per-swarm limit.
	r := start(t, &Server{AnnounceRate: -1})
	ih := hash("flooded-flooded-floo")
	attacker := newUDPAnnouncer(t, r.udpAddr, "127.0.0.1")
	refused := 0
	for i := range fakes {
		if _, err := attacker.announce(ih, peerID(i), uint16(1+i%60000), 0, Started); err != nil {
			if !strings.Contains(err.Error(), "from your address") {
				t.Fatalf("fake %d: %v", i, err)
			}
			refused++
		}
	}
	if refused != fakes-DefaultMaxPeersPerAddr {
		t.Errorf("%d of %d fakes refused, want all but %d", refused, fakes, DefaultMaxPeersPerAddr)
	}
	// Real newcomers, each from its own address, are stored and handed out.
	var got []netip.AddrPort
	for i := range 3 {
		a := newUDPAnnouncer(t, r.udpAddr, fmt.Sprintf("127.0.0.%d", 2+i))
		var err error
		if got, err = a.announce(ih, peerID(fakes+i), 7000, 0, Started); err != nil {
			t.Fatalf("newcomer %d: %v", i, err)
		}
	}
	for _, want := range []string{"127.0.0.2:7000", "127.0.0.3:7000"} {
		found := false
		for _, p := range got {
			found = found || p.String() == want
		}
		if !found {
			t.Errorf("the last newcomer was not given %s: %v", want, got)
		}
	}
	if st := r.srv.Stats(ih); st.Incomplete != DefaultMaxPeersPerAddr+3 {
		t.Errorf("swarm: %+v, want %d leechers", st, DefaultMaxPeersPerAddr+3)
	}
	// Over HTTP, the refusal is a bencoded failure reason.
	_, m := get(t, r.httpURL+"?"+AnnounceQuery(Request{InfoHash: ih, PeerID: peerID(fakes + 10), Port: 1, Left: 1}))
	if reason, _ := m["failure reason"].(string); !strings.Contains(reason, "from your address") {
		t.Errorf("HTTP announce over the limit: %v", m)
	}
	checkStore(t, r.srv)
}

// One address gets AnnounceBurst announces at once and AnnounceRate a
// second after that; other addresses are not held back; the table of
// buckets stays within RateSources and forgets idle addresses.
func TestAnnounceRate(t *testing.T) {
	clk := newClock()
	s := &Server{Now: clk.Now, AnnounceRate: 10, AnnounceBurst: 100, RateSources: 50, MaxPeersPerAddr: -1}
	s.init()
	ih := hash("rate-rate-rate-rate-")
	one := netip.MustParseAddr("10.0.0.1")
	ann := func(src netip.Addr, i int) error {
		_, err := s.announce(Request{InfoHash: ih, PeerID: peerID(i), Port: 1, Left: 1}, src, 0)
		return err
	}
	ok := 0
	for i := range 300 {
		if ann(one, i) == nil {
			ok++
		}
	}
	if ok != 100 {
		t.Errorf("%d of 300 announces at once answered, want the burst of 100", ok)
	}
	if err := ann(one, 0); err == nil || !strings.HasPrefix(err.Error(), "announce: ") {
		t.Errorf("over the rate: %v", err)
	}
	if err := ann(netip.MustParseAddr("10.0.0.2"), 1000); err != nil {
		t.Errorf("another address: %v", err)
	}
	// An IPv6 /64 is one source.
	for i := range 100 {
		ann(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1)), 2000+i)
	}
	if err := ann(netip.MustParseAddr("2001:db8::ffff"), 3000); err == nil {
		t.Error("a /64 was given more than its burst")
	}
	clk.Advance(time.Second)
	ok = 0
	for i := range 30 {
		if ann(one, i) == nil {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("%d announces answered a second later, want 10", ok)
	}
	// The table: 1000 sources leave at most 50 buckets.
	for i := range 1000 {
		ann(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 5000+i)
	}
	if n := s.st.rate.len(); n > 50 {
		t.Errorf("%d buckets, want at most 50", n)
	}
	// Idle buckets go: 10 s later every bucket is full again.
	clk.Advance(11 * time.Second)
	for i := range 60 {
		ann(one, 10000+i)
	}
	if n := s.st.rate.len(); n > 2 {
		t.Errorf("%d buckets after the others were idle, want 1", n)
	}
	checkStore(t, s)
}

// The finding: there was no total bound (200,000 peers stored in
// 5.9 s). Now MaxBytes holds: 200,000 peers' worth of announces leave the
// store under it, the least recently seen peers forgotten, the newest kept,
// and the tracker answers throughout. The Go heap agrees with the bytes
// counted to within half.
func TestMemoryBound(t *testing.T) {
	const peers, maxBytes = 200_000, 4 << 20
	// Each peer has an address of its own; the rate limit's table, bounded
	// by RateSources on its own, is left out of the heap's count.
	s := &Server{MaxBytes: maxBytes, AnnounceRate: -1}
	s.init()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	var last Hash
	for i := range peers {
		ih := hash(fmt.Sprintf("swarm-%d", i%1000))
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		out, err := s.announce(Request{InfoHash: ih, PeerID: peerID(i), Port: 6881, Left: 1, NumWant: 5}, src, 0)
		if err != nil || !out.stored {
			t.Fatalf("announce %d: stored %v, %v", i, out.stored, err)
		}
		if i > 10_000 && len(out.peers) == 0 {
			t.Fatalf("announce %d: no peers answered", i)
		}
		if i%10_000 == 0 {
			if b, _ := s.Memory(); b > maxBytes {
				t.Fatalf("after %d announces: %d bytes, bound %d", i, b, maxBytes)
			}
		}
		last = ih
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := int64(ms.HeapAlloc) - int64(heap0)
	b, evicted := s.Memory()
	swarms, held := s.Size()
	t.Logf("%d peers in %d swarms held, %d forgotten; %d bytes counted, heap grew %d bytes (%.0f a peer)", held, swarms, evicted, b, heap, float64(heap)/float64(held))
	if b > maxBytes || held+int(evicted) != peers || held < peers/20 {
		t.Errorf("%d bytes (bound %d), %d peers held, %d forgotten", b, maxBytes, held, evicted)
	}
	if heap > 3*maxBytes/2 {
		t.Errorf("the heap grew %d bytes, over 1.5 times the bound %d", heap, maxBytes)
	}
	// The newest peers are there, the oldest are not.
	if ps := s.Peers(last); len(ps) == 0 || s.Stats(hash("swarm-0")).Incomplete == 0 {
		t.Error("recent peers were forgotten")
	}
	s.st.mu.Lock()
	oldest := s.st.oldest
	s.st.mu.Unlock()
	if oldest.id == peerID(0) || oldest.id != peerID(peers-held) {
		t.Errorf("the oldest peer held is %q, want peer %d", oldest.id[:], peers-held)
	}
	checkStore(t, s)
}

// The finding: a peer that sent no key could be moved to another
// address or removed with event=stopped by anyone. Now a peer that sent a
// key is moved or stopped only with it (and refreshed without it only from
// its own address and port), and one that sent none is changed or stopped
// only from its own address.
func TestKeyProtectsPeer(t *testing.T) {
	s := &Server{}
	s.init()
	ih := hash("key-key-key-key-key-")
	home, away := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	ann := func(id int, src netip.Addr, port uint16, key uint32, ev Event) error {
		_, err := s.announce(Request{InfoHash: ih, PeerID: peerID(id), Port: port, Left: 1, Key: key, Event: ev}, src, 0)
		return err
	}
	where := func(id int) string {
		for _, p := range s.Peers(ih) {
			if p.ID == peerID(id) {
				return p.Addr.String()
			}
		}
		return "gone"
	}
	// Peer 1 announced with a key.
	if err := ann(1, home, 1000, 0xdead, Started); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  netip.Addr
		key  uint32
		ev   Event
	}{
		{"moved without the key", away, 0, None},
		{"moved with another key", away, 0xbeef, None},
		{"stopped without the key", away, 0, Stopped},
		{"stopped without the key from its own address", home, 0, Stopped},
		{"stopped with another key", home, 0xbeef, Stopped},
		{"changed without the key from its own address", home, 0, None},
	} {
		if err := ann(1, tc.src, 2000, tc.key, tc.ev); err == nil || !strings.HasPrefix(err.Error(), "key: ") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if got := where(1); got != "10.0.0.1:1000" {
		t.Fatalf("peer 1 is at %s after the refused announces", got)
	}
	// From its very address and port, an announce with another key (aria2
	// draws one per UDP announce) refreshes it, but does not take it over.
	if err := ann(1, home, 1000, 0xbeef, Completed); err != nil || s.Stats(ih).Downloaded != 1 {
		t.Errorf("completed from its own address and port with another key: %v, %+v", err, s.Stats(ih))
	}
	if st, _ := s.peerState(ih, peerID(1)); st.key != 0xdead {
		t.Errorf("the peer's key became %x", st.key)
	}
	if err := ann(1, away, 2000, 0xdead, None); err != nil || where(1) != "10.0.0.2:2000" {
		t.Errorf("moved with its key: %v, at %s", err, where(1))
	}
	if err := ann(1, home, 2000, 0xdead, Stopped); err != nil || where(1) != "gone" {
		t.Errorf("stopped with its key: %v, at %s", err, where(1))
	}
	// Peer 2 announced without a key: it is held by its address.
	if err := ann(2, home, 1000, 0, Started); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{None, Stopped} {
		if err := ann(2, away, 2000, 0, ev); err == nil || !strings.HasPrefix(err.Error(), "peer_id: ") {
			t.Errorf("event %q from another address: %v", ev, err)
		}
		if err := ann(2, away, 2000, 0x1234, ev); err == nil {
			t.Errorf("event %q from another address with a key: accepted", ev)
		}
	}
	if got := where(2); got != "10.0.0.1:1000" {
		t.Fatalf("peer 2 is at %s after the refused announces", got)
	}
	if err := ann(2, home, 1001, 0, None); err != nil || where(2) != "10.0.0.1:1001" {
		t.Errorf("new port from its own address: %v, at %s", err, where(2))
	}
	if err := ann(2, home, 1001, 0, Stopped); err != nil || where(2) != "gone" {
		t.Errorf("stopped from its own address: %v, at %s", err, where(2))
	}
	checkStore(t, s)
}

// The same rule over the wire: a stranger's stop is refused with an HTTP
// failure reason or a UDP error action, and our Client's own random key
// lets it stop its peer.
func TestKeyOverTheWire(t *testing.T) {
	r := start(t, &Server{})
	ih := hash("key-wire-key-wire-ke")
	for _, proto := range []string{"http", "udp"} {
		t.Run(proto, func(t *testing.T) {
			url := r.httpURL
			if proto == "udp" {
				url = r.udpURL
			}
			owner, stranger := &Client{UDPBase: time.Second}, &Client{UDPBase: time.Second}
			req := Request{InfoHash: ih, PeerID: hash("owner-" + proto), Port: 7000, Left: 1, Event: Started}
			if _, err := owner.Announce(t.Context(), url, req); err != nil {
				t.Fatal(err)
			}
			if owner.sessionKey() == 0 || owner.sessionKey() == stranger.sessionKey() {
				t.Fatalf("keys %x and %x", owner.sessionKey(), stranger.sessionKey())
			}
			req.Event = Stopped
			var fe *FailureError
			if _, err := stranger.Announce(t.Context(), url, req); !errors.As(err, &fe) || !strings.HasPrefix(fe.Reason, "key: ") {
				t.Errorf("a stranger's stop: %v", err)
			}
			if st := r.srv.Stats(ih); st.Incomplete != 1 {
				t.Errorf("after a stranger's stop: %+v", st)
			}
			if _, err := owner.Announce(t.Context(), url, req); err != nil {
				t.Errorf("the owner's stop: %v", err)
			}
			if st := r.srv.Stats(ih); st.Incomplete != 0 {
				t.Errorf("after the owner's stop: %+v", st)
			}
		})
	}
}

// The finding: compact=0 revealed every peer_id. Now peer IDs are
// hidden unless the server shows them, and then not to a peer that asks
// no_peer_id=1.
func TestPeerIDsHidden(t *testing.T) {
	ih := hash("hidden-hidden-hidden")
	for _, tc := range []struct {
		show  bool
		query string
		ids   bool
	}{
		{false, "&compact=0", false},
		{false, "&compact=0&no_peer_id=1", false},
		{true, "&compact=0&no_peer_id=1", false},
		{true, "&compact=0", true},
	} {
		r := start(t, &Server{ShowPeerIDs: tc.show})
		addPeers(t, r.srv, ih, []Peer{{ID: peerID(1), Addr: netip.MustParseAddrPort("10.0.0.1:1")}, {ID: peerID(2), Addr: netip.MustParseAddrPort("10.0.0.2:2")}}, 1)
		me := strings.Replace(AnnounceQuery(Request{InfoHash: ih, PeerID: peerID(99), Port: 7000, Left: 5}), "&compact=1", "", 1)
		_, m := get(t, r.httpURL+"?"+me+tc.query)
		list, _ := m["peers"].([]any)
		if len(list) != 2 {
			t.Fatalf("show %v %s: peers %v", tc.show, tc.query, m)
		}
		for _, e := range list {
			if _, has := e.(map[string]any)["peer id"]; has != tc.ids {
				t.Errorf("show %v %s: peer id given %v, want %v", tc.show, tc.query, has, tc.ids)
			}
		}
	}
}

// 600 slow connections from one address (headers never finished) take
// MaxConnsPerAddr slots at most, the rest closed at once and those held
// cut at ReadHeaderTimeout; a client from another address is served every
// time meanwhile.
func TestSlowConnectionFlood(t *testing.T) {
	const slow, announces = 600, 30
	r := start(t, &Server{ReadHeaderTimeout: 2 * time.Second})
	addr := strings.TrimSuffix(strings.TrimPrefix(r.httpURL, "http://"), "/announce")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
	for i := range slow {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		c.Write([]byte("GET /announce?info_hash="))
		conns = append(conns, c)
	}
	// The well-behaved client from 127.0.0.2, a new connection each time.
	good := &Client{HTTP: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}}
	for i := range announces {
		if _, err := good.Announce(t.Context(), r.httpURL, Request{InfoHash: hash("slow-slow-slow-slow-"), PeerID: peerID(1), Port: 1, Left: 1}); err != nil {
			t.Errorf("announce %d during the flood: %v", i, err)
		}
	}
	// Every slow connection is closed by the server: most at once, the
	// ones it held after ReadHeaderTimeout (within a bounded wait).
	var wg sync.WaitGroup
	var mu sync.Mutex
	cut := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				mu.Lock()
				cut++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_, _, refused := r.srv.ConnStats()
	if cut != slow || refused < slow-DefaultMaxConnsPerAddr {
		t.Errorf("%d of %d slow connections cut, %d refused at once (want at least %d)", cut, slow, refused, slow-DefaultMaxConnsPerAddr)
	}
}

// An announce over a limit gets an error action over UDP, not silence.
func TestUDPRefusalIsAnErrorAction(t *testing.T) {
	r := start(t, &Server{AnnounceBurst: 1, AnnounceRate: 0.001})
	a := newUDPAnnouncer(t, r.udpAddr, "127.0.0.1")
	ih := hash("udp-refused-udp-refu")
	if _, err := a.announce(ih, peerID(1), 1, 0, Started); err != nil {
		t.Fatal(err)
	}
	if _, err := a.announce(ih, peerID(1), 1, 0, None); err == nil || !strings.HasPrefix(err.Error(), "announce: ") {
		t.Errorf("over the rate: %v", err)
	}
}

// A swarm filled to MaxPeers by a few sources (here 10 IPv6 /64s of one
// /48, 16 peers each) still takes newcomers from other sources, each in
// place of a peer of the crowded ones; a swarm of one peer per source
// takes none, and a crowded source cannot push out smaller ones.
func TestFullSwarmTakesNewcomers(t *testing.T) {
	s := &Server{MaxPeers: 160, AnnounceRate: -1}
	s.init()
	ih := hash("crowded-crowded-crow")
	ann := func(id int, src string) announceOut {
		t.Helper()
		out, err := s.announce(Request{InfoHash: ih, PeerID: peerID(id), Port: 1, Left: 1, NumWant: 200}, netip.MustParseAddr(src), 0)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for i := range 160 {
		ann(i, fmt.Sprintf("2001:db8:0:%x::1", i/16))
	}
	for i := range 20 {
		if out := ann(1000+i, fmt.Sprintf("10.0.0.%d", i+1)); !out.stored || len(out.peers) != 159 {
			t.Fatalf("newcomer %d: stored %v, %d peers", i, out.stored, len(out.peers))
		}
	}
	if st := s.Stats(ih); st.Incomplete != 160 {
		t.Errorf("the swarm has %d peers, want 160", st.Incomplete)
	}
	for i := range 20 {
		found := false
		for _, p := range s.Peers(ih) {
			found = found || p.ID == peerID(1000+i)
		}
		if !found {
			t.Errorf("newcomer %d was pushed out", i)
		}
	}
	checkStore(t, s)
	// One peer per source: a newcomer is answered but not stored.
	s2 := &Server{MaxPeers: 50, AnnounceRate: -1}
	s2.init()
	for i := range 51 {
		out, err := s2.announce(Request{InfoHash: ih, PeerID: peerID(i), Port: 1, Left: 1}, netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 0)
		if err != nil || out.stored != (i < 50) {
			t.Fatalf("peer %d: stored %v, %v", i, out.stored, err)
		}
	}
	checkStore(t, s2)
}

// A loopback host may announce any loopback address with ip= (for the
// lab), but that address neither escapes its source's limits nor lets it
// pose as a keyless peer of another source.
func TestLoopbackIPParameterIsNoDisguise(t *testing.T) {
	s := &Server{AnnounceRate: -1}
	s.init()
	ih := hash("disguise-disguise-di")
	one := netip.MustParseAddr("127.0.0.1")
	stored := 0
	for i := range 100 {
		ip := netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)})
		if _, err := s.announce(Request{InfoHash: ih, PeerID: peerID(i), Port: 1, Left: 1, IP: ip}, one, 0); err == nil {
			stored++
		}
	}
	if stored != DefaultMaxPeersPerAddr {
		t.Errorf("%d peers stored from one source with 100 ip= addresses, want %d", stored, DefaultMaxPeersPerAddr)
	}
	// A keyless victim announced from 127.0.0.9; another host asks for
	// 127.0.0.9 with ip= to stop it.
	victim := Request{InfoHash: ih, PeerID: peerID(500), Port: 6881, Left: 1}
	if _, err := s.announce(victim, netip.MustParseAddr("127.0.0.9"), 0); err != nil {
		t.Fatal(err)
	}
	forged := victim
	forged.Event, forged.IP = Stopped, netip.MustParseAddr("127.0.0.9")
	if _, err := s.announce(forged, netip.MustParseAddr("127.0.0.2"), 0); err == nil {
		t.Error("a stop from 127.0.0.2 with ip=127.0.0.9 was taken")
	}
	if _, ok := s.peerState(ih, victim.PeerID); !ok {
		t.Error("the victim was stopped")
	}
	checkStore(t, s)
}
