package origin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func serveOnce(s *Server, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestFileCacheHeaders checks that the cached fast path answers exactly
// what http.ServeContent answers, for small (in memory) and large (opened)
// files, and with the cache off.
func TestFileCacheHeaders(t *testing.T) {
	dir, _ := site(t)
	fields := []string{"Etag", "Last-Modified", "Content-Type", "Content-Length", "Accept-Ranges", "Cache-Control"}
	var want http.Header
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"no cache", Config{Root: dir, MaxAge: time.Hour, FileCacheValid: -1}},
		{"small", Config{Root: dir, MaxAge: time.Hour}},
		{"large", Config{Root: dir, MaxAge: time.Hour, SmallFile: 8}},
	} {
		s, err := New(c.cfg)
		must(t, err)
		for _, target := range []string{"/digits.txt", "/digits.txt", "/inside.txt", "/"} {
			plain := serveOnce(s, "GET", target)
			// a condition that does not hold sends the request through
			// http.ServeContent
			viaServeContent := serveOnce(s, "GET", target, "If-None-Match", `"nope"`)
			head := serveOnce(s, "HEAD", target)
			for _, w := range []*httptest.ResponseRecorder{plain, viaServeContent, head} {
				if w.Code != 200 {
					t.Fatalf("%s %s: %d", c.name, target, w.Code)
				}
			}
			if target == "/digits.txt" && plain.Body.String() != "0123456789abcdefghij" {
				t.Errorf("%s: body %q", c.name, plain.Body)
			}
			if plain.Body.String() != viaServeContent.Body.String() || head.Body.Len() != 0 {
				t.Errorf("%s %s: bodies %q, %q, HEAD %q", c.name, target, plain.Body, viaServeContent.Body, head.Body)
			}
			for _, f := range fields {
				a, b, h := plain.Header().Get(f), viaServeContent.Header().Get(f), head.Header().Get(f)
				if a == "" || a != b || a != h {
					t.Errorf("%s %s: %s is %q plain, %q through ServeContent, %q for HEAD", c.name, target, f, a, b, h)
				}
			}
			if target == "/digits.txt" {
				if want == nil {
					want = plain.Header()
				}
				for _, f := range fields {
					if plain.Header().Get(f) != want.Get(f) {
						t.Errorf("%s: %s is %q, without the cache %q", c.name, f, plain.Header().Get(f), want.Get(f))
					}
				}
				if w := serveOnce(s, "GET", target, "If-None-Match", plain.Header().Get("Etag")); w.Code != 304 {
					t.Errorf("%s: If-None-Match: %d", c.name, w.Code)
				}
				if w := serveOnce(s, "GET", target, "Range", "bytes=2-4"); w.Code != 206 || w.Body.String() != "234" {
					t.Errorf("%s: range: %d %q", c.name, w.Code, w.Body)
				}
			}
		}
		s.Shutdown(context.Background()) //nolint:errcheck
	}
}

// TestFileCacheSeesChanges: a file that changes, disappears, or becomes a
// symbolic link out of the root is noticed once the cache's validity has
// passed.
func TestFileCacheSeesChanges(t *testing.T) {
	for _, small := range []int64{0, 8} {
		dir, outside := site(t)
		s, err := New(Config{Root: dir, FileCacheValid: 5 * time.Millisecond, SmallFile: small})
		must(t, err)
		p := filepath.Join(dir, "digits.txt")
		eventually := func(what string, ok func(*httptest.ResponseRecorder) bool) {
			t.Helper()
			for range 400 {
				if ok(serveOnce(s, "GET", "/digits.txt")) {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			w := serveOnce(s, "GET", "/digits.txt")
			t.Fatalf("small=%d: %s: still %d %q", small, what, w.Code, w.Body)
		}
		if w := serveOnce(s, "GET", "/digits.txt"); w.Body.String() != "0123456789abcdefghij" {
			t.Fatalf("first: %q", w.Body)
		}
		// same size, a later modification time
		must(t, os.WriteFile(p, []byte("ABCDEFGHIJ0123456789"), 0o644))
		later := time.Now().Add(time.Minute)
		must(t, os.Chtimes(p, later, later))
		eventually("rewritten", func(w *httptest.ResponseRecorder) bool { return w.Body.String() == "ABCDEFGHIJ0123456789" })
		must(t, os.Remove(p))
		eventually("removed", func(w *httptest.ResponseRecorder) bool { return w.Code == 404 })
		must(t, os.Symlink(outside, p))
		eventually("symlink out", func(w *httptest.ResponseRecorder) bool { return w.Code == 403 || w.Code == 404 })
		s.Shutdown(context.Background()) //nolint:errcheck
	}
}
