package origin

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/web/internal/fastlane"
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

// FuzzNotModified: where the fast lane answers a conditional GET itself, it
// answers what http.ServeContent answers, 304 or 200.
func FuzzNotModified(f *testing.F) {
	dir := f.TempDir()
	name := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(name, []byte("hello"), 0o644); err != nil {
		f.Fatal(err)
	}
	mod := time.Date(2026, 11, 21, 10, 0, 0, 500, time.UTC)
	if err := os.Chtimes(name, mod, mod); err != nil {
		f.Fatal(err)
	}
	fl, err := os.Open(name)
	if err != nil {
		f.Fatal(err)
	}
	defer fl.Close()
	fi, _ := fl.Stat()
	e, ok := newFileCache(time.Second, 1<<10, "").newEntry("f.txt", fl, fi)
	if !ok {
		f.Fatal("newEntry")
	}
	f.Add(e.etag, "")
	f.Add("W/"+e.etag, "")
	f.Add(`"x"`, mod.Format(http.TimeFormat))
	f.Add("", mod.Format(http.TimeFormat))
	f.Add("", mod.Add(-time.Second).Format(time.RFC850))
	f.Fuzz(func(t *testing.T, inm, ims string) {
		var b strings.Builder
		b.WriteString("GET /f.txt HTTP/1.1\r\nHost: x\r\n")
		if inm != "" {
			b.WriteString("If-None-Match: " + inm + "\r\n")
		}
		if ims != "" {
			b.WriteString("If-Modified-Since: " + ims + "\r\n")
		}
		b.WriteString("\r\n")
		lr, ok := fastlane.ParseRequest([]byte(b.String()))
		if !ok {
			return
		}
		notMod, ok := e.notModified(lr)
		if !ok {
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
		if err != nil {
			t.Fatalf("net/http refuses %q: %v", b.String(), err)
		}
		w := httptest.NewRecorder()
		w.Header().Set("Etag", e.etag)
		http.ServeContent(w, hr, "f.txt", fi.ModTime(), bytes.NewReader([]byte("hello")))
		if got := w.Code == http.StatusNotModified; got != notMod {
			t.Fatalf("If-None-Match %q If-Modified-Since %q: the lane says 304 %v, ServeContent answers %d", inm, ims, notMod, w.Code)
		}
	})
}
