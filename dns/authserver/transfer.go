package authserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"appnet/dns/serve"
	"appnet/dns/zone"
	"appnet/trace"
)

// Zone transfers (AXFR, RFC 5936) and change notification (NOTIFY, RFC
// 1996), so that more servers can carry a zone: a primary lets the
// secondaries listed for a zone (Server.AllowTransfer) transfer it over
// TCP, and sends each of them NOTIFY when the zone's serial changes (an
// UPDATE, a reload). A secondary (Server.Primaries) asks its primary for
// the SOA serial at start, when NOTIFY arrives from the primary, and on
// the SOA refresh timer (the retry timer after a failure), and transfers
// the zone when the primary's serial is newer (RFC 1982 arithmetic).

// Defaults of zone transfers.
const (
	// transferChunk is the number of records per AXFR message.
	transferChunk = 100
	// notifyTries and notifyTimeout bound the NOTIFY sent to one
	// secondary (RFC 1996 §3.6: resend until answered, a few times).
	notifyTries   = 3
	notifyTimeout = 2 * time.Second
	// retryNoZone is the retry interval of a secondary that holds no
	// copy of its zone yet.
	retryNoZone = 5 * time.Second
)

// ErrTransfer wraps every failed zone transfer.
var ErrTransfer = errors.New("authserver: zone transfer failed")

// transferAllowed reports whether remote may transfer the zone origin.
func (s *Server) transferAllowed(origin string, remote net.Addr) bool {
	ta, ok := remote.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	ip = ip.Unmap()
	for z, list := range s.AllowTransfer {
		if dns.CanonicalName(z) != origin {
			continue
		}
		for _, a := range list {
			if a.Addr().Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// transferOut answers an AXFR (or an IXFR, with the whole zone, RFC 1995
// §4) over TCP: the SOA, every record, the SOA again, in messages of
// transferChunk records (RFC 5936 §2.2). It refuses an asker that is not
// listed for the zone (RFC 5936 §6) and a name that is not an apex.
func (s *Server) transferOut(w dns.ResponseWriter, req *dns.Msg, c *trace.Conv) {
	q := req.Question[0]
	origin := dns.CanonicalName(q.Name)
	z := s.zone(origin)
	resp := new(dns.Msg)
	resp.SetReply(req)
	switch {
	case z == nil:
		resp.Rcode = dns.RcodeNotAuth // RFC 5936 §2.2.1: not authoritative for it
	case !s.transferAllowed(origin, w.RemoteAddr()):
		resp.Rcode = dns.RcodeRefused
		s.logger().Warn("authserver: zone transfer refused", "zone", origin, "from", w.RemoteAddr())
	}
	if resp.Rcode != dns.RcodeSuccess {
		if t := req.IsTsig(); t != nil && w.TsigStatus() == nil {
			resp.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		if c != nil {
			c.Send(fmt.Sprintf("%s %s", dns.RcodeToString[resp.Rcode], dns.TypeToString[q.Qtype]))
		}
		w.WriteMsg(resp)
		return
	}
	rrs := append(z.Records(), z.SOA)
	for i := 0; i < len(rrs); i += transferChunk {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if i > 0 {
			m.Question = nil // RFC 5936 §2.2.1: only the first message repeats it
		}
		m.Answer = rrs[i:min(i+transferChunk, len(rrs))]
		if t := req.IsTsig(); t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
			w.TsigTimersOnly(i > 0)
		}
		if err := w.WriteMsg(m); err != nil {
			s.logger().Debug("authserver: zone transfer cut", "zone", origin, "err", err)
			return
		}
	}
	if c != nil {
		c.Send(fmt.Sprintf("%s of %s: %d records, serial %d", dns.TypeToString[q.Qtype], origin, len(rrs), z.SOA.Serial))
	}
	s.logger().Info("authserver: zone transferred", "zone", origin, "serial", z.SOA.Serial, "to", w.RemoteAddr())
}

// notifyChanged sends NOTIFY for every zone of next whose serial differs
// from its version in prev to the zone's listed secondaries.
func (s *Server) notifyChanged(prev, next *zone.Set) {
	if prev == nil || next == nil || len(s.AllowTransfer) == 0 {
		return
	}
	for _, z := range next.Zones() {
		var old *zone.Zone
		for _, o := range prev.Zones() {
			if o.Origin == z.Origin {
				old = o
			}
		}
		if old == nil || old.SOA.Serial == z.SOA.Serial {
			continue
		}
		for name, list := range s.AllowTransfer {
			if dns.CanonicalName(name) != z.Origin {
				continue
			}
			for _, to := range list {
				s.goBackground(func(ctx context.Context) { s.sendNotify(ctx, z, to) })
			}
		}
	}
}

// sendNotify tells one secondary that zone z changed (RFC 1996 §3.7: the
// SOA in the answer section is a hint), resending until it answers.
func (s *Server) sendNotify(ctx context.Context, z *zone.Zone, to netip.AddrPort) {
	m := new(dns.Msg)
	m.SetNotify(z.Origin)
	m.Answer = []dns.RR{z.SOA}
	addr := to.String()
	c := s.Tracer.Conv(s.Host, "dns/udp", trace.Client, nil, net.UDPAddrFromAddrPort(to))
	cl := &dns.Client{Timeout: notifyTimeout}
	if src := s.source(); src.IsValid() {
		// From the address the zone is served at: a secondary's ACL
		// names the primary by it (RFC 1996 §3.10).
		cl.Dialer = &net.Dialer{Timeout: notifyTimeout, LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
	}
	for try := range notifyTries {
		m.Id = dns.Id()
		if c != nil {
			c.Send(fmt.Sprintf("NOTIFY %s serial %d", z.Origin, z.SOA.Serial))
		}
		r, _, err := cl.ExchangeContext(ctx, m, addr)
		if err == nil {
			if c != nil {
				c.Recv(fmt.Sprintf("%s to NOTIFY %s", dns.RcodeToString[r.Rcode], z.Origin))
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.logger().Debug("authserver: NOTIFY unanswered", "zone", z.Origin, "to", addr, "try", try+1, "err", err)
	}
	s.logger().Warn("authserver: NOTIFY never answered", "zone", z.Origin, "to", addr)
}

// goBackground runs f in a goroutine the server owns: Shutdown cancels
// its context and waits for it.
func (s *Server) goBackground(f func(ctx context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.bgCtx == nil {
		s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.bgCtx)
	}()
}

// notifyIn answers a NOTIFY (RFC 1996 §3.7): from the primary of a zone
// this server is a secondary for, it is acknowledged and starts a
// refresh; from anyone else it is refused.
func (s *Server) notifyIn(req *dns.Msg, remote net.Addr) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	if len(req.Question) != 1 || req.Question[0].Qtype != dns.TypeSOA {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	origin := dns.CanonicalName(req.Question[0].Name)
	sec := s.secondary(origin)
	if sec == nil || !sameHost(sec.primary, remote) {
		resp.Rcode = dns.RcodeRefused
		s.logger().Warn("authserver: NOTIFY refused", "zone", origin, "from", remote)
		return resp
	}
	resp.Authoritative = true
	select {
	case sec.kick <- struct{}{}:
	default: // a refresh is due already
	}
	return resp
}

// sameHost reports whether remote is the host of primary (host:port).
func sameHost(primary string, remote net.Addr) bool {
	host, _, err := net.SplitHostPort(primary)
	if err != nil {
		return false
	}
	want, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	got, ok := serve.AddrIP(remote)
	return ok && got == want.Unmap()
}

// secondaryZone is the state of one zone this server is a secondary for.
type secondaryZone struct {
	origin  string
	primary string
	kick    chan struct{} // a NOTIFY came
}

func (s *Server) secondary(origin string) *secondaryZone {
	s.secOnce.Do(s.initSecondaries)
	for _, sz := range s.secondaries {
		if sz.origin == origin {
			return sz
		}
	}
	return nil
}

func (s *Server) initSecondaries() {
	for z, p := range s.Primaries {
		s.secondaries = append(s.secondaries, &secondaryZone{origin: dns.CanonicalName(z), primary: p, kick: make(chan struct{}, 1)})
	}
	slices.SortFunc(s.secondaries, func(a, b *secondaryZone) int { return strings.Compare(a.origin, b.origin) })
}

// startSecondaries starts the refresh loop of every secondary zone, once.
func (s *Server) startSecondaries() {
	s.secOnce.Do(s.initSecondaries)
	s.secStart.Do(func() {
		for _, sz := range s.secondaries {
			s.goBackground(func(ctx context.Context) { s.follow(ctx, sz) })
		}
	})
}

// follow keeps one secondary zone in step with its primary until ctx
// ends: a check at once, then on NOTIFY, on the SOA refresh timer, and
// on the retry timer after a failure (RFC 1034 §4.3.5).
func (s *Server) follow(ctx context.Context, sz *secondaryZone) {
	for {
		wait := retryNoZone
		err := s.Refresh(ctx, sz.origin, sz.primary)
		if z := s.zone(sz.origin); z != nil {
			wait = time.Duration(z.SOA.Refresh) * time.Second
			if err != nil {
				wait = time.Duration(z.SOA.Retry) * time.Second
			}
		}
		if err != nil && ctx.Err() == nil {
			s.logger().Warn("authserver: secondary refresh failed", "zone", sz.origin, "primary", sz.primary, "err", err)
		}
		t := time.NewTimer(max(wait, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-sz.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// zone returns the zone with apex origin, or nil.
func (s *Server) zone(origin string) *zone.Zone {
	set := s.Zones()
	if set == nil {
		return nil
	}
	for _, z := range set.Zones() {
		if z.Origin == origin {
			return z
		}
	}
	return nil
}

// Refresh asks primary (host:port) for the SOA of origin and, when its
// serial is newer than the copy this server holds (or there is none),
// transfers the zone with AXFR and serves the new copy.
func (s *Server) Refresh(ctx context.Context, origin, primary string) error {
	origin = dns.CanonicalName(origin)
	have := s.zone(origin)
	serial, err := s.primarySerial(ctx, origin, primary)
	if err != nil {
		return err
	}
	if have != nil && !serialNewer(serial, have.SOA.Serial) {
		return nil
	}
	z, err := s.TransferIn(ctx, origin, primary)
	if err != nil {
		return err
	}
	s.replaceZone(z)
	s.logger().Info("authserver: zone transferred in", "zone", origin, "serial", z.SOA.Serial, "records", z.Len(), "primary", primary)
	return nil
}

// serialNewer reports whether a is newer than b (RFC 1982 §3.2).
func serialNewer(a, b uint32) bool { return a != b && int32(a-b) > 0 }

func (s *Server) primarySerial(ctx context.Context, origin, primary string) (uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(origin, dns.TypeSOA)
	m.RecursionDesired = false
	c := s.Tracer.Conv(s.Host, "dns/udp", trace.Client, nil, udpAddr(primary))
	if c != nil {
		c.Send(fmt.Sprintf("SOA? %s (serial check)", origin))
	}
	cl := &dns.Client{Timeout: notifyTimeout}
	if src := s.source(); src.IsValid() {
		cl.Dialer = &net.Dialer{Timeout: notifyTimeout, LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
	}
	r, _, err := cl.ExchangeContext(ctx, m, primary)
	if err != nil {
		return 0, fmt.Errorf("%w: SOA of %s from %s: %w", ErrTransfer, origin, primary, err)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok && dns.CanonicalName(soa.Hdr.Name) == origin {
			if c != nil {
				c.Recv(fmt.Sprintf("SOA serial %d", soa.Serial))
			}
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("%w: %s answered %s with no SOA of %s", ErrTransfer, primary, dns.RcodeToString[r.Rcode], origin)
}

func udpAddr(hostport string) net.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// TransferIn transfers the zone origin from primary (host:port) with
// AXFR over TCP (RFC 5936) and checks it as a zone file is checked.
func (s *Server) TransferIn(ctx context.Context, origin, primary string) (*zone.Zone, error) {
	origin = dns.CanonicalName(origin)
	m := new(dns.Msg)
	m.SetAxfr(origin)
	c := s.Tracer.Conv(s.Host, "dns/tcp", trace.Client, nil, udpAddr(primary))
	if c != nil {
		c.Send("AXFR? " + origin)
	}
	d := net.Dialer{Timeout: notifyTimeout}
	if src := s.source(); src.IsValid() {
		// From the address this server is known by: the primary's
		// transfer list names its secondaries by address.
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", primary)
	if err != nil {
		return nil, fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, primary, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}}
	env, err := tr.In(m, primary)
	if err != nil {
		return nil, fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, primary, err)
	}
	var rrs []dns.RR
	for e := range env {
		if e.Error != nil {
			for range env {
			}
			return nil, fmt.Errorf("%w: %s from %s: %w", ErrTransfer, origin, primary, e.Error)
		}
		rrs = append(rrs, e.RR...)
	}
	// The transfer ends with the SOA again (RFC 5936 §2.2).
	if len(rrs) < 2 {
		return nil, fmt.Errorf("%w: %s from %s: %d records", ErrTransfer, origin, primary, len(rrs))
	}
	rrs = rrs[:len(rrs)-1]
	z, err := zone.FromRecords(origin, "AXFR from "+primary, rrs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransfer, err)
	}
	if c != nil {
		c.Recv(fmt.Sprintf("AXFR of %s: %d records, serial %d", origin, z.Len(), z.SOA.Serial))
	}
	return z, nil
}

// replaceZone serves z in place of the zone with its apex (or beside the
// others when there is none).
func (s *Server) replaceZone(z *zone.Zone) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	var zs []*zone.Zone
	replaced := false
	var have []*zone.Zone
	if set := s.Zones(); set != nil {
		have = set.Zones()
	}
	for _, c := range have {
		if c.Origin == z.Origin {
			c, replaced = z, true
		}
		zs = append(zs, c)
	}
	if !replaced {
		zs = append(zs, z)
	}
	set, err := zone.NewSet(zs...)
	if err != nil {
		s.logger().Error("authserver: replacing a zone", "zone", z.Origin, "err", err)
		return
	}
	s.SetZones(set)
}

// source is the address the server's first UDP socket (or else TCP
// listener) is bound to, unless that is a wildcard.
func (s *Server) source() netip.Addr {
	for _, a := range s.group.Addrs() {
		if ip, ok := serve.AddrIP(a); ok && !ip.IsUnspecified() {
			return ip
		}
	}
	return netip.Addr{}
}
