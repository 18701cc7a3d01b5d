package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/internal/testnet"
	"appnet/web/origin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const page = `<!doctype html><html><head>
<link rel="stylesheet" href="style.css"><script src="/app.js"></script></head>
<body><img src="a.png"><img src="b.png"><IMG SRC="c.png"><img src="a.png#dup">
<a href="not-an-object.html">x</a><img src="mailto:x"></body></html>`

func TestReferences(t *testing.T) {
	base, _ := url.Parse("http://www.umass.test/dir/index.html")
	var got []string
	for _, u := range References(strings.NewReader(page), base) {
		got = append(got, u.String())
	}
	want := "http://www.umass.test/dir/style.css http://www.umass.test/app.js http://www.umass.test/dir/a.png http://www.umass.test/dir/b.png http://www.umass.test/dir/c.png"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func startSite(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{"index.html": page, "style.css": "body{}", "app.js": "1", "a.png": "A", "b.png": "B", "c.png": "C"}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := origin.New(origin.Config{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	ln := testnet.ListenTCP(t)
	go s.Serve(ln)                                         //nolint:errcheck
	t.Cleanup(func() { s.Shutdown(context.Background()) }) //nolint:errcheck
	return "http://" + ln.Addr().String() + "/"
}

// TestModesOrder checks the course's comparison with a 50 ms emulated RTT
// and 5 objects: non-persistent > persistent > pipelined, by comparing the
// totals with each other.
func TestModesOrder(t *testing.T) {
	u := startSite(t)
	totals := map[Mode]time.Duration{}
	for _, m := range []Mode{NonPersistent, Persistent, Pipelined} {
		f := &Fetcher{Mode: m, RTT: 50 * time.Millisecond}
		res, err := f.Get(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Objects) != 5 {
			t.Fatalf("%v: %d objects", m, len(res.Objects))
		}
		for _, o := range res.Objects {
			if o.Err != nil || o.Status != http.StatusOK || o.Bytes == 0 {
				t.Errorf("%v: %s: %d %d %v", m, o.URL, o.Status, o.Bytes, o.Err)
			}
		}
		wantConns := map[Mode]int{NonPersistent: 6, Persistent: 1, Pipelined: 1}[m]
		if res.Conns != wantConns {
			t.Errorf("%v: %d connections, want %d", m, res.Conns, wantConns)
		}
		totals[m] = res.Total
		t.Logf("%v: total %v", m, res.Total)
	}
	if !(totals[NonPersistent] > totals[Persistent] && totals[Persistent] > totals[Pipelined]) {
		t.Errorf("totals out of order: %v", totals)
	}
}

func ExampleReferences() {
	base, _ := url.Parse("http://www.umass.test/")
	for _, u := range References(strings.NewReader(`<img src="cat.jpg"><script src="/s.js"></script>`), base) {
		fmt.Println(u)
	}
	// Output:
	// http://www.umass.test/cat.jpg
	// http://www.umass.test/s.js
}
