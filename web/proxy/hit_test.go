package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
)

// TestHitSharesNothing: hits answer from values worked out when the
// response was stored; nothing a response adds (Via, Age) may leak into
// the stored header or into the next response.
func TestHitSharesNothing(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Via", "1.1 upstream")
		w.Header().Set("ETag", `W/"e1"`)
		w.Write([]byte("hello")) //nolint:errcheck
	}))
	defer o.Close()
	u, _ := url.Parse(o.URL)
	p := New(Config{Origin: u, Name: "edge"})
	defer p.Shutdown(t.Context()) //nolint:errcheck
	get := func(hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/x", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		return w
	}
	if w := get(); w.Header().Get("X-Cache") != Miss {
		t.Fatalf("first: %v", w.Header())
	}
	for i := range 3 {
		w := get()
		h := w.Header()
		if w.Code != 200 || w.Body.String() != "hello" || h.Get("X-Cache") != Hit || h.Get("Age") == "" || h.Get("Content-Length") != "5" {
			t.Fatalf("hit %d: %d %q %v", i, w.Code, w.Body, h)
		}
		if !slices.Equal(h.Values("Via"), []string{"1.1 upstream", "1.1 edge"}) {
			t.Fatalf("hit %d: Via %q", i, h.Values("Via"))
		}
		if _, err := strconv.Atoi(h.Get("Age")); err != nil {
			t.Fatalf("hit %d: Age %q", i, h.Get("Age"))
		}
		for _, v := range h { // a handler after us may change its header in place
			for j := range v {
				v[j] = "scribbled"
			}
		}
	}
	if w := get("If-None-Match", `"e1"`); w.Code != 304 || w.Header().Get("Content-Length") != "" {
		t.Errorf("If-None-Match weak tag: %d %v", w.Code, w.Header())
	}
	if w := get("If-None-Match", `"e2"`); w.Code != 200 {
		t.Errorf("If-None-Match other tag: %d", w.Code)
	}
	if w := get("Authorization", "Basic eDp5"); w.Header().Get("X-Cache") == Hit {
		t.Errorf("a request with Authorization was answered from the cache")
	}
}
