package proxy

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Directives is a parsed Cache-Control field (RFC 9111 §5.2): directive
// names in lower case, mapped to their argument ("" when there is none).
// The first occurrence of a directive wins.
type Directives map[string]string

// ParseCacheControl parses every Cache-Control line of a message. It never
// fails: what cannot be read as a directive is skipped, as RFC 9111 §5.2
// asks of unknown extensions.
func ParseCacheControl(lines []string) Directives {
	d := Directives{}
	for _, line := range lines {
		for len(line) > 0 {
			var name, val string
			name, line = cutToken(line)
			line = strings.TrimLeft(line, " \t")
			if strings.HasPrefix(line, "=") {
				line = strings.TrimLeft(line[1:], " \t")
				if strings.HasPrefix(line, `"`) {
					val, line = cutQuoted(line)
				} else {
					val, line = cutToken(line)
				}
			}
			// skip to the next comma
			if i := strings.IndexByte(line, ','); i >= 0 {
				line = line[i+1:]
			} else {
				line = ""
			}
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if _, dup := d[name]; !dup {
				d[name] = val
			}
			if len(d) > 64 {
				return d
			}
		}
	}
	return d
}

func cutToken(s string) (tok, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, "=, \t\"")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// cutQuoted reads a quoted-string (RFC 9110 §5.6.4) at the start of s.
func cutQuoted(s string) (val, rest string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// Has reports whether the directive is present.
func (d Directives) Has(name string) bool {
	_, ok := d[name]
	return ok
}

// maxDelta is where delta-seconds saturate (RFC 9111 §1.2.2).
const maxDelta = math.MaxInt32

// Seconds returns a delta-seconds argument. present says whether the
// directive is there; valid whether its argument is a non-negative
// integer (an invalid one must be treated as 0 by a cache).
func (d Directives) Seconds(name string) (dur time.Duration, present, valid bool) {
	v, ok := d[name]
	if !ok {
		return 0, false, false
	}
	if v == "" {
		return 0, true, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, true, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxDelta {
		n = maxDelta
	}
	return time.Duration(n) * time.Second, true, true
}
