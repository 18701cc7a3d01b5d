package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"appnet/web/internal/fastlane"
)

// laneDeclines are the request fields that send a request to ServeHTTP:
// the request's own cache directives, credentials, conditions and ranges.
var laneDeclines = [...]string{"cache-control", "pragma", "authorization", "range",
	"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"}

// Respond answers a reverse proxy's fresh cache hits for the fast lane, as
// writeCached would: a GET or HEAD, without request directives,
// credentials, conditions or ranges, whose variant is stored and fresh.
// Everything else goes to ServeHTTP. It traces what it answers as
// ServeHTTP does.
func (p *Proxy) Respond(w *fastlane.Response, r *fastlane.Request) bool {
	if p.keyPrefix == "" {
		return false
	}
	for _, f := range laneDeclines {
		if r.Has(f) {
			return false
		}
	}
	now := p.cfg.Now()
	used := now
	if !p.realClock {
		used = time.Now()
	}
	m, body, ok := p.store.lookup(p.keyPrefix+r.Path, func(m *Meta) bool { return laneVaryMatch(m, r) }, used)
	if !ok || !p.usable(m, false, nil, now) {
		return false
	}
	hi := info(m)
	head := hi.laneHead(m)
	if head == nil {
		return false
	}
	b := append(w.Head, head...)
	b = append(append(append(b, "Age: "...), hi.ageField(hi.age(m, now))...), "\r\n"...)
	for _, v := range hi.via {
		b = append(append(append(b, "Via: "...), v...), "\r\n"...)
	}
	b = append(append(append(b, "Via: "...), p.via...), "\r\nX-Cache: HIT\r\nContent-Length: "...)
	if int64(len(body)) == hi.size {
		b = append(b, hi.clen...)
	} else {
		b = strconv.AppendInt(b, int64(len(body)), 10)
	}
	w.Head = append(b, "\r\n"...)
	w.Body = body
	if p.cfg.Tracer.Enabled() {
		n := int64(len(body))
		if r.Method == http.MethodHead {
			n = 0
		}
		p.traceExchange(r.Conn.LocalAddr(), r.Conn.RemoteAddr(), r.Method, r.Path, m.Status, Hit, n)
	}
	return true
}

// laneHead is the status line and the stored fields (but Age, Via and
// Content-Length) as the lane sends them, made once. It is nil when
// net/http would send something the lane cannot: a status without a body
// or without a text, a header without Date or Content-Type (net/http adds
// them), framing fields, or a value it would rewrite.
func (h *hitInfo) laneHead(m *Meta) []byte {
	if v := h.lane.Load(); v != nil {
		return *v
	}
	var b []byte
	text := http.StatusText(m.Status)
	ok := text != "" && m.Status >= 200 && m.Status != http.StatusNoContent && m.Status != http.StatusNotModified
	var date, ctype bool
	if ok {
		b = append(b, "HTTP/1.1 "...)
		b = strconv.AppendInt(b, int64(m.Status), 10)
		b = append(append(append(b, ' '), text...), "\r\n"...)
	}
	for _, f := range h.fields {
		switch f.key {
		case "Date":
			date = true
		case "Content-Type":
			ctype = true
		case "Transfer-Encoding", "Connection", "Trailer", "Keep-Alive":
			ok = false
		}
		if !ok || strings.ContainsAny(f.key, "\r\n: ") {
			ok = false
			break
		}
		for _, v := range f.val {
			if strings.ContainsAny(v, "\r\n") || strings.TrimSpace(v) != v {
				ok = false
			}
			b = append(append(append(append(b, f.key...), ": "...), v...), "\r\n"...)
		}
	}
	if !ok || !date || !ctype {
		b = nil
	}
	h.lane.Store(&b)
	return b
}
