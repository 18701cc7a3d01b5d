package proxy

import (
	"net/http"
	"net/url"
	"testing"
)

// FuzzFastKey: whenever fastKey makes a key, it is the one target makes,
// for origins with and without a path.
func FuzzFastKey(f *testing.F) {
	for _, s := range []string{"/1k.bin", "/a/b/c.html?x=1&y=2", "/a%20b", "/%2e%2e/x", "/a:b@c;d=e,f$g&h+i~j", "/ü", "/a?", "/a#frag", "//x", "/a?b=%zz"} {
		f.Add(s)
	}
	origins := []string{"http://127.0.0.1:8080/", "http://127.0.0.1:8080", "http://example.test/base/", "http://user@example.test/b", "http://example.test/a%20b/", "http://example.test/?q"}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{Method: http.MethodGet, URL: u, RequestURI: target}
		for _, o := range origins {
			ou, err := url.Parse(o)
			if err != nil {
				t.Fatal(err)
			}
			p := &Proxy{cfg: Config{Origin: ou}, keyPrefix: keyPrefixOf(ou)}
			key, ok := p.fastKey(r)
			if !ok {
				continue
			}
			tu, err := p.target(r)
			if err != nil {
				t.Fatalf("origin %s, %q: fastKey %q but target: %v", o, target, key, err)
			}
			if want := tu.String(); key != want {
				t.Fatalf("origin %s, %q: fastKey %q, target %q", o, target, key, want)
			}
		}
	})
}

func TestFastKeyUsed(t *testing.T) {
	ou, _ := url.Parse("http://127.0.0.1:8080/")
	p := &Proxy{cfg: Config{Origin: ou}, keyPrefix: keyPrefixOf(ou)}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/1k.bin"}}
	if key, ok := p.fastKey(r); !ok || key != "http://127.0.0.1:8080/1k.bin" {
		t.Errorf("fastKey = %q, %v", key, ok)
	}
	if keyPrefixOf(nil) != "" {
		t.Error("a forward proxy has a key prefix")
	}
}
