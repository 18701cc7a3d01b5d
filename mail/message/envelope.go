package message

import (
	"strings"
)

// Envelope is the IMAP ENVELOPE of a header (RFC 3501 §7.4.2, RFC 9051
// §7.5.2). Strings are as written in the header, unfolded and trimmed, not
// decoded (a client decodes RFC 2047 itself); "" and nil stand for NIL.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []EnvelopeAddress
	InReplyTo, MessageID               string
}

// EnvelopeAddress is RFC 3501's address structure: display name, source
// route (ADL), mailbox (local part) and host. A group is a start entry
// (GroupStart, Mailbox the group's name) and an end entry (GroupEnd, all
// empty) around its members. Host is "" for an address written without a
// domain; on the wire that is NIL, which clients may take for a group start:
// a server may write a placeholder such as Dovecot's "MISSING_DOMAIN" for a
// non-group entry without a host.
type EnvelopeAddress struct {
	Name, ADL, Mailbox, Host string
	GroupStart, GroupEnd     bool
}

// ParseHeader reads a header section (with or without the blank line that
// ends it, and whatever follows it) into fields, unfolded, as Parse reads a
// part's header; at most DefaultLimits.MaxFields fields are kept.
func ParseHeader(hdr []byte) Header {
	hb, _ := SplitHeader(hdr)
	return fastHeader(hb, DefaultLimits.MaxFields)
}

// fastHeader is parser.parseHeader's reading of a header section (without
// its blank line) with fewer copies: names and values are substrings of one
// string, and only folded values are joined anew.
func fastHeader(hb []byte, maxFields int) Header {
	if len(hb) == 0 {
		return nil
	}
	s := string(hb)
	h := make(Header, 0, min(strings.Count(s, "\n")+1, maxFields))
	folded := -1 // the field whose value continues, when one does
	var cont strings.Builder
	flush := func() {
		if folded >= 0 {
			h[folded].Value = cont.String()
			cont.Reset()
			folded = -1
		}
	}
	for len(s) > 0 {
		line, rest, _ := strings.Cut(s, "\n")
		s = rest
		line = strings.TrimSuffix(line, "\r")
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if len(h) == 0 {
				continue
			}
			if folded < 0 {
				folded = len(h) - 1
				cont.WriteString(h[folded].Value)
			}
			cont.WriteString(line)
			continue
		}
		flush()
		if len(h) >= maxFields {
			return h
		}
		name, value, _ := strings.Cut(line, ":")
		h = append(h, Field{Name: strings.TrimRight(name, " \t"), Value: strings.TrimLeft(value, " \t")})
	}
	flush()
	return h
}

// ParseEnvelope returns the ENVELOPE of h. The first field of each name
// counts. Sender and Reply-To take From's value when they are absent or
// empty (RFC 3501 §7.4.2). Addresses are read tolerantly, like Dovecot
// does: what cannot be read is skipped, never an error.
func ParseEnvelope(h Header) Envelope {
	e := Envelope{
		Date:      strings.TrimSpace(h.Get("Date")),
		Subject:   strings.TrimSpace(h.Get("Subject")),
		InReplyTo: strings.TrimSpace(h.Get("In-Reply-To")),
		MessageID: strings.TrimSpace(h.Get("Message-ID")),
	}
	var a addrScanner
	e.From = a.list(h.Get("From"))
	e.Sender = a.list(h.Get("Sender"))
	e.ReplyTo = a.list(h.Get("Reply-To"))
	e.To = a.list(h.Get("To"))
	e.Cc = a.list(h.Get("Cc"))
	e.Bcc = a.list(h.Get("Bcc"))
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	return e
}

// ParseAddresses reads an RFC 5322 §3.4 address-list tolerantly, for
// ENVELOPE: display names raw (quoted-strings unquoted, encoded-words kept,
// words joined by one space; a comment after a bare address stands for a
// missing name), quoted local parts unquoted, a source route kept as the
// ADL ("@a,@b"), groups as start and end entries, a missing domain as Host
// "". Input that is not an address is skipped; the result is never an
// error.
func ParseAddresses(s string) []EnvelopeAddress {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return new(addrScanner).list(s)
}

// list reads the address list s, reusing a's token buffers.
func (a *addrScanner) list(s string) []EnvelopeAddress {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	a.s, a.i, a.comment = s, 0, ""
	out := make([]EnvelopeAddress, 0, min(strings.Count(s, "@")+1, 64))
	inGroup := false
	for a.i < len(a.s) {
		toks, stop := a.words(a.scratch[:0], listStops)
		switch stop {
		case ':':
			if !inGroup && !hasAt(toks) {
				a.i++
				inGroup = true
				out = append(out, EnvelopeAddress{Mailbox: a.join(toks, true), GroupStart: true})
				continue
			}
			// A stray colon: read as part of the address.
			a.i++
			toks = append(toks, addrTok{kind: ':', text: ":", start: a.i - 1, end: a.i})
			toks, stop = a.words(toks, listStops)
		}
		switch stop {
		case '<':
			a.i++
			ad := a.angle()
			ad.Name = a.join(toks, true)
			if ad.Name == "" && a.comment != "" {
				ad.Name = a.comment
			}
			if ad.Mailbox != "" || ad.Host != "" {
				out = append(out, ad)
			}
			// Skip to the next separator.
			_, stop = a.words(toks[:0], ",;")
		default:
			if ad, ok := a.addrSpec(toks); ok {
				if a.comment != "" {
					ad.Name = a.comment
				}
				out = append(out, ad)
			}
		}
		a.comment = ""
		a.scratch = toks[:0]
		if a.i < len(a.s) {
			if stop == ';' && inGroup {
				out = append(out, EnvelopeAddress{GroupEnd: true})
				inGroup = false
			}
			a.i++ // ',' or ';' or a stray ':' / '>'
		}
	}
	if inGroup {
		out = append(out, EnvelopeAddress{GroupEnd: true})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// listStops are where words stops in an address list.
const listStops = ",;:<"

// addrTok is one token of an address: an atom (kind 'a'), a quoted-string
// ('"', text unquoted), a domain literal ('[', with brackets) or a special
// character (its own kind). space says whitespace or a comment came before
// it.
type addrTok struct {
	kind       byte
	text       string
	space      bool
	start, end int // where it is in the value, quotes included
}

// addrScanner reads an address header value.
type addrScanner struct {
	s       string
	i       int
	comment string // the last comment seen in the current address
	// scratch and angleScratch are token buffers reused from address to
	// address.
	scratch, angleScratch []addrTok
}

// words reads tokens up to one of the stop characters or the end, which it
// does not consume, and returns them with that stop character (0 at the
// end). Specials that are not stops ('<', '>', ':', ';', ',') are skipped.
func (a *addrScanner) words(toks []addrTok, stops string) ([]addrTok, byte) {
	space := false
	for a.i < len(a.s) {
		c := a.s[a.i]
		switch c {
		case ' ', '\t', '\r', '\n':
			a.i++
			space = true
			continue
		case '(':
			a.comment = a.skipComment()
			space = true
			continue
		case ',', ';', ':', '<', '>':
			if strings.IndexByte(stops, c) >= 0 {
				return toks, c
			}
			a.i++
			continue
		case '"':
			start := a.i
			text := a.quoted()
			toks = append(toks, addrTok{kind: '"', text: text, space: space, start: start, end: a.i})
		case '[':
			j := strings.IndexByte(a.s[a.i:], ']')
			end := len(a.s)
			if j >= 0 {
				end = a.i + j + 1
			}
			toks = append(toks, addrTok{kind: '[', text: a.s[a.i:end], space: space, start: a.i, end: end})
			a.i = end
		case '.', '@':
			toks = append(toks, addrTok{kind: c, text: a.s[a.i : a.i+1], space: space, start: a.i, end: a.i + 1})
			a.i++
		default:
			j := a.i
			for j < len(a.s) && strings.IndexByte(" \t\r\n()<>,;:\".@[]", a.s[j]) < 0 {
				j++
			}
			if j == a.i { // a stray ')' or ']'
				a.i++
				continue
			}
			toks = append(toks, addrTok{kind: 'a', text: a.s[a.i:j], space: space, start: a.i, end: j})
			a.i = j
		}
		space = false
	}
	return toks, 0
}

// quoted reads a quoted-string at a.i and returns its content with
// quoted-pairs undone; an unterminated one runs to the end.
func (a *addrScanner) quoted() string {
	var b strings.Builder
	a.i++
	for a.i < len(a.s) {
		c := a.s[a.i]
		a.i++
		switch c {
		case '"':
			return b.String()
		case '\\':
			if a.i < len(a.s) {
				b.WriteByte(a.s[a.i])
				a.i++
			}
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// skipComment skips a comment at a.i (nested, RFC 5322 §3.2.2) and returns
// its text, trimmed.
func (a *addrScanner) skipComment() string {
	depth := 0
	start := a.i + 1
	for a.i < len(a.s) {
		switch a.s[a.i] {
		case '\\':
			a.i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				a.i++
				return strings.TrimSpace(a.s[start : a.i-1])
			}
		}
		a.i++
	}
	a.i = len(a.s)
	return strings.TrimSpace(a.s[min(start, len(a.s)):])
}

// angle reads an angle-addr after its '<': an optional obsolete route
// (RFC 5322 §4.4) and an addr-spec, up to '>', or up to ',' or ';' or the
// end when '>' is missing.
func (a *addrScanner) angle() EnvelopeAddress {
	toks := a.angleScratch[:0]
	defer func() { a.angleScratch = toks[:0] }()
	var adl string
	inRoute := func() bool { return adl == "" && len(toks) > 0 && toks[0].kind == '@' }
loop:
	for a.i < len(a.s) {
		var stop byte
		toks, stop = a.words(toks, ">,;:<")
		switch stop {
		case 0:
			break loop
		case '>':
			a.i++
			break loop
		case ':':
			a.i++
			if inRoute() {
				adl = a.join(toks, false)
				toks = nil
			}
		case ',':
			if !inRoute() || !strings.HasPrefix(strings.TrimLeft(a.s[a.i+1:], " \t\r\n"), "@") {
				break loop
			}
			a.i++
			toks = append(toks, addrTok{kind: ',', text: ",", start: a.i - 1, end: a.i})
		case ';':
			break loop
		case '<':
			a.i++
		}
	}
	ad, _ := a.addrSpec(toks)
	ad.ADL = adl
	return ad
}

// join writes toks as one string: a display name (phrase true: words
// separated by one space where the value had white space or a comment
// between them, quoted-strings unquoted) or a local part, domain or route
// (white space dropped). Where that is a piece of the value as it is, the
// piece is returned without a copy.
func (a *addrScanner) join(toks []addrTok, phrase bool) string {
	switch len(toks) {
	case 0:
		return ""
	case 1:
		if phrase {
			return strings.TrimSpace(toks[0].text)
		}
		return toks[0].text
	}
	verbatim := true
	for i, t := range toks {
		if t.kind == '"' {
			verbatim = false
			break
		}
		if i > 0 {
			gap := a.s[toks[i-1].end:t.start]
			if !(gap == "" || (phrase && gap == " " && t.space)) {
				verbatim = false
				break
			}
		}
	}
	if verbatim {
		return a.s[toks[0].start:toks[len(toks)-1].end]
	}
	var b strings.Builder
	for i, t := range toks {
		if phrase && i > 0 && t.space {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	if phrase {
		return strings.TrimSpace(b.String())
	}
	return b.String()
}

// addrSpec reads local-part "@" domain from toks: the local part is what is
// before the last '@' with whitespace dropped, the domain what is after. ok
// is false when there is nothing.
func (a *addrScanner) addrSpec(toks []addrTok) (EnvelopeAddress, bool) {
	at := -1
	for i, t := range toks {
		if t.kind == '@' {
			at = i
		}
	}
	var ad EnvelopeAddress
	if at < 0 {
		ad.Mailbox = a.join(toks, false)
	} else {
		ad.Mailbox = a.join(toks[:at], false)
		ad.Host = a.join(toks[at+1:], false)
	}
	return ad, ad.Mailbox != "" || ad.Host != ""
}

// hasAt reports whether toks has an '@'.
func hasAt(toks []addrTok) bool {
	for _, t := range toks {
		if t.kind == '@' {
			return true
		}
	}
	return false
}
