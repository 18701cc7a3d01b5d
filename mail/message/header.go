// Package message reads and writes Internet messages: the RFC 5322 header
// and body, and the MIME structure on top of them (RFC 2045 content types and
// transfer encodings, RFC 2046 multipart bodies, RFC 2047 encoded-words in
// header text, RFC 2231 parameter values such as non-ASCII file names).
//
// Build turns a Draft (sender, recipients, subject, text and HTML bodies,
// attachments) into the bytes of a message, CRLF line endings, 7-bit clean,
// as a mail client would send it. Parse reads any message, however
// malformed, into a tree of parts with their bodies decoded, within Limits.
// EnsureSubmissionHeaders and CountReceived are what a submission server
// needs (RFC 6409 §8.2-8.3, RFC 5321 §6.3).
//
// The package is a codec: it imports no network and no storage.
// go-message (github.com/emersion/go-message) reads header blocks, multipart
// bodies and foreign charsets; what to write and how is decided here.
package message

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// Line lengths of RFC 5322 §2.1.1 and RFC 2047 §2.
const (
	// FoldAt is the column header fields are folded at: RFC 5322 §2.1.1
	// says lines SHOULD be no more than 78 characters.
	FoldAt = 78
	// foldEncodedAt is the limit for a line that carries an encoded-word:
	// RFC 2047 §2 says such a line must be no more than 76 characters.
	foldEncodedAt = 76
	// maxEncodedWord is the longest encoded-word, RFC 2047 §2.
	maxEncodedWord = 75
	// MaxLine is the longest line RFC 5322 §2.1.1 allows, without its CRLF.
	MaxLine = 998
)

// FormatDate formats t as an RFC 5322 §3.3 date-time, as in
// "Wed, 02 Dec 2026 15:04:05 +0000".
func FormatDate(t time.Time) string {
	return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
}

// NewMessageID returns a new, globally unique msg-id (RFC 5322 §3.6.4) in
// angle brackets: 128 random bits and the time, at domain. A domain that is
// not a valid dot-atom is replaced by "localhost".
func NewMessageID(domain string, now time.Time) string {
	var r [16]byte
	rand.Read(r[:])
	if !isDotAtom(domain) {
		domain = "localhost"
	}
	return fmt.Sprintf("<%s.%s@%s>", now.UTC().Format("20060102150405"), hex.EncodeToString(r[:]), domain)
}

// isAtext reports whether c is an atext character (RFC 5322 §3.2.3).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isDotAtom reports whether s is a dot-atom-text (RFC 5322 §3.2.3).
func isDotAtom(s string) bool {
	if s == "" {
		return false
	}
	for _, a := range strings.Split(s, ".") {
		if a == "" {
			return false
		}
		for i := 0; i < len(a); i++ {
			if !isAtext(a[i]) {
				return false
			}
		}
	}
	return true
}

// IsASCII reports whether s is all US-ASCII (no byte of 0x80 or above):
// what SMTP without SMTPUTF8 (RFC 6531) may carry in an address.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// needsEncoding reports whether header text s cannot be written as it is:
// it has non-ASCII or control characters, or a word that a reader would take
// for an encoded-word (RFC 2047 §5: such text must itself be encoded).
func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x7f || (c < 0x20 && c != '\t') {
			return true
		}
	}
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "=?") && strings.HasSuffix(w, "?=") {
			return true
		}
		if len(w) > MaxLine-40 { // unfoldable: only encoded-words can split it
			return true
		}
	}
	return false
}

// qSafe reports whether c may stand for itself in a "Q" encoded-word. The set
// is the one RFC 2047 §5(3) allows in a phrase, the strictest context, so the
// same words serve in a Subject and in a display name.
func qSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!*+-/", c) >= 0
}

const upperHex = "0123456789ABCDEF"

// EncodeWords returns the text s as a sequence of RFC 2047 encoded-words in
// UTF-8, none longer than 75 characters and the first at most first
// characters (so that it fits on the line it starts), split only between
// characters (§5: an encoded-word holds whole characters). It picks the "Q"
// encoding for mostly-ASCII text and "B" otherwise, whichever is shorter,
// as mail clients do. The words are to be separated by linear whitespace,
// which a reader drops between adjacent encoded-words (§6.2).
func EncodeWords(s string, first int) []string { return encodeWords(s, first, maxEncodedWord) }

// encodeWords is EncodeWords with words after the first at most rest
// characters long.
func encodeWords(s string, first, rest int) []string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	qlen := 0
	for i := 0; i < len(s); i++ {
		if qSafe(s[i]) || s[i] == ' ' {
			qlen++
		} else {
			qlen += 3
		}
	}
	useQ := qlen <= base64.StdEncoding.EncodedLen(len(s))
	const prefix = "=?UTF-8?Q?"
	overhead := len(prefix) + len("?=")
	cost := func(chunk string) int {
		if !useQ {
			return base64.StdEncoding.EncodedLen(len(chunk))
		}
		n := 0
		for i := 0; i < len(chunk); i++ {
			if qSafe(chunk[i]) || chunk[i] == ' ' {
				n++
			} else {
				n += 3
			}
		}
		return n
	}
	encode := func(chunk string) string {
		var b strings.Builder
		if useQ {
			b.WriteString("=?UTF-8?Q?")
			for i := 0; i < len(chunk); i++ {
				switch c := chunk[i]; {
				case c == ' ':
					b.WriteByte('_')
				case qSafe(c):
					b.WriteByte(c)
				default:
					b.WriteByte('=')
					b.WriteByte(upperHex[c>>4])
					b.WriteByte(upperHex[c&15])
				}
			}
		} else {
			b.WriteString("=?UTF-8?B?")
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(chunk)))
		}
		b.WriteString("?=")
		return b.String()
	}
	limit := min(max(first, overhead+12), maxEncodedWord)
	var words []string
	start := 0
	for start < len(s) || len(words) == 0 {
		end := start
		for end < len(s) {
			_, size := utf8.DecodeRuneInString(s[end:])
			if overhead+cost(s[start:end+size]) > limit && end > start {
				break
			}
			end += size
		}
		words = append(words, encode(s[start:end]))
		start = end
		limit = min(max(rest, overhead+12), maxEncodedWord)
		if start >= len(s) {
			break
		}
	}
	return words
}

// FoldField returns the header field "name: value" with CRLF line endings,
// folded (RFC 5322 §2.2.3) before whitespace so that lines stay within 78
// columns, or 76 where they carry encoded-words (RFC 2047 §2). Folding only
// inserts CRLF before whitespace already in value, so unfolding gives value
// back. A run of text longer than a line is left whole. Trailing whitespace
// is dropped, as a line of only whitespace is not allowed (RFC 5322 §4.2).
func FoldField(name, value string) string {
	value = strings.TrimRight(value, " \t")
	value = strings.TrimLeft(value, " \t")
	limit := FoldAt
	if strings.Contains(value, "=?") {
		limit = foldEncodedAt
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	lineLen := b.Len()
	startOfValue := true
	for i := 0; i < len(value); {
		// A segment is a run of whitespace and the run of other text after it;
		// the value's first segment gets the one space after the colon.
		j := i
		for j < len(value) && (value[j] == ' ' || value[j] == '\t') {
			j++
		}
		k := j
		for k < len(value) && value[k] != ' ' && value[k] != '\t' {
			k++
		}
		seg := value[i:k]
		if startOfValue {
			seg = " " + value[j:k]
			startOfValue = false
		}
		if lineLen+len(seg) > limit && lineLen > len(name)+1 && j > i {
			b.WriteString("\r\n")
			lineLen = 0
		}
		b.WriteString(seg)
		lineLen += len(seg)
		i = k
	}
	b.WriteString("\r\n")
	return b.String()
}

// UnstructuredField returns an unstructured header field (Subject, Comments,
// RFC 5322 §3.6.5) with text, encoded as RFC 2047 encoded-words if it is not
// plain printable ASCII, and folded.
func UnstructuredField(name, text string) string {
	if !needsEncoding(text) {
		return FoldField(name, text)
	}
	return FoldField(name, strings.Join(EncodeWords(text, foldEncodedAt-len(name)-2), " "))
}

// FormatAddress formats a as a mailbox (RFC 5322 §3.4): the bare addr-spec
// when there is no display name, otherwise the display name and the addr-spec
// in angle brackets. A display name that is not printable ASCII becomes
// RFC 2047 encoded-words (§5(3): only the phrase, never the addr-spec); one
// with special characters becomes a quoted-string. The addr-spec must be
// ASCII: an internationalized address needs SMTPUTF8 (RFC 6532), which this
// package does not write.
func FormatAddress(a mail.Address) (string, error) {
	if a.Address == "" || !IsASCII(a.Address) || strings.ContainsAny(a.Address, " \t\r\n<>()\",;") {
		return "", fmt.Errorf("message: %q is not an ASCII addr-spec", a.Address)
	}
	if _, err := mail.ParseAddress("<" + a.Address + ">"); err != nil {
		return "", fmt.Errorf("message: %q is not an addr-spec: %w", a.Address, err)
	}
	name := strings.TrimSpace(a.Name)
	if name == "" {
		return a.Address, nil
	}
	if needsEncoding(name) {
		// The first word is kept short enough to follow "Reply-To: " on the
		// field's first line, which folding never breaks.
		return strings.Join(encodeWords(name, 60, maxEncodedWord), " ") + " <" + a.Address + ">", nil
	}
	return phrase(name) + " <" + a.Address + ">", nil
}

// phrase writes ASCII text as a phrase: atoms separated by single spaces
// when it is one, otherwise a quoted-string (RFC 5322 §3.2.4).
func phrase(s string) string {
	atoms := true
	for _, w := range strings.Split(s, " ") {
		if w == "" {
			atoms = false
			break
		}
		for i := 0; i < len(w); i++ {
			if !isAtext(w[i]) {
				atoms = false
			}
		}
	}
	if atoms {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// AddressField returns an address header field (From, To, Cc, Reply-To) with
// the addresses comma-separated and folded.
func AddressField(name string, list []mail.Address) (string, error) {
	parts := make([]string, len(list))
	for i, a := range list {
		s, err := FormatAddress(a)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return FoldField(name, strings.Join(parts, ", ")), nil
}

// wordDecoder decodes encoded-words in any charset go-message's charset
// package knows (it is imported by parse.go).
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// DecodeText decodes the RFC 2047 encoded-words in an unstructured header
// value. Text it cannot decode is returned as it is.
func DecodeText(s string) string {
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// ParseAddressList parses an address header value, decoding encoded-words
// in display names.
func ParseAddressList(s string) ([]*mail.Address, error) {
	p := mail.AddressParser{WordDecoder: wordDecoder}
	l, err := p.ParseList(s)
	if err != nil {
		return nil, fmt.Errorf("message: address list: %w", err)
	}
	return l, nil
}
