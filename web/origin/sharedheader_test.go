package origin

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSharedHeaderValues: the cached header values are shared by every
// response; concurrent requests through a handler that adds to, replaces
// and deletes them, with conditional requests and ranges mixed in, neither
// race (go test -race) nor change what other responses carry.
func TestSharedHeaderValues(t *testing.T) {
	dir, _ := site(t)
	s, err := New(Config{Root: dir, MaxAge: time.Hour})
	must(t, err)
	wrap := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Meddle") != "" {
			s.ServeHTTP(&meddler{ResponseWriter: w}, r)
			return
		}
		s.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: wrap}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()                                                //nolint:errcheck
	defer func() { srv.Shutdown(context.Background()); <-done; s.Shutdown(context.Background()) }() //nolint:errcheck
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	u := "http://" + ln.Addr().String() + "/digits.txt"

	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				switch (g + i) % 4 {
				case 1:
					req.Header.Set("X-Meddle", "1")
				case 2:
					req.Header.Set("Range", "bytes=0-3")
				case 3:
					req.Header.Set("If-None-Match", `"nope"`)
				}
				resp, err := c.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if (g+i)%4 == 1 {
					continue
				}
				want := "0123456789abcdefghij"
				if (g+i)%4 == 2 {
					want = "0123"
				}
				if string(body) != want || resp.Header.Get("Cache-Control") != "max-age=3600" ||
					len(resp.Header.Values("Cache-Control")) != 1 || !strings.HasPrefix(resp.Header.Get("Etag"), `"`) ||
					resp.Header.Get("Date") == "" {
					errs <- resp.Status + " " + string(body) + " " + strings.Join(resp.Header.Values("Cache-Control"), "|")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// meddler changes the header fields the way handlers may: Add, Set, Del.
type meddler struct {
	http.ResponseWriter
	wrote bool
}

func (m *meddler) WriteHeader(code int) {
	if m.wrote {
		return
	}
	m.wrote = true
	h := m.Header()
	h.Add("Cache-Control", "public")
	h.Add("Etag", "x")
	h.Set("Content-Type", "text/x-meddled")
	h.Del("Last-Modified")
	h.Add("Date", "x")
	m.ResponseWriter.WriteHeader(code)
}

func (m *meddler) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	return m.ResponseWriter.Write(b)
}
