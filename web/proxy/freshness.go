package proxy

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"appnet/web/internal/fastlane"
)

// Meta is what the cache keeps about a stored response, besides its body.
type Meta struct {
	Key          string            `json:"key"`  // the target URI (primary cache key)
	Vary         map[string]string `json:"vary"` // request fields named by Vary, and their values (secondary key)
	Status       int               `json:"status"`
	Header       http.Header       `json:"header"`
	RequestTime  time.Time         `json:"request_time"`  // when the request that fetched it was sent
	ResponseTime time.Time         `json:"response_time"` // when its response arrived
	Size         int64             `json:"size"`

	hit *hitInfo // parsed from Header when stored; nil otherwise
}

// heuristicStatus lists the codes cacheable by default (RFC 9110 §15.1),
// which may be given heuristic freshness (RFC 9111 §4.2.2).
var heuristicStatus = map[int]bool{200: true, 203: true, 204: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true}

// Freshness computes freshness lifetimes and ages (RFC 9111 §4.2).
type Freshness struct {
	HeuristicFraction float64       // of the time since Last-Modified; default 0.1
	HeuristicMax      time.Duration // cap on heuristic lifetimes; default 24h
}

func (f Freshness) fraction() float64 {
	if f.HeuristicFraction <= 0 {
		return 0.1
	}
	return f.HeuristicFraction
}

func (f Freshness) max() time.Duration {
	if f.HeuristicMax <= 0 {
		return 24 * time.Hour
	}
	return f.HeuristicMax
}

// Lifetime is the freshness lifetime of a response in a shared cache (RFC
// 9111 §4.2.1): s-maxage, else max-age, else Expires minus Date, else a
// heuristic fraction of the time since Last-Modified.
func (f Freshness) Lifetime(m *Meta) time.Duration { return f.lifetime(m, info(m)) }

// Age is the current age of a stored response at now (RFC 9111 §4.2.3).
func Age(m *Meta, now time.Time) time.Duration { return info(m).age(m, now) }

// varyNames returns the canonical field names a response varies on, and
// whether it varies on "*".
func varyNames(h http.Header) (names []string, star bool) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "*" {
				return nil, true
			}
			if f != "" {
				names = append(names, http.CanonicalHeaderKey(f))
			}
		}
	}
	sort.Strings(names)
	return names, false
}

// fieldValue normalises a request field for Vary matching (RFC 9111 §4.1):
// its lines joined with commas, whitespace around elements removed.
func fieldValue(h http.Header, name string) string {
	var parts []string
	for _, v := range h.Values(name) {
		for _, e := range strings.Split(v, ",") {
			parts = append(parts, strings.TrimSpace(e))
		}
	}
	return strings.Join(parts, ",")
}

// varyMatch reports whether a request selects a stored variant.
func varyMatch(m *Meta, req http.Header) bool {
	for name, v := range m.Vary {
		if fieldValue(req, name) != v {
			return false
		}
	}
	return true
}

// laneFieldValue is fieldValue for a request of the fast lane.
func laneFieldValue(r *fastlane.Request, name string) string {
	var parts []string
	r.Each(strings.ToLower(name), func(v []byte) bool {
		for _, e := range strings.Split(string(v), ",") {
			parts = append(parts, strings.TrimSpace(e))
		}
		return true
	})
	return strings.Join(parts, ",")
}

// laneVaryMatch is varyMatch for a request of the fast lane.
func laneVaryMatch(m *Meta, r *fastlane.Request) bool {
	for name, v := range m.Vary {
		if laneFieldValue(r, name) != v {
			return false
		}
	}
	return true
}

// secondaryKey names a variant: its Vary fields and values.
func secondaryKey(vary map[string]string) string {
	names := make([]string, 0, len(vary))
	for n := range vary {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + "=" + vary[n] + "\n")
	}
	return b.String()
}
