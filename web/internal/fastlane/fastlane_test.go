package fastlane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// laneHandler answers /x from memory and /file from a file; it declines
// the rest.
type laneHandler struct{ file string }

func (h laneHandler) Respond(w *Response, r *Request) bool {
	switch r.Path {
	case "/x":
		w.Head = append(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-By: lane\r\n"...)
		w.Body = []byte("lane")
		return true
	case "/panic":
		panic("a bug in a handler")
	case "/mid":
		w.Head = append(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\nX-By: lane\r\n"...)
		w.Body = midBody
		return true
	case "/file":
		f, err := os.Open(h.file)
		if err != nil {
			return false
		}
		fi, _ := f.Stat()
		w.Head = append(w.Head, "HTTP/1.1 200 OK\r\nContent-Length: "...)
		w.Head = append(w.Head, strconv.FormatInt(fi.Size(), 10)+"\r\nX-By: lane\r\n"...)
		w.File, w.FileSize = f, fi.Size()
		return true
	}
	return false
}

// midBody is longer than copyBody: the lane writes it where it is.
var midBody = []byte(strings.Repeat("m", 20000))

// netHandler answers what net/http gets: it echoes a POST's body and
// names the path otherwise.
var netHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-By", "net/http")
	if r.Method == http.MethodPost {
		io.Copy(w, r.Body) //nolint:errcheck
		return
	}
	io.WriteString(w, "net:"+r.URL.Path) //nolint:errcheck
})

func start(t *testing.T, hs *http.Server) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte(strings.Repeat("0123456789", 20000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if hs.Handler == nil {
		hs.Handler = netHandler
	}
	s := &Server{HTTP: hs, Handler: laneHandler{file: file}}
	return s, testnet.Serve(t, s, testnet.ListenTCP(t), http.ErrServerClosed)
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	return c, bufio.NewReader(c)
}

// expect reads one response and checks who answered and its body.
func expect(t *testing.T, br *bufio.Reader, method, by, body string) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-By") != by || string(b) != body {
		t.Fatalf("got %d by %q body %.40q, want 200 by %q body %.40q", resp.StatusCode, resp.Header.Get("X-By"), b, by, body)
	}
	return resp
}

const get = "GET %s HTTP/1.1\r\nHost: x\r\n\r\n"

func req(path string) string { return strings.Replace(get, "%s", path, 1) }

func TestPipelinedAndHandedOff(t *testing.T) {
	s, addr := start(t, &http.Server{})
	c, br := dial(t, addr)
	// two the lane answers, then a POST (with a body) and a GET that
	// net/http must find in the bytes the lane had read, all in one write
	in := req("/x") + req("/mid") + req("/x") + req("/mid") + "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + req("/x")
	if _, err := io.WriteString(c, in); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		expect(t, br, "GET", "lane", "lane")
		expect(t, br, "GET", "lane", string(midBody))
	}
	expect(t, br, "POST", "net/http", "hello")
	expect(t, br, "GET", "net/http", "net:/x") // the connection stays with net/http
	if a, h := s.Stats(); a != 4 || h != 1 {
		t.Errorf("Stats = %d answered, %d handed off; want 4, 1", a, h)
	}
}

func TestDeclinedAndUnusual(t *testing.T) {
	_, addr := start(t, &http.Server{ErrorLog: log.New(io.Discard, "", 0)})
	for _, c := range []struct{ in, by, body string }{
		{req("/other"), "net/http", "net:/other"},
		{"GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "net/http", "net:/x"},
		{"GET /x?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", "net/http", "net:/x"},
		{"GET /x HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("a", 2*bufSize) + "\r\n\r\n", "net/http", "net:/x"},
	} {
		conn, br := dial(t, addr)
		io.WriteString(conn, c.in) //nolint:errcheck
		expect(t, br, "GET", c.by, c.body)
	}
	// garbage and a missing Host: net/http answers 400, and the server lives
	for _, in := range []string{"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", "GET /x HTTP/1.1\r\n\r\n"} {
		conn, br := dial(t, addr)
		io.WriteString(conn, in) //nolint:errcheck
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 400 {
			t.Fatalf("%q: %v %v, want 400", in, resp, err)
		}
	}
	// a handler that panics loses its connection, and the server lives
	conn, br := dial(t, addr)
	io.WriteString(conn, req("/panic")) //nolint:errcheck
	if _, err := br.ReadByte(); err == nil {
		t.Error("a response after a panic")
	}
	conn, br = dial(t, addr)
	io.WriteString(conn, req("/x")) //nolint:errcheck
	expect(t, br, "GET", "lane", "lane")
}

func TestHeadFileAndClose(t *testing.T) {
	_, addr := start(t, &http.Server{})
	c, br := dial(t, addr)
	io.WriteString(c, "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n"+req("/file")+"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") //nolint:errcheck
	resp := expect(t, br, "HEAD", "lane", "")
	if resp.ContentLength != 4 {
		t.Errorf("HEAD Content-Length %d, want 4", resp.ContentLength)
	}
	expect(t, br, "GET", "lane", strings.Repeat("0123456789", 20000))
	resp = expect(t, br, "GET", "lane", "lane")
	if !resp.Close {
		t.Error("no Connection: close after the client asked for it")
	}
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after Connection: close, read %d, %v; want EOF", n, err)
	}
}

func TestTimeouts(t *testing.T) {
	_, addr := start(t, &http.Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	closedWithin := func(c net.Conn, br *bufio.Reader, d time.Duration) {
		t.Helper()
		t0 := time.Now()
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("the server sent something")
		}
		if e := time.Since(t0); e > d {
			t.Errorf("closed after %v, want within %v", e, d)
		}
	}
	// a head that never ends
	c, br := dial(t, addr)
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ") //nolint:errcheck
	closedWithin(c, br, 2*time.Second)
	// a connection idle after a request
	c, br = dial(t, addr)
	io.WriteString(c, req("/x")) //nolint:errcheck
	expect(t, br, "GET", "lane", "lane")
	closedWithin(c, br, 2*time.Second)
	// a connection that never sends anything has the head timeout
	c, br = dial(t, addr)
	closedWithin(c, br, 2*time.Second)
}

func TestShutdownClosesIdleConnections(t *testing.T) {
	s := &Server{HTTP: &http.Server{Handler: netHandler}, Handler: laneHandler{}}
	ln := testnet.ListenTCP(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	lane, lbr := dial(t, ln.Addr().String())
	io.WriteString(lane, req("/x")) //nolint:errcheck
	expect(t, lbr, "GET", "lane", "lane")
	handed, hbr := dial(t, ln.Addr().String())
	io.WriteString(handed, req("/y")) //nolint:errcheck
	expect(t, hbr, "GET", "net/http", "net:/y")
	fresh, fbr := dial(t, ln.Addr().String())
	_ = fresh
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	for _, br := range []*bufio.Reader{lbr, hbr, fbr} {
		if _, err := br.ReadByte(); err == nil {
			t.Error("a connection is still open after Shutdown")
		}
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}
