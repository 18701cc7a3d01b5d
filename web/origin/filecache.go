package origin

import (
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"appnet/web/internal/fastlane"
)

// Defaults of the file cache.
const (
	// DefaultFileCacheValid is how long a file's cached metadata (and, for
	// a small file, its bytes) is used before one stat through the root
	// checks that the file has not changed; nginx's open_file_cache_valid.
	DefaultFileCacheValid = time.Second
	// DefaultSmallFile is the largest file whose bytes are kept in memory;
	// larger files are opened for each request and sent with sendfile.
	DefaultSmallFile = 64 << 10

	fileCacheEntries = 4096
	fileCacheBytes   = 64 << 20
)

// fileCache keeps, per request path, what serving a regular file needs: its
// header values formatted once and, for a small file, its bytes. An entry
// is trusted for valid after it was last checked; then a Stat through the
// root compares the file's identity, size and modification time, and a
// changed file is read again. Entries are immutable once published, except
// for their check time.
type fileCache struct {
	valid        time.Duration
	small        int64
	cacheControl string // the server's Cache-Control for files, "" for none

	mu    sync.RWMutex
	m     map[string]*fileEntry
	bytes int64
}

type fileEntry struct {
	name    string       // the file's name inside the root
	fi      fs.FileInfo  // from the Stat of the file that was read
	checked atomic.Int64 // monoNow when the file was last known unchanged

	data []byte // the whole file when it is small; nil otherwise

	// the header fields of a 200 with the whole file, each value a slice
	// whose capacity is its length, shared by every response and never
	// modified: net/http and http.Header only replace or delete values,
	// and an Add to a full slice copies it
	header [6]struct {
		key string
		val []string
	}
	nheader int
	// the same fields as the fast lane sends them, after the status line,
	// and those of a 304
	head, head304 []byte
	etag          string
	modTime       time.Time // to the second; zero when Last-Modified is not sent
}

func newFileCache(valid time.Duration, small int64, cacheControl string) *fileCache {
	return &fileCache{valid: valid, small: small, cacheControl: cacheControl, m: map[string]*fileEntry{}}
}

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow is the time in nanoseconds on the monotonic clock, cheaper than
// time.Now (one clock read instead of two).
func monoNow() int64 { return int64(time.Since(monoBase)) }

func (c *fileCache) get(name string) *fileEntry {
	c.mu.RLock()
	e := c.m[name]
	c.mu.RUnlock()
	return e
}

// fresh says whether e may be used without a check at now.
func (c *fileCache) fresh(e *fileEntry, now int64) bool {
	return now-e.checked.Load() < int64(c.valid)
}

func (c *fileCache) put(key string, e *fileEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[key]; ok {
		c.bytes -= int64(len(old.data))
		delete(c.m, key)
	}
	// bounded: drop arbitrary entries (map order) until the new one fits
	for k, v := range c.m {
		if len(c.m) < fileCacheEntries && c.bytes+int64(len(e.data)) <= fileCacheBytes {
			break
		}
		c.bytes -= int64(len(v.data))
		delete(c.m, k)
	}
	if int64(len(e.data)) > fileCacheBytes {
		return
	}
	c.m[key] = e
	c.bytes += int64(len(e.data))
}

// remove drops e, if it is still the entry for key.
func (c *fileCache) remove(key string, e *fileEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[key] == e {
		c.bytes -= int64(len(e.data))
		delete(c.m, key)
	}
}

// sameFile says whether two Stats describe the same unchanged file.
func sameFile(a, b fs.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode() && os.SameFile(a, b)
}

// newEntry describes the regular file f (whose Stat is fi), reading it
// whole when it is small. ok is false when the file changed while it was
// read.
func (c *fileCache) newEntry(name string, f *os.File, fi fs.FileInfo) (e *fileEntry, ok bool) {
	e = &fileEntry{name: name, fi: fi}
	var lastModified string
	if t := fi.ModTime(); !t.IsZero() && !t.Equal(time.Unix(0, 0)) {
		lastModified = t.UTC().Format(http.TimeFormat)
	}
	ctype := mime.TypeByExtension(path.Ext(fi.Name()))
	var sniff []byte
	if fi.Size() <= c.small {
		e.data = make([]byte, fi.Size())
		if _, err := f.ReadAt(e.data, 0); err != nil {
			return nil, false
		}
		sniff = e.data
	} else if ctype == "" {
		sniff = make([]byte, 512)
		n, err := f.ReadAt(sniff, 0)
		if err != nil && err != io.EOF {
			return nil, false
		}
		sniff = sniff[:n]
	}
	if ctype == "" {
		// what http.ServeContent does
		ctype = http.DetectContentType(sniff[:min(len(sniff), 512)])
	}
	if after, err := f.Stat(); err != nil || !sameFile(fi, after) {
		return nil, false
	}
	e.add("Etag", ETag(fi))
	e.add("Content-Type", ctype)
	e.add("Accept-Ranges", "bytes")
	e.add("Content-Length", strconv.FormatInt(fi.Size(), 10))
	if lastModified != "" {
		e.add("Last-Modified", lastModified)
	}
	if c.cacheControl != "" {
		e.add("Cache-Control", c.cacheControl)
	}
	e.head = append(e.head, "HTTP/1.1 200 OK\r\n"...)
	e.head304 = append(e.head304, "HTTP/1.1 304 Not Modified\r\n"...)
	for _, f := range e.header[:e.nheader] {
		line := f.key + ": " + f.val[0] + "\r\n"
		e.head = append(e.head, line...)
		switch f.key {
		case "Content-Type", "Content-Length", "Last-Modified":
			// what http.ServeContent drops from a 304 (Last-Modified
			// because there is an ETag)
		default:
			e.head304 = append(e.head304, line...)
		}
	}
	e.etag = ETag(fi)
	if lastModified != "" {
		e.modTime = fi.ModTime().Truncate(time.Second)
	}
	e.checked.Store(monoNow())
	return e, true
}

func (e *fileEntry) add(key, val string) {
	e.header[e.nheader].key = key
	e.header[e.nheader].val = []string{val}[:1:1]
	e.nheader++
}

// setHeader sets the header fields of a 200 response with the whole file
// (what http.ServeContent would set), Content-Length included, and the
// server's Cache-Control. The values are the entry's, shared read-only by
// every response (see fileEntry.header): whoever wraps the server's
// handler may replace or delete them, or Add to them, but not write into
// them.
func (e *fileEntry) setHeader(h http.Header) {
	for _, f := range e.header[:e.nheader] {
		h[f.key] = f.val
	}
}

// dateCache is the Date header value of the current second, formatted once
// a second rather than for every response.
type dateCache struct {
	v atomic.Pointer[dateValue]
}

type dateValue struct {
	until int64    // monoNow when the next second starts
	val   []string // len == cap: shared read-only
	line  []byte   // "Date: <val>\r\n"
}

// get returns the Date value for now.
func (d *dateCache) get() []string { return d.now().val }

// line returns the Date header line for now, CRLF included.
func (d *dateCache) line() []byte { return d.now().line }

func (d *dateCache) now() *dateValue {
	if v := d.v.Load(); v != nil && monoNow() < v.until {
		return v
	}
	t := time.Now()
	mono := int64(t.Sub(monoBase))
	val := t.UTC().Format(http.TimeFormat)
	v := &dateValue{
		until: mono + int64(time.Second) - int64(t.Nanosecond()),
		val:   []string{val}[:1:1],
		line:  []byte("Date: " + val + "\r\n"),
	}
	d.v.Store(v)
	return v
}

// plainGet says whether r is a GET or HEAD without the header fields that
// make http.ServeContent answer anything but 200 with the whole file.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, f := range conditionFields {
		if _, ok := r.Header[f]; ok {
			return false
		}
	}
	return true
}

// conditionFields are the request fields that can make the answer to a GET
// other than 200 with the whole file.
var conditionFields = [...]string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"}

// laneDeclines are the request fields that send a request from the fast
// lane to ServeHTTP: the conditions and ranges Respond does not evaluate.
var laneDeclines = [...]string{"range", "if-match", "if-unmodified-since", "if-range"}

// notModified evaluates a plain GET's If-None-Match, or without it its
// If-Modified-Since, against e as http.ServeContent does. ok is false for
// what the lane leaves to ServeContent: a list of tags, "*", a malformed
// tag or date, a file without Last-Modified.
func (e *fileEntry) notModified(r *fastlane.Request) (notMod, ok bool) {
	if inm, has := r.Get("if-none-match"); has {
		tag := strings.TrimPrefix(string(inm), "W/")
		if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || strings.ContainsAny(tag[1:len(tag)-1], "\",* \t") {
			return false, false
		}
		for i := 1; i < len(tag)-1; i++ {
			if c := tag[i]; c < 0x21 || c == 0x7f {
				return false, false
			}
		}
		return tag == e.etag, true
	}
	if ims, has := r.Get("if-modified-since"); has {
		t, err := http.ParseTime(string(ims))
		if err != nil || e.modTime.IsZero() {
			return false, false
		}
		return !e.modTime.After(t), true
	}
	return false, true
}
