// Package ua is the mail user agent: it composes a message from what a user
// gives (addresses, subject, text, an HTML alternative, files to attach),
// submits it to a mail server over SMTP (RFC 5321, submission on port 587
// per RFC 6409, STARTTLS per RFC 3207, AUTH per RFC 4954 with the SASL
// PLAIN (RFC 4616) and LOGIN mechanisms), and shows a received message's
// MIME tree and text.
//
// The message format itself is package mail/message's; the SMTP client
// plumbing is github.com/emersion/go-smtp's. Every SMTP line sent and
// received is reported to an optional *trace.Tracer, in the course's C:/S:
// style.
package ua

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"appnet/mail/message"
)

// Compose is what a user gives to send a message.
type Compose struct {
	From         string   // "Name <addr>" or addr
	To, Cc, Bcc  []string // each may hold a comma-separated list
	Subject      string
	Text         string
	HTML         string   // an optional text/html alternative
	Attach       []string // paths of files to attach
	Date         time.Time
	UserAgent    string
	MaxAttachSum int64 // bytes of all attachments together; 0: 64 MiB
}

// Envelope is the SMTP envelope of a message (RFC 5321 §2.3.1): the
// reverse-path and the forward-paths, which include the Bcc recipients that
// are in no header.
type Envelope struct {
	From string
	To   []string
}

// ErrNoRecipients is returned by Build when there is no To, Cc or Bcc.
var ErrNoRecipients = errors.New("ua: no recipients")

// parseList parses every entry of lists as an address list.
func parseList(field string, lists []string) ([]mail.Address, error) {
	var out []mail.Address
	for _, l := range lists {
		if strings.TrimSpace(l) == "" {
			continue
		}
		as, err := message.ParseAddressList(l)
		if err != nil {
			return nil, fmt.Errorf("ua: %s %q: %w", field, l, err)
		}
		for _, a := range as {
			out = append(out, *a)
		}
	}
	return out, nil
}

// Build builds the message for c and its envelope: From, To and Cc in the
// header, Bcc only in the envelope. Attachments are read from their files;
// their content types come from the file name's extension, or from the
// first bytes (the WHATWG sniffing of net/http) when the extension says
// nothing.
func Build(c *Compose) ([]byte, Envelope, error) {
	from, err := parseList("--from", []string{c.From})
	if err != nil {
		return nil, Envelope{}, err
	}
	if len(from) != 1 {
		return nil, Envelope{}, fmt.Errorf("ua: --from %q: want exactly one address", c.From)
	}
	to, err := parseList("--to", c.To)
	if err != nil {
		return nil, Envelope{}, err
	}
	cc, err := parseList("--cc", c.Cc)
	if err != nil {
		return nil, Envelope{}, err
	}
	bcc, err := parseList("--bcc", c.Bcc)
	if err != nil {
		return nil, Envelope{}, err
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return nil, Envelope{}, ErrNoRecipients
	}
	d := &message.Draft{From: from[0], To: to, Cc: cc, Subject: c.Subject, Text: c.Text, HTML: c.HTML, Date: c.Date, UserAgent: c.UserAgent}
	limit := c.MaxAttachSum
	if limit <= 0 {
		limit = 64 << 20
	}
	var total int64
	for _, path := range c.Attach {
		a, err := ReadAttachment(path, limit-total)
		if err != nil {
			return nil, Envelope{}, err
		}
		total += int64(len(a.Data))
		d.Attachments = append(d.Attachments, a)
	}
	msg, err := message.Build(d)
	if err != nil {
		return nil, Envelope{}, fmt.Errorf("ua: %w", err)
	}
	env := Envelope{From: from[0].Address}
	seen := map[string]bool{}
	for _, l := range [][]mail.Address{to, cc, bcc} {
		for _, a := range l {
			if k := strings.ToLower(a.Address); !seen[k] {
				seen[k] = true
				env.To = append(env.To, a.Address)
			}
		}
	}
	return msg, env, nil
}

// ReadAttachment reads the file at path, at most limit bytes, as an
// attachment named by its base name.
func ReadAttachment(path string, limit int64) (message.Attachment, error) {
	f, err := os.Open(path)
	if err != nil {
		return message.Attachment{}, fmt.Errorf("ua: attach: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return message.Attachment{}, fmt.Errorf("ua: attach: %w", err)
	}
	if !st.Mode().IsRegular() {
		return message.Attachment{}, fmt.Errorf("ua: attach %s: not a regular file", path)
	}
	if st.Size() > limit {
		return message.Attachment{}, fmt.Errorf("ua: attach %s: %d bytes is over the %d left for attachments", path, st.Size(), limit)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return message.Attachment{}, fmt.Errorf("ua: attach: %w", err)
	}
	name := filepath.Base(path)
	return message.Attachment{Filename: name, ContentType: ContentType(name, data), Data: data}, nil
}

// builtinTypes are the extensions whose types must not depend on the
// machine's mime.types (which mime.TypeByExtension also reads).
var builtinTypes = map[string]string{
	".txt": "text/plain", ".html": "text/html", ".htm": "text/html", ".csv": "text/csv",
	".pdf": "application/pdf", ".zip": "application/zip", ".gz": "application/gzip",
	".json": "application/json", ".xml": "application/xml", ".ics": "text/calendar",
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".svg": "image/svg+xml", ".mp3": "audio/mpeg", ".wav": "audio/wav",
	".mp4": "video/mp4", ".doc": "application/msword",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".odt":  "application/vnd.oasis.opendocument.text",
}

// ContentType is the media type for a file: by its extension, then by
// sniffing its first 512 bytes. Parameters (a charset) are dropped: a
// text file is sent in base64 exactly as it is.
func ContentType(name string, data []byte) string {
	ext := strings.ToLower(filepath.Ext(name))
	t := builtinTypes[ext]
	if t == "" && ext != "" {
		t = mime.TypeByExtension(ext)
	}
	if t == "" {
		t = http.DetectContentType(data)
	}
	if mt, _, err := mime.ParseMediaType(t); err == nil {
		return mt
	}
	return "application/octet-stream"
}
