package message

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	gmcharset "github.com/emersion/go-message/charset"
)

// Limits bound what Parse spends on one message, whatever its bytes say.
type Limits struct {
	MaxDepth        int   // nesting of multipart and message/rfc822 parts
	MaxParts        int   // parts in the whole tree
	MaxFields       int   // header fields kept per part
	MaxDecodedBytes int64 // decoded bodies and converted text, all parts together
}

// DefaultLimits are the limits Parse uses: deeper than any mail client nests,
// more parts than any real message has, and decoded bytes a few times a
// large message.
var DefaultLimits = Limits{MaxDepth: 32, MaxParts: 1000, MaxFields: 1000, MaxDecodedBytes: 256 << 20}

// Field is one header field, its value unfolded (RFC 5322 §2.2.3) but not
// decoded.
type Field struct{ Name, Value string }

// Header is a part's header fields in their order.
type Header []Field

// Get returns the value of the first field called name (case-insensitive),
// or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns the values of every field called name.
func (h Header) Values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Text returns the first field called name with its encoded-words decoded.
func (h Header) Text(name string) string { return DecodeText(strings.TrimSpace(h.Get(name))) }

// Addresses parses the first field called name as an address list.
func (h Header) Addresses(name string) ([]*mail.Address, error) {
	v := h.Get(name)
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	return ParseAddressList(v)
}

// Part is one MIME entity of a parsed message: the message itself at the
// root, then its parts.
type Part struct {
	Header Header
	// MediaType is the lowercased type/subtype; Params its parameters (RFC
	// 2231 continuations joined and decoded). A missing or unreadable
	// Content-Type is text/plain; charset=us-ascii (RFC 2045 §5.2), or
	// message/rfc822 inside multipart/digest (RFC 2046 §5.1.5).
	MediaType string
	Params    map[string]string
	// Encoding is the Content-Transfer-Encoding, lowercased; "7bit" when
	// absent.
	Encoding string
	// Disposition is "inline", "attachment" or "" (RFC 2183); Filename the
	// file name from its filename parameter or Content-Type's name,
	// decoded.
	Disposition, Filename string
	// Charset is the text part's charset, lowercased.
	Charset string
	// Size is the size in bytes of the body as it is in the message.
	Size int
	// Body is the leaf's body with its transfer encoding undone.
	Body []byte
	// Text is a text/* leaf's body converted to UTF-8 from its charset.
	Text string
	// Parts are a multipart's parts, or for message/rfc822 the message it
	// encloses.
	Parts []*Part
	// Problems says what was malformed and how it was read anyway.
	Problems []string
}

// IsAttachment reports whether p is a file rather than text to show: a
// part with disposition attachment, or a non-text leaf with a file name.
func (p *Part) IsAttachment() bool {
	return p.Disposition == "attachment" || (p.Filename != "" && !strings.HasPrefix(p.MediaType, "text/") && len(p.Parts) == 0)
}

// Walk calls fn for p and every part under it, depth first, with the part's
// number in the IMAP style (RFC 3501 §6.4.5: "" for the root, then "1",
// "1.2", ...).
func (p *Part) Walk(fn func(num string, depth int, q *Part)) { p.walk("", 0, fn) }

func (p *Part) walk(num string, depth int, fn func(string, int, *Part)) {
	fn(num, depth, p)
	for i, c := range p.Parts {
		n := fmt.Sprint(i + 1)
		if num != "" {
			n = num + "." + n
		}
		c.walk(n, depth+1, fn)
	}
}

// parser holds what one Parse has spent.
type parser struct {
	lim     Limits
	parts   int
	decoded int64
}

// Parse reads a message into a tree of parts, within DefaultLimits. It does
// not fail on malformed input: what it could not read is in the parts'
// Problems, and what is past a limit is left out with a problem saying so.
func Parse(msg []byte) *Part { return ParseLimits(msg, DefaultLimits) }

// ParseLimits is Parse with limits of the caller's choosing; a zero field
// takes the default's value.
func ParseLimits(msg []byte, lim Limits) *Part {
	d := DefaultLimits
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = d.MaxDepth
	}
	if lim.MaxParts <= 0 {
		lim.MaxParts = d.MaxParts
	}
	if lim.MaxFields <= 0 {
		lim.MaxFields = d.MaxFields
	}
	if lim.MaxDecodedBytes <= 0 {
		lim.MaxDecodedBytes = d.MaxDecodedBytes
	}
	p := &parser{lim: lim}
	return p.entity(msg, 0, "text/plain")
}

// SplitHeader returns the header section of msg (without the blank line)
// and the body after it. A message with no blank line is all header; one
// whose first line is a continuation or lacks a colon has no header.
func SplitHeader(msg []byte) (header, body []byte) {
	i := 0
	for i < len(msg) {
		j := bytes.IndexByte(msg[i:], '\n')
		end := len(msg)
		if j >= 0 {
			end = i + j + 1
		}
		line := bytes.TrimRight(msg[i:end], "\r\n")
		if len(line) == 0 {
			return msg[:i], msg[end:]
		}
		if line[0] != ' ' && line[0] != '\t' && !validFieldLine(line) {
			// RFC 5322 §2.2: not a field; the body starts here (as
			// Python's email and Postfix read such a message).
			return msg[:i], msg[i:]
		}
		if i == 0 && (line[0] == ' ' || line[0] == '\t') {
			return nil, msg
		}
		i = end
	}
	return msg, nil
}

// validFieldLine reports whether line starts with a field name (printable
// ASCII but colon, RFC 5322 §3.6.8) and a colon. Whitespace before the colon
// is the obsolete syntax of §4.5, which readers still accept.
func validFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// parseHeader unfolds a header section into fields. A field's lines are
// joined once it is complete, so many continuation lines cost linear time.
func (p *parser) parseHeader(b []byte, problems *[]string) Header {
	var h Header
	var cont [][]byte // the current field's continuation lines
	flush := func() {
		if len(cont) > 0 && len(h) > 0 {
			h[len(h)-1].Value += string(bytes.Join(cont, nil))
		}
		cont = cont[:0]
	}
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			cont = append(cont, line)
			continue
		}
		flush()
		if len(h) >= p.lim.MaxFields {
			*problems = append(*problems, fmt.Sprintf("more than %d header fields: the rest ignored", p.lim.MaxFields))
			return h
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		h = append(h, Field{Name: string(bytes.TrimRight(name, " \t")), Value: string(bytes.TrimLeft(value, " \t"))})
	}
	flush()
	return h
}

// cutLine returns the first line of b, without its LF or CRLF, and the
// rest after it.
func cutLine(b []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(b, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), rest
}

// entity parses one entity: header, then a body according to its type.
// deftype is the media type when Content-Type is absent.
func (p *parser) entity(raw []byte, depth int, deftype string) *Part {
	p.parts++
	part := &Part{}
	hb, body := SplitHeader(raw)
	part.Header = p.parseHeader(hb, &part.Problems)
	part.Size = len(body)

	part.MediaType, part.Params = deftype, map[string]string{}
	if deftype == "text/plain" {
		part.Params["charset"] = "us-ascii"
	}
	if ct := strings.TrimSpace(part.Header.Get("Content-Type")); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		switch {
		case err != nil && mt == "":
			part.Problems = append(part.Problems, fmt.Sprintf("Content-Type %q: %v", clip(ct), err))
			part.MediaType, part.Params = "text/plain", map[string]string{"charset": "us-ascii"}
		default:
			if err != nil {
				part.Problems = append(part.Problems, fmt.Sprintf("Content-Type %q: %v", clip(ct), err))
			}
			part.MediaType, part.Params = mt, params
			if params == nil {
				part.Params = map[string]string{}
			}
		}
	}
	part.Charset = strings.ToLower(part.Params["charset"])
	part.Encoding = strings.ToLower(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding")))
	if part.Encoding == "" {
		part.Encoding = "7bit"
	}
	if cd := strings.TrimSpace(part.Header.Get("Content-Disposition")); cd != "" {
		disp, params, err := mime.ParseMediaType(cd)
		if err != nil {
			part.Problems = append(part.Problems, fmt.Sprintf("Content-Disposition %q: %v", clip(cd), err))
		}
		part.Disposition = strings.ToLower(disp)
		part.Filename = DecodeText(params["filename"])
		if part.Filename == "" {
			part.Filename = foreign2231(cd, "filename")
		}
	}
	if part.Filename == "" && part.Params["name"] != "" {
		part.Filename = DecodeText(part.Params["name"])
	}

	switch {
	case strings.HasPrefix(part.MediaType, "multipart/"):
		// RFC 2045 §6.4: a multipart is 7bit, 8bit or binary; any other
		// encoding is ignored, as readers do.
		p.multipart(part, body, depth)
	case part.MediaType == "message/rfc822" || part.MediaType == "message/global":
		dec := p.decode(part, body)
		if depth+1 >= p.lim.MaxDepth {
			part.Problems = append(part.Problems, fmt.Sprintf("nested deeper than %d: enclosed message not parsed", p.lim.MaxDepth))
			part.Body = dec
			return part
		}
		if p.parts >= p.lim.MaxParts {
			part.Problems = append(part.Problems, fmt.Sprintf("more than %d parts: enclosed message not parsed", p.lim.MaxParts))
			part.Body = dec
			return part
		}
		part.Parts = []*Part{p.entity(dec, depth+1, "text/plain")}
	default:
		part.Body = p.decode(part, body)
		if strings.HasPrefix(part.MediaType, "text/") {
			part.Text = p.text(part, part.Body)
		}
	}
	return part
}

// multipart splits body at its boundary (RFC 2046 §5.1.1) and parses each
// part.
func (p *parser) multipart(part *Part, body []byte, depth int) {
	boundary := part.Params["boundary"]
	if boundary == "" || len(boundary) > 200 {
		part.Problems = append(part.Problems, "multipart without a usable boundary: read as one text part")
		part.Body = body
		part.Text = strings.ToValidUTF8(string(body), "\uFFFD")
		return
	}
	if depth+1 >= p.lim.MaxDepth {
		part.Problems = append(part.Problems, fmt.Sprintf("nested deeper than %d: parts not parsed", p.lim.MaxDepth))
		part.Body = body
		return
	}
	deftype := "text/plain"
	if part.MediaType == "multipart/digest" {
		deftype = "message/rfc822"
	}
	chunks, closed := splitParts(body, []byte("--"+boundary))
	if !closed {
		part.Problems = append(part.Problems, "no closing boundary: the last part runs to the end")
	}
	for _, c := range chunks {
		if p.parts >= p.lim.MaxParts {
			part.Problems = append(part.Problems, fmt.Sprintf("more than %d parts: the rest left out", p.lim.MaxParts))
			return
		}
		part.Parts = append(part.Parts, p.entity(c, depth+1, deftype))
	}
}

// splitParts returns the body parts between delimiter lines ("--" boundary,
// optional transport padding) and whether the close delimiter ("--"
// boundary "--") was found. The line break before a delimiter belongs to
// it, not to the part (RFC 2046 §5.1.1). The preamble and epilogue are
// dropped.
func splitParts(body, dash []byte) (parts [][]byte, closed bool) {
	start := -1 // start of the current part, -1 in the preamble
	i := 0
	for i < len(body) {
		j := bytes.IndexByte(body[i:], '\n')
		end := len(body)
		if j >= 0 {
			end = i + j + 1
		}
		line := body[i:end]
		if bytes.HasPrefix(line, dash) {
			rest := bytes.TrimRight(line[len(dash):], " \t\r\n")
			isClose := bytes.Equal(rest, []byte("--"))
			if len(rest) == 0 || isClose {
				if start >= 0 {
					stop := i
					if stop > start && body[stop-1] == '\n' {
						stop--
						if stop > start && body[stop-1] == '\r' {
							stop--
						}
					}
					parts = append(parts, body[start:stop])
				}
				if isClose {
					return parts, true
				}
				start = end
			}
		}
		i = end
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// decode undoes the transfer encoding (RFC 2045 §6), leniently: base64
// ignores characters outside its alphabet (§6.8 says to), quoted-printable
// keeps a malformed "=" as it is (§6.7 note 1).
func (p *parser) decode(part *Part, body []byte) []byte {
	budget := p.lim.MaxDecodedBytes - p.decoded
	var out []byte
	switch part.Encoding {
	case "base64":
		clean := make([]byte, 0, len(body))
		for _, c := range body {
			if c == '+' || c == '/' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
				clean = append(clean, c)
			}
		}
		if len(clean)%4 == 1 { // a lone sextet holds no whole octet
			part.Problems = append(part.Problems, "base64: a stray character at the end ignored")
			clean = clean[:len(clean)-1]
		}
		out = make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, err := base64.RawStdEncoding.Decode(out, clean)
		if err != nil {
			part.Problems = append(part.Problems, fmt.Sprintf("base64: %v", err))
		}
		out = out[:n]
	case "quoted-printable":
		var err error
		out, err = io.ReadAll(io.LimitReader(quotedprintable.NewReader(bytes.NewReader(body)), budget+1))
		if err != nil {
			part.Problems = append(part.Problems, fmt.Sprintf("quoted-printable: %v", err))
		}
	case "7bit", "8bit", "binary":
		out = body
	default:
		part.Problems = append(part.Problems, fmt.Sprintf("unknown Content-Transfer-Encoding %q: body left as it is", clip(part.Encoding)))
		out = body
	}
	if int64(len(out)) > budget {
		part.Problems = append(part.Problems, "decoded size limit reached: body cut short")
		out = out[:max(budget, 0)]
	}
	p.decoded += int64(len(out))
	return out
}

// text converts a text part's body to UTF-8 from its charset (go-message's
// charset package knows the IANA and WHATWG names). Bytes that are not valid
// in it become U+FFFD.
func (p *parser) text(part *Part, body []byte) string {
	cs := part.Charset
	switch cs {
	case "", "us-ascii", "utf-8", "utf8", "ascii":
		return strings.ToValidUTF8(string(body), "\uFFFD")
	}
	r, err := gmcharset.Reader(cs, bytes.NewReader(body))
	if err != nil {
		part.Problems = append(part.Problems, fmt.Sprintf("charset %q: %v: shown as UTF-8", clip(cs), err))
		return strings.ToValidUTF8(string(body), "\uFFFD")
	}
	budget := p.lim.MaxDecodedBytes - p.decoded
	out, err := io.ReadAll(io.LimitReader(r, max(budget, 0)+1))
	if err != nil {
		part.Problems = append(part.Problems, fmt.Sprintf("charset %q: %v", clip(cs), err))
	}
	if int64(len(out)) > budget {
		part.Problems = append(part.Problems, "decoded size limit reached: text cut short")
		out = out[:max(budget, 0)]
	}
	p.decoded += int64(len(out))
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

var ext2231 = regexp.MustCompile(`(?i)(?:^|;)\s*([a-z0-9_-]+)\*(?:0\*)?=\s*([a-z0-9_.:-]+)'[^']*'([^;\s]*)`)

// foreign2231 decodes an RFC 2231 §4 extended parameter in a charset other
// than UTF-8 and US-ASCII, which are all mime.ParseMediaType reads, such as
// filename*=iso-8859-1”caf%E9.txt from older clients. Only the first
// continuation is read.
func foreign2231(value, param string) string {
	for _, m := range ext2231.FindAllStringSubmatch(value, -1) {
		if !strings.EqualFold(m[1], param) {
			continue
		}
		raw, err := url.PathUnescape(m[3])
		if err != nil {
			return ""
		}
		r, err := gmcharset.Reader(m[2], strings.NewReader(raw))
		if err != nil {
			return ""
		}
		out, err := io.ReadAll(io.LimitReader(r, 4096))
		if err != nil {
			return ""
		}
		return strings.ToValidUTF8(string(out), "\uFFFD")
	}
	return ""
}

// charsetReader is mime.WordDecoder's CharsetReader for encoded-words.
func charsetReader(cs string, input io.Reader) (io.Reader, error) {
	return gmcharset.Reader(cs, input)
}

// clip shortens s for a problem report.
func clip(s string) string {
	if len(s) <= 60 {
		return s
	}
	i := 60
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
