package origin

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// TestLaneAgreesWithNetHTTP sends the same requests to a server with the
// fast lane and to one without, each on a new connection, and wants the
// same status, header fields (but Date, and in any order) and body, and
// the same access log. The lane must have answered exactly the plain GETs
// and HEADs of files.
func TestLaneAgreesWithNetHTTP(t *testing.T) {
	dir, _ := site(t)
	big := strings.Repeat("big file, sent with sendfile\n", 5000) // over SmallFile
	must(t, os.WriteFile(filepath.Join(dir, "big.txt"), []byte(big), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "mid.txt"), []byte(strings.Repeat("in memory, not copied\n", 1000)), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "index.html"), []byte("<p>sub</p>"), 0o644))
	cfg := Config{Root: dir, Auth: authFile(t), MaxAge: time.Hour}
	lane := startLogged(t, cfg, &syncBuf{})
	cfg.NoFastLane = true
	plain := startLogged(t, cfg, &syncBuf{})
	fi, err := os.Stat(filepath.Join(dir, "digits.txt"))
	must(t, err)
	etag := ETag(fi)
	for _, c := range []struct {
		req    string
		inLane bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n", true}, // now from the cache
		{"HEAD /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /mid.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /mid.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"HEAD /mid.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"HEAD /big.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /inside.txt HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true},
		{"GET /sub HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /empty/ HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /nope.txt HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /escape.txt HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /private/plan.txt HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-5\r\n\r\n", false},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: ETAG\r\n\r\n", true},
		{"HEAD /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/ETAG\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\nIf-Modified-Since: LATER\r\n\r\n", true},
		{"GET /big.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: LATER\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: LASTMOD\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: EARLIER\r\n\r\n", true},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\", ETAG\r\n\r\n", false},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n", false},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: unquoted\r\n\r\n", false},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: yesterday\r\n\r\n", false},
		{"GET /digits.txt HTTP/1.1\r\nHost: x\r\nIf-Unmodified-Since: LASTMOD\r\n\r\n", false},
		{"GET /digits.txt?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"DELETE /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n", false},
	} {
		in := strings.NewReplacer("ETAG", etag, "LASTMOD", fi.ModTime().UTC().Format(http.TimeFormat),
			"LATER", fi.ModTime().Add(time.Hour).UTC().Format(http.TimeFormat),
			"EARLIER", fi.ModTime().Add(-time.Hour).UTC().Format(http.TimeFormat)).Replace(c.req)
		want := testnet.HTTPExchange(t, strings.TrimPrefix(plain.url, "http://"), in, "Date")
		got := testnet.HTTPExchange(t, strings.TrimPrefix(lane.url, "http://"), in, "Date")
		if got != want {
			t.Errorf("%q:\nfast lane:\n%s\nnet/http:\n%s", in, got, want)
		}
	}
	answered, _ := lane.s.lane.Stats()
	if answered != 19 {
		t.Errorf("the lane answered %d requests, want 19", answered)
	}
	if answered, _ := plain.s.lane.Stats(); plain.s.lane.Handler != nil || answered != 0 {
		t.Errorf("with NoFastLane, the lane has a handler and answered %d requests", answered)
	}
	// and the same access log lines, but for the times. In any order:
	// net/http logs after the response is written, so a client can send
	// its next request, and have it logged, before the line of the last.
	lane.stop(t)
	plain.stop(t)
	stamp := regexp.MustCompile(`\[[^]]*\]`)
	lines := func(r *running) string {
		l := strings.Split(stamp.ReplaceAllString(r.log.String(), "[T]"), "\n")
		slices.Sort(l)
		return strings.Join(l, "\n")
	}
	if got, want := lines(lane), lines(plain); got != want {
		t.Errorf("access log with the fast lane:\n%s\nwithout:\n%s", got, want)
	}
}
