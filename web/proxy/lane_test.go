package proxy

import (
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// TestLaneAgreesWithNetHTTP sends the same requests, each on a new
// connection, to two edges of one origin, one with the fast lane and one
// without, on the same clock, and wants the same responses (status, header
// fields in any order, body). The lane must have answered exactly the
// plain fresh hits.
func TestLaneAgreesWithNetHTTP(t *testing.T) {
	// a frozen clock: both edges see the same Date and Age
	base := time.Now()
	c := &clock{}
	now := func() time.Time { return base.Add(time.Duration(c.off.Load())) }
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Date", now().UTC().Format(http.TimeFormat))
		h.Set("Content-Type", "text/plain")
		h.Set("ETag", `"e`+r.URL.Path+`"`)
		switch r.URL.Path {
		case "/short":
			h.Set("Cache-Control", "max-age=2")
		case "/vary":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "Accept-Language")
		case "/private":
			h.Set("Cache-Control", "private")
		case "/missing":
			h.Set("Cache-Control", "max-age=60")
			w.WriteHeader(http.StatusNotFound)
		default:
			h.Set("Cache-Control", "max-age=60")
		}
		if r.Header.Get("If-None-Match") == h.Get("ETag") {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body of "+r.URL.Path+" lang="+r.Header.Get("Accept-Language")) //nolint:errcheck
	})
	ln := testnet.ListenTCP(t)
	osrv := &http.Server{Handler: mux}
	go osrv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { osrv.Close() })
	ou, _ := url.Parse("http://" + ln.Addr().String() + "/")
	edge := func(noLane bool) (*Proxy, string) {
		p := New(Config{Origin: ou, Now: now, NoFastLane: noLane})
		return p, testnet.Serve(t, p, testnet.ListenTCP(t), ErrServerClosed)
	}
	lane, laneAddr := edge(false)
	_, plainAddr := edge(true)
	hits := 0
	for _, s := range []struct {
		req     string
		hit     bool // the lane answers it
		advance time.Duration
	}{
		{req: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"},
		{req: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", hit: true},
		{req: "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", hit: true},
		{req: "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", hit: true},
		{req: "GET /a HTTP/1.1\r\nHost: x\r\nCache-Control: no-cache\r\n\r\n"},
		{req: `GET /a HTTP/1.1` + "\r\nHost: x\r\nIf-None-Match: \"e/a\"\r\n\r\n"},
		{req: "GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n\r\n"},
		{req: "GET /vary HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\n\r\n"},
		{req: "GET /vary HTTP/1.1\r\nHost: x\r\naccept-language:  en \r\n\r\n", hit: true},
		{req: "GET /vary HTTP/1.1\r\nHost: x\r\nAccept-Language: fr\r\n\r\n"},
		{req: "GET /vary HTTP/1.1\r\nHost: x\r\n\r\n"},
		{req: "GET /vary HTTP/1.1\r\nHost: x\r\n\r\n", hit: true},
		{req: "GET /private HTTP/1.1\r\nHost: x\r\n\r\n"},
		{req: "GET /private HTTP/1.1\r\nHost: x\r\n\r\n"},
		{req: "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"},
		{req: "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", hit: true},
		{req: "GET /short HTTP/1.1\r\nHost: x\r\n\r\n"},
		{req: "GET /short HTTP/1.1\r\nHost: x\r\n\r\n", hit: true, advance: time.Second},
		{req: "GET /short HTTP/1.1\r\nHost: x\r\n\r\n", advance: 2 * time.Second}, // stale: revalidated
		{req: "GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		c.advance(s.advance)
		want := testnet.HTTPExchange(t, plainAddr, s.req)
		got := testnet.HTTPExchange(t, laneAddr, s.req)
		if got != want {
			t.Errorf("%q:\nfast lane:\n%s\nnet/http:\n%s", s.req, got, want)
		}
		if s.hit {
			hits++
		}
		if answered, _ := lane.lane.Stats(); answered != uint64(hits) {
			t.Fatalf("%q: the lane has answered %d requests, want %d", s.req, answered, hits)
		}
	}
}
