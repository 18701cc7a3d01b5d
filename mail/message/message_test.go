package message

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"
)

// unfold undoes RFC 5322 §2.2.3 folding.
func unfold(s string) string { return strings.ReplaceAll(s, "\r\n", "") }

func checkLines(t *testing.T, field string, limit int) {
	t.Helper()
	if !strings.HasSuffix(field, "\r\n") {
		t.Errorf("%q does not end in CRLF", field)
	}
	for i, l := range strings.Split(strings.TrimSuffix(field, "\r\n"), "\r\n") {
		if len(l) > limit {
			t.Errorf("line %d is %d > %d characters: %q", i, len(l), limit, l)
		}
		if i > 0 && l[0] != ' ' && l[0] != '\t' {
			t.Errorf("continuation line %d does not start with whitespace: %q", i, l)
		}
		if strings.TrimSpace(l) == "" {
			t.Errorf("line %d is only whitespace", i)
		}
	}
}

func TestFoldFieldKeepsTextAndLineLengths(t *testing.T) {
	words := strings.Repeat("lorem ipsum dolor sit amet, consectetur  adipiscing\telit ", 6)
	for _, v := range []string{"short", strings.TrimSpace(words), "a " + strings.Repeat("x", 120) + " b"} {
		f := FoldField("Subject", v)
		if got := unfold(f); got != "Subject: "+v {
			t.Errorf("unfolded %q, want %q", got, "Subject: "+v)
		}
		if !strings.Contains(v, strings.Repeat("x", 100)) {
			checkLines(t, f, FoldAt)
		}
	}
	// A word longer than a line stays whole, on a line of its own.
	f := FoldField("Subject", "a "+strings.Repeat("x", 120)+" b")
	if !strings.Contains(f, "\r\n "+strings.Repeat("x", 120)+"\r\n b") {
		t.Errorf("long word not on its own line: %q", f)
	}
}

func TestEncodedWordsRoundTrip(t *testing.T) {
	dec := mime.WordDecoder{}
	for _, s := range []string{
		"Zoë Çelik",
		"日本語の件名です。とても長い件名なので、折り返しが必要になるかもしれません。日本語の件名です。",
		"Grüße aus Köln, " + strings.Repeat("mostly ascii text ", 8),
		"emoji 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
		"looks like =?utf-8?q?an_encoded_word?=",
		"tab\there and ünicode",
	} {
		f := UnstructuredField("Subject", s)
		checkLines(t, f, foldEncodedAt)
		v := strings.TrimPrefix(strings.TrimSuffix(unfold(f), "\r\n"), "Subject: ")
		got, err := dec.DecodeHeader(v)
		if err != nil || got != s {
			t.Errorf("%q: decoded %q, %v; field %q", s, got, err, f)
		}
		for _, w := range strings.Fields(v) {
			if len(w) > maxEncodedWord {
				t.Errorf("encoded-word %q is %d > 75 characters", w, len(w))
			}
			if !utf8Whole(t, w) {
				t.Errorf("encoded-word %q splits a character", w)
			}
		}
	}
	if f := UnstructuredField("Subject", "plain ascii"); f != "Subject: plain ascii\r\n" {
		t.Errorf("ascii subject encoded: %q", f)
	}
}

// utf8Whole reports whether one encoded-word decodes to valid UTF-8 alone.
func utf8Whole(t *testing.T, w string) bool {
	d, err := (&mime.WordDecoder{}).Decode(w)
	if err != nil {
		t.Errorf("decode %q: %v", w, err)
		return false
	}
	return strings.ToValidUTF8(d, "\uFFFD") == d
}

func TestFormatAddressEncodesOnlyTheName(t *testing.T) {
	for _, c := range []struct {
		in   mail.Address
		want string
	}{
		{mail.Address{Address: "bob@hamburger.test"}, "bob@hamburger.test"},
		{mail.Address{Name: "Bob Smith", Address: "bob@hamburger.test"}, "Bob Smith <bob@hamburger.test>"},
		{mail.Address{Name: "Smith, Bob", Address: "bob@hamburger.test"}, `"Smith, Bob" <bob@hamburger.test>`},
		{mail.Address{Name: `a "quoted" \ name`, Address: "x@y.test"}, `"a \"quoted\" \\ name" <x@y.test>`},
		{mail.Address{Name: "Zoë Çelik", Address: "zoe@crepes.test"}, "=?UTF-8?B?Wm/DqyDDh2VsaWs=?= <zoe@crepes.test>"},
	} {
		got, err := FormatAddress(c.in)
		if err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.in, got, err, c.want)
		}
		back, err := ParseAddressList(got)
		if err != nil || len(back) != 1 || back[0].Name != c.in.Name || back[0].Address != c.in.Address {
			t.Errorf("%q parsed back as %v, %v", got, back, err)
		}
	}
	for _, bad := range []string{"", "no-at", "a b@c.test", "zoë@crepes.test", "a@b.test>, <evil@x.test"} {
		if s, err := FormatAddress(mail.Address{Name: "x", Address: bad}); err == nil {
			t.Errorf("%q accepted as %q", bad, s)
		}
	}
}

func testDraft() *Draft {
	return &Draft{
		From:    mail.Address{Name: "Zoë Çelik", Address: "zoe@crepes.test"},
		To:      []mail.Address{{Name: "Bob", Address: "bob@hamburger.test"}, {Name: "山田太郎", Address: "taro@example.jp"}},
		Cc:      []mail.Address{{Address: "carol@crepes.test"}},
		Subject: "会議の資料 — Grüße",
		Date:    time.Date(2026, 12, 2, 15, 4, 5, 0, time.FixedZone("", 3600)),
		Text:    "Hello Bob,\n\nthe slides are attached. Ça va?\n",
		HTML:    "<p>Hello Bob,</p><p>the slides are attached. Ça va?</p>\n",
		Attachments: []Attachment{
			{Filename: "slides.pdf", ContentType: "application/pdf", Data: bytes.Repeat([]byte{0, 0xff, 0x10, 'A', '\r', '\n'}, 100)},
			{Filename: "résumé d'été avec un nom de fichier vraiment très long.txt", ContentType: "text/plain", Data: []byte("naïve\n")},
		},
	}
}

func TestBuildStructureAndEncodings(t *testing.T) {
	d := testDraft()
	msg, err := Build(d)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
		t.Error("a line ending is not CRLF")
	}
	for i, c := range msg {
		if c >= 0x80 || (c < 0x20 && c != '\r' && c != '\n' && c != '\t') {
			t.Fatalf("byte %d is %#x: the message is not 7-bit clean", i, c)
		}
	}
	header, _ := SplitHeader(msg)
	for _, want := range []string{"Date: Wed, 02 Dec 2026 15:04:05 +0100\r\n", "MIME-Version: 1.0\r\n", "\r\nCc: carol@crepes.test\r\n"} {
		if !bytes.Contains(msg, []byte(want)) {
			t.Errorf("no %q in the header", want)
		}
	}
	if !regexp.MustCompile(`(?m)^Message-ID: <[0-9a-f.]+@crepes\.test>\r$`).Match(header) {
		t.Errorf("no Message-ID at the sender's domain:\n%s", header)
	}
	if bytes.Contains(header, []byte("Bcc")) {
		t.Error("a Bcc field in the header")
	}
	for _, l := range strings.Split(string(msg), "\r\n") {
		if len(l) > FoldAt {
			t.Errorf("line of %d characters: %q", len(l), l)
		}
	}

	root := Parse(msg)
	if got := root.Header.Text("Subject"); got != d.Subject {
		t.Errorf("subject %q", got)
	}
	from, _ := root.Header.Addresses("From")
	to, _ := root.Header.Addresses("To")
	if len(from) != 1 || from[0].Name != "Zoë Çelik" || len(to) != 2 || to[1].Name != "山田太郎" || to[1].Address != "taro@example.jp" {
		t.Errorf("from %v to %v", from, to)
	}
	var tree []string
	root.Walk(func(num string, _ int, p *Part) {
		tree = append(tree, fmt.Sprintf("%s %s %s %q", num, p.MediaType, p.Encoding, p.Filename))
		if len(p.Problems) > 0 {
			t.Errorf("part %q: problems %v", num, p.Problems)
		}
	})
	want := []string{
		` multipart/mixed 7bit ""`,
		`1 multipart/alternative 7bit ""`,
		`1.1 text/plain quoted-printable ""`,
		`1.2 text/html quoted-printable ""`,
		`2 application/pdf base64 "slides.pdf"`,
		`3 text/plain base64 "résumé d'été avec un nom de fichier vraiment très long.txt"`,
	}
	if strings.Join(tree, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(tree, "\n"), strings.Join(want, "\n"))
	}
	text := root.Parts[0].Parts[0]
	if text.Text != strings.ReplaceAll(d.Text, "\n", "\r\n") {
		t.Errorf("text %q", text.Text)
	}
	if html := root.Parts[0].Parts[1]; html.Text != strings.ReplaceAll(d.HTML, "\n", "\r\n") {
		t.Errorf("html %q", html.Text)
	}
	for i, a := range d.Attachments {
		p := root.Parts[i+1]
		if !bytes.Equal(p.Body, a.Data) || p.Disposition != "attachment" {
			t.Errorf("attachment %d: %q %q", i, p.Disposition, p.Body)
		}
	}
	// base64 in lines of 76 (RFC 2045 §6.8), the last one shorter.
	bodies := regexp.MustCompile(`Content-Transfer-Encoding: base64\r\n\r\n((?:[^\r]+\r\n)+)`).FindAllSubmatch(msg, -1)
	if len(bodies) != 2 {
		t.Fatalf("%d base64 bodies", len(bodies))
	}
	for _, b := range bodies {
		lines := strings.Split(strings.TrimSuffix(string(b[1]), "\r\n"), "\r\n")
		for i, l := range lines {
			if len(l) != 76 && (i != len(lines)-1 || len(l) > 76) {
				t.Errorf("base64 line %d of %d has %d characters", i, len(lines), len(l))
			}
		}
	}
}

func TestBuildPlainASCIIIs7bit(t *testing.T) {
	msg, err := Build(&Draft{From: mail.Address{Address: "a@crepes.test"}, To: []mail.Address{{Address: "b@hamburger.test"}}, Subject: "hi", Text: "hello\nworld", Date: time.Unix(0, 0).UTC(), MessageID: "<1@crepes.test>"})
	if err != nil {
		t.Fatal(err)
	}
	want := "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\nFrom: a@crepes.test\r\nTo: b@hamburger.test\r\nMessage-ID: <1@crepes.test>\r\nSubject: hi\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nhello\r\nworld\r\n"
	if string(msg) != want {
		t.Errorf("got\n%q\nwant\n%q", msg, want)
	}
	if _, err := Build(&Draft{To: []mail.Address{{Address: "b@x.test"}}}); err != ErrNoSender {
		t.Errorf("no From: %v", err)
	}
}

func TestEnsureSubmissionHeaders(t *testing.T) {
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	orig := []byte("From: a@crepes.test\r\nSubject: x\r\n\r\nbody\r\n")
	out, err := EnsureSubmissionHeaders(orig, "crepes.test", now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out, orig) {
		t.Error("the original bytes are not kept at the end")
	}
	added := string(out[:len(out)-len(orig)])
	if !regexp.MustCompile(`^Message-ID: <[0-9a-f.]+@crepes\.test>\r\nDate: Wed, 02 Dec 2026 16:00:00 \+0000\r\n$`).MatchString(added) {
		t.Errorf("added %q", added)
	}
	full := append([]byte("message-id: <x@y>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n"), orig...)
	if out, _ := EnsureSubmissionHeaders(full, "crepes.test", now); !bytes.Equal(out, full) {
		t.Errorf("a complete message changed: %q", out)
	}
	// A Date in the body is not a Date field.
	body := []byte("Subject: x\r\n\r\nDate: tomorrow\r\n")
	if out, _ := EnsureSubmissionHeaders(body, "crepes.test", now); !bytes.Contains(out, []byte("Date: Wed")) {
		t.Errorf("a Date line in the body counted: %q", out)
	}
	// No header at all: the added fields get the blank line before the body.
	if out, _ := EnsureSubmissionHeaders([]byte("just text\r\n"), "crepes.test", now); !bytes.HasSuffix(out, []byte("+0000\r\n\r\njust text\r\n")) {
		t.Errorf("headerless: %q", out)
	}
	if _, err := EnsureSubmissionHeaders(orig, "not a domain", now); err == nil {
		t.Error("a bad domain accepted")
	}
}

func TestCountReceived(t *testing.T) {
	var b bytes.Buffer
	for i := range 7 {
		fmt.Fprintf(&b, "Received: from h%d.test\r\n\tby mx.test; Wed, 2 Dec 2026 16:00:00 +0000\r\n", i)
	}
	b.WriteString("received : obsolete spacing\r\nX-Received: not one\r\nSubject: Received: no\r\n\r\nReceived: in the body\r\n")
	if n := CountReceived(b.Bytes()); n != 8 {
		t.Errorf("CountReceived = %d, want 8", n)
	}
	if n := CountReceived([]byte("Subject: x\r\n\r\n")); n != 0 {
		t.Errorf("CountReceived = %d, want 0", n)
	}
}

// TestBuildNoHeaderInjection: line breaks in any text a user gives end up
// encoded, never as a new header field.
func TestBuildNoHeaderInjection(t *testing.T) {
	evil := "hi\r\nBcc: eve@evil.test\r\n\r\nbody"
	msg, err := Build(&Draft{
		From:        mail.Address{Name: evil, Address: "a@crepes.test"},
		To:          []mail.Address{{Name: "x\nBcc: eve@evil.test", Address: "b@hamburger.test"}},
		Subject:     evil,
		UserAgent:   evil,
		Attachments: []Attachment{{Filename: "a\r\nBcc: eve@evil.test.txt", ContentType: "text/plain\r\nBcc: eve@evil.test", Data: []byte("x")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(msg, []byte("\nBcc")) {
		t.Fatalf("a Bcc line got in:\n%s", msg)
	}
	root := Parse(msg)
	if root.Header.Text("Subject") != evil || root.Header.Get("Bcc") != "" {
		t.Errorf("subject %q", root.Header.Text("Subject"))
	}
	if _, err := Build(&Draft{From: mail.Address{Address: "a@crepes.test"}, MessageID: "<x@y>\r\nBcc: e@v"}); err == nil {
		t.Error("a Message-ID with a line break accepted")
	}
}

func TestBuildOnlyBcc(t *testing.T) {
	msg, err := Build(&Draft{From: mail.Address{Address: "a@crepes.test"}, Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(msg, []byte("\r\nTo: undisclosed-recipients:;\r\n")) {
		t.Errorf("no undisclosed-recipients group:\n%s", msg)
	}
	if l, err := Parse(msg).Header.Addresses("To"); err != nil || len(l) != 0 {
		t.Errorf("To parsed as %v, %v", l, err)
	}
}

// bigDraft is testDraft with a 1 MiB attachment.
func bigDraft() *Draft {
	d := testDraft()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 131 >> 3)
	}
	d.Attachments = append(d.Attachments, Attachment{Filename: "big.bin", Data: data})
	return d
}

func BenchmarkBuild(b *testing.B) {
	d := bigDraft()
	msg, _ := Build(d)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		Build(d)
	}
}

func BenchmarkParse(b *testing.B) {
	msg, _ := Build(bigDraft())
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		Parse(msg)
	}
}

// TestAddressFieldLongNames: long display names, encoded or not, and long
// lists fold within 76 columns where encoded-words are (RFC 2047 §2) and 78
// elsewhere, and parse back whole.
func TestAddressFieldLongNames(t *testing.T) {
	list := []mail.Address{
		{Name: strings.Repeat("Ünïcödé Nàmé ", 8), Address: "long@crepes.test"},
		{Name: "Plain Name", Address: "plain@crepes.test"},
		{Name: strings.Repeat("長い名前", 12), Address: "jp@example.jp"},
	}
	for i := range 12 {
		list = append(list, mail.Address{Address: fmt.Sprintf("user%d@hamburger.test", i)})
	}
	for _, name := range []string{"From", "To", "Reply-To"} {
		f, err := AddressField(name, list)
		if err != nil {
			t.Fatal(err)
		}
		checkLines(t, f, foldEncodedAt)
		back, err := ParseAddressList(strings.TrimPrefix(unfold(f), name+": "))
		if err != nil || len(back) != len(list) {
			t.Fatalf("%s: parsed %d of %d: %v", name, len(back), len(list), err)
		}
		for i := range list {
			if back[i].Name != strings.TrimSpace(list[i].Name) || back[i].Address != list[i].Address {
				t.Errorf("%s: address %d came back as %v", name, i, back[i])
			}
		}
	}
}
