package origin

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func FuzzParseAuth(f *testing.F) {
	f.Add("/private alice $2a$04$abcdefghijklmnopqrstuuJ0ZsZQ8ZRsZXx6Z5Zb2bYp7b9t3u0m.\n")
	f.Add("# c\n\n/a b c d\n")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuth(strings.NewReader(s), "fuzz")
		if err == nil {
			a.Users("/private/x")
		}
	})
}

// FuzzRequest feeds arbitrary request bytes to the handler: it must answer
// without panicking and never with a file from outside the root.
func FuzzRequest(f *testing.F) {
	f.Add("GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2,5-\r\n\r\n")
	f.Add("POST /cart HTTP/1.1\r\nHost: x\r\nCookie: cart=00\r\nContent-Length: 9\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nitem=book")
	f.Add("GET /private/plan.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6eA==\r\n\r\n")
	dir, _ := site(f)
	s, err := New(Config{Root: dir, Listing: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.root.Close() })
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if bytes.Contains(w.Body.Bytes(), []byte("outside the root")) {
			t.Fatalf("served a file outside the root for %q", raw)
		}
	})
}
