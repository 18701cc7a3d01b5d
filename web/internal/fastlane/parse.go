package fastlane

import (
	"bytes"
	"net"
	"path"
)

// Request is a simple request as the lane parsed it: GET or HEAD of a
// clean absolute path, HTTP/1.1, no body. Its fields are valid only during
// Respond.
type Request struct {
	Method string   // "GET" or "HEAD"
	Path   string   // starts with "/"; no query, no percent-escapes, no dot segments, no "//"
	Close  bool     // the client sent "Connection: close"
	Conn   net.Conn // the connection, for its addresses

	head []byte // the header lines, each ending in CRLF, after the request line
}

// Has says whether the request carries a header field named name (which
// must be in lower case), whatever its value.
func (r *Request) Has(name string) bool {
	_, ok := r.Get(name)
	return ok
}

// Get returns the value of the first header field named name (in lower
// case), without surrounding white space.
func (r *Request) Get(name string) (v []byte, ok bool) {
	r.Each(name, func(b []byte) bool {
		v, ok = b, true
		return false
	})
	return v, ok
}

// Each calls f with the value of each header field named name (in lower
// case), in order, until f returns false.
func (r *Request) Each(name string, f func(v []byte) bool) {
	h := r.head
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		line := h[:i-1]
		h = h[i+1:]
		c := bytes.IndexByte(line, ':')
		if c == len(name) && lowerEqual(line[:c], name) && !f(trimOWS(line[c+1:])) {
			return
		}
	}
}

// ParseRequest reads b as one whole request, as the lane does: ok is
// false when the lane would not take it (or b holds more or less than one
// request). It lets a Handler's tests make Requests.
func ParseRequest(b []byte) (r *Request, ok bool) {
	r = &Request{}
	n, v := parse(b, r)
	return r, v == simple && n == len(b)
}

// parse outcomes
type verdict int

const (
	incomplete verdict = iota // no whole head yet, and nothing net/http would treat differently so far
	simple                    // a whole simple request, n bytes long
	handOff                   // something the lane leaves to net/http
)

// parse reads one request head from the start of b. It accepts only what
// it is sure net/http would read the same way and answer without a body:
// anything else (another method or version, a body, Expect, Upgrade, an
// unusual Connection, a bare LF, a folded or malformed line, a missing or
// repeated Host) is handed off, so net/http stays the judge of every
// error.
func parse(b []byte, r *Request) (n int, v verdict) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > 0 && !prefixOK(b) {
			return 0, handOff
		}
		return 0, incomplete
	}
	if i == 0 || b[i-1] != '\r' {
		return 0, handOff
	}
	line := b[:i-1]
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		r.Method, line = "GET", line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		r.Method, line = "HEAD", line[5:]
	default:
		return 0, handOff
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || string(line[sp+1:]) != "HTTP/1.1" || !cleanPath(line[:sp]) {
		return 0, handOff
	}
	target := line[:sp]
	headStart := i + 1
	hosts := 0
	r.Close = false
	for off := headStart; ; {
		j := bytes.IndexByte(b[off:], '\n')
		if j < 0 {
			return 0, incomplete
		}
		if j == 0 || b[off+j-1] != '\r' {
			return 0, handOff
		}
		line := b[off : off+j-1]
		next := off + j + 1
		if len(line) == 0 {
			if hosts != 1 {
				return 0, handOff // net/http answers 400
			}
			r.head = b[headStart:off]
			r.Path = string(target)
			return next, simple
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 || !token(line[:c]) || !fieldValue(line[c+1:]) {
			return 0, handOff
		}
		name, val := line[:c], trimOWS(line[c+1:])
		switch {
		case lowerEqual(name, "host"):
			hosts++
			if hosts > 1 || !hostValue(val) {
				return 0, handOff
			}
		case lowerEqual(name, "connection"):
			switch {
			case lowerEqual(val, "close"):
				r.Close = true
			case lowerEqual(val, "keep-alive"):
			default:
				return 0, handOff
			}
		case lowerEqual(name, "content-length"), lowerEqual(name, "transfer-encoding"),
			lowerEqual(name, "expect"), lowerEqual(name, "upgrade"), lowerEqual(name, "te"),
			lowerEqual(name, "trailer"), lowerEqual(name, "http2-settings"):
			return 0, handOff
		}
		off = next
	}
	// not reached
}

// prefixOK says whether b, the start of a request line without its end,
// may still become a simple request.
func prefixOK(b []byte) bool {
	for _, m := range [...]string{"GET /", "HEAD /"} {
		k := min(len(b), len(m))
		if string(b[:k]) == m[:k] {
			return true
		}
	}
	return false
}

// cleanPath says whether p is an origin-form path the lane may pass on as
// it is: made of unreserved characters, sub-delimiters, ':', '@' and '/'
// only (no query, no percent-escapes), and already clean (path.Clean gives
// it back, apart from one trailing slash).
func cleanPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for _, c := range p {
		if !pathByte[c] {
			return false
		}
	}
	s := string(p) // not kept: no allocation
	if s == "/" {
		return true
	}
	if s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return path.Clean(s) == s
}

// trimOWS removes optional white space (SP, HTAB) around a field value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// lowerEqual compares b with the lower-case ASCII string s, ignoring b's case.
func lowerEqual(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func token(b []byte) bool {
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

// fieldValue accepts what RFC 9110 §5.5 allows in a value: visible
// characters, obs-text, SP and HTAB; no other control character.
func fieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// hostValue accepts a non-empty Host made of the characters of a reg-name,
// an IP literal and a port: what net/http accepts, and a little less.
func hostValue(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

var tokenByte, pathByte, hostByte [256]bool

func init() {
	alnum := func(t *[256]bool) {
		for c := '0'; c <= '9'; c++ {
			t[c] = true
		}
		for c := 'a'; c <= 'z'; c++ {
			t[c], t[c-'a'+'A'] = true, true
		}
	}
	alnum(&tokenByte)
	alnum(&pathByte)
	alnum(&hostByte)
	for _, c := range "!#$%&'*+-.^_`|~" {
		tokenByte[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:@/" {
		pathByte[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:[]" {
		hostByte[c] = true
	}
}
