package message

import (
	"bytes"
	"encoding/json"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// python returns Debian's python3 (its email package is the reference
// here), gated by testnet.NeedTool.
func python(t *testing.T) string {
	t.Helper()
	p := testnet.NeedTool(t, "python3")
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		p = "/usr/bin/python3"
	}
	return p
}

// pyRead is testdata/pyread.py: it parses a message file with Python's
// email package (policy.default) and prints what a mail client would show.
const pyRead = "testdata/pyread.py"

type pyView struct {
	Subject     string
	From, To    [][2]string
	Cc          [][2]string
	Bcc         *string
	Text, HTML  *string
	Type        string
	Attachments []struct {
		Filename, Type string
		Data           []byte
	}
	Defects []string
}

func pairs(l []mail.Address) [][2]string {
	out := make([][2]string, len(l))
	for i, a := range l {
		out[i] = [2]string{a.Name, a.Address}
	}
	return out
}

// TestPythonReadsOurMessage builds a message with a multipart/mixed body,
// an HTML alternative, binary and non-ASCII-named attachments and non-ASCII
// header text, and checks that Python's email package reads back exactly
// what went in.
func TestPythonReadsOurMessage(t *testing.T) {
	py := python(t)
	bin := make([]byte, 3000)
	for i := range bin {
		bin[i] = byte(i * 7 % 256)
	}
	d := &Draft{
		From: mail.Address{Name: "Zoë Çelik", Address: "zoe@crepes.test"},
		To: []mail.Address{
			{Name: "Bob Smith", Address: "bob@hamburger.test"},
			{Name: "山田 太郎", Address: "taro@example.jp"},
			{Name: "O'Brien, Seán", Address: "sean@example.ie"},
		},
		Cc:      []mail.Address{{Address: "carol@crepes.test"}},
		Subject: "会議の資料について — Zoë's slides for the meeting of the whole team on Friday",
		Date:    time.Date(2026, 12, 2, 15, 4, 5, 0, time.UTC),
		Text:    "Hello Bob,\n\nthe slides are attached. Ça va? 日本語も大丈夫です。\n" + strings.Repeat("A long line of text that must be wrapped by quoted-printable soft breaks. ", 4) + "\n.\nFrom the start of a line\n",
		HTML:    "<html><body><p>Hello Bob, <b>ça va</b>?</p></body></html>\n",
		Attachments: []Attachment{
			{Filename: "slides.bin", ContentType: "application/octet-stream", Data: bin},
			{Filename: "résumé — 履歴書 (final version, really the final one).pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4\n\x00\xff binary")},
		},
	}
	msg, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(file, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, pyRead, file).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var v pyView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Subject != d.Subject {
		t.Errorf("subject %q, want %q", v.Subject, d.Subject)
	}
	if !eq(v.From, pairs([]mail.Address{d.From})) || !eq(v.To, pairs(d.To)) || !eq(v.Cc, pairs(d.Cc)) || v.Bcc != nil {
		t.Errorf("addresses: from %v to %v cc %v bcc %v", v.From, v.To, v.Cc, v.Bcc)
	}
	// Python's get_content gives text with LF line endings.
	if v.Text == nil || *v.Text != d.Text {
		t.Errorf("text %q, want %q", deref(v.Text), d.Text)
	}
	if v.HTML == nil || *v.HTML != d.HTML {
		t.Errorf("html %q, want %q", deref(v.HTML), d.HTML)
	}
	if v.Type != "multipart/mixed" || len(v.Attachments) != len(d.Attachments) {
		t.Fatalf("type %s, %d attachments", v.Type, len(v.Attachments))
	}
	for i, a := range d.Attachments {
		got := v.Attachments[i]
		if got.Filename != a.Filename || got.Type != a.ContentType || !bytes.Equal(got.Data, a.Data) {
			t.Errorf("attachment %d: %q %s %d bytes; want %q %s %d bytes", i, got.Filename, got.Type, len(got.Data), a.Filename, a.ContentType, len(a.Data))
		}
	}
	if len(v.Defects) > 0 {
		t.Errorf("python found defects: %v", v.Defects)
	}
}

// pyWrite builds a message with Python's EmailMessage the way a Python
// program sends mail, and prints what it put in it.
const pyWrite = `
import sys, json, base64
from email.message import EmailMessage
from email.headerregistry import Address
from email import policy
m = EmailMessage()
m['Subject'] = 'Résumé: 日本語の件名 and a long ASCII tail to force folding of the subject line'
m['From'] = Address('Zoë Çelik', 'zoe', 'crepes.test')
m['To'] = (Address('Bob', 'bob', 'hamburger.test'), Address('山田 太郎', 'taro', 'example.jp'))
text = 'Grüße aus Köln!\nZweite Zeile.\n'
html = '<p>Grüße aus <i>Köln</i>!</p>\n'
m.set_content(text)
m.add_alternative(html, subtype='html')
data = bytes(range(256)) * 4
m.add_attachment(data, maintype='application', subtype='octet-stream', filename='données été.bin')
m.add_attachment('plain text file\n', filename='notes.txt')
open(sys.argv[1], 'wb').write(m.as_bytes(policy=policy.SMTP))
print(json.dumps({'subject': str(m['subject']), 'text': text, 'html': html,
                  'att': [['données été.bin', base64.b64encode(data).decode()], ['notes.txt', base64.b64encode(b'plain text file\n').decode()]]}))
`

// TestWeReadPythonsMessage decodes a message built by Python's email
// package and compares it with what Python put in.
func TestWeReadPythonsMessage(t *testing.T) {
	py := python(t)
	file := filepath.Join(t.TempDir(), "py.eml")
	out, err := exec.Command(py, "-c", pyWrite, file).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var want struct {
		Subject, Text, HTML string
		Att                 [][2]string
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	msg, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	root := Parse(msg)
	if got := root.Header.Text("Subject"); got != want.Subject {
		t.Errorf("subject %q, want %q", got, want.Subject)
	}
	from, err1 := root.Header.Addresses("From")
	to, err2 := root.Header.Addresses("To")
	if err1 != nil || err2 != nil || len(from) != 1 || from[0].Name != "Zoë Çelik" || from[0].Address != "zoe@crepes.test" ||
		len(to) != 2 || to[1].Name != "山田 太郎" || to[1].Address != "taro@example.jp" {
		t.Errorf("from %v %v, to %v %v", from, err1, to, err2)
	}
	var texts []string
	var atts [][2]string
	root.Walk(func(num string, _ int, p *Part) {
		if len(p.Problems) > 0 {
			t.Errorf("part %q: %v", num, p.Problems)
		}
		switch {
		case p.IsAttachment() && strings.HasPrefix(p.MediaType, "text/"):
			// Text travels with CRLF line breaks (RFC 2046 §4.1.1); the
			// file Python attached had LF.
			atts = append(atts, [2]string{p.Filename, strings.ReplaceAll(string(p.Body), "\r\n", "\n")})
		case p.IsAttachment():
			atts = append(atts, [2]string{p.Filename, string(p.Body)})
		case strings.HasPrefix(p.MediaType, "text/"):
			texts = append(texts, strings.ReplaceAll(p.Text, "\r\n", "\n"))
		}
	})
	if len(texts) != 2 || texts[0] != want.Text || texts[1] != want.HTML {
		t.Errorf("texts %q, want %q and %q", texts, want.Text, want.HTML)
	}
	if len(atts) != len(want.Att) {
		t.Fatalf("%d attachments, want %d", len(atts), len(want.Att))
	}
	for i, a := range want.Att {
		data, _ := decodeB64(a[1])
		if atts[i][0] != a[0] || atts[i][1] != string(data) {
			t.Errorf("attachment %d: %q (%d bytes), want %q (%d bytes)", i, atts[i][0], len(atts[i][1]), a[0], len(data))
		}
	}
}

func eq(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

func decodeB64(s string) ([]byte, error) {
	var b []byte
	err := json.Unmarshal([]byte(`"`+s+`"`), &b)
	return b, err
}
