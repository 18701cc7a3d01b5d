package fastlane

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     verdict
		path     string
		close    bool
	}{
		{"curl", "GET /a/b.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", simple, "/a/b.html", false},
		{"wrk", "GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:18081\r\n\r\n", simple, "/1k.bin", false},
		{"head and close", "HEAD / HTTP/1.1\r\nhost: x\r\nConnection:  Close \r\n\r\n", simple, "/", true},
		{"keep-alive", "GET /d/ HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", simple, "/d/", false},
		{"sub-delims", "GET /a;b=c,d@e:f HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", simple, "/a;b=c,d@e:f", false},
		{"partial line", "GET /a", incomplete, "", false},
		{"partial head", "GET /a HTTP/1.1\r\nHost: x\r\n", incomplete, "", false},
		{"partial prefix", "HEA", incomplete, "", false},
		{"post", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", handOff, "", false},
		{"post partial", "POS", handOff, "", false},
		{"tls", "\x16\x03\x01\x02\x00\x01", handOff, "", false},
		{"http/1.0", "GET / HTTP/1.0\r\n\r\n", handOff, "", false},
		{"no host", "GET / HTTP/1.1\r\n\r\n", handOff, "", false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", handOff, "", false},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", handOff, "", false},
		{"query", "GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"escape", "GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"dot dot", "GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"dot", "GET /a/./b HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"double slash", "GET //a HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"absolute form", "GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"asterisk", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", handOff, "", false},
		{"bare LF in head", "GET / HTTP/1.1\r\nHost: x\n\r\n", handOff, "", false},
		{"folded", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", handOff, "", false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", handOff, "", false},
		{"control in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", handOff, "", false},
		{"chunked", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", handOff, "", false},
		{"length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", handOff, "", false},
		{"expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", handOff, "", false},
		{"upgrade", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", handOff, "", false},
		{"connection list", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-foo\r\n\r\n", handOff, "", false},
		{"lower method", "get / HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", handOff, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Request
			n, v := parse([]byte(c.in), &r)
			if v != c.want {
				t.Fatalf("verdict %d, want %d", v, c.want)
			}
			if v != simple {
				return
			}
			if n != len(c.in) || r.Path != c.path || r.Close != c.close {
				t.Errorf("n %d path %q close %v, want %d %q %v", n, r.Path, r.Close, len(c.in), c.path, c.close)
			}
			// what the lane accepts, net/http reads the same way
			agree(t, []byte(c.in[:n]), &r)
		})
	}
}

func TestGet(t *testing.T) {
	var r Request
	in := "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match:  \"a\" \r\nX-Empty:\r\n\r\n"
	if _, v := parse([]byte(in), &r); v != simple {
		t.Fatalf("verdict %d", v)
	}
	if v, ok := r.Get("if-none-match"); !ok || string(v) != `"a"` {
		t.Errorf("if-none-match = %q %v", v, ok)
	}
	if v, ok := r.Get("x-empty"); !ok || len(v) != 0 {
		t.Errorf("x-empty = %q %v", v, ok)
	}
	if r.Has("range") || r.Has("if-none") {
		t.Error("Has found a field that is not there")
	}
}

// agree checks that net/http reads head, which the lane took as the simple
// request r, as the same request with no body.
func agree(t *testing.T, head []byte, r *Request) {
	t.Helper()
	hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Fatalf("net/http refuses what the lane accepted: %v\n%q", err, head)
	}
	if hr.Method != r.Method || hr.RequestURI != r.Path || hr.URL.Path != r.Path || hr.Close != r.Close ||
		hr.ContentLength != 0 || len(hr.TransferEncoding) != 0 || hr.Host == "" || hr.ProtoMinor != 1 {
		t.Fatalf("net/http reads %q as %s %q (path %q) close %v length %d te %v host %q, the lane as %s %q close %v",
			head, hr.Method, hr.RequestURI, hr.URL.Path, hr.Close, hr.ContentLength, hr.TransferEncoding, hr.Host, r.Method, r.Path, r.Close)
	}
	for k, vv := range hr.Header {
		v, ok := r.Get(strings.ToLower(k))
		if !ok || string(v) != vv[0] {
			t.Fatalf("field %s: net/http %q, the lane %q %v", k, vv[0], v, ok)
		}
	}
}

// FuzzParse: the lane never panics, consumes no more than it was given,
// and anything it takes as simple net/http reads as the same request.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a/b HTTP/1.1\r\nHost: x:1\r\nConnection: close\r\nRange: bytes=0-1\r\n\r\nGET /",
		"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /a%20b HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		n, v := parse(b, &r)
		if n < 0 || n > len(b) {
			t.Fatalf("n %d of %d", n, len(b))
		}
		if v == simple {
			agree(t, b[:n], &r)
		}
	})
}
