package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// hitInfo is what answering from a stored response needs, worked out once
// from its header fields when it is stored, so that a cache hit parses no
// header and no date.
type hitInfo struct {
	cc         Directives // the response's Cache-Control
	date       time.Time  // its Date, else its response time
	expires    time.Time
	hasExpires bool // an Expires field, valid or not
	expiresOK  bool
	lastMod    time.Time
	hasLastMod bool
	etag       string        // without W/
	initialAge time.Duration // corrected_initial_age (RFC 9111 §4.2.3)

	// authOK: the response may answer a request with Authorization
	// (§3.5); mustValidate: it may not be served stale
	authOK, mustValidate bool

	// the response's header fields as a hit sends them, but for Age, Via
	// and Content-Length, worked out once; a hit copies the values
	fields []headerField
	nvals  int                      // the number of values in fields
	via    []string                 // the stored Via values
	size   int64                    // the body's length
	clen   string                   // and as Content-Length
	ages   atomic.Pointer[ageValue] // the last Age sent
	lane   atomic.Pointer[[]byte]   // laneHead's result
}

type headerField struct {
	key string
	val []string
}

type ageValue struct {
	secs int64
	val  string
}

// ageField returns the Age value for age, reusing the last one made.
func (h *hitInfo) ageField(age time.Duration) string {
	secs := int64(age / time.Second)
	if a := h.ages.Load(); a != nil && a.secs == secs {
		return a.val
	}
	a := &ageValue{secs: secs, val: strconv.FormatInt(secs, 10)}
	h.ages.Store(a)
	return a.val
}

// newHitInfo parses the fields of m that freshness, age and conditional
// requests depend on.
func newHitInfo(m *Meta) *hitInfo {
	h := &hitInfo{cc: ParseCacheControl(m.Header.Values("Cache-Control"))}
	h.date = m.ResponseTime
	if d, err := http.ParseTime(m.Header.Get("Date")); err == nil {
		h.date = d
	}
	if ev, ok := m.Header["Expires"]; ok && len(ev) > 0 {
		h.hasExpires = true
		t, err := http.ParseTime(ev[0])
		h.expires, h.expiresOK = t, err == nil
	}
	if lm, err := http.ParseTime(m.Header.Get("Last-Modified")); err == nil {
		h.lastMod, h.hasLastMod = lm, true
	}
	h.etag = strings.TrimPrefix(m.Header.Get("ETag"), "W/")
	apparent := max(0, m.ResponseTime.Sub(h.date))
	var ageValue time.Duration
	if d, ok, valid := (Directives{"age": m.Header.Get("Age")}).Seconds("age"); ok && valid {
		ageValue = d
	}
	corrected := ageValue + m.ResponseTime.Sub(m.RequestTime)
	h.initialAge = max(apparent, corrected)
	h.authOK = h.cc.Has("public") || h.cc.Has("s-maxage") || h.cc.Has("must-revalidate")
	h.mustValidate = h.cc.Has("must-revalidate") || h.cc.Has("proxy-revalidate") || h.cc.Has("s-maxage") || h.cc.Has("no-cache")
	h.fields = make([]headerField, 0, len(m.Header))
	for k, v := range m.Header {
		switch k {
		case "Via":
			h.via = v
		case "Age", "Content-Length":
		default:
			h.fields = append(h.fields, headerField{k, v})
			h.nvals += len(v)
		}
	}
	h.size = m.Size
	h.clen = strconv.FormatInt(m.Size, 10)
	return h
}

// info returns m's hit information: the one computed when it was stored,
// or a new one.
func info(m *Meta) *hitInfo {
	if m.hit != nil {
		return m.hit
	}
	return newHitInfo(m)
}

// lifetime is RFC 9111 §4.2.1's freshness lifetime (see Lifetime).
func (f Freshness) lifetime(m *Meta, h *hitInfo) time.Duration {
	if h.cc.Has("no-cache") {
		return 0
	}
	if d, ok, valid := h.cc.Seconds("s-maxage"); ok {
		if !valid {
			return 0
		}
		return d
	}
	if d, ok, valid := h.cc.Seconds("max-age"); ok {
		if !valid {
			return 0
		}
		return d
	}
	if h.hasExpires {
		if !h.expiresOK || !h.expires.After(h.date) {
			return 0 // an invalid date means "already expired" (§5.3)
		}
		return h.expires.Sub(h.date)
	}
	if h.hasLastMod && (heuristicStatus[m.Status] || h.cc.Has("public")) {
		if age := h.date.Sub(h.lastMod); age > 0 {
			return min(time.Duration(float64(age)*f.fraction()), f.max())
		}
	}
	return 0
}

// age is RFC 9111 §4.2.3's current_age.
func (h *hitInfo) age(m *Meta, now time.Time) time.Duration {
	return h.initialAge + max(0, now.Sub(m.ResponseTime))
}
