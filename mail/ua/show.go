package ua

import (
	"fmt"
	"io"
	"net/mail"
	"sort"
	"strings"

	"appnet/mail/message"
)

// Show prints msg for a person: its main header fields decoded, its MIME
// tree (each part's number, content type, transfer encoding, size and file
// name), then the decoded text of each text part that is not an
// attachment. Control characters in the message are shown escaped, so a
// message cannot drive the terminal. Problems found while parsing are listed
// under the part they concern.
func Show(w io.Writer, msg []byte) error {
	root := message.Parse(msg)
	bw := &errWriter{w: w}
	for _, f := range []string{"From", "Sender", "Reply-To", "To", "Cc", "Date", "Subject", "Message-ID"} {
		v := root.Header.Get(f)
		if v == "" {
			continue
		}
		switch f {
		case "From", "Sender", "Reply-To", "To", "Cc":
			if l, err := message.ParseAddressList(v); err == nil {
				v = formatList(l)
			} else {
				v = message.DecodeText(v)
			}
		default:
			v = message.DecodeText(v)
		}
		bw.printf("%-9s %s\n", f+":", safe(strings.TrimSpace(v), false))
	}
	bw.printf("\nMIME structure (%d bytes):\n", len(msg))
	root.Walk(func(num string, depth int, p *message.Part) {
		label := num
		if label == "" {
			label = "message"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s%-8s %s", strings.Repeat("  ", depth), label, p.MediaType)
		keys := make([]string, 0, len(p.Params))
		for k := range p.Params {
			if k != "name" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "; %s=%q", k, p.Params[k])
		}
		if len(p.Parts) == 0 {
			fmt.Fprintf(&b, "  %s  %d bytes", p.Encoding, p.Size)
			if len(p.Body) != p.Size {
				fmt.Fprintf(&b, " (%d decoded)", len(p.Body))
			}
		}
		if p.Disposition != "" {
			fmt.Fprintf(&b, "  %s", p.Disposition)
		}
		if p.Filename != "" {
			fmt.Fprintf(&b, "  filename %q", p.Filename)
		}
		bw.printf("%s\n", safe(b.String(), false))
		for _, pr := range p.Problems {
			bw.printf("%s         ! %s\n", strings.Repeat("  ", depth), safe(pr, false))
		}
	})
	root.Walk(func(num string, _ int, p *message.Part) {
		if len(p.Parts) > 0 || !strings.HasPrefix(p.MediaType, "text/") || p.IsAttachment() {
			return
		}
		label := num
		if label == "" {
			label = "message"
		}
		cs := p.Charset
		if cs == "" {
			cs = "us-ascii"
		}
		bw.printf("\n--- part %s: %s, %s ---\n", label, p.MediaType, cs)
		text := strings.ReplaceAll(p.Text, "\r\n", "\n")
		bw.printf("%s", safe(text, true))
		if text != "" && !strings.HasSuffix(text, "\n") {
			bw.printf("\n")
		}
	})
	return bw.err
}

func formatList(l []*mail.Address) string {
	s := make([]string, len(l))
	for i, a := range l {
		if a.Name == "" {
			s[i] = a.Address
		} else {
			s[i] = fmt.Sprintf("%s <%s>", a.Name, a.Address)
		}
	}
	return strings.Join(s, ", ")
}

// safe escapes control characters (keeping newlines and tabs in text) so
// that printing a hostile message cannot send escape sequences to the
// terminal.
func safe(s string, text bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case text && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
