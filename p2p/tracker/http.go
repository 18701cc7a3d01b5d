package tracker

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"appnet/trace"
)

// maxParams bounds the parameters of one query string.
const maxParams = 128

// paramError is a malformed parameter; its text is the failure reason.
type paramError struct {
	param string
	msg   string
}

func (e *paramError) Error() string { return e.param + ": " + e.msg }

func badParam(param, format string, args ...any) *paramError {
	return &paramError{param: param, msg: fmt.Sprintf(format, args...)}
}

// param is one key=value of a query string, unescaped.
type param struct{ key, value string }

// parseQuery splits a raw query string into its parameters, in order.
// Values are percent-decoded with '+' kept as is: info_hash and peer_id
// are binary, and clients percent-encode a space.
func parseQuery(raw string) ([]param, error) {
	var out []param
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		if len(out) == maxParams {
			return nil, badParam("query", "more than %d parameters", maxParams)
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, badParam("query", "bad escape in a parameter name")
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, badParam(key, "bad percent-escape")
		}
		out = append(out, param{key, val})
	}
	return out, nil
}

// announceQuery is an HTTP announce: the request and how to answer it.
type announceQuery struct {
	Request
	compact  bool
	noPeerID bool
}

// parseAnnounce reads the query string of an HTTP announce (BEP 3
// §trackers, BEP 23). Every error is a *paramError naming the parameter.
func parseAnnounce(raw string) (announceQuery, error) {
	q := announceQuery{compact: true}
	params, err := parseQuery(raw)
	if err != nil {
		return q, err
	}
	seen := map[string]bool{}
	for _, p := range params {
		if seen[p.key] {
			continue // the first of a repeated parameter counts
		}
		seen[p.key] = true
		switch p.key {
		case "info_hash":
			if len(p.value) != HashSize {
				return q, badParam("info_hash", "%d bytes, want %d", len(p.value), HashSize)
			}
			copy(q.InfoHash[:], p.value)
		case "peer_id":
			if len(p.value) != HashSize {
				return q, badParam("peer_id", "%d bytes, want %d", len(p.value), HashSize)
			}
			copy(q.PeerID[:], p.value)
		case "port":
			n, err := strconv.ParseUint(p.value, 10, 16)
			if err != nil || n == 0 {
				return q, badParam("port", "%q is not a port number (1-65535)", clip(p.value))
			}
			q.Port = uint16(n)
		case "uploaded", "downloaded", "left":
			n, err := strconv.ParseInt(p.value, 10, 64)
			if err != nil || n < 0 {
				return q, badParam(p.key, "%q is not a non-negative integer", clip(p.value))
			}
			switch p.key {
			case "uploaded":
				q.Uploaded = n
			case "downloaded":
				q.Downloaded = n
			default:
				q.Left = n
			}
		case "event":
			switch p.value {
			case "", "empty", "paused":
				q.Event = None
			case "started":
				q.Event = Started
			case "completed":
				q.Event = Completed
			case "stopped":
				q.Event = Stopped
			default:
				return q, badParam("event", "%q is not started, completed, stopped or empty", clip(p.value))
			}
		case "numwant":
			n, err := strconv.ParseInt(p.value, 10, 32)
			if err != nil {
				return q, badParam("numwant", "%q is not an integer", clip(p.value))
			}
			q.NumWant = int(n)
		case "compact", "no_peer_id":
			var b bool
			switch p.value {
			case "0":
			case "1":
				b = true
			default:
				return q, badParam(p.key, "%q is not 0 or 1", clip(p.value))
			}
			if p.key == "compact" {
				q.compact = b
			} else {
				q.noPeerID = b
			}
		case "ip", "ipv4", "ipv6":
			// A DNS name or garbage is ignored; see peerAddr for when an
			// address is honoured.
			if a, err := netip.ParseAddr(p.value); err == nil && !q.IP.IsValid() {
				q.IP = a
			}
		case "key":
			if len(p.value) > 64 {
				return q, badParam("key", "longer than 64 bytes")
			}
			q.Key = keyHash(p.value)
		case "trackerid":
			if len(p.value) > 64 {
				return q, badParam("trackerid", "longer than 64 bytes")
			}
			q.TrackerID = p.value
		}
	}
	for _, need := range []string{"info_hash", "peer_id", "port", "left"} {
		if !seen[need] {
			return q, badParam(need, "missing")
		}
	}
	return q, nil
}

// keyHash folds an HTTP key (any string) into the 32 bits the store keeps,
// as the UDP protocol carries it. 0 means no key, so it is never returned.
func keyHash(s string) uint32 {
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseUint(s, 16, 32); err == nil && n != 0 && len(s) <= 8 {
		return uint32(n)
	}
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return max(h, 1)
}

// clip shortens a bad value quoted in a failure reason.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// parseScrape reads the info hashes of an HTTP scrape (BEP 48).
func parseScrape(raw string, limit int) ([]Hash, error) {
	params, err := parseQuery(raw)
	if err != nil {
		return nil, err
	}
	var out []Hash
	for _, p := range params {
		if p.key != "info_hash" {
			continue
		}
		if len(p.value) != HashSize {
			return nil, badParam("info_hash", "%d bytes, want %d", len(p.value), HashSize)
		}
		if len(out) == limit {
			return nil, badParam("info_hash", "more than %d in one scrape", limit)
		}
		out = append(out, Hash([]byte(p.value)))
	}
	if len(out) == 0 {
		return nil, badParam("info_hash", "missing (this tracker does not answer a full scrape)")
	}
	return out, nil
}

// ServeHTTP answers GET /announce and GET /scrape (any path ending in
// those names, so that /KEY/announce works too). Every answer, refusals
// included, is a bencoded dict.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-cache")
	switch p := r.URL.Path; {
	case p == "/announce" || strings.HasSuffix(p, "/announce"):
		s.httpAnnounce(w, r)
	case p == "/scrape" || strings.HasSuffix(p, "/scrape"):
		s.httpScrape(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write(appendFailure(nil, "not found: this tracker answers /announce and /scrape"))
	}
}

// conv starts the trace of one HTTP request.
func (s *Server) conv(r *http.Request) (*trace.Conv, netip.Addr) {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	if !s.Tracer.Enabled() {
		return nil, ap.Addr()
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return s.Tracer.Conv(s.Host, "tracker/http", trace.Server, local, net.TCPAddrFromAddrPort(ap)), ap.Addr()
}

func (s *Server) fail(w http.ResponseWriter, tc *trace.Conv, what string, err error) {
	s.Failures.Add(1)
	tc.Recv(what + " -> failure: " + err.Error())
	w.Write(appendFailure(nil, err.Error()))
}

func (s *Server) httpAnnounce(w http.ResponseWriter, r *http.Request) {
	tc, source := s.conv(r)
	q, err := parseAnnounce(r.URL.RawQuery)
	if err != nil {
		s.fail(w, tc, "announce", err)
		return
	}
	if !source.IsValid() {
		s.fail(w, tc, "announce", badParam("ip", "the source address %q is not an IP address", r.RemoteAddr))
		return
	}
	out, err := s.announce(q.Request, source, 0)
	if tc != nil {
		tc.Recv(announceSummary(&q.Request, s.numwant(q.NumWant), &out, err))
	}
	if err != nil {
		s.Failures.Add(1)
		w.Write(appendFailure(nil, err.Error()))
		return
	}
	s.Announces.Add(1)
	w.Write(s.appendAnnounce(make([]byte, 0, 128+len(out.peers)*8), &q, &out))
}

func (s *Server) httpScrape(w http.ResponseWriter, r *http.Request) {
	tc, _ := s.conv(r)
	hashes, err := parseScrape(r.URL.RawQuery, s.maxScrape())
	if err != nil {
		s.fail(w, tc, "scrape", err)
		return
	}
	slices.SortFunc(hashes, func(a, b Hash) int { return strings.Compare(string(a[:]), string(b[:])) })
	hashes = slices.Compact(hashes)
	hashes = slices.DeleteFunc(hashes, func(h Hash) bool { return !s.allowed(h) })
	stats := s.scrape(hashes)
	if tc != nil {
		tc.Recv(scrapeSummary(hashes, stats))
	}
	s.Scrapes.Add(1)
	// BEP 48: d5:files d <hash> d complete downloaded incomplete e ... e e
	b := append(make([]byte, 0, 16+len(hashes)*80), "d5:filesd"...)
	for i, h := range hashes {
		b = appendBytes(b, h[:])
		b = append(b, "d8:complete"...)
		b = appendInt(b, stats[i].Complete)
		b = append(b, "10:downloaded"...)
		b = appendInt(b, stats[i].Downloaded)
		b = append(b, "10:incomplete"...)
		b = appendInt(b, stats[i].Incomplete)
		b = append(b, 'e')
	}
	b = append(b, "ee"...)
	w.Write(b)
}

// appendAnnounce encodes an announce response, keys in sorted order
// (BEP 3; compact peers BEP 23, peers6 BEP 7).
func (s *Server) appendAnnounce(b []byte, q *announceQuery, out *announceOut) []byte {
	b = append(b, "d8:complete"...)
	b = appendInt(b, out.stats.Complete)
	b = append(b, "10:incomplete"...)
	b = appendInt(b, out.stats.Incomplete)
	b = append(b, "8:interval"...)
	b = appendInt(b, int(s.interval().Seconds()))
	b = append(b, "12:min interval"...)
	b = appendInt(b, int(s.minInterval().Seconds()))
	b = append(b, "5:peers"...)
	if q.compact {
		var n4, n6 int
		for _, p := range out.peers {
			if p.Addr.Addr().Is4() {
				n4++
			} else {
				n6++
			}
		}
		b = appendCompact(b, out.peers, 4, n4)
		if n6 > 0 {
			b = append(b, "6:peers6"...)
			b = appendCompact(b, out.peers, 6, n6)
		}
	} else {
		b = append(b, 'l')
		for _, p := range out.peers {
			b = append(b, "d2:ip"...)
			b = appendString(b, p.Addr.Addr().String())
			if s.ShowPeerIDs && !q.noPeerID {
				b = append(b, "7:peer id"...)
				b = appendBytes(b, p.ID[:])
			}
			b = append(b, "4:port"...)
			b = appendInt(b, int(p.Addr.Port()))
			b = append(b, 'e')
		}
		b = append(b, 'e')
	}
	if s.TrackerID != "" {
		b = append(b, "10:tracker id"...)
		b = appendString(b, s.TrackerID)
	}
	return append(b, 'e')
}

// appendCompact writes the n peers of one family as a compact string:
// 4 or 16 address bytes and 2 port bytes each, in network order.
func appendCompact(b []byte, peers []Peer, family, n int) []byte {
	size := 6
	if family == 6 {
		size = 18
	}
	b = strconv.AppendInt(b, int64(n*size), 10)
	b = append(b, ':')
	for _, p := range peers {
		a := p.Addr.Addr()
		switch {
		case family == 4 && a.Is4():
			a4 := a.As4()
			b = append(b, a4[:]...)
		case family == 6 && !a.Is4():
			a16 := a.As16()
			b = append(b, a16[:]...)
		default:
			continue
		}
		b = append(b, byte(p.Addr.Port()>>8), byte(p.Addr.Port()))
	}
	return b
}

func appendFailure(b []byte, reason string) []byte {
	b = append(b, "d14:failure reason"...)
	b = appendString(b, reason)
	return append(b, 'e')
}

func appendInt(b []byte, n int) []byte {
	b = append(b, 'i')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, 'e')
}

func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendBytes(b []byte, s []byte) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}
