package tracker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	gohash "hash"
	"net"
	"net/netip"
	"syscall"
	"time"

	"appnet/trace"
)

// BEP 15 constants.
const (
	udpProtocolID uint64 = 0x41727101980 // magic of a connect request

	actionConnect  uint32 = 0
	actionAnnounce uint32 = 1
	actionScrape   uint32 = 2
	actionError    uint32 = 3

	udpConnectLen  = 16
	udpAnnounceLen = 98
	udpHeaderLen   = 16 // connection_id, action, transaction_id

	// connIDBucket is the lifetime step of a connection ID: one is valid
	// in its minute and the next, so between one and two minutes (BEP 15
	// asks the server to accept it for up to two).
	connIDBucket = time.Minute

	udpReadBuffer = 2048 // the largest request is a scrape of 74 hashes: 1496 bytes
)

// udpRequest is a parsed UDP tracker request (BEP 15).
type udpRequest struct {
	connID  uint64
	action  uint32
	tid     uint32
	req     Request // announce
	ip      netip.Addr
	numwant int32
	hashes  []Hash // scrape
}

// udpError is a request that is well framed but bad: it is answered with
// an error action.
type udpError struct{ msg string }

func (e *udpError) Error() string { return e.msg }

// errDrop marks a datagram that gets no answer: too short to carry a
// transaction ID, or a connect without the protocol's magic.
var errDrop = errors.New("tracker: datagram dropped")

// parseUDPRequest reads a request datagram. It returns errDrop for a
// datagram to drop, a *udpError for one to answer with an error (the
// returned request then holds the transaction ID), nil otherwise.
func parseUDPRequest(pkt []byte, maxScrape int) (udpRequest, error) {
	var r udpRequest
	if len(pkt) < udpHeaderLen {
		return r, errDrop
	}
	r.connID = binary.BigEndian.Uint64(pkt[0:])
	r.action = binary.BigEndian.Uint32(pkt[8:])
	r.tid = binary.BigEndian.Uint32(pkt[12:])
	switch r.action {
	case actionConnect:
		if r.connID != udpProtocolID {
			return r, errDrop
		}
	case actionAnnounce:
		if len(pkt) < udpAnnounceLen {
			return r, &udpError{fmt.Sprintf("announce: %d bytes, want %d", len(pkt), udpAnnounceLen)}
		}
		q := &r.req
		copy(q.InfoHash[:], pkt[16:36])
		copy(q.PeerID[:], pkt[36:56])
		down, left, up := binary.BigEndian.Uint64(pkt[56:]), binary.BigEndian.Uint64(pkt[64:]), binary.BigEndian.Uint64(pkt[72:])
		for _, f := range []struct {
			name string
			v    uint64
		}{{"downloaded", down}, {"left", left}, {"uploaded", up}} {
			if f.v > 1<<63-1 {
				return r, &udpError{fmt.Sprintf("%s: %d is out of range", f.name, f.v)}
			}
		}
		q.Downloaded, q.Left, q.Uploaded = int64(down), int64(left), int64(up)
		ev := binary.BigEndian.Uint32(pkt[80:])
		if ev > uint32(Stopped) {
			return r, &udpError{fmt.Sprintf("event: %d is not 0-3", ev)}
		}
		q.Event = Event(ev)
		if ip := binary.BigEndian.Uint32(pkt[84:]); ip != 0 {
			r.ip = netip.AddrFrom4([4]byte(pkt[84:88]))
		}
		q.IP = r.ip
		q.Key = binary.BigEndian.Uint32(pkt[88:])
		r.numwant = int32(binary.BigEndian.Uint32(pkt[92:]))
		q.NumWant = int(r.numwant)
		q.Port = binary.BigEndian.Uint16(pkt[96:])
		if q.Port == 0 {
			return r, &udpError{"port: 0 is not a port number"}
		}
		// BEP 41 options may follow; they are ignored.
	case actionScrape:
		body := pkt[udpHeaderLen:]
		if len(body) == 0 || len(body)%HashSize != 0 {
			return r, &udpError{fmt.Sprintf("scrape: %d bytes of info_hash, want a multiple of %d", len(body), HashSize)}
		}
		if len(body)/HashSize > maxScrape {
			return r, &udpError{fmt.Sprintf("info_hash: more than %d in one scrape", maxScrape)}
		}
		for ; len(body) > 0; body = body[HashSize:] {
			r.hashes = append(r.hashes, Hash(body[:HashSize]))
		}
	default:
		return r, &udpError{fmt.Sprintf("action: %d is not connect, announce or scrape", r.action)}
	}
	return r, nil
}

// connID returns the connection ID of a client address in one time bucket.
func (s *Server) connID(ip netip.Addr, bucket int64) uint64 {
	m, _ := s.macs.Get().(gohash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, s.secret)
	}
	defer s.macs.Put(m)
	m.Reset()
	a := ip.Unmap().As16()
	m.Write(a[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(bucket))
	m.Write(b[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(m.Sum(sum[:0]))
}

func (s *Server) bucket() int64 { return s.now().UnixNano() / int64(connIDBucket) }

func (s *Server) validConnID(id uint64, ip netip.Addr) bool {
	b := s.bucket()
	return id == s.connID(ip, b) || id == s.connID(ip, b-1)
}

// handlePacket answers one datagram from `from`, appending the reply to
// reply[:0]; it returns nil when the datagram gets no answer.
func (s *Server) handlePacket(pkt []byte, from netip.AddrPort, reply []byte, tc *trace.Conv) []byte {
	return s.handlePacketBuf(pkt, from, reply, tc, nil)
}

// handlePacketBuf is handlePacket with a buffer for the peers picked.
func (s *Server) handlePacketBuf(pkt []byte, from netip.AddrPort, reply []byte, tc *trace.Conv, peers []Peer) []byte {
	r, err := parseUDPRequest(pkt, s.maxScrape())
	if errors.Is(err, errDrop) {
		s.Failures.Add(1)
		return nil
	}
	reply = reply[:0]
	if err == nil && r.action != actionConnect && !s.validConnID(r.connID, from.Addr()) {
		err = &udpError{"connection ID expired or invalid: connect again"}
	}
	if err != nil {
		s.Failures.Add(1)
		tc.Recv(fmt.Sprintf("action %d -> error: %s", r.action, err))
		return udpErrorReply(reply, r.tid, err.Error())
	}
	switch r.action {
	case actionConnect:
		tc.Recv("connect -> connection ID")
		reply = binary.BigEndian.AppendUint32(reply, actionConnect)
		reply = binary.BigEndian.AppendUint32(reply, r.tid)
		return binary.BigEndian.AppendUint64(reply, s.connID(from.Addr(), s.bucket()))
	case actionAnnounce:
		family := 6
		if from.Addr().Unmap().Is4() {
			family = 4
		}
		out, err := s.announceBuf(r.req, from.Addr(), family, peers)
		if tc != nil {
			tc.Recv(announceSummary(&r.req, s.numwant(r.req.NumWant), &out, err))
		}
		if err != nil {
			s.Failures.Add(1)
			return udpErrorReply(reply, r.tid, err.Error())
		}
		s.Announces.Add(1)
		reply = binary.BigEndian.AppendUint32(reply, actionAnnounce)
		reply = binary.BigEndian.AppendUint32(reply, r.tid)
		reply = binary.BigEndian.AppendUint32(reply, uint32(s.interval()/time.Second))
		reply = binary.BigEndian.AppendUint32(reply, uint32(out.stats.Incomplete))
		reply = binary.BigEndian.AppendUint32(reply, uint32(out.stats.Complete))
		for _, p := range out.peers {
			a := p.Addr.Addr()
			if family == 4 {
				a4 := a.As4()
				reply = append(reply, a4[:]...)
			} else {
				a16 := a.As16()
				reply = append(reply, a16[:]...)
			}
			reply = binary.BigEndian.AppendUint16(reply, p.Addr.Port())
		}
		return reply
	case actionScrape:
		stats := s.scrape(r.hashes)
		for i, h := range r.hashes {
			if !s.allowed(h) {
				stats[i] = ScrapeStats{}
			}
		}
		tc.Recv(scrapeSummary(r.hashes, stats))
		s.Scrapes.Add(1)
		reply = binary.BigEndian.AppendUint32(reply, actionScrape)
		reply = binary.BigEndian.AppendUint32(reply, r.tid)
		for _, st := range stats {
			reply = binary.BigEndian.AppendUint32(reply, uint32(st.Complete))
			reply = binary.BigEndian.AppendUint32(reply, uint32(st.Downloaded))
			reply = binary.BigEndian.AppendUint32(reply, uint32(st.Incomplete))
		}
		return reply
	}
	return nil
}

func udpErrorReply(b []byte, tid uint32, msg string) []byte {
	b = binary.BigEndian.AppendUint32(b, actionError)
	b = binary.BigEndian.AppendUint32(b, tid)
	return append(b, msg...)
}

// ServeUDP answers UDP tracker requests (BEP 15) on pc until Shutdown, and
// returns ErrServerClosed then. It closes pc.
func (s *Server) ServeUDP(pc net.PacketConn) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	}
	if s.pcs == nil {
		s.pcs = make(map[net.PacketConn]struct{})
	}
	s.pcs[pc] = struct{}{}
	n := max(s.UDPReaders, 1)
	s.wg.Add(n)
	s.mu.Unlock()
	s.startJanitor()
	defer func() {
		s.mu.Lock()
		delete(s.pcs, pc)
		s.mu.Unlock()
		pc.Close()
	}()
	errs := make(chan error, n)
	for range n {
		go func() {
			defer s.wg.Done()
			errs <- s.readLoop(pc)
		}()
	}
	var first error
	for range n {
		if err := <-errs; first == nil {
			first = err
		}
	}
	return first
}

func (s *Server) readLoop(pc net.PacketConn) error {
	buf := make([]byte, udpReadBuffer)
	reply := make([]byte, 0, 20+18*DefaultMaxNumwant)
	peers := make([]Peer, 0, DefaultMaxNumwant)
	uc, _ := pc.(*net.UDPConn) // its AddrPort calls do not allocate
	for {
		var (
			n    int
			from netip.AddrPort
			addr net.Addr
			err  error
		)
		if uc != nil {
			n, from, err = uc.ReadFromUDPAddrPort(buf)
		} else {
			n, addr, err = pc.ReadFrom(buf)
			if ua, ok := addr.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
		}
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("tracker: udp read: %w", err)
			}
			if isConnRefused(err) {
				continue
			}
			return fmt.Errorf("tracker: udp read: %w", err)
		}
		if !from.IsValid() {
			continue
		}
		var tc *trace.Conv
		if s.Tracer.Enabled() {
			tc = s.Tracer.Conv(s.Host, "tracker/udp", trace.Server, pc.LocalAddr(), net.UDPAddrFromAddrPort(from))
		}
		out := s.handlePacketBuf(buf[:n], from, reply, tc, peers)
		if out == nil {
			continue
		}
		reply = out[:0]
		if uc != nil {
			_, err = uc.WriteToUDPAddrPort(out, from)
		} else {
			_, err = pc.WriteTo(out, addr)
		}
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			s.logger().Debug("tracker: udp reply", "to", from, "err", err)
		}
	}
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
