package tracker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"appnet/p2p/bencode"
	"appnet/trace"
)

// Client defaults; a zero field of Client means its default.
const (
	DefaultHTTPTimeout = 30 * time.Second
	DefaultUDPBase     = 15 * time.Second // BEP 15: wait 15·2^n seconds
	DefaultUDPRetries  = 8                // BEP 15: n up to 8
	DefaultMaxResponse = 1 << 20          // bytes of an HTTP tracker response
	connIDLifetime     = time.Minute      // BEP 15: a client uses a connection ID for one minute
)

// Client announces to and scrapes HTTP and UDP trackers. The zero value is
// ready to use; it is safe for concurrent use. Over UDP it keeps each
// tracker's connection ID for a minute.
type Client struct {
	Host   string        // name reported in traces
	Tracer *trace.Tracer // nil: no tracing
	// HTTP is the client for http:// and https:// trackers; nil means one
	// with Timeout.
	HTTP *http.Client
	// Timeout bounds one HTTP request (default 30 s).
	Timeout time.Duration
	// UDPBase is the first UDP timeout (default 15 s); the n-th
	// retransmission waits UDPBase·2^n (BEP 15). Tests use milliseconds.
	UDPBase time.Duration
	// UDPRetries is the number of retransmissions before ErrTimeout
	// (default 8; a negative value means none).
	UDPRetries int
	// MaxResponse bounds an HTTP response body (default 1 MiB).
	MaxResponse int64
	// Key is sent with every announce whose Request has no Key of its own
	// (HTTP key=, BEP 7; the key field of BEP 15). Trackers let only an
	// announce with the same key move or stop the peer, so it stays the
	// same for the Client's life. Zero: a random key, drawn once per
	// Client.
	Key uint32

	keyOnce sync.Once
	key     uint32

	mu    sync.Mutex
	conns map[string]udpConnID // by tracker address
}

type udpConnID struct {
	id  uint64
	got time.Time
}

var defaultClient Client

// AnnounceHTTP announces to an http:// or https:// tracker with a default
// Client.
func AnnounceHTTP(ctx context.Context, announceURL string, req Request) (Response, error) {
	return defaultClient.AnnounceHTTP(ctx, announceURL, req)
}

// AnnounceUDP announces to a udp:// tracker with a default Client.
func AnnounceUDP(ctx context.Context, announceURL string, req Request) (Response, error) {
	return defaultClient.AnnounceUDP(ctx, announceURL, req)
}

// Announce announces req to the tracker at announceURL, over HTTP or UDP
// according to its scheme.
func (c *Client) Announce(ctx context.Context, announceURL string, req Request) (Response, error) {
	switch scheme(announceURL) {
	case "http", "https":
		return c.AnnounceHTTP(ctx, announceURL, req)
	case "udp":
		return c.AnnounceUDP(ctx, announceURL, req)
	}
	return Response{}, fmt.Errorf("tracker: %q: not an http, https or udp URL", announceURL)
}

// sessionKey returns the key of the Client's announces: Key, or a random
// one that is never zero (zero is "no key").
func (c *Client) sessionKey() uint32 {
	c.keyOnce.Do(func() {
		c.key = c.Key
		for c.key == 0 {
			var b [4]byte
			rand.Read(b[:])
			c.key = binary.BigEndian.Uint32(b[:])
		}
	})
	return c.key
}

// Scrape asks the tracker at announceURL for the counts of the given
// swarms (BEP 48 over HTTP, BEP 15 over UDP). Swarms the tracker leaves
// out of its answer are left out of the map.
func (c *Client) Scrape(ctx context.Context, announceURL string, hashes ...Hash) (map[Hash]ScrapeStats, error) {
	if len(hashes) == 0 {
		return nil, errors.New("tracker: scrape: no info hash")
	}
	switch scheme(announceURL) {
	case "http", "https":
		return c.scrapeHTTP(ctx, announceURL, hashes)
	case "udp":
		return c.scrapeUDP(ctx, announceURL, hashes)
	}
	return nil, fmt.Errorf("tracker: %q: not an http, https or udp URL", announceURL)
}

func scheme(u string) string {
	s, _, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	return strings.ToLower(s)
}

// urlAddr is a tracker's address for traces.
type urlAddr string

func (a urlAddr) Network() string { return "tcp" }
func (a urlAddr) String() string  { return string(a) }

// --- HTTP (BEP 3, BEP 23, BEP 48) ---

// escapeBinary percent-encodes every byte that is not unreserved
// (RFC 3986 §2.3), as trackers expect for info_hash and peer_id.
func escapeBinary(b []byte) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// AnnounceQuery returns the query string of an HTTP announce of req.
func AnnounceQuery(req Request) string {
	var b strings.Builder
	b.WriteString("info_hash=" + escapeBinary(req.InfoHash[:]))
	b.WriteString("&peer_id=" + escapeBinary(req.PeerID[:]))
	fmt.Fprintf(&b, "&port=%d&uploaded=%d&downloaded=%d&left=%d", req.Port, req.Uploaded, req.Downloaded, req.Left)
	if req.NoCompact {
		b.WriteString("&compact=0")
	} else {
		b.WriteString("&compact=1")
	}
	if req.Event != None {
		b.WriteString("&event=" + req.Event.String())
	}
	if req.NumWant > 0 {
		b.WriteString("&numwant=" + strconv.Itoa(req.NumWant))
	}
	if req.Key != 0 {
		fmt.Fprintf(&b, "&key=%08X", req.Key)
	}
	if req.IP.IsValid() {
		b.WriteString("&ip=" + url.QueryEscape(req.IP.String()))
	}
	if req.TrackerID != "" {
		b.WriteString("&trackerid=" + url.QueryEscape(req.TrackerID))
	}
	return b.String()
}

func withQuery(base, query string) string {
	if strings.Contains(base, "?") {
		return base + "&" + query
	}
	return base + "?" + query
}

func (c *Client) httpGet(ctx context.Context, u string) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: cmp.Or(c.Timeout, DefaultHTTPTimeout)}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	defer resp.Body.Close()
	limit := cmp.Or(c.MaxResponse, DefaultMaxResponse)
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("tracker: %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, &ProtocolError{URL: redact(u), Msg: fmt.Sprintf("response longer than %d bytes", limit)}
	}
	if resp.StatusCode != http.StatusOK && (len(body) == 0 || body[0] != 'd') {
		return nil, &ProtocolError{URL: redact(u), Msg: "HTTP " + resp.Status}
	}
	return body, nil
}

// redact drops the query of a URL for error messages.
func redact(u string) string {
	base, _, _ := strings.Cut(u, "?")
	return base
}

var lenient = bencode.DecodeOptions{AllowUnsortedKeys: true}

type httpAnnounceResponse struct {
	Failure     *string            `bencode:"failure reason"`
	Warning     string             `bencode:"warning message"`
	Interval    int64              `bencode:"interval"`
	MinInterval int64              `bencode:"min interval"`
	Complete    int64              `bencode:"complete"`
	Incomplete  int64              `bencode:"incomplete"`
	TrackerID   string             `bencode:"tracker id"`
	Peers       bencode.RawMessage `bencode:"peers"`
	Peers6      []byte             `bencode:"peers6"`
}

type dictPeer struct {
	IP     string `bencode:"ip"`
	PeerID []byte `bencode:"peer id"`
	Port   int64  `bencode:"port"`
}

// AnnounceHTTP announces req to an http:// or https:// tracker.
func (c *Client) AnnounceHTTP(ctx context.Context, announceURL string, req Request) (Response, error) {
	req.Key = cmp.Or(req.Key, c.sessionKey())
	u := withQuery(announceURL, AnnounceQuery(req))
	tc := c.Tracer.Conv(c.Host, "tracker/http", trace.Client, nil, urlAddr(hostOf(announceURL)))
	if tc != nil {
		tc.Send(requestSummary(&req))
	}
	body, err := c.httpGet(ctx, u)
	if err != nil {
		tc.Notef("%v", err)
		return Response{}, err
	}
	resp, err := parseHTTPAnnounce(redact(announceURL), body)
	traceResponse(tc, &resp, err)
	return resp, err
}

func parseHTTPAnnounce(where string, body []byte) (Response, error) {
	var w httpAnnounceResponse
	if err := lenient.Unmarshal(body, &w); err != nil {
		return Response{}, &ProtocolError{URL: where, Msg: err.Error()}
	}
	if w.Failure != nil {
		return Response{}, &FailureError{URL: where, Reason: *w.Failure}
	}
	resp := Response{
		Interval:    time.Duration(w.Interval) * time.Second,
		MinInterval: time.Duration(w.MinInterval) * time.Second,
		Complete:    int(w.Complete),
		Incomplete:  int(w.Incomplete),
		TrackerID:   w.TrackerID,
		Warning:     w.Warning,
	}
	switch {
	case len(w.Peers) == 0:
	case w.Peers[0] == 'l':
		var list []dictPeer
		if err := lenient.Unmarshal(w.Peers, &list); err != nil {
			return resp, &ProtocolError{URL: where, Msg: "peers: " + err.Error()}
		}
		for _, p := range list {
			a, err := netip.ParseAddr(p.IP)
			if err != nil || p.Port <= 0 || p.Port > 65535 {
				continue // a DNS name or a bad entry: skipped
			}
			peer := Peer{Addr: netip.AddrPortFrom(a.Unmap(), uint16(p.Port))}
			copy(peer.ID[:], p.PeerID)
			resp.Peers = append(resp.Peers, peer)
		}
	default:
		var s []byte
		if err := lenient.Unmarshal(w.Peers, &s); err != nil {
			return resp, &ProtocolError{URL: where, Msg: "peers: " + err.Error()}
		}
		peers, err := parseCompact(s, 4)
		if err != nil {
			return resp, &ProtocolError{URL: where, Msg: "peers: " + err.Error()}
		}
		resp.Peers = peers
	}
	if len(w.Peers6) > 0 {
		peers, err := parseCompact(w.Peers6, 6)
		if err != nil {
			return resp, &ProtocolError{URL: where, Msg: "peers6: " + err.Error()}
		}
		resp.Peers = append(resp.Peers, peers...)
	}
	return resp, nil
}

// parseCompact reads compact peers: 6 bytes each for IPv4 (BEP 23), 18
// for IPv6 (BEP 7).
func parseCompact(b []byte, family int) ([]Peer, error) {
	size := 6
	if family == 6 {
		size = 18
	}
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a multiple of %d", len(b), size)
	}
	out := make([]Peer, 0, len(b)/size)
	for ; len(b) > 0; b = b[size:] {
		var a netip.Addr
		if family == 4 {
			a = netip.AddrFrom4([4]byte(b[:4]))
		} else {
			a = netip.AddrFrom16([16]byte(b[:16])).Unmap()
		}
		out = append(out, Peer{Addr: netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[size-2:]))})
	}
	return out, nil
}

// ScrapeURL returns the scrape URL of an HTTP announce URL (BEP 48): the
// last path element's leading "announce" becomes "scrape". It returns
// ErrNoScrape when there is no such element.
func ScrapeURL(announceURL string) (string, error) {
	base, query, hasQuery := strings.Cut(announceURL, "?")
	i := strings.LastIndexByte(base, '/')
	if i < 0 || !strings.HasPrefix(base[i+1:], "announce") {
		return "", ErrNoScrape
	}
	u := base[:i+1] + "scrape" + strings.TrimPrefix(base[i+1:], "announce")
	if hasQuery {
		u += "?" + query
	}
	return u, nil
}

func (c *Client) scrapeHTTP(ctx context.Context, announceURL string, hashes []Hash) (map[Hash]ScrapeStats, error) {
	su, err := ScrapeURL(announceURL)
	if err != nil {
		return nil, err
	}
	var q strings.Builder
	for i, h := range hashes {
		if i > 0 {
			q.WriteByte('&')
		}
		q.WriteString("info_hash=" + escapeBinary(h[:]))
	}
	tc := c.Tracer.Conv(c.Host, "tracker/http", trace.Client, nil, urlAddr(hostOf(announceURL)))
	tc.Send(fmt.Sprintf("scrape %d info hashes", len(hashes)))
	body, err := c.httpGet(ctx, withQuery(su, q.String()))
	if err != nil {
		tc.Notef("%v", err)
		return nil, err
	}
	var w struct {
		Failure *string `bencode:"failure reason"`
		Files   map[string]struct {
			Complete   int64 `bencode:"complete"`
			Downloaded int64 `bencode:"downloaded"`
			Incomplete int64 `bencode:"incomplete"`
		} `bencode:"files"`
	}
	where := redact(su)
	if err := lenient.Unmarshal(body, &w); err != nil {
		return nil, &ProtocolError{URL: where, Msg: err.Error()}
	}
	if w.Failure != nil {
		tc.Recv("failure: " + *w.Failure)
		return nil, &FailureError{URL: where, Reason: *w.Failure}
	}
	out := make(map[Hash]ScrapeStats, len(w.Files))
	for k, f := range w.Files {
		if len(k) != HashSize {
			return nil, &ProtocolError{URL: where, Msg: fmt.Sprintf("files: a key of %d bytes", len(k))}
		}
		out[Hash([]byte(k))] = ScrapeStats{Complete: int(f.Complete), Downloaded: int(f.Downloaded), Incomplete: int(f.Incomplete)}
	}
	tc.Recv(fmt.Sprintf("%d files", len(out)))
	return out, nil
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return u
}

func requestSummary(req *Request) string {
	ev := ""
	if req.Event != None {
		ev = " " + req.Event.String()
	}
	return fmt.Sprintf("announce %s%s port=%d left=%d numwant=%d", req.InfoHash.short(), ev, req.Port, req.Left, req.NumWant)
}

func traceResponse(tc *trace.Conv, resp *Response, err error) {
	if tc == nil {
		return
	}
	if err != nil {
		tc.Recv(err.Error())
		return
	}
	tc.Recv(fmt.Sprintf("%d peers, %d seeders, %d leechers, interval %v", len(resp.Peers), resp.Complete, resp.Incomplete, resp.Interval))
}

// --- UDP (BEP 15) ---

// udpTracker parses a udp:// announce URL into host:port.
func udpTracker(announceURL string) (string, error) {
	u, err := url.Parse(announceURL)
	if err != nil {
		return "", fmt.Errorf("tracker: %w", err)
	}
	if u.Scheme != "udp" || u.Host == "" || u.Port() == "" {
		return "", fmt.Errorf("tracker: %q: want udp://HOST:PORT", announceURL)
	}
	return u.Host, nil
}

// AnnounceUDP announces req to a udp:// tracker (BEP 15).
func (c *Client) AnnounceUDP(ctx context.Context, announceURL string, req Request) (Response, error) {
	req.Key = cmp.Or(req.Key, c.sessionKey())
	host, err := udpTracker(announceURL)
	if err != nil {
		return Response{}, err
	}
	var ip4 [4]byte
	if req.IP.Unmap().Is4() {
		ip4 = req.IP.Unmap().As4()
	}
	numwant := int32(-1)
	if req.NumWant > 0 {
		numwant = int32(min(req.NumWant, 1<<31-1))
	}
	body := make([]byte, 0, udpAnnounceLen-udpHeaderLen)
	body = append(body, req.InfoHash[:]...)
	body = append(body, req.PeerID[:]...)
	body = binary.BigEndian.AppendUint64(body, uint64(req.Downloaded))
	body = binary.BigEndian.AppendUint64(body, uint64(req.Left))
	body = binary.BigEndian.AppendUint64(body, uint64(req.Uploaded))
	body = binary.BigEndian.AppendUint32(body, uint32(req.Event))
	body = append(body, ip4[:]...)
	body = binary.BigEndian.AppendUint32(body, req.Key)
	body = binary.BigEndian.AppendUint32(body, uint32(numwant))
	body = binary.BigEndian.AppendUint16(body, req.Port)

	var resp Response
	err = c.udpExchange(ctx, announceURL, host, actionAnnounce, body, requestSummary(&req), func(family int, b []byte) (string, error) {
		if len(b) < 20 {
			return "", fmt.Errorf("announce reply of %d bytes", len(b))
		}
		resp.Interval = time.Duration(binary.BigEndian.Uint32(b[8:])) * time.Second
		resp.Incomplete = int(binary.BigEndian.Uint32(b[12:]))
		resp.Complete = int(binary.BigEndian.Uint32(b[16:]))
		peers, err := parseCompact(b[20:], family)
		resp.Peers = peers
		return fmt.Sprintf("%d peers, %d seeders, %d leechers, interval %v", len(peers), resp.Complete, resp.Incomplete, resp.Interval), err
	})
	return resp, err
}

func (c *Client) scrapeUDP(ctx context.Context, announceURL string, hashes []Hash) (map[Hash]ScrapeStats, error) {
	host, err := udpTracker(announceURL)
	if err != nil {
		return nil, err
	}
	if len(hashes) > DefaultMaxScrape {
		return nil, fmt.Errorf("tracker: scrape: %d info hashes, at most %d fit a UDP scrape", len(hashes), DefaultMaxScrape)
	}
	var body []byte
	for _, h := range hashes {
		body = append(body, h[:]...)
	}
	out := make(map[Hash]ScrapeStats, len(hashes))
	err = c.udpExchange(ctx, announceURL, host, actionScrape, body, fmt.Sprintf("scrape %d info hashes", len(hashes)), func(_ int, b []byte) (string, error) {
		if len(b) != 8+12*len(hashes) {
			return "", fmt.Errorf("scrape reply of %d bytes for %d info hashes", len(b), len(hashes))
		}
		for i, h := range hashes {
			e := b[8+12*i:]
			out[h] = ScrapeStats{
				Complete:   int(binary.BigEndian.Uint32(e[0:])),
				Downloaded: int(binary.BigEndian.Uint32(e[4:])),
				Incomplete: int(binary.BigEndian.Uint32(e[8:])),
			}
		}
		if len(hashes) == 1 {
			st := out[hashes[0]]
			return fmt.Sprintf("complete=%d incomplete=%d downloaded=%d", st.Complete, st.Incomplete, st.Downloaded), nil
		}
		return fmt.Sprintf("%d files", len(hashes)), nil
	})
	return out, err
}

func (c *Client) cachedConnID(host string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.conns[host]
	if !ok || time.Since(e.got) >= connIDLifetime {
		return 0, false
	}
	return e.id, true
}

func (c *Client) setConnID(host string, id uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		delete(c.conns, host)
		return
	}
	if c.conns == nil {
		c.conns = make(map[string]udpConnID)
	}
	c.conns[host] = udpConnID{id: id, got: time.Now()}
}

// errUDPTimeout is one attempt's timeout; it leads to a retransmission.
var errUDPTimeout = errors.New("timeout")

// udpExchange sends one request (connecting first when it holds no fresh
// connection ID) and hands the matching reply to parse, retransmitting
// after UDPBase·2^n (BEP 15).
func (c *Client) udpExchange(ctx context.Context, announceURL, host string, action uint32, body []byte, summary string, parse func(family int, reply []byte) (string, error)) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", host)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	family := 4
	if ra, ok := conn.RemoteAddr().(*net.UDPAddr); ok && !ra.AddrPort().Addr().Unmap().Is4() {
		family = 6
	}
	tc := c.Tracer.Conv(c.Host, "tracker/udp", trace.Client, conn.LocalAddr(), conn.RemoteAddr())
	base := cmp.Or(c.UDPBase, DefaultUDPBase)
	retries := cmp.Or(c.UDPRetries, DefaultUDPRetries)
	retries = max(retries, 0)
	where := announceURL
	buf := make([]byte, 64<<10)
	pkt := make([]byte, 0, udpHeaderLen+len(body))
	retriedConnID := false
	for n := 0; n <= retries; {
		wait := base << n
		id, fresh := c.cachedConnID(host)
		if !fresh {
			tid := randomTID()
			pkt = binary.BigEndian.AppendUint64(pkt[:0], udpProtocolID)
			pkt = binary.BigEndian.AppendUint32(pkt, actionConnect)
			pkt = binary.BigEndian.AppendUint32(pkt, tid)
			tc.Send("connect")
			reply, err := roundTrip(ctx, conn, pkt, tid, wait, buf)
			if errors.Is(err, errUDPTimeout) {
				tc.Notef("no answer in %v", wait)
				n++
				continue
			}
			if err != nil {
				return c.udpFail(where, tc, err)
			}
			if binary.BigEndian.Uint32(reply) != actionConnect || len(reply) < 16 {
				return c.udpFail(where, tc, &ProtocolError{URL: where, Msg: fmt.Sprintf("connect reply: action %d, %d bytes", binary.BigEndian.Uint32(reply), len(reply))})
			}
			id = binary.BigEndian.Uint64(reply[8:])
			tc.Recv("connection ID")
			c.setConnID(host, id, true)
		}
		tid := randomTID()
		pkt = binary.BigEndian.AppendUint64(pkt[:0], id)
		pkt = binary.BigEndian.AppendUint32(pkt, action)
		pkt = binary.BigEndian.AppendUint32(pkt, tid)
		pkt = append(pkt, body...)
		tc.Send(summary)
		reply, err := roundTrip(ctx, conn, pkt, tid, wait, buf)
		if errors.Is(err, errUDPTimeout) {
			tc.Notef("no answer in %v", wait)
			n++
			continue
		}
		if err != nil {
			return c.udpFail(where, tc, err)
		}
		switch got := binary.BigEndian.Uint32(reply); got {
		case actionError:
			c.setConnID(host, 0, false)
			if fresh && !retriedConnID {
				// The tracker may have forgotten our connection ID
				// before its minute ran out: connect again, once.
				retriedConnID = true
				tc.Notef("error with a cached connection ID: %s; connecting again", reply[8:])
				continue
			}
			return c.udpFail(where, tc, &FailureError{URL: where, Reason: string(reply[8:])})
		case action:
			summary, err := parse(family, reply)
			if err != nil {
				return c.udpFail(where, tc, &ProtocolError{URL: where, Msg: err.Error()})
			}
			tc.Recv(summary)
			return nil
		default:
			return c.udpFail(where, tc, &ProtocolError{URL: where, Msg: fmt.Sprintf("reply with action %d to action %d", got, action)})
		}
	}
	return c.udpFail(where, tc, fmt.Errorf("%w from %s after %d retransmissions", ErrTimeout, where, retries))
}

func (c *Client) udpFail(where string, tc *trace.Conv, err error) error {
	tc.Notef("%v", err)
	return err
}

// roundTrip sends pkt and waits up to wait for a reply with transaction ID
// tid; replies to other transactions (late answers to earlier tries) are
// skipped.
func roundTrip(ctx context.Context, conn net.Conn, pkt []byte, tid uint32, wait time.Duration, buf []byte) ([]byte, error) {
	if _, err := conn.Write(pkt); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("tracker: %w", ctx.Err())
		}
		return nil, fmt.Errorf("tracker: %w", err)
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("tracker: %w", ctx.Err())
	}
	conn.SetReadDeadline(deadline)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("tracker: %w", ctx.Err())
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, errUDPTimeout
			}
			if isConnRefused(err) {
				continue // an ICMP error for an earlier try; wait on
			}
			return nil, fmt.Errorf("tracker: %w", err)
		}
		if n < 8 || binary.BigEndian.Uint32(buf[4:]) != tid {
			continue
		}
		return buf[:n], nil
	}
}

func randomTID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
