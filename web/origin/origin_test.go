package origin

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// site makes a directory with a few files, a protected folder and a
// symlink that points outside it.
func site(t testing.TB) (dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "www")
	outside = filepath.Join(base, "secret.txt")
	must(t, os.MkdirAll(filepath.Join(dir, "private"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "empty"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html><img src=\"a.png\"></html>\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "digits.txt"), []byte("0123456789abcdefghij"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "private", "plan.txt"), []byte("world domination\n"), 0o644))
	must(t, os.WriteFile(outside, []byte("outside the root\n"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "escape.txt")))
	must(t, os.Symlink("digits.txt", filepath.Join(dir, "inside.txt")))
	return dir, outside
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const alicePass = "wonderland"

func authFile(t *testing.T) *Auth {
	h, err := HashPassword(alicePass, 0)
	must(t, err)
	a, err := ParseAuth(strings.NewReader("# test\n/private alice "+h+"\n"), "auth")
	must(t, err)
	return a
}

type running struct {
	s    *Server
	url  string
	done chan error
	log  *syncBuf
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	return startLogged(t, cfg, &syncBuf{})
}

// startLane starts a server without an access log, so that the fast lane
// answers what it can.
func startLane(t *testing.T, cfg Config) *running { return startLogged(t, cfg, nil) }

// startLogged starts a server that logs to log, or keeps no log if nil.
func startLogged(t *testing.T, cfg Config, log *syncBuf) *running {
	t.Helper()
	if log != nil {
		cfg.AccessLog = log
	}
	s, err := New(cfg)
	must(t, err)
	ln := testnet.ListenTCP(t)
	r := &running{s: s, url: "http://" + ln.Addr().String(), done: make(chan error, 1), log: log}
	go func() { r.done <- s.Serve(ln) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.s.Shutdown(ctx) //nolint:errcheck
	if err := <-r.done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	r.s = nil
}

// curl runs curl with args and returns the response head and body.
func curl(t *testing.T, args ...string) (status int, head, body string) {
	t.Helper()
	bin := testnet.NeedTool(t, "curl")
	dir := t.TempDir()
	hf := filepath.Join(dir, "head")
	args = append([]string{"-sS", "--max-time", "10", "-D", hf, "-o", filepath.Join(dir, "body")}, args...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	h, _ := os.ReadFile(hf)
	b, _ := os.ReadFile(filepath.Join(dir, "body"))
	m := regexp.MustCompile(`(?m)^HTTP/1\.1 (\d{3})`).FindAllStringSubmatch(string(h), -1)
	if len(m) == 0 {
		t.Fatalf("curl %v: no status line in %q", args, h)
	}
	var code int
	for _, c := range m[len(m)-1][1] {
		code = code*10 + int(c-'0')
	}
	return code, string(h), string(b)
}

func header(head, name string) string {
	m := regexp.MustCompile(`(?mi)^` + name + `: (.*?)\r?$`).FindStringSubmatch(head)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestCurlAuthorization(t *testing.T) {
	dir, _ := site(t)
	r := start(t, Config{Root: dir, Auth: authFile(t), Realm: "plans"})
	code, head, _ := curl(t, r.url+"/private/plan.txt")
	if code != 401 || !strings.Contains(header(head, "WWW-Authenticate"), `Basic realm="plans"`) {
		t.Fatalf("without credentials: %d, head\n%s", code, head)
	}
	if code, _, _ := curl(t, "-u", "alice:wrong", r.url+"/private/plan.txt"); code != 401 {
		t.Errorf("wrong password: %d, want 401", code)
	}
	code, _, body := curl(t, "-u", "alice:"+alicePass, r.url+"/private/plan.txt")
	if code != 200 || body != "world domination\n" {
		t.Errorf("with credentials: %d %q", code, body)
	}
	if code, _, _ := curl(t, r.url+"/digits.txt"); code != 200 {
		t.Errorf("unprotected: %d", code)
	}
	r.stop(t) // the access log is buffered until Shutdown (or a second)
	if !strings.Contains(r.log.String(), `"GET /private/plan.txt HTTP/1.1" 200 17 "-" "curl/`) || !strings.Contains(r.log.String(), " - alice [") {
		t.Errorf("access log:\n%s", r.log)
	}
}

func TestCurlCartAcrossRestart(t *testing.T) {
	dir, _ := site(t)
	cartFile := filepath.Join(t.TempDir(), "carts.json")
	jar := filepath.Join(t.TempDir(), "jar")
	r := start(t, Config{Root: dir, CartFile: cartFile})
	code, head, body := curl(t, "-c", jar, r.url+"/cart")
	sc := header(head, "Set-Cookie")
	if code != 200 || !strings.HasPrefix(sc, "cart=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") {
		t.Fatalf("first visit: %d %q\n%s", code, body, head)
	}
	id := strings.TrimPrefix(strings.SplitN(sc, ";", 2)[0], "cart=")
	curl(t, "-b", jar, "-c", jar, "-d", "item=book", r.url+"/cart")
	_, head, body = curl(t, "-b", jar, "-c", jar, "-d", "item=pen", r.url+"/cart")
	if header(head, "Set-Cookie") != "" || body != "cart "+id+": 2 items\nbook\npen\n" {
		t.Fatalf("after two items: %q\n%s", body, head)
	}
	r.stop(t)

	r2 := start(t, Config{Root: dir, CartFile: cartFile})
	_, _, body = curl(t, "-b", jar, r2.url+"/cart")
	if body != "cart "+id+": 2 items\nbook\npen\n" {
		t.Fatalf("after restart: %q", body)
	}
	// another client gets another cart
	_, _, body = curl(t, r2.url+"/cart")
	if strings.Contains(body, id) || !strings.HasSuffix(body, ": 0 items\n") {
		t.Errorf("new client: %q", body)
	}
}

func TestCurlConditional(t *testing.T) {
	dir, _ := site(t)
	r := start(t, Config{Root: dir})
	code, head, _ := curl(t, r.url+"/digits.txt")
	etag, lm := header(head, "ETag"), header(head, "Last-Modified")
	if code != 200 || etag == "" || lm == "" || header(head, "Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("first GET: %d\n%s", code, head)
	}
	if code, _, body := curl(t, "-H", "If-None-Match: "+etag, r.url+"/digits.txt"); code != 304 || body != "" {
		t.Errorf("If-None-Match: %d %q", code, body)
	}
	if code, _, _ := curl(t, "-H", `If-None-Match: "other"`, r.url+"/digits.txt"); code != 200 {
		t.Errorf("If-None-Match other tag: %d", code)
	}
	if code, _, _ := curl(t, "-H", "If-Modified-Since: "+lm, r.url+"/digits.txt"); code != 304 {
		t.Errorf("If-Modified-Since: %d", code)
	}
	if code, _, _ := curl(t, "-H", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT", r.url+"/digits.txt"); code != 200 {
		t.Errorf("If-Modified-Since long ago: %d", code)
	}
}

func TestCurlRange(t *testing.T) {
	dir, _ := site(t)
	r := start(t, Config{Root: dir})
	code, head, body := curl(t, "-r", "5-9", r.url+"/digits.txt")
	if code != 206 || body != "56789" || header(head, "Content-Range") != "bytes 5-9/20" {
		t.Errorf("range: %d %q\n%s", code, body, head)
	}
	if code, _, body := curl(t, "-r", "-3", r.url+"/digits.txt"); code != 206 || body != "hij" {
		t.Errorf("suffix range: %d %q", code, body)
	}
	if code, _, _ := curl(t, "-r", "50-60", r.url+"/digits.txt"); code != 416 {
		t.Errorf("unsatisfiable range: %d", code)
	}
}

func TestCurlTraversal(t *testing.T) {
	dir, _ := site(t)
	t.Run("net/http", func(t *testing.T) { traversal(t, start(t, Config{Root: dir})) })
	t.Run("fast lane", func(t *testing.T) { traversal(t, startLane(t, Config{Root: dir})) })
}

func traversal(t *testing.T, r *running) {
	for _, c := range []struct{ name, path string }{
		{"dot-dot", "/../secret.txt"},
		{"dot-dot deeper", "/private/../../secret.txt"},
		{"encoded", "/%2e%2e/secret.txt"},
		{"encoded slash", "/..%2fsecret.txt"},
		{"symlink out", "/escape.txt"},
	} {
		code, _, body := curl(t, "--path-as-is", r.url+c.path)
		if code != 403 && code != 404 || strings.Contains(body, "outside") {
			t.Errorf("%s (%s): %d %q", c.name, c.path, code, body)
		}
	}
	if code, _, body := curl(t, r.url+"/inside.txt"); code != 200 || body != "0123456789abcdefghij" {
		t.Errorf("symlink inside: %d %q", code, body)
	}
}

func TestDirectories(t *testing.T) {
	dir, _ := site(t)
	r := start(t, Config{Root: dir})
	get := func(p string) (*http.Response, string) {
		cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := cl.Get(r.url + p)
		must(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body) //nolint:errcheck
		return resp, b.String()
	}
	if resp, body := get("/"); resp.StatusCode != 200 || !strings.Contains(body, "<img") {
		t.Errorf("/: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("/empty/"); resp.StatusCode != 403 {
		t.Errorf("/empty/ without listing: %d", resp.StatusCode)
	}
	if resp, _ := get("/empty"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/empty/" {
		t.Errorf("/empty: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get("/nope.txt"); resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("PUT", r.url+"/digits.txt", strings.NewReader("x"))
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}
