package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that drops the body.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}
func (d *discardWriter) Write(b []byte) (int, error) { d.n += int64(len(b)); return len(b), nil }

// BenchmarkHit1K is the cost of a cache hit for a 1 KiB object in a
// reverse proxy (a CDN edge), without the network.
func BenchmarkHit1K(b *testing.B) {
	body := strings.Repeat("x", 1024)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("ETag", `"abc-400"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte(body)) //nolint:errcheck
	}))
	defer o.Close()
	u, _ := url.Parse(o.URL)
	p := New(Config{Origin: u})
	defer p.Shutdown(b.Context()) //nolint:errcheck
	r, _ := http.NewRequest(http.MethodGet, "/1k.bin", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.RequestURI = "/1k.bin"
	w := &discardWriter{h: http.Header{}}
	p.ServeHTTP(w, r)
	if w.status != 200 || w.h.Get("X-Cache") != Miss {
		b.Fatalf("warming: %d %v", w.status, w.h)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			w.status, w.n = 0, 0
			p.ServeHTTP(w, r)
			if w.status != http.StatusOK || w.n != 1024 || w.h.Get("X-Cache") != Hit {
				b.Errorf("status %d, %d bytes, %v", w.status, w.n, w.h)
				return
			}
		}
	})
}
