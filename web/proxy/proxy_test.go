package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// origin is a test origin server that counts what it is asked.
type origin struct {
	url     string
	fetches atomic.Int64 // requests answered with a body
	cond    atomic.Int64 // conditional requests answered 304
	posts   atomic.Int64
	lastReq atomic.Pointer[http.Request]
}

func startOrigin(t *testing.T, now func() time.Time) *origin {
	t.Helper()
	o := &origin{}
	lm := now().Add(-10 * 24 * time.Hour).UTC().Format(http.TimeFormat)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		o.lastReq.Store(r)
		w.Header().Set("Date", now().UTC().Format(http.TimeFormat))
		if r.Method == http.MethodPost || r.Method == http.MethodDelete || r.Method == http.MethodPut {
			o.posts.Add(1)
			if loc := r.Header.Get("X-Want-Location"); loc != "" {
				w.Header().Set("Location", loc)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		q := r.URL.Query()
		if cc := q.Get("cc"); cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		if q.Has("etag") {
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				o.cond.Add(1)
				w.Header().Set("X-Origin-Note", "revalidated")
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if q.Has("lm") {
			w.Header().Set("Last-Modified", lm)
			if r.Header.Get("If-Modified-Since") == lm {
				o.cond.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if v := q.Get("vary"); v != "" {
			w.Header().Set("Vary", v)
		}
		if d := q.Get("sleep"); d != "" {
			dur, _ := time.ParseDuration(d)
			time.Sleep(dur)
		}
		n := o.fetches.Add(1)
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		fmt.Fprintf(w, "body %s lang=%s #%d", r.URL.Path, r.Header.Get("Accept-Language"), n)
	})
	ln := testnet.ListenTCP(t)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	o.url = "http://" + ln.Addr().String()
	return o
}

type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

type env struct {
	o     *origin
	p     *Proxy
	clock *clock
	cl    *http.Client
	tr    *http.Transport
}

func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{clock: &clock{}}
	e.o = startOrigin(t, e.clock.now)
	if cfg.Now == nil {
		cfg.Now = e.clock.now
	}
	e.p = New(cfg)
	pu, _ := url.Parse("http://" + testnet.Serve(t, e.p, testnet.ListenTCP(t), ErrServerClosed))
	e.tr = &http.Transport{Proxy: http.ProxyURL(pu), DisableCompression: true}
	e.cl = &http.Client{Transport: e.tr}
	t.Cleanup(e.tr.CloseIdleConnections) // runs before the proxy's Shutdown
	return e
}

type result struct {
	status int
	h      http.Header
	body   string
}

func (e *env) get(t *testing.T, path string, hdr ...string) result {
	t.Helper()
	return e.do(t, "GET", path, hdr...)
}

func (e *env) do(t *testing.T, method, path string, hdr ...string) result {
	t.Helper()
	req, _ := http.NewRequest(method, e.o.url+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func TestHitWithAge(t *testing.T) {
	e := setup(t, Config{})
	r1 := e.get(t, "/a?cc=max-age=60")
	if r1.h.Get("X-Cache") != Miss || r1.body != "body /a lang= #1" {
		t.Fatalf("first: %s %q", r1.h.Get("X-Cache"), r1.body)
	}
	e.clock.advance(5 * time.Second)
	r2 := e.get(t, "/a?cc=max-age=60")
	if r2.h.Get("X-Cache") != Hit || r2.body != r1.body || r2.h.Get("Age") != "5" {
		t.Fatalf("second: %s age %q %q", r2.h.Get("X-Cache"), r2.h.Get("Age"), r2.body)
	}
	if !strings.Contains(r2.h.Get("Via"), "1.1 appnet") {
		t.Errorf("Via = %q", r2.h.Get("Via"))
	}
	if e.o.fetches.Load() != 1 {
		t.Errorf("origin fetches = %d, want 1", e.o.fetches.Load())
	}
	// hop-by-hop: the field the origin's Connection named is gone
	if r2.h.Get("X-Secret") != "" || r1.h.Get("X-Secret") != "" {
		t.Errorf("hop-by-hop X-Secret forwarded")
	}
	if via := e.o.lastReq.Load().Header.Get("Via"); via != "1.1 appnet" {
		t.Errorf("origin saw Via %q", via)
	}
	// expires after max-age, then fetched again
	e.clock.advance(time.Minute)
	if r := e.get(t, "/a?cc=max-age=60"); r.h.Get("X-Cache") != Miss || e.o.fetches.Load() != 2 {
		t.Errorf("after expiry: %s, fetches %d", r.h.Get("X-Cache"), e.o.fetches.Load())
	}
}

func TestRevalidate(t *testing.T) {
	for _, q := range []string{"etag", "lm"} {
		t.Run(q, func(t *testing.T) {
			e := setup(t, Config{})
			path := "/r?cc=max-age=10&" + q
			e.get(t, path)
			e.clock.advance(20 * time.Second)
			r := e.get(t, path)
			if r.h.Get("X-Cache") != Revalidated || r.body != "body /r lang= #1" || e.o.cond.Load() != 1 {
				t.Fatalf("stale: %s %q cond=%d", r.h.Get("X-Cache"), r.body, e.o.cond.Load())
			}
			if q == "etag" && r.h.Get("X-Origin-Note") != "revalidated" {
				t.Errorf("304's headers not merged: %v", r.h)
			}
			if r := e.get(t, path); r.h.Get("X-Cache") != Hit {
				t.Errorf("after revalidation: %s", r.h.Get("X-Cache"))
			}
		})
	}
}

func TestNoCacheAlwaysRevalidates(t *testing.T) {
	e := setup(t, Config{})
	e.get(t, "/n?cc=no-cache&etag")
	for i := range 2 {
		if r := e.get(t, "/n?cc=no-cache&etag"); r.h.Get("X-Cache") != Revalidated {
			t.Errorf("request %d: %s", i, r.h.Get("X-Cache"))
		}
	}
	if e.o.fetches.Load() != 1 || e.o.cond.Load() != 2 {
		t.Errorf("fetches %d cond %d", e.o.fetches.Load(), e.o.cond.Load())
	}
}

func TestNotStored(t *testing.T) {
	for _, c := range []struct{ name, path string }{
		{"no-store", "/s?cc=no-store"},
		{"private", "/s?cc=private,max-age=60"},
		{"no validator no freshness", "/s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, Config{})
			e.get(t, c.path)
			if r := e.get(t, c.path); r.h.Get("X-Cache") != Miss || e.o.fetches.Load() != 2 {
				t.Errorf("second: %s fetches %d", r.h.Get("X-Cache"), e.o.fetches.Load())
			}
			if n, _ := e.p.Store().Len(); n != 0 {
				t.Errorf("store holds %d", n)
			}
		})
	}
	t.Run("request no-store", func(t *testing.T) {
		e := setup(t, Config{})
		e.get(t, "/q?cc=max-age=60", "Cache-Control", "no-store")
		if n, _ := e.p.Store().Len(); n != 0 {
			t.Errorf("store holds %d", n)
		}
	})
	t.Run("authorization", func(t *testing.T) {
		e := setup(t, Config{})
		e.get(t, "/q?cc=max-age=60", "Authorization", "Basic YTpi")
		if n, _ := e.p.Store().Len(); n != 0 {
			t.Errorf("store holds %d", n)
		}
	})
}

func TestHeuristicFreshness(t *testing.T) {
	e := setup(t, Config{})
	e.get(t, "/h?lm") // 10 days old: 10% is 24h, the cap
	e.clock.advance(23 * time.Hour)
	if r := e.get(t, "/h?lm"); r.h.Get("X-Cache") != Hit {
		t.Errorf("at 23h: %s", r.h.Get("X-Cache"))
	}
	e.clock.advance(2 * time.Hour)
	if r := e.get(t, "/h?lm"); r.h.Get("X-Cache") != Revalidated {
		t.Errorf("at 25h: %s", r.h.Get("X-Cache"))
	}
}

func TestVary(t *testing.T) {
	e := setup(t, Config{})
	p := "/v?cc=max-age=60&vary=Accept-Language"
	en := e.get(t, p, "Accept-Language", "en")
	fr := e.get(t, p, "Accept-Language", "fr")
	if fr.h.Get("X-Cache") != Miss || fr.body == en.body {
		t.Fatalf("fr: %s %q", fr.h.Get("X-Cache"), fr.body)
	}
	en2 := e.get(t, p, "Accept-Language", "en")
	fr2 := e.get(t, p, "Accept-Language", "fr")
	if en2.h.Get("X-Cache") != Hit || en2.body != en.body || fr2.h.Get("X-Cache") != Hit || fr2.body != fr.body {
		t.Errorf("variants: en %s %q, fr %s %q", en2.h.Get("X-Cache"), en2.body, fr2.h.Get("X-Cache"), fr2.body)
	}
	if e.o.fetches.Load() != 2 {
		t.Errorf("fetches %d", e.o.fetches.Load())
	}
	if r := e.get(t, "/star?cc=max-age=60&vary=*"); r.h.Get("X-Cache") != Miss {
		t.Error(r.h.Get("X-Cache"))
	}
	if r := e.get(t, "/star?cc=max-age=60&vary=*"); r.h.Get("X-Cache") != Miss {
		t.Errorf("Vary: * served from cache")
	}
}

func TestInvalidation(t *testing.T) {
	e := setup(t, Config{})
	e.get(t, "/i?cc=max-age=60")
	e.get(t, "/other?cc=max-age=60")
	e.get(t, "/i?cc=max-age=60")
	if e.o.fetches.Load() != 2 {
		t.Fatalf("fetches %d", e.o.fetches.Load())
	}
	e.do(t, "POST", "/i?cc=max-age=60", "X-Want-Location", "/other?cc=max-age=60")
	if r := e.get(t, "/i?cc=max-age=60"); r.h.Get("X-Cache") != Miss {
		t.Errorf("after POST: %s", r.h.Get("X-Cache"))
	}
	if r := e.get(t, "/other?cc=max-age=60"); r.h.Get("X-Cache") != Miss {
		t.Errorf("Location after POST: %s", r.h.Get("X-Cache"))
	}
}

func TestCollapsing(t *testing.T) {
	e := setup(t, Config{})
	e.tr.MaxConnsPerHost = 0
	const n = 100
	var wg sync.WaitGroup
	hows := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.cl.Get(e.o.url + "/c?cc=max-age=60&sleep=200ms")
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			hows[i] = resp.Header.Get("X-Cache")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := e.o.fetches.Load(); got != 1 {
		t.Errorf("origin fetched %d times for %d concurrent requests, want 1", got, n)
	}
	misses := 0
	for _, h := range hows {
		if h == Miss {
			misses++
		}
	}
	if misses != 1 {
		t.Errorf("%d MISS answers, want 1", misses)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := NewStore(dir, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, Config{Store: st})
	e.get(t, "/p?cc=max-age=600")
	ctx := context.Background()
	e.tr.CloseIdleConnections()
	e.p.Shutdown(ctx) //nolint:errcheck
	// A write that a crash cut short left its temporary file: the store
	// removes it when it starts.
	leftover := filepath.Join(dir, ".0123.cache.tmp456")
	if err := os.WriteFile(leftover, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}

	st2, err := NewStore(dir, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a temporary file left by a crash is still there: %v", err)
	}
	p2 := New(Config{Store: st2})
	ln := testnet.ListenTCP(t)
	go p2.Serve(ln)        //nolint:errcheck
	defer p2.Shutdown(ctx) //nolint:errcheck
	pu, _ := url.Parse("http://" + ln.Addr().String())
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(e.o.url + "/p?cc=max-age=600")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Cache") != Hit || string(b) != "body /p lang= #1" || e.o.fetches.Load() != 1 {
		t.Errorf("after restart: %s %q fetches %d", resp.Header.Get("X-Cache"), b, e.o.fetches.Load())
	}
}

func TestStoreLRU(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		st, err := NewStore(dir, 3*(1000+512), 1500)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(strings.Repeat("x", 1000))
		put := func(k string) { st.Put(Meta{Key: k, Status: 200, Header: http.Header{}}, body) } //nolint:errcheck
		has := func(k string) bool {
			_, _, ok := st.Lookup(k, func(*Meta) bool { return true })
			return ok
		}
		put("a")
		put("b")
		put("c")
		has("a") // a is now the most recent
		put("d") // evicts b
		if !has("a") || has("b") || !has("c") || !has("d") {
			t.Errorf("dir %q: a %v b %v c %v d %v", dir, has("a"), has("b"), has("c"), has("d"))
		}
		if dir == "" {
			continue
		}
		st.Close()
		st2, err := NewStore(dir, 3*(1000+512), 1500)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := st2.Len(); n != 3 {
			t.Errorf("rebuilt %d entries, want 3", n)
		}
		if m, b, ok := st2.Lookup("d", func(*Meta) bool { return true }); !ok || len(b) != 1000 || m.Status != 200 {
			t.Errorf("d after rebuild: %v %d", ok, len(b))
		}
	}
}

func TestConnectTunnel(t *testing.T) {
	e := setup(t, Config{AllowConnect: func(string) bool { return true }})
	echo := testnet.ListenTCP(t)
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) //nolint:errcheck
	}()
	pu, _ := e.tr.Proxy(&http.Request{URL: &url.URL{Scheme: "http", Host: "x"}})
	c, err := net.Dial("tcp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", echo.Addr(), echo.Addr())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprint(c, "ping through the tunnel\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "ping through the tunnel\n" {
		t.Errorf("echo: %q %v", line, err)
	}
}
