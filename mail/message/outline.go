package message

import (
	"bytes"
	"net/url"
	"strings"
)

// Outline is one MIME entity located in a message's bytes, what an IMAP
// server needs to answer FETCH BODYSTRUCTURE, BODY and BODY[section]
// (RFC 3501 §6.4.5, §7.4.2; RFC 9051 §6.4.5, §7.5.2) without decoding any
// body. Offsets are into the slice given to ParseOutline: the header is
// msg[Start:BodyStart] (with the blank line that ends it, when there is
// one), the body msg[BodyStart:End].
//
// A multipart always has at least one part: one whose body holds no
// delimiter line (or has no usable boundary parameter, or lies past
// Limits.MaxDepth or Limits.MaxParts) gets a single empty text/plain part
// (Synthetic, zero length at the multipart's end), as Dovecot writes it in
// BODYSTRUCTURE, so that the structure stays grammatical (RFC 3501 §9:
// body-type-mpart needs one body or more).
type Outline struct {
	Start, BodyStart, End int
	// Header is the entity's fields, unfolded, as Parse reads them.
	Header Header
	// Type and Subtype are lowercased; a missing or unreadable Content-Type
	// is text/plain; charset=us-ascii (RFC 2045 §5.2), or message/rfc822
	// inside multipart/digest (RFC 2046 §5.1.5).
	Type, Subtype string
	// Params are the Content-Type parameters in order, names lowercased.
	// RFC 2231 continuations are joined; an extended value in UTF-8 or
	// US-ASCII is decoded (the name loses its star), any other is kept as
	// it is written, continuations joined, under its starred name.
	Params []Param
	// ID and Description are Content-ID and Content-Description, raw,
	// trimmed.
	ID, Description string
	// Encoding is the Content-Transfer-Encoding, lowercased; "7bit" when
	// absent.
	Encoding string
	// Disposition is the Content-Disposition type lowercased, "" when
	// absent (RFC 2183).
	Disposition       string
	DispositionParams []Param
	// Language is the Content-Language tags (RFC 3282), Location the
	// Content-Location (RFC 2557), MD5 the Content-MD5 (RFC 1864).
	Language []string
	Location string
	MD5      string
	// Lines is the number of lines of the body of a text/* or message/*
	// entity (the LF-terminated ones, plus an unterminated last line), 0
	// for others.
	Lines int
	// Parts are a multipart's parts; Message the message a message/rfc822
	// or message/global encloses, when its transfer encoding is an
	// identity (7bit, 8bit, binary: RFC 2046 §5.2.1 allows no other) and
	// the limits allow; nil otherwise, and the entity is then a leaf.
	Parts   []*Outline
	Message *Outline
	// Synthetic marks the empty part given to a multipart without parts.
	Synthetic bool
}

// Param is a MIME parameter (RFC 2045 §5.1), its name lowercased.
type Param struct{ Name, Value string }

// Size returns the length in bytes of the entity's body as stored (the
// body size of BODYSTRUCTURE).
func (o *Outline) Size() int { return o.End - o.BodyStart }

// Param returns the value of the first parameter called name (lowercase),
// or "".
func (o *Outline) Param(name string) string {
	for _, p := range o.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// IsMultipart reports whether o is a multipart entity (it then has Parts).
func (o *Outline) IsMultipart() bool { return o.Type == "multipart" }

// Walk calls fn for o and every entity under it, depth first, parts before
// the enclosed message's entities.
func (o *Outline) Walk(fn func(*Outline)) {
	fn(o)
	for _, p := range o.Parts {
		p.Walk(fn)
	}
	if o.Message != nil {
		o.Message.Walk(fn)
	}
}

// ParseOutline locates the MIME entities of msg within DefaultLimits. It
// never fails: malformed structure is read as Dovecot reads it, and time
// and memory stay linear in len(msg) times Limits.MaxDepth, with at most
// about 2×Limits.MaxParts entities.
func ParseOutline(msg []byte) *Outline { return ParseOutlineLimits(msg, DefaultLimits) }

// ParseOutlineLimits is ParseOutline with limits of the caller's choosing
// (MaxDepth, MaxParts, MaxFields; a zero field takes the default's value).
func ParseOutlineLimits(msg []byte, lim Limits) *Outline {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if lim.MaxParts <= 0 {
		lim.MaxParts = DefaultLimits.MaxParts
	}
	if lim.MaxFields <= 0 {
		lim.MaxFields = DefaultLimits.MaxFields
	}
	p := &outliner{parser: parser{lim: lim}, msg: msg}
	return p.entity(0, len(msg), 0, false)
}

// outliner holds what one ParseOutline has spent.
type outliner struct {
	parser
	msg []byte
}

// entity outlines msg[start:end]; digest says it is a part of a
// multipart/digest.
func (p *outliner) entity(start, end, depth int, digest bool) *Outline {
	p.parts++
	raw := p.msg[start:end]
	hb, body := SplitHeader(raw)
	o := &Outline{Start: start, BodyStart: end - len(body), End: end}
	o.Header = fastHeader(hb, p.lim.MaxFields)
	o.fill(digest)
	switch {
	case o.Type == "multipart":
		p.multipart(o, depth)
	case o.Type == "message" && (o.Subtype == "rfc822" || o.Subtype == "global"):
		o.Lines = countLines(body)
		switch o.Encoding {
		case "7bit", "8bit", "binary":
			if depth+1 < p.lim.MaxDepth && p.parts < p.lim.MaxParts {
				o.Message = p.entity(o.BodyStart, o.End, depth+1, false)
			}
		}
	case o.Type == "text":
		o.Lines = countLines(body)
	}
	return o
}

// fill sets the fields read from the header.
func (o *Outline) fill(digest bool) {
	o.Type, o.Subtype = "text", "plain"
	if digest {
		o.Type, o.Subtype = "message", "rfc822"
	}
	defaulted := true
	if ct := o.Header.Get("Content-Type"); strings.TrimSpace(ct) != "" {
		if t, s, params, ok := parseContentType(ct); ok {
			o.Type, o.Subtype, o.Params = t, s, params
			defaulted = false
		}
	}
	if defaulted && o.Type == "text" {
		o.Params = []Param{{"charset", "us-ascii"}}
	}
	o.Encoding = strings.ToLower(strings.TrimSpace(o.Header.Get("Content-Transfer-Encoding")))
	if o.Encoding == "" {
		o.Encoding = "7bit"
	}
	o.ID = strings.TrimSpace(o.Header.Get("Content-ID"))
	o.Description = strings.TrimSpace(o.Header.Get("Content-Description"))
	if cd := strings.TrimSpace(o.Header.Get("Content-Disposition")); cd != "" {
		v, rest := cutToken(cd)
		o.Disposition = strings.ToLower(v)
		o.DispositionParams = parseParams(rest)
	}
	if cl := o.Header.Get("Content-Language"); cl != "" {
		o.Language = strings.FieldsFunc(cl, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	}
	o.Location = strings.TrimSpace(o.Header.Get("Content-Location"))
	o.MD5 = strings.TrimSpace(o.Header.Get("Content-MD5"))
}

// multipart finds o's parts between its delimiter lines (RFC 2046 §5.1.1).
func (p *outliner) multipart(o *Outline, depth int) {
	boundary := o.Param("boundary")
	if boundary != "" && len(boundary) <= 200 && depth+1 < p.lim.MaxDepth {
		digest := o.Subtype == "digest"
		for _, c := range splitOffsets(p.msg, o.BodyStart, o.End, "--"+boundary, p.lim.MaxParts-p.parts) {
			if p.parts >= p.lim.MaxParts {
				break
			}
			o.Parts = append(o.Parts, p.entity(c[0], c[1], depth+1, digest))
		}
	}
	if len(o.Parts) == 0 {
		p.parts++
		o.Parts = []*Outline{{Start: o.End, BodyStart: o.End, End: o.End, Type: "text", Subtype: "plain",
			Params: []Param{{"charset", "us-ascii"}}, Encoding: "7bit", Synthetic: true}}
	}
}

// splitOffsets returns the [start, end) offsets in msg of the body parts of
// the multipart body msg[start:end] delimited by lines of dash ("--"
// boundary), ignoring the preamble and the epilogue. A delimiter line is
// dash and transport padding; a close delimiter is dash "--" and anything.
// The line break before a delimiter belongs to it (RFC 2046 §5.1.1). With no
// close delimiter the last part runs to end. It stops after max parts.
func splitOffsets(msg []byte, start, end int, dash string, max int) [][2]int {
	body := msg[start:end]
	var parts [][2]int
	cur := -1 // start of the current part in body, -1 in the preamble
	nl := []byte("\n" + dash)
	i := 0 // where the next candidate line starts
	if !bytes.HasPrefix(body, nl[1:]) {
		j := bytes.Index(body, nl)
		if j < 0 {
			return nil
		}
		i = j + 1
	}
	for {
		// body[i:] starts with dash, at the start of a line.
		eol := bytes.IndexByte(body[i:], '\n')
		lineEnd := len(body)
		if eol >= 0 {
			lineEnd = i + eol + 1
		}
		rest := body[i+len(dash) : lineEnd]
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose || len(bytes.TrimRight(rest, " \t\r\n")) == 0 {
			if cur >= 0 {
				stop := i
				if stop > cur && body[stop-1] == '\n' {
					stop--
					if stop > cur && body[stop-1] == '\r' {
						stop--
					}
				}
				parts = append(parts, [2]int{start + cur, start + stop})
			}
			if isClose || len(parts) >= max {
				return parts
			}
			cur = lineEnd
		}
		if lineEnd >= len(body) {
			break
		}
		j := bytes.Index(body[lineEnd-1:], nl)
		if j < 0 {
			break
		}
		i = lineEnd - 1 + j + 1
	}
	if cur >= 0 {
		parts = append(parts, [2]int{start + cur, end})
	}
	return parts
}

// countLines counts body lines as IMAP servers do: each LF ends one, and a
// last line without one counts too.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// Section returns the entity that a section part path names (RFC 3501
// §6.4.5): an empty path is o itself; a part number of a multipart picks
// its part; a number after a message/rfc822 part addresses the parts of the
// enclosed message; a non-multipart entity's part 1 is itself (its body).
// ok is false if the path does not exist.
//
// For BODY[path] send the returned entity's body; for path.MIME its header;
// for path.HEADER, path.TEXT and path.HEADER.FIELDS use e.Message's header
// and body when e.Message is non-nil (and e's own for the empty path).
func (o *Outline) Section(path []int) (*Outline, bool) {
	cur := o
	for i, n := range path {
		if i > 0 && cur.Message != nil {
			cur = cur.Message
		}
		switch {
		case n < 1:
			return nil, false
		case cur.IsMultipart():
			if n > len(cur.Parts) {
				return nil, false
			}
			cur = cur.Parts[n-1]
		case n == 1:
			// A non-multipart entity's part 1 is its body.
		default:
			return nil, false
		}
	}
	return cur, true
}

// HeaderFields returns the fields of hdr, the bytes of a header section,
// whose names are (not false) or are not (not true) among names
// (case-insensitive), each with its original folding and line ends,
// followed by a blank line (RFC 3501 §6.4.5 HEADER.FIELDS and
// HEADER.FIELDS.NOT). Reading stops at hdr's blank line; lines that are
// not fields are left out. The blank line is CRLF unless hdr ends its lines
// with a bare LF.
func HeaderFields(hdr []byte, names []string, not bool) []byte {
	var out []byte
	keep := false
	eol := "\r\n"
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line = hdr[:i+1]
		}
		hdr = hdr[len(line):]
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			if !bytes.HasSuffix(line, []byte("\r\n")) && len(line) > 0 {
				eol = "\n"
			}
			break
		}
		if content[0] == ' ' || content[0] == '\t' {
			if keep {
				out = append(out, line...)
			}
			continue
		}
		keep = false
		name, _, ok := bytes.Cut(content, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		match := false
		for _, n := range names {
			if strings.EqualFold(n, string(name)) {
				match = true
				break
			}
		}
		if match != not {
			keep = true
			out = append(out, line...)
			if line[len(line)-1] != '\n' {
				out = append(out, "\r\n"...)
			}
		}
	}
	return append(out, eol...)
}

// parseContentType reads "type/subtype; params" tolerantly; ok is false
// when the type and subtype are not tokens.
func parseContentType(v string) (typ, sub string, params []Param, ok bool) {
	t, rest := cutToken(v)
	typ, sub, found := strings.Cut(t, "/")
	typ, sub = strings.TrimSpace(typ), strings.TrimSpace(sub)
	if !found || !isToken(typ) || !isToken(sub) {
		return "", "", nil, false
	}
	return strings.ToLower(typ), strings.ToLower(sub), parseParams(rest), true
}

// cutToken returns what is before the first ';' of v, trimmed, and the rest
// after it.
func cutToken(v string) (string, string) {
	t, rest, _ := strings.Cut(v, ";")
	return strings.TrimSpace(t), rest
}

// isToken reports whether s is an RFC 2045 §5.1 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseParams reads "; name=value" pairs (RFC 2045 §5.1) tolerantly: a
// value is a quoted-string (unquoted here) or a run up to the next ';',
// trimmed; comments are not removed. Then RFC 2231 continuations are joined.
func parseParams(s string) []Param {
	var ps []Param
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t;")
		if s == "" {
			break
		}
		eq := strings.IndexAny(s, "=;")
		if eq < 0 || s[eq] == ';' {
			// A name without a value: skipped.
			if eq < 0 {
				break
			}
			s = s[eq:]
			continue
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var value string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			value = b.String()
			s = s[min(i+1, len(s)):]
			if j := strings.IndexByte(s, ';'); j >= 0 {
				s = s[j:]
			} else {
				s = ""
			}
		} else {
			j := strings.IndexByte(s, ';')
			if j < 0 {
				j = len(s)
			}
			value = strings.TrimSpace(s[:j])
			s = s[j:]
		}
		if name != "" {
			ps = append(ps, Param{name, value})
		}
	}
	return join2231(ps)
}

// join2231 joins RFC 2231 §3 continuations (name*0, name*1 or name*0*,
// name*1*, ...) into one parameter at the place of the first, and decodes
// an extended value (§4) in UTF-8 or US-ASCII. Others stay as written.
func join2231(ps []Param) []Param {
	has := false
	for _, p := range ps {
		if strings.HasSuffix(p.Name, "*") || strings.Contains(p.Name, "*0") {
			has = true
			break
		}
	}
	if !has {
		return ps
	}
	type sect struct {
		n   int
		ext bool
		val string
	}
	var out []Param
	groups := map[string][]sect{} // base name -> sections
	index := map[string]int{}     // base name -> its place in out
	for _, p := range ps {
		base, num, ext, ok := split2231(p.Name)
		if !ok {
			out = append(out, p)
			continue
		}
		if _, seen := index[base]; !seen {
			index[base] = len(out)
			out = append(out, Param{Name: base})
		}
		if len(groups[base]) < 100 {
			groups[base] = append(groups[base], sect{num, ext, p.Value})
		}
	}
	for base, ss := range groups {
		// Sections in number order; a missing or repeated number ends the
		// value (§3), as readers do.
		var b strings.Builder
		ext := false
		for n := 0; ; n++ {
			found := false
			for _, s := range ss {
				if s.n == n {
					if n == 0 {
						ext = s.ext
					}
					v := s.val
					if ext && !s.ext {
						v = url.PathEscape(v)
					}
					b.WriteString(v)
					found = true
					break
				}
			}
			if !found {
				break
			}
		}
		v := b.String()
		name := base
		if ext {
			name = base + "*"
			if cs, rest, ok := strings.Cut(v, "'"); ok {
				if _, enc, ok := strings.Cut(rest, "'"); ok {
					if dec, err := url.PathUnescape(enc); err == nil {
						switch strings.ToLower(cs) {
						case "utf-8", "us-ascii", "":
							name, v = base, dec
						}
					}
				}
			}
		}
		out[index[base]] = Param{name, v}
	}
	return out
}

// split2231 splits an RFC 2231 parameter name: "name*" is section 0
// extended, "name*3" section 3, "name*3*" section 3 extended. ok is false
// for a plain name.
func split2231(name string) (base string, n int, ext, ok bool) {
	i := strings.IndexByte(name, '*')
	if i <= 0 {
		return "", 0, false, false
	}
	base, rest := name[:i], name[i+1:]
	if rest == "" {
		return base, 0, true, true
	}
	ext = strings.HasSuffix(rest, "*")
	rest = strings.TrimSuffix(rest, "*")
	if rest == "" || len(rest) > 3 || (len(rest) > 1 && rest[0] == '0') {
		return "", 0, false, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return "", 0, false, false
		}
		n = n*10 + int(c-'0')
	}
	return base, n, ext, true
}
