package bencode

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
)

// DefaultMaxDepth is the deepest nesting of lists and dicts the decoder
// accepts unless DecodeOptions.MaxDepth says otherwise.
const DefaultMaxDepth = 256

// span is a half-open byte range [start, end) of the scanner's buffer.
type span struct{ start, end int }

// scanner checks that its input holds one well-formed bencoded value. It
// reads either from an in-memory buffer (r == nil) or from a stream, in
// which case it grows buf only as data arrives, so that a declared string
// length never causes an allocation larger than the data actually read.
type scanner struct {
	r     io.Reader // nil: buf is all the input there is
	rerr  error     // sticky error from r
	empty int       // consecutive reads that returned nothing
	buf   []byte
	pos   int   // next byte to scan
	base  int64 // stream offset of buf[0]

	lenient  bool // accept unsorted dict keys
	maxDepth int

	keys []span // keys of the open dicts, used only in lenient mode
}

func (s *scanner) syntaxError(pos int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: s.base + int64(pos), Msg: fmt.Sprintf(format, args...)}
}

// need makes at least n unread bytes available in buf[pos:].
func (s *scanner) need(n int) error {
	for len(s.buf)-s.pos < n {
		if s.r == nil || s.rerr != nil {
			return s.readError()
		}
		want := s.pos + n // total length of buf we need
		if len(s.buf) == cap(s.buf) {
			// Grow by at least 4 KiB, and by at most the current length,
			// so that memory stays within twice the data received.
			grow := max(4096, min(want-len(s.buf), len(s.buf)))
			s.buf = slices.Grow(s.buf, grow)
		}
		m, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+m]
		switch {
		case err != nil:
			s.rerr = err
		case m > 0:
			s.empty = 0
		default:
			if s.empty++; s.empty >= 100 {
				s.rerr = io.ErrNoProgress
			}
		}
	}
	return nil
}

func (s *scanner) readError() error {
	if s.rerr == nil || s.rerr == io.EOF {
		return errTruncated(s.base + int64(len(s.buf)))
	}
	return fmt.Errorf("bencode: read: %w", s.rerr)
}

// scanValue scans one value starting at s.pos and leaves s.pos after it.
// depth is the number of lists and dicts that enclose the value.
func (s *scanner) scanValue(depth int) error {
	if err := s.need(1); err != nil {
		return err
	}
	switch c := s.buf[s.pos]; {
	case c == 'i':
		return s.scanInt()
	case c >= '0' && c <= '9':
		_, err := s.scanString()
		return err
	case c == 'l':
		if depth >= s.maxDepth {
			return s.syntaxError(s.pos, "nesting deeper than %d", s.maxDepth)
		}
		s.pos++
		for {
			if err := s.need(1); err != nil {
				return err
			}
			if s.buf[s.pos] == 'e' {
				s.pos++
				return nil
			}
			if err := s.scanValue(depth + 1); err != nil {
				return err
			}
		}
	case c == 'd':
		if depth >= s.maxDepth {
			return s.syntaxError(s.pos, "nesting deeper than %d", s.maxDepth)
		}
		return s.scanDict(depth)
	default:
		return s.syntaxError(s.pos, "invalid character %q looking for beginning of value", c)
	}
}

// scanInt scans an integer: BEP 3 §bencoding: "i", base ten digits with an
// optional minus sign, "e"; no leading zeros and no negative zero.
func (s *scanner) scanInt() error {
	start := s.pos
	s.pos++ // 'i'
	if err := s.need(1); err != nil {
		return err
	}
	neg := false
	if s.buf[s.pos] == '-' {
		neg = true
		s.pos++
		if err := s.need(1); err != nil {
			return err
		}
	}
	first := s.pos
	for {
		c := s.buf[s.pos]
		if c == 'e' {
			break
		}
		if c < '0' || c > '9' {
			return s.syntaxError(s.pos, "invalid character %q in integer", c)
		}
		s.pos++
		if err := s.need(1); err != nil {
			return err
		}
	}
	switch {
	case s.pos == first:
		return s.syntaxError(start, "integer has no digits")
	case s.buf[first] == '0' && s.pos-first > 1:
		return s.syntaxError(first, "leading zero in integer")
	case neg && s.buf[first] == '0':
		return s.syntaxError(start, "negative zero")
	}
	s.pos++ // 'e'
	return nil
}

// scanString scans a byte string, BEP 3 §bencoding: a base ten length with
// no leading zeros, ":", then that many bytes. It returns the position of
// the string's contents in buf.
func (s *scanner) scanString() (span, error) {
	start := s.pos
	n := 0
	for {
		if err := s.need(1); err != nil {
			return span{}, err
		}
		c := s.buf[s.pos]
		if c == ':' {
			break
		}
		if c < '0' || c > '9' {
			return span{}, s.syntaxError(s.pos, "invalid character %q in string length", c)
		}
		if s.pos > start && s.buf[start] == '0' {
			return span{}, s.syntaxError(start, "leading zero in string length")
		}
		if n > (math.MaxInt-9)/10 {
			return span{}, s.syntaxError(start, "string length too large")
		}
		n = n*10 + int(c-'0')
		s.pos++
	}
	s.pos++ // ':'
	if s.r == nil && n > len(s.buf)-s.pos {
		// Checked before anything is done with n: a forged length must not
		// make anyone allocate or read past the input.
		err := s.syntaxError(start, "string length %d exceeds the %d bytes of remaining input", n, len(s.buf)-s.pos)
		err.err = io.ErrUnexpectedEOF
		return span{}, err
	}
	if err := s.need(n); err != nil {
		return span{}, err
	}
	sp := span{s.pos, s.pos + n}
	s.pos += n
	return sp, nil
}

// scanDict scans a dict. BEP 3 §bencoding: "Keys must be strings and
// appear in sorted order (sorted as raw strings, not alphanumerics)." A key
// may not appear twice; in lenient mode keys may appear in any order.
func (s *scanner) scanDict(depth int) error {
	s.pos++ // 'd'
	mark := len(s.keys)
	defer func() { s.keys = s.keys[:mark] }()
	prev := span{-1, -1}
	unsorted := false
	for {
		if err := s.need(1); err != nil {
			return err
		}
		c := s.buf[s.pos]
		if c == 'e' {
			s.pos++
			break
		}
		if c < '0' || c > '9' {
			return s.syntaxError(s.pos, "dict key is not a string")
		}
		keyPos := s.pos
		key, err := s.scanString()
		if err != nil {
			return err
		}
		if prev.start >= 0 {
			switch bytes.Compare(s.buf[prev.start:prev.end], s.buf[key.start:key.end]) {
			case 0:
				return s.syntaxError(keyPos, "duplicate dict key %q", s.buf[key.start:key.end])
			case 1:
				if !s.lenient {
					return s.syntaxError(keyPos, "dict key %q is out of order", s.buf[key.start:key.end])
				}
				unsorted = true
			}
		}
		if s.lenient {
			s.keys = append(s.keys, key)
		}
		prev = key
		if err := s.need(1); err != nil {
			return err
		}
		if s.buf[s.pos] == 'e' {
			return s.syntaxError(s.pos, "dict key %q has no value", s.buf[key.start:key.end])
		}
		if err := s.scanValue(depth + 1); err != nil {
			return err
		}
	}
	if unsorted {
		keys := s.keys[mark:]
		slices.SortFunc(keys, func(a, b span) int {
			return bytes.Compare(s.buf[a.start:a.end], s.buf[b.start:b.end])
		})
		for i := 1; i < len(keys); i++ {
			k := s.buf[keys[i].start:keys[i].end]
			if bytes.Equal(s.buf[keys[i-1].start:keys[i-1].end], k) {
				return s.syntaxError(keys[i].start, "duplicate dict key %q", k)
			}
		}
	}
	return nil
}

// Valid reports whether data is exactly one canonical bencoded value, as
// Unmarshal requires.
func Valid(data []byte) bool {
	s := scanner{buf: data, maxDepth: DefaultMaxDepth}
	return s.scanValue(0) == nil && s.pos == len(data)
}

// checkValid scans data as one complete value with the given options.
func checkValid(data []byte, lenient bool, maxDepth int) error {
	s := scanner{buf: data, lenient: lenient, maxDepth: maxDepth}
	if err := s.scanValue(0); err != nil {
		return err
	}
	if s.pos != len(data) {
		return s.syntaxError(s.pos, "trailing data after top-level value")
	}
	return nil
}
