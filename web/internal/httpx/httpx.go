// Package httpx holds the small pieces the web packages share: a response
// recorder that keeps sendfile working, the Combined Log Format, and
// addresses for trace conversations.
package httpx

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Recorder wraps a ResponseWriter and remembers the status and the number
// of body bytes written. It forwards ReadFrom, so a file served through it
// still goes out with sendfile, and Unwrap, so http.ResponseController
// reaches the connection.
type Recorder struct {
	http.ResponseWriter
	Status int
	Bytes  int64
}

// WriteHeader records the first final status.
func (r *Recorder) WriteHeader(code int) {
	if r.Status == 0 && code >= 200 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.Bytes += int64(n)
	return n, err
}

// ReadFrom copies src with the underlying writer's ReadFrom when it has one.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{r.ResponseWriter}, src)
	}
	r.Bytes += n
	return n, err
}

type writerOnly struct{ io.Writer }

// Flush flushes the underlying writer when it can.
func (r *Recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer (for http.ResponseController).
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// StatusOrOK is the recorded status, 200 when nothing was written.
func (r *Recorder) StatusOrOK() int {
	if r.Status == 0 {
		return http.StatusOK
	}
	return r.Status
}

// Addrs returns the local and remote addresses of the connection r came on.
func Addrs(r *http.Request) (local, remote net.Addr) {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = net.TCPAddrFromAddrPort(ap)
	}
	return local, remote
}

// Combined formats one line of the Combined Log Format (the NCSA common
// format plus referer and user agent), newline included.
func Combined(r *http.Request, user string, status int, bytes int64, t time.Time) string {
	return string(AppendCombined(nil, r, user, status, bytes, t))
}

// AppendCombined appends Combined's line to dst.
func AppendCombined(dst []byte, r *http.Request, user string, status int, bytes int64, t time.Time) []byte {
	return AppendEntry(dst, &Entry{Remote: r.RemoteAddr, User: user, Method: r.Method, URI: r.RequestURI, Proto: r.Proto,
		Referer: r.Referer(), UserAgent: r.UserAgent(), Status: status, Bytes: bytes, Time: t})
}

// Entry is what one line of the Combined Log Format says.
type Entry struct {
	Remote             string // the client's address, host:port or host
	User               string // the authenticated user, "" for none
	Method, URI, Proto string // the request line
	Referer, UserAgent string
	Status             int
	Bytes              int64 // the body's bytes sent
	Time               time.Time
}

// AppendEntry appends e as a line of the Combined Log Format to dst.
func AppendEntry(dst []byte, e *Entry) []byte {
	host := e.Remote
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	user := e.User
	if user == "" {
		user = "-"
	}
	dst = append(dst, host...)
	dst = append(dst, " - "...)
	dst = appendField(dst, user, false)
	dst = append(dst, " ["...)
	dst = e.Time.AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
	dst = append(dst, "] \""...)
	dst = appendEscaped(dst, e.Method, true)
	dst = append(dst, ' ')
	dst = appendEscaped(dst, e.URI, true)
	dst = append(dst, ' ')
	dst = appendEscaped(dst, e.Proto, true)
	dst = append(dst, "\" "...)
	dst = strconv.AppendInt(dst, int64(e.Status), 10)
	dst = append(dst, ' ')
	if e.Bytes > 0 {
		dst = strconv.AppendInt(dst, e.Bytes, 10)
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	dst = appendField(dst, e.Referer, true)
	dst = append(dst, ' ')
	dst = appendField(dst, e.UserAgent, true)
	return append(dst, '\n')
}

// appendField appends s, quoted or not, escaping what could forge a log
// line: quotes, backslashes and control bytes (and spaces when unquoted).
func appendField(dst []byte, s string, quoted bool) []byte {
	if !quoted {
		return appendEscaped(dst, s, false)
	}
	if s == "" {
		s = "-"
	}
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, true)
	return append(dst, '"')
}

func appendEscaped(dst []byte, s string, quoted bool) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == 0x7f || (!quoted && c == ' '):
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// HopByHop are the connection-specific header fields (RFC 9110 §7.6.1) a
// proxy must not forward, besides those named in Connection.
var HopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// RemoveHopByHop deletes the hop-by-hop fields from h, including every
// field the Connection header names.
func RemoveHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, f := range HopByHop {
		h.Del(f)
	}
}
