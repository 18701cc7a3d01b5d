// Package origin is the course's Web server: an HTTP/1.1 origin server for
// the static files of one directory, on the standard library's net/http.
//
// It implements RFC 9110 (semantics: conditional requests with
// If-Modified-Since and If-None-Match answered 304, byte ranges answered
// 206, validators Last-Modified and ETag), RFC 9112 (persistent
// connections, with idle, header and write timeouts so that slow clients
// cannot hold it), Basic authorization (RFC 7617) for the paths an auth
// file lists, with bcrypt-hashed passwords, and a small cookie demo (RFC
// 6265): /cart issues an ID with Set-Cookie and remembers a cart per ID in
// a file that survives a restart. Each request is logged in the Combined
// Log Format and traced as one line ("GET /index.html -> 200 1234 bytes").
//
// What is known of a file (validators, type, and the bytes of a small
// file) is cached and trusted for Config.FileCacheValid before one stat
// checks that the file has not changed, like nginx's open_file_cache; a
// plain GET of a small file is then answered from memory without a system
// call, and a large one goes out with sendfile. The access log is
// buffered and written off the request path.
//
// No request reaches outside the directory: ".." segments are refused
// (also percent-encoded), and files are opened through an os.Root, which
// refuses symbolic links that lead out of it.
package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"appnet/trace"
	"appnet/web/internal/fastlane"
	"appnet/web/internal/httpx"
)

// Defaults for the zero Config fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultWriteTimeout      = 5 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 32 << 10
	DefaultRealm             = "appnet"
)

// ErrServerClosed is returned by Serve after Shutdown (it is net/http's).
var ErrServerClosed = http.ErrServerClosed

// Config is the origin server's settings. Zero durations and sizes take the
// defaults above.
type Config struct {
	Root      string // the directory served
	Auth      *Auth  // paths that need a user and password; nil: none
	Realm     string // the realm in WWW-Authenticate
	Listing   bool   // list directories that have no index.html
	MaxAge    time.Duration
	CartFile  string    // where carts are kept; "": in memory only
	AccessLog io.Writer // Combined Log Format, buffered: each line is written within a second, and all at Shutdown

	ReadHeaderTimeout time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int

	// FileCacheValid is how long what the server remembers of a file (its
	// validators, and the bytes of a small file) is used before a stat
	// checks that the file has not changed; 0: DefaultFileCacheValid;
	// negative: no cache, every request opens the file.
	FileCacheValid time.Duration
	// SmallFile is the largest file kept in memory; 0: DefaultSmallFile.
	SmallFile int64
	// NoFastLane serves every request through net/http. Otherwise plain
	// GETs and HEADs of cached files are answered by web/internal/fastlane.
	NoFastLane bool

	Host   string // the name in trace events
	Tracer *trace.Tracer
	Logger *slog.Logger
}

// Server serves one directory. It is an http.Handler; Serve runs it with
// the timeouts of its Config. The header values of a file's 200 response
// are shared by every response for that file (so that a request allocates
// nothing of ours): a handler that wraps Server may replace, delete or Add
// to them, but not write into the slices in place.
type Server struct {
	cfg   Config
	root  *os.Root
	carts *carts
	srv   *http.Server
	lane  *fastlane.Server // with no Handler when Config.NoFastLane or without a file cache
	files *fileCache       // nil when disabled
	log   *accessLog       // nil without an access log
	date  dateCache

	cacheControl string // the Cache-Control value of files, "" for none
}

// New opens cfg.Root and the cart file.
func New(cfg Config) (*Server, error) {
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Host == "" {
		cfg.Host = "origin"
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	c, err := loadCarts(cfg.CartFile)
	if err != nil {
		root.Close()
		return nil, err
	}
	var files *fileCache
	var cacheControl string
	if cfg.FileCacheValid == 0 {
		cfg.FileCacheValid = DefaultFileCacheValid
	}
	if cfg.SmallFile <= 0 {
		cfg.SmallFile = DefaultSmallFile
	}
	if cfg.MaxAge > 0 {
		cacheControl = "max-age=" + strconv.Itoa(int(cfg.MaxAge.Seconds()))
	}
	if cfg.FileCacheValid > 0 {
		files = newFileCache(cfg.FileCacheValid, cfg.SmallFile, cacheControl)
	}
	s := &Server{cfg: cfg, root: root, carts: c, files: files, cacheControl: cacheControl}
	if cfg.AccessLog != nil {
		s.log = newAccessLog(cfg.AccessLog)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	s.lane = &fastlane.Server{HTTP: s.srv}
	if !cfg.NoFastLane && files != nil {
		s.lane.Handler = s
	}
	return s, nil
}

// Serve accepts HTTP connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.lane.Serve(ln) }

// ListenAndServe listens on the TCP address addr and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting, closes idle connections, waits for the requests
// in progress (or ctx), writes out the access log and closes the directory.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.lane.Shutdown(ctx)
	if err != nil {
		s.lane.Close()
	}
	if s.log != nil {
		s.log.close()
	}
	s.root.Close()
	return err
}

// ServeHTTP answers one request: the cart demo at /cart, files elsewhere.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.log == nil && !s.cfg.Tracer.Enabled() {
		s.serve(w, r) // nothing to record
		return
	}
	var start time.Time
	if s.log != nil {
		start = time.Now()
	}
	rec := &httpx.Recorder{ResponseWriter: w}
	user := s.serve(rec, r)
	status := rec.StatusOrOK()
	if s.log != nil {
		s.log.log(r, user, status, rec.Bytes, start)
	}
	if s.cfg.Tracer.Enabled() {
		local, remote := httpx.Addrs(r)
		s.traceExchange(local, remote, r.Method, r.URL.RequestURI(), status, rec.Bytes)
	}
}

// traceExchange reports one request and its answer as one event.
func (s *Server) traceExchange(local, remote net.Addr, method, uri string, status int, bytes int64) {
	c := s.cfg.Tracer.Conv(s.cfg.Host, "http/tcp", trace.Server, local, remote)
	c.Send(fmt.Sprintf("%s %s -> %d %d bytes", method, uri, status, bytes))
}

// serve answers r and returns the authenticated user, if any.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) string {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		http.Error(w, "400 bad request", http.StatusBadRequest)
		return ""
	}
	// RFC 9110 §4.2.4 lets a server refuse dot-segments; r.URL.Path is
	// already percent-decoded, so %2e%2e is caught here too.
	if hasDotDot(p) {
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return ""
	}
	clean := path.Clean(p)
	user, ok := s.authorize(w, r, clean)
	if !ok {
		return user
	}
	if clean == "/cart" {
		s.serveCart(w, r)
		return user
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return user
	}
	s.serveFile(w, r, clean, strings.HasSuffix(p, "/"))
	return user
}

// hasDotDot says whether the path p has a ".." segment.
func hasDotDot(p string) bool {
	for p != "" {
		seg := p
		if i := strings.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if seg == ".." {
			return true
		}
	}
	return false
}

// authorize applies RFC 7617 Basic authorization to protected paths. It
// writes the 401 itself when the request may not proceed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, clean string) (string, bool) {
	if s.cfg.Auth == nil {
		return "", true
	}
	users := s.cfg.Auth.Users(clean)
	if users == nil {
		return "", true
	}
	name, pass, ok := r.BasicAuth()
	if ok && s.cfg.Auth.Verify(users, name, pass) {
		return name, true
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q, charset="UTF-8"`, s.cfg.Realm))
	http.Error(w, "401 unauthorized", http.StatusUnauthorized)
	if ok {
		return name, false
	}
	return "", false
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, clean string, slash bool) {
	key := clean
	if slash && clean != "/" {
		key += "/"
	}
	if s.files != nil {
		if e := s.files.get(key); e != nil {
			now := monoNow()
			if (s.files.fresh(e, now) || s.recheck(key, e, now)) && s.serveEntry(w, r, e, nil) {
				return
			}
		}
	}
	name := strings.TrimPrefix(clean, "/")
	if name == "" {
		name = "."
	}
	f, err := s.root.Open(name)
	if err != nil {
		fileError(w, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fileError(w, err)
		return
	}
	if fi.IsDir() {
		if !slash && clean != "/" {
			u := *r.URL
			u.Path = clean + "/"
			http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
			return
		}
		name = path.Join(name, "index.html")
		idx, err := s.root.Open(name)
		if err != nil {
			if s.cfg.Listing && errors.Is(err, fs.ErrNotExist) {
				s.list(w, r, f, clean)
				return
			}
			http.Error(w, "403 forbidden", http.StatusForbidden)
			return
		}
		defer idx.Close()
		if fi, err = idx.Stat(); err != nil || !fi.Mode().IsRegular() {
			http.Error(w, "403 forbidden", http.StatusForbidden)
			return
		}
		f = idx
	} else if !fi.Mode().IsRegular() {
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return
	}
	if s.files != nil {
		if e, ok := s.files.newEntry(name, f, fi); ok {
			s.files.put(key, e)
			if s.serveEntry(w, r, e, f) {
				return
			}
		}
	}
	// ServeContent checks If-None-Match and If-Range against the ETag set
	// here; it sets Last-Modified, Content-Type and handles Range.
	w.Header().Set("ETag", ETag(fi))
	if s.cacheControl != "" {
		w.Header().Set("Cache-Control", s.cacheControl)
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// recheck stats a cached entry's file through the root: when it is
// unchanged the entry is good for another while, otherwise it goes.
func (s *Server) recheck(key string, e *fileEntry, now int64) bool {
	fi, err := s.root.Stat(e.name)
	if err != nil || !sameFile(e.fi, fi) {
		s.files.remove(key, e)
		return false
	}
	e.checked.Store(now)
	return true
}

// serveEntry answers r from a cached entry: from memory for a small file,
// else from f (opened here when nil), with sendfile. Requests with
// conditions or ranges go through http.ServeContent. It returns false,
// having written nothing, when the file changed since e was made.
func (s *Server) serveEntry(w http.ResponseWriter, r *http.Request, e *fileEntry, f *os.File) bool {
	if e.data == nil && f == nil {
		var err error
		if f, err = s.root.Open(e.name); err != nil {
			return false
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !sameFile(e.fi, fi) {
			return false
		}
	}
	h := w.Header()
	e.setHeader(h)
	if !plainGet(r) {
		// ServeContent sets Content-Length for what it sends
		delete(w.Header(), "Content-Length")
		var content io.ReadSeeker = f
		if e.data != nil {
			content = bytes.NewReader(e.data)
		}
		http.ServeContent(w, r, e.fi.Name(), e.fi.ModTime(), content)
		return true
	}
	h["Date"] = s.date.get() // what net/http would add, formatted once a second
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return true
	}
	if e.data != nil {
		w.Write(e.data) //nolint:errcheck
		return true
	}
	// the ResponseWriter's ReadFrom sends an *os.File (here limited to
	// the length announced) with sendfile
	io.Copy(w, io.LimitReader(f, e.fi.Size())) //nolint:errcheck
	return true
}

// Respond answers a simple request for the fast lane from the file cache:
// a GET or HEAD of a regular file, outside /cart and the paths that need
// authorization, with no range and no condition but a single If-None-Match
// tag or an If-Modified-Since (answered 200 or 304 as ServeContent would). It declines everything else,
// and the request goes to net/http and ServeHTTP. It logs and traces what
// it answers as ServeHTTP does, but before the response is written.
func (s *Server) Respond(w *fastlane.Response, r *fastlane.Request) bool {
	var start time.Time
	if s.log != nil {
		start = time.Now()
	}
	for _, f := range laneDeclines {
		if r.Has(f) {
			return false
		}
	}
	key, clean := r.Path, r.Path // already clean, maybe with a trailing slash
	if len(clean) > 1 && clean[len(clean)-1] == '/' {
		clean = clean[:len(clean)-1]
	}
	if clean == "/cart" || s.cfg.Auth != nil && s.cfg.Auth.Users(clean) != nil {
		return false
	}
	e := s.files.get(key)
	if now := monoNow(); e == nil || !s.files.fresh(e, now) && !s.recheck(key, e, now) {
		if e = s.load(key, clean); e == nil {
			return false
		}
	}
	notMod, ok := e.notModified(r)
	if !ok {
		return false
	}
	if notMod {
		w.Head = append(append(w.Head, e.head304...), s.date.line()...)
		if s.log != nil || s.cfg.Tracer.Enabled() {
			s.laneRecord(r, http.StatusNotModified, 0, start)
		}
		return true
	}
	if e.data == nil {
		f, err := s.root.Open(e.name)
		if err != nil {
			return false
		}
		if fi, err := f.Stat(); err != nil || !sameFile(e.fi, fi) {
			f.Close()
			return false
		}
		w.File, w.FileSize = f, e.fi.Size()
	}
	w.Head = append(append(w.Head, e.head...), s.date.line()...)
	w.Body = e.data
	if s.log != nil || s.cfg.Tracer.Enabled() {
		s.laneRecord(r, http.StatusOK, e.fi.Size(), start)
	}
	return true
}

// laneRecord logs and traces a response the lane sends.
func (s *Server) laneRecord(r *fastlane.Request, status int, size int64, start time.Time) {
	if r.Method == http.MethodHead {
		size = 0
	}
	if s.log != nil {
		ref, _ := r.Get("referer")
		ua, _ := r.Get("user-agent")
		s.log.logEntry(&httpx.Entry{Remote: r.Conn.RemoteAddr().String(), Method: r.Method, URI: r.Path, Proto: "HTTP/1.1",
			Referer: string(ref), UserAgent: string(ua), Status: status, Bytes: size, Time: start})
	}
	if s.cfg.Tracer.Enabled() {
		s.traceExchange(r.Conn.LocalAddr(), r.Conn.RemoteAddr(), r.Method, r.Path, status, size)
	}
}

// load reads the regular file at key into the file cache, as serveFile
// would: a key that ends in "/" is the directory's index.html. It returns
// nil for anything else (a directory, a missing file), which serveFile
// answers.
func (s *Server) load(key, clean string) *fileEntry {
	name := strings.TrimPrefix(clean, "/")
	if strings.HasSuffix(key, "/") {
		name = path.Join(name, "index.html")
	} else if name == "" {
		return nil
	}
	f, err := s.root.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	e, ok := s.files.newEntry(name, f, fi)
	if !ok {
		return nil
	}
	s.files.put(key, e)
	return e
}

// ETag is a file's entity tag: its modification time and size in hex, as
// nginx makes them, so it changes whenever the file does.
func ETag(fi fs.FileInfo) string {
	return fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size())
}

func fileError(w http.ResponseWriter, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	// a symlink out of the root, a permission problem, a name too long
	http.Error(w, "403 forbidden", http.StatusForbidden)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, dir *os.File, clean string) {
	ents, err := dir.ReadDir(10000)
	if err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, "403 forbidden", http.StatusForbidden)
		return
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<title>Index of %s</title>\n<h1>Index of %s</h1>\n<ul>\n", html.EscapeString(clean), html.EscapeString(clean))
	for _, e := range ents {
		n, u := e.Name(), url.PathEscape(e.Name())
		if e.IsDir() {
			n, u = n+"/", u+"/"
		}
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a></li>\n", html.EscapeString(u), html.EscapeString(n))
	}
	b.WriteString("</ul>\n")
	if r.Method != http.MethodHead {
		io.WriteString(w, b.String()) //nolint:errcheck
	}
}
