package message

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestParseCharsetsAndEncodings(t *testing.T) {
	msg := "Subject: =?iso-8859-1?q?Gr=FC=DFe?= =?koi8-r?b?8NLJ18XU?=\r\n" +
		"From: =?windows-1252?q?Fran=E7ois?= <f@x.test>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"preamble\r\n--b\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Gr=FC=DFe, soft=\r\n break\r\n" +
		"--b  \r\n" + // transport padding after the delimiter, RFC 2046 §5.1.1
		"Content-Type: text/plain; charset=shift_jis\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"k/qWe4zq\r\n" +
		"--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=iso-8859-1''caf%E9.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"AAEC\r\n A/8=\r\n" + // whitespace inside base64 is ignored
		"--b--\r\nepilogue\r\n"
	root := Parse([]byte(msg))
	if got := root.Header.Text("Subject"); got != "GrüßeПривет" { // the space between encoded-words is not text (RFC 2047 §6.2)
		t.Errorf("subject %q", got)
	}
	if from, err := root.Header.Addresses("From"); err != nil || from[0].Name != "François" {
		t.Errorf("from %v %v", from, err)
	}
	if len(root.Parts) != 3 {
		t.Fatalf("%d parts", len(root.Parts))
	}
	if got := root.Parts[0].Text; got != "Grüße, soft break" { // the CRLF before "--b" is the delimiter's
		t.Errorf("latin-1 quoted-printable: %q", got)
	}
	if got := root.Parts[1].Text; got != "日本語" {
		t.Errorf("shift_jis base64: %q", got)
	}
	if p := root.Parts[2]; !bytes.Equal(p.Body, []byte{0, 1, 2, 3, 0xff}) || p.Filename != "café.bin" || !p.IsAttachment() {
		t.Errorf("attachment %q %q", p.Body, p.Filename)
	}
	root.Walk(func(num string, _ int, p *Part) {
		if len(p.Problems) > 0 {
			t.Errorf("part %q: %v", num, p.Problems)
		}
	})
}

func TestParseMalformed(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		check     func(*Part) string
	}{
		{"no header", "just a body\r\n", func(p *Part) string {
			if len(p.Header) != 0 || p.Text != "just a body\r\n" || p.MediaType != "text/plain" {
				return fmt.Sprintf("%v %q", p.Header, p.Text)
			}
			return ""
		}},
		{"bare LF", "Subject: x\nContent-Type: text/plain\n\nhi\n", func(p *Part) string {
			if p.Header.Get("subject") != "x" || p.Text != "hi\n" {
				return fmt.Sprintf("%v %q", p.Header, p.Text)
			}
			return ""
		}},
		{"no closing boundary", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo", func(p *Part) string {
			if len(p.Parts) != 2 || p.Parts[1].Text != "two" || len(p.Problems) != 1 {
				return fmt.Sprintf("%d parts %v", len(p.Parts), p.Problems)
			}
			return ""
		}},
		{"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\ntext", func(p *Part) string {
			if p.Text != "text" || len(p.Problems) != 1 {
				return fmt.Sprintf("%q %v", p.Text, p.Problems)
			}
			return ""
		}},
		{"bad content type", "Content-Type: ;;;\r\n\r\nx", func(p *Part) string {
			if p.MediaType != "text/plain" || len(p.Problems) != 1 {
				return fmt.Sprintf("%q %v", p.MediaType, p.Problems)
			}
			return ""
		}},
		{"bad base64 and unknown encoding", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD!!RA\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--", func(p *Part) string {
			if len(p.Parts) != 2 || string(p.Parts[0].Body) != "ABCD" || string(p.Parts[1].Body) != "begin" || len(p.Parts[1].Problems) != 1 {
				return fmt.Sprintf("%q %q %v", p.Parts[0].Body, p.Parts[1].Body, p.Parts[1].Problems)
			}
			return ""
		}},
		{"unknown charset", "Content-Type: text/plain; charset=x-martian\r\n\r\nh\xffi", func(p *Part) string {
			if p.Text != "h\uFFFDi" || len(p.Problems) != 1 {
				return fmt.Sprintf("%q %v", p.Text, p.Problems)
			}
			return ""
		}},
		{"digest default type", "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: inner\r\n\r\nbody\r\n--d--\r\n", func(p *Part) string {
			if len(p.Parts) != 1 || p.Parts[0].MediaType != "message/rfc822" || len(p.Parts[0].Parts) != 1 || p.Parts[0].Parts[0].Header.Get("Subject") != "inner" {
				return "digest part not read as a message"
			}
			return ""
		}},
	} {
		p := Parse([]byte(c.msg))
		if s := c.check(p); s != "" {
			t.Errorf("%s: %s", c.name, s)
		}
	}
}

// nested returns a message of depth multiparts, one inside the other.
func nested(depth int) []byte {
	var b bytes.Buffer
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("\r\ninnermost\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

func TestParseLimits(t *testing.T) {
	// Depth: 10,000 levels of nesting stop at MaxDepth.
	root := Parse(nested(10000))
	depth, problems := 0, 0
	root.Walk(func(_ string, d int, p *Part) {
		depth = max(depth, d)
		problems += len(p.Problems)
	})
	if depth >= DefaultLimits.MaxDepth || problems == 0 {
		t.Errorf("depth %d (limit %d), %d problems", depth, DefaultLimits.MaxDepth, problems)
	}
	if root := Parse(nested(5)); root.Parts[0].Parts[0].Parts[0].Parts[0].Parts[0].Text != "innermost" {
		t.Error("5 levels not read")
	}

	// Parts: 5,000 parts stop at MaxParts.
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 5000 {
		b.WriteString("--b\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	n := 0
	root = Parse(b.Bytes())
	root.Walk(func(string, int, *Part) { n++ })
	if n != DefaultLimits.MaxParts || len(root.Problems) == 0 {
		t.Errorf("%d parts (limit %d), problems %v", n, DefaultLimits.MaxParts, root.Problems)
	}

	// Decoded bytes: the bodies together stay within MaxDecodedBytes.
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 10 {
		b.WriteString("--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("abcdefgh", 128) + "\r\n")
	}
	b.WriteString("--b--\r\n")
	root = ParseLimits(b.Bytes(), Limits{MaxDecodedBytes: 3000})
	total := 0
	for _, p := range root.Parts {
		total += len(p.Body) + len(p.Text)
	}
	if total > 2*3000 || len(root.Parts[len(root.Parts)-1].Problems) == 0 {
		t.Errorf("decoded %d bytes with a limit of 3000", total)
	}
}

// FuzzParse feeds arbitrary bytes to Parse and to the header helpers: they
// must never panic, and the tree must stay within the limits.
func FuzzParse(f *testing.F) {
	seed, _ := Build(testDraft())
	f.Add(seed)
	f.Add(nested(40))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n----\r\n"))
	f.Add([]byte("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKYm9keQ==\r\n"))
	f.Add([]byte("Subject: =?utf-8?b?////?= =?x?q?=ZZ?=\r\nFrom: =?utf-8?q?a?= <\r\n\r\n"))
	f.Add([]byte("Content-Type: text/plain; charset=utf-16\r\nContent-Disposition: attachment; filename*0*=x''%ZZ; filename*1=y\r\n\r\n\xff\xfe"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		lim := Limits{MaxDepth: 8, MaxParts: 50, MaxFields: 50, MaxDecodedBytes: 1 << 16}
		root := ParseLimits(msg, lim)
		parts := 0
		root.Walk(func(_ string, d int, p *Part) {
			parts++
			if d >= lim.MaxDepth {
				t.Fatalf("depth %d", d)
			}
			if len(p.Header) > lim.MaxFields {
				t.Fatalf("%d fields", len(p.Header))
			}
			p.Header.Text("Subject")
			p.Header.Addresses("To")
		})
		if parts > lim.MaxParts {
			t.Fatalf("%d parts", parts)
		}
		CountReceived(msg)
		if out, err := EnsureSubmissionHeaders(msg, "crepes.test", testDraft().Date); err != nil || !bytes.HasSuffix(out, msg) {
			t.Fatalf("EnsureSubmissionHeaders: %v", err)
		}
	})
}

// TestParseManyContinuationLines: a header of 200,000 continuation lines
// (2 MB) is read in linear time, not by copying the value once a line.
func TestParseManyContinuationLines(t *testing.T) {
	msg := "Subject: x\r\n" + strings.Repeat(" folded\r\n", 200000) + "\r\nbody"
	root := Parse([]byte(msg))
	if got := len(root.Header.Get("Subject")); got != 1+200000*len(" folded") {
		t.Errorf("subject of %d bytes", got)
	}
	if root.Text != "body" {
		t.Errorf("body %q", root.Text)
	}
}
