package origin

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

func benchSite(b *testing.B, size int) (dir string) {
	dir = b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkHandler1K is the handler's own cost for a 1 KiB file, without
// the network: what the origin adds to net/http's server.
func BenchmarkHandler1K(b *testing.B) {
	s, err := New(Config{Root: benchSite(b, 1024)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background()) //nolint:errcheck
	r, _ := http.NewRequest(http.MethodGet, "/f.bin", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			w.status, w.n = 0, 0
			s.ServeHTTP(w, r)
			if w.status != http.StatusOK || w.n != 1024 {
				b.Errorf("status %d, %d bytes", w.status, w.n)
				return
			}
		}
	})
}

// BenchmarkLoopback1K serves a 1 KiB file over loopback to keep-alive
// clients.
func BenchmarkLoopback1K(b *testing.B) {
	s, err := New(Config{Root: benchSite(b, 1024)})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()              //nolint:errcheck
	defer func() { s.Shutdown(context.Background()); <-done }() //nolint:errcheck
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	u := "http://" + ln.Addr().String() + "/f.bin"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != 1024 {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}
