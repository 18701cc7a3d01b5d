package message

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Draft is a message to be built: what a user fills in a mail client.
// Bcc recipients are not part of it: they go only into the SMTP envelope
// (RFC 5322 §3.6.3 allows a Bcc field, but clients leave it out of what
// they send, so that no recipient learns of the others).
type Draft struct {
	From    mail.Address
	To, Cc  []mail.Address
	ReplyTo []mail.Address
	Subject string
	// Date is the origination date; zero means now.
	Date time.Time
	// MessageID is the msg-id with its angle brackets; empty means a new
	// one at the sender's domain.
	MessageID string
	// Text is the text/plain body and HTML an optional text/html
	// alternative (RFC 2046 §5.1.4). Line endings may be LF or CRLF.
	Text, HTML  string
	Attachments []Attachment
	// UserAgent, when set, is written as a User-Agent field.
	UserAgent string
}

// Attachment is a file sent with a message.
type Attachment struct {
	Filename    string // the name only, no directory; may be non-ASCII
	ContentType string // a media type such as "application/pdf"; empty: application/octet-stream
	Data        []byte
}

// ErrNoSender is returned by Build for a draft without a From address.
var ErrNoSender = errors.New("message: no From address")

// Build writes the message for d: the RFC 5322 header (Date, From, To, Cc,
// Reply-To, Message-ID, Subject, MIME-Version) and a MIME body. The body is a
// single text/plain part; with HTML, a multipart/alternative of the text and
// the HTML (the preferred, richer one last, RFC 2046 §5.1.4); with
// attachments, a multipart/mixed of that body and one base64 part per file
// (RFC 2046 §5.1.3). Text parts are 7bit when they are short-lined ASCII and
// quoted-printable otherwise (RFC 2045 §6.7), so the message is 7-bit clean
// and every line ends in CRLF.
func Build(d *Draft) ([]byte, error) {
	if d.From.Address == "" {
		return nil, ErrNoSender
	}
	date := d.Date
	if date.IsZero() {
		date = time.Now()
	}
	id := d.MessageID
	if id == "" {
		_, domain, _ := strings.Cut(d.From.Address, "@")
		id = NewMessageID(domain, date)
	}
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") || strings.ContainsAny(id, " \t\r\n") {
		return nil, fmt.Errorf("message: Message-ID %q is not <id-left@id-right>", id)
	}

	var h strings.Builder
	h.WriteString(FoldField("Date", FormatDate(date)))
	for _, f := range []struct {
		name string
		list []mail.Address
	}{{"From", []mail.Address{d.From}}, {"To", d.To}, {"Cc", d.Cc}, {"Reply-To", d.ReplyTo}} {
		if len(f.list) == 0 {
			continue
		}
		s, err := AddressField(f.name, f.list)
		if err != nil {
			return nil, err
		}
		h.WriteString(s)
	}
	if len(d.To) == 0 && len(d.Cc) == 0 {
		// Only Bcc recipients: an empty group says so without naming
		// them (RFC 5322 §3.6.3 and A.1.3), as mail clients write it.
		h.WriteString("To: undisclosed-recipients:;\r\n")
	}
	h.WriteString(FoldField("Message-ID", id))
	if d.Subject != "" {
		h.WriteString(UnstructuredField("Subject", d.Subject))
	}
	if d.UserAgent != "" {
		h.WriteString(UnstructuredField("User-Agent", d.UserAgent))
	}
	h.WriteString("MIME-Version: 1.0\r\n")

	var body *part
	text := textPart("plain", d.Text)
	switch {
	case d.HTML != "" && d.Text == "":
		body = textPart("html", d.HTML)
	case d.HTML != "":
		body = &part{mediaType: "multipart/alternative", children: []*part{text, textPart("html", d.HTML)}}
	default:
		body = text
	}
	if len(d.Attachments) > 0 {
		mixed := &part{mediaType: "multipart/mixed", children: []*part{body}}
		for _, a := range d.Attachments {
			mixed.children = append(mixed.children, attachmentPart(a))
		}
		body = mixed
	}
	var out bytes.Buffer
	out.WriteString(h.String())
	body.write(&out)
	// SMTP carries a message as lines (RFC 5321 §4.1.1.4), so it ends in one.
	if !bytes.HasSuffix(out.Bytes(), []byte("\r\n")) {
		out.WriteString("\r\n")
	}
	return out.Bytes(), nil
}

// part is a MIME entity being built: its header fields (already formatted)
// and either an encoded body or children.
type part struct {
	mediaType string
	header    []string // formatted fields after Content-Type
	ctParams  string   // "; charset=utf-8" and the like, folded with Content-Type
	body      []byte   // encoded, CRLF line endings
	children  []*part
}

// crlf returns s with every line ending (CR LF, a bare LF or a bare CR) as
// CR LF.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// textPart encodes text as a text/subtype part in UTF-8: 7bit when it is
// ASCII with no control characters and no line longer than 78 characters,
// otherwise quoted-printable (RFC 2045 §6.7), which keeps mostly-ASCII text
// readable and survives any relay.
func textPart(subtype, text string) *part {
	text = crlf(text)
	p := &part{mediaType: "text/" + subtype, ctParams: "; charset=utf-8"}
	if is7bit(text) {
		p.header = []string{"Content-Transfer-Encoding: 7bit\r\n"}
		p.body = []byte(text)
		return p
	}
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(text))
	w.Close()
	p.header = []string{"Content-Transfer-Encoding: quoted-printable\r\n"}
	p.body = b.Bytes()
	return p
}

func is7bit(s string) bool {
	col := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\r' && i+1 < len(s) && s[i+1] == '\n':
			col = -1
		case c == '\n':
			col = -1
		case c >= 0x7f, c < 0x20 && c != '\t':
			return false
		}
		col++
		if col > FoldAt {
			return false
		}
	}
	return true
}

// attachmentPart encodes a file as base64 in 76-character lines (RFC 2045
// §6.8), named the way mail clients name it: a Content-Disposition filename
// parameter, RFC 2231 encoded when it is not plain ASCII, and the older
// Content-Type name parameter, as an encoded-word when needed, which RFC 2047
// §5 does not bless but which every client since the 1990s reads.
func attachmentPart(a Attachment) *part {
	ct := strings.ToLower(strings.TrimSpace(a.ContentType))
	// RFC 2046 §5.2.1 and §5.1: message and multipart types may not be
	// base64; a file of that type is sent as plain bytes.
	if ct == "" || strings.ContainsAny(ct, " ;\"\r\n") || !strings.Contains(ct, "/") ||
		strings.HasPrefix(ct, "message/") || strings.HasPrefix(ct, "multipart/") {
		ct = "application/octet-stream"
	}
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, a.Filename)
	p := &part{mediaType: ct}
	disp := "attachment"
	if name != "" {
		p.ctParams = "; name=" + nameParam(name)
		disp += "; " + filenameParam(name)
	}
	p.header = []string{
		FoldField("Content-Disposition", disp),
		"Content-Transfer-Encoding: base64\r\n",
	}
	p.body = base64Lines(a.Data)
	return p
}

// base64Lines encodes data in base64 lines of 76 characters, each ending in
// CRLF (RFC 2045 §6.8).
func base64Lines(data []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/76*2 + 2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	if enc != "" {
		b.WriteString(enc)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// plainToken reports whether s can be a quoted-string parameter value as it
// is: printable ASCII, short enough for one line.
func plainToken(s string) bool {
	if len(s) > 60 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func quoted(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// nameParam is the Content-Type name parameter's value.
func nameParam(name string) string {
	if plainToken(name) {
		return quoted(name)
	}
	// ` name="` before the first word, `"` after the last.
	return `"` + strings.Join(encodeWords(name, 66, 66), " ") + `"`
}

// filenameParam is the Content-Disposition filename parameter: a
// quoted-string for a short ASCII name, otherwise RFC 2231 §4 extended
// notation (charset UTF-8, %-encoded octets), split into §3 continuations
// of at most 50 characters so that folded lines stay within 78.
func filenameParam(name string) string {
	if plainToken(name) {
		return "filename=" + quoted(name)
	}
	var enc strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		// RFC 2231 §7 attribute-char: any CHAR but SPACE, CTLs, tspecials,
		// "*", "'" and "%".
		if c > 0x20 && c < 0x7f && strings.IndexByte("()<>@,;:\\\"/[]?=*'%", c) < 0 {
			enc.WriteByte(c)
		} else {
			enc.WriteByte('%')
			enc.WriteByte(upperHex[c>>4])
			enc.WriteByte(upperHex[c&15])
		}
	}
	s := enc.String()
	const prefix = "UTF-8''"
	if len(s) <= 50 {
		return "filename*=" + prefix + s
	}
	var segs []string
	for n := 0; s != ""; n++ {
		cut := min(len(s), 50)
		// Never split a %XX triple.
		if i := strings.LastIndexByte(s[max(0, cut-2):cut], '%'); i >= 0 {
			cut = max(0, cut-2) + i
		}
		seg := s[:cut]
		if n == 0 {
			seg = prefix + seg
		}
		segs = append(segs, fmt.Sprintf("filename*%d*=%s", n, seg))
		s = s[cut:]
	}
	return strings.Join(segs, "; ")
}

// newBoundary returns a boundary that cannot occur in base64 or
// quoted-printable text: "=_" is in neither alphabet (RFC 2045 §6.7 rule 1
// writes "=" only before two hex digits).
func newBoundary() string {
	var r [12]byte
	rand.Read(r[:])
	return "=_appnet_" + hex.EncodeToString(r[:])
}

// write writes p's Content-Type and other fields, the blank line and the
// body. A 7bit text part could contain a boundary by chance; the boundary is
// checked against the children's bytes and drawn again if found.
func (p *part) write(out *bytes.Buffer) {
	if len(p.children) == 0 {
		out.WriteString(FoldField("Content-Type", p.mediaType+p.ctParams))
		for _, f := range p.header {
			out.WriteString(f)
		}
		out.WriteString("\r\n")
		out.Write(p.body)
		return
	}
	kids := make([][]byte, len(p.children))
	for i, c := range p.children {
		var b bytes.Buffer
		c.write(&b)
		kids[i] = b.Bytes()
	}
	boundary := newBoundary()
	for clash(boundary, kids) {
		boundary = newBoundary()
	}
	out.WriteString(FoldField("Content-Type", p.mediaType+"; boundary="+quoted(boundary)))
	out.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
	for _, k := range kids {
		// RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the
		// delimiter, so a part that ends in a line break needs one more.
		out.WriteString("\r\n--" + boundary + "\r\n")
		out.Write(k)
	}
	out.WriteString("\r\n--" + boundary + "--\r\n")
}

func clash(boundary string, kids [][]byte) bool {
	for _, k := range kids {
		if bytes.Contains(k, []byte("--"+boundary)) {
			return true
		}
	}
	return false
}
