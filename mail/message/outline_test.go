package message

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// nestedMsg is multipart/mixed holding a multipart/alternative, a
// message/rfc822 attachment that holds its own multipart, and an image,
// with a preamble and an epilogue, CRLF line ends.
const nestedMsg = "From: Alice <alice@a.test>\r\n" +
	"To: Bob <bob@b.test>\r\n" +
	"Subject: nested\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n" +
	"\r\n" +
	"This is the preamble.\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=alt\r\n" +
	"\r\n" +
	"--alt\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"plain line 1\r\nplain line 2\r\n" +
	"--alt\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p>html</p>\r\n" +
	"--alt--\r\n" +
	"--outer\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"Content-Description: forwarded\r\n" +
	"Content-Disposition: attachment; filename=\"fwd.eml\"\r\n" +
	"\r\n" +
	"From: Carol <carol@c.test>\r\n" +
	"Subject: inner\r\n" +
	"Content-Type: multipart/mixed; boundary=in\r\n" +
	"\r\n" +
	"--in\r\n" +
	"\r\n" +
	"inner text\r\n" +
	"--in\r\n" +
	"Content-Type: application/octet-stream; name=a.bin\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"AAEC\r\n" +
	"--in--\r\n" +
	"--outer\r\n" +
	"Content-Type: image/png; name=\"dot.png\"\r\n" +
	"Content-ID: <dot@a.test>\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Language: en, de\r\n" +
	"Content-Location: http://a.test/dot.png\r\n" +
	"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n" +
	"\r\n" +
	"iVBORw0KGgo=\r\n" +
	"--outer--\r\n" +
	"epilogue\r\n"

// shape is the BODYSTRUCTURE-relevant view of an outline, for comparing.
type shape struct {
	Type, Subtype, Encoding, ID, Description, Disposition, Location, MD5 string
	Params, DispositionParams                                            []Param
	Language                                                             []string
	Size, Lines                                                          int
	Body                                                                 string // the body's bytes when short
	Parts                                                                []shape
	Message                                                              *shape
}

func shapeOf(msg []byte, o *Outline) shape {
	s := shape{Type: o.Type, Subtype: o.Subtype, Encoding: o.Encoding, ID: o.ID, Description: o.Description,
		Disposition: o.Disposition, Location: o.Location, MD5: o.MD5, Params: o.Params,
		DispositionParams: o.DispositionParams, Language: o.Language, Size: o.Size(), Lines: o.Lines}
	if o.Type != "multipart" && o.Message == nil {
		s.Body = string(msg[o.BodyStart:o.End])
	}
	for _, p := range o.Parts {
		s.Parts = append(s.Parts, shapeOf(msg, p))
	}
	if o.Message != nil {
		m := shapeOf(msg, o.Message)
		s.Message = &m
	}
	return s
}

var usascii = []Param{{"charset", "us-ascii"}}

func textPlain(body string, lines int) shape {
	return shape{Type: "text", Subtype: "plain", Encoding: "7bit", Params: usascii, Size: len(body), Lines: lines, Body: body}
}

func TestOutlineNested(t *testing.T) {
	msg := []byte(nestedMsg)
	o := ParseOutline(msg)
	inner := "From: Carol <carol@c.test>\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n\r\ninner text\r\n--in\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--in--"
	innerBody := inner[strings.Index(inner, "\r\n\r\n")+4:]
	want := shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "outer"}},
		Size: len(msg) - strings.Index(nestedMsg, "\r\n\r\n") - 4,
		Parts: []shape{
			{Type: "multipart", Subtype: "alternative", Encoding: "7bit", Params: []Param{{"boundary", "alt"}},
				Size: len("--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain line 1\r\nplain line 2\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>html</p>\r\n--alt--"),
				Parts: []shape{
					{Type: "text", Subtype: "plain", Encoding: "7bit", Params: []Param{{"charset", "utf-8"}}, Size: 26, Lines: 2, Body: "plain line 1\r\nplain line 2"},
					{Type: "text", Subtype: "html", Encoding: "quoted-printable", Params: []Param{{"charset", "utf-8"}}, Size: 11, Lines: 1, Body: "<p>html</p>"},
				}},
			{Type: "message", Subtype: "rfc822", Encoding: "7bit", Description: "forwarded", Disposition: "attachment",
				DispositionParams: []Param{{"filename", "fwd.eml"}}, Size: len(inner), Lines: 13,
				Message: &shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "in"}}, Size: len(innerBody),
					Parts: []shape{
						textPlain("inner text", 1),
						{Type: "application", Subtype: "octet-stream", Encoding: "base64", Params: []Param{{"name", "a.bin"}}, Size: 4, Body: "AAEC"},
					}}},
			{Type: "image", Subtype: "png", Encoding: "base64", Params: []Param{{"name", "dot.png"}}, ID: "<dot@a.test>",
				Language: []string{"en", "de"}, Location: "http://a.test/dot.png", MD5: "Q2hlY2sgSW50ZWdyaXR5IQ==", Size: 12, Body: "iVBORw0KGgo="},
		}}
	if got := shapeOf(msg, o); !reflect.DeepEqual(got, want) {
		t.Errorf("outline\n got %+v\nwant %+v", got, want)
	}
	checkOffsets(t, msg, o)

	// Sections, RFC 3501 §6.4.5's rules.
	for _, c := range []struct {
		path string
		body string // "" means the path does not exist
	}{
		{"1.1", "plain line 1\r\nplain line 2"},
		{"1.2", "<p>html</p>"},
		{"2", inner},
		{"2.1", "inner text"},
		{"2.2", "AAEC"},
		{"3", "iVBORw0KGgo="},
		{"3.1", "iVBORw0KGgo="},
		{"4", ""},
		{"1.3", ""},
		{"2.3", ""},
		{"2.1.2", ""},
		{"0", ""},
	} {
		e, ok := o.Section(parsePath(c.path))
		if c.body == "" {
			if ok {
				t.Errorf("section %s exists: %q", c.path, msg[e.BodyStart:e.End])
			}
			continue
		}
		if !ok {
			t.Errorf("section %s not found", c.path)
			continue
		}
		if got := string(msg[e.BodyStart:e.End]); got != c.body {
			t.Errorf("section %s: %q, want %q", c.path, got, c.body)
		}
	}
	// BODY[2.HEADER] is the enclosed message's header; BODY[3.MIME] the part's.
	e, _ := o.Section([]int{2})
	if got := string(msg[e.Message.Start:e.Message.BodyStart]); got != inner[:len(inner)-len(innerBody)] {
		t.Errorf("2.HEADER %q", got)
	}
	e, _ = o.Section([]int{3})
	if got := string(msg[e.Start:e.BodyStart]); !strings.HasPrefix(got, "Content-Type: image/png") || !strings.HasSuffix(got, "==\r\n\r\n") {
		t.Errorf("3.MIME %q", got)
	}
	if e, ok := o.Section(nil); !ok || e != o {
		t.Errorf("empty path")
	}
}

func parsePath(s string) []int {
	var p []int
	for _, f := range strings.Split(s, ".") {
		var n int
		fmt.Sscan(f, &n)
		p = append(p, n)
	}
	return p
}

// checkOffsets checks that every entity lies within its parent, header
// before body, parts in order.
func checkOffsets(t testing.TB, msg []byte, o *Outline) {
	t.Helper()
	var check func(o *Outline, lo, hi int)
	check = func(o *Outline, lo, hi int) {
		if !(lo <= o.Start && o.Start <= o.BodyStart && o.BodyStart <= o.End && o.End <= hi) {
			t.Fatalf("entity %d %d %d outside [%d %d]", o.Start, o.BodyStart, o.End, lo, hi)
		}
		if o.Type == "multipart" && len(o.Parts) == 0 {
			t.Fatalf("multipart without parts")
		}
		prev := o.BodyStart
		for _, p := range o.Parts {
			check(p, prev, o.End)
			prev = p.End
		}
		if o.Message != nil {
			if o.Message.Start != o.BodyStart || o.Message.End != o.End {
				t.Fatalf("enclosed message %d-%d, body %d-%d", o.Message.Start, o.Message.End, o.BodyStart, o.End)
			}
			check(o.Message, o.BodyStart, o.End)
		}
	}
	check(o, 0, len(msg))
}

func TestOutlineEdgeCases(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		want      shape
	}{
		{"empty message", "", textPlain("", 0)},
		{"header without body", "Subject: x\r\nFrom: a@b\r\n", textPlain("", 0)},
		{"header and blank line", "Subject: x\r\n\r\n", textPlain("", 0)},
		{"unterminated last line", "Subject: x\r\n\r\na\r\nb", textPlain("a\r\nb", 2)},
		{"bare LF", "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\nContent-Type: text/plain\n\none\ntwo\n--b\n\nthree\n--b--\n",
			shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "b"}}, Size: len("pre\n--b\nContent-Type: text/plain\n\none\ntwo\n--b\n\nthree\n--b--\n"),
				Parts: []shape{{Type: "text", Subtype: "plain", Encoding: "7bit", Size: 7, Lines: 2, Body: "one\ntwo"}, textPlain("three", 1)}}},
		{"missing final boundary", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n",
			shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "b"}}, Size: 24,
				Parts: []shape{textPlain("one", 1), textPlain("two\r\n", 1)}}},
		{"boundary with trailing whitespace", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b \t\r\n\r\none\r\n--b--  \r\n",
			shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "b"}}, Size: 23,
				Parts: []shape{textPlain("one", 1)}}},
		{"boundary-like line is not a delimiter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--bx\r\n--b--\r\n",
			shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "b"}}, Size: 20,
				Parts: []shape{textPlain("--bx", 1)}}},
		{"no parts: Dovecot's empty text/plain", "Content-Type: multipart/mixed; boundary=b\r\n\r\nno delimiter\r\n",
			shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Params: []Param{{"boundary", "b"}}, Size: 14,
				Parts: []shape{textPlain("", 0)}}},
		{"no boundary", "Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n",
			shape{Type: "multipart", Subtype: "mixed", Encoding: "7bit", Size: 10, Parts: []shape{textPlain("", 0)}}},
		{"digest", "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in\r\n\r\nbody\r\n--d--\r\n",
			shape{Type: "multipart", Subtype: "digest", Encoding: "7bit", Params: []Param{{"boundary", "d"}}, Size: 35,
				Parts: []shape{{Type: "message", Subtype: "rfc822", Encoding: "7bit", Size: 19, Lines: 3,
					Message: &shape{Type: "text", Subtype: "plain", Encoding: "7bit", Params: usascii, Size: 4, Lines: 1, Body: "body"}}}}},
		{"base64 message/rfc822 is a leaf", "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: BASE64\r\n\r\nU3ViamVjdDogeA0KDQo=\r\n",
			shape{Type: "message", Subtype: "rfc822", Encoding: "base64", Size: 22, Lines: 1, Body: "U3ViamVjdDogeA0KDQo=\r\n"}},
		{"bad content-type", "Content-Type: text\r\n\r\nx", textPlain("x", 1)},
		{"params: 2231 and quoting", "Content-Type: Application/X-Thing; A=1; title*0*=us-ascii'en'This%20is; title*1=\" fun\"; t2*=iso-8859-1''caf%E9; q=\"a\\\"b;c\"\r\n\r\n",
			shape{Type: "application", Subtype: "x-thing", Encoding: "7bit", Params: []Param{{"a", "1"}, {"title", "This is fun"}, {"t2*", "iso-8859-1''caf%E9"}, {"q", `a"b;c`}}}},
		{"text without params", "Content-Type: text/html\r\n\r\n<p>\r\n", shape{Type: "text", Subtype: "html", Encoding: "7bit", Size: 5, Lines: 1, Body: "<p>\r\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := []byte(c.msg)
			o := ParseOutline(msg)
			checkOffsets(t, msg, o)
			if got := shapeOf(msg, o); !reflect.DeepEqual(got, c.want) {
				t.Errorf("\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestOutlineBomb checks that a 10,000-deep nesting, of multiparts and of
// enclosed messages, stays within the limits in depth and parts, and in
// time.
func TestOutlineBomb(t *testing.T) {
	const depth = 10000
	var b bytes.Buffer
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("\r\nleaf\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	var m bytes.Buffer
	for range depth {
		m.WriteString("Content-Type: message/rfc822\r\n\r\n")
	}
	m.WriteString("Subject: leaf\r\n\r\nleaf\r\n")
	var w bytes.Buffer // wide: many parts at each of many levels
	w.WriteString("Content-Type: multipart/mixed; boundary=w\r\n\r\n")
	for range 100000 {
		w.WriteString("--w\r\n\r\nx\r\n")
	}
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"multipart", b.Bytes()}, {"message/rfc822", m.Bytes()}, {"wide", w.Bytes()}} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			o := ParseOutline(c.msg)
			elapsed := time.Since(start)
			checkOffsets(t, c.msg, o)
			n, deepest := 0, 0
			var walk func(o *Outline, d int)
			walk = func(o *Outline, d int) {
				n++
				deepest = max(deepest, d)
				for _, p := range o.Parts {
					walk(p, d+1)
				}
				if o.Message != nil {
					walk(o.Message, d+1)
				}
			}
			walk(o, 0)
			if n > 2*DefaultLimits.MaxParts || deepest > DefaultLimits.MaxDepth {
				t.Errorf("%d entities, %d deep", n, deepest)
			}
			if elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
			t.Logf("%d bytes: %d entities, %d deep, %v", len(c.msg), n, deepest, elapsed)
		})
	}
}

func TestOutlineLimits(t *testing.T) {
	msg := []byte(nestedMsg)
	o := ParseOutlineLimits(msg, Limits{MaxDepth: 2})
	checkOffsets(t, msg, o)
	// Depth 0 is the message, 1 its parts: the alternative's parts and the
	// enclosed message are past the limit.
	if alt := o.Parts[0]; len(alt.Parts) != 1 || !alt.Parts[0].Synthetic {
		t.Errorf("alternative past the depth limit: %+v", alt.Parts)
	}
	if o.Parts[1].Message != nil {
		t.Errorf("enclosed message past the depth limit parsed")
	}
	o = ParseOutlineLimits(msg, Limits{MaxParts: 3})
	n := 0
	o.Walk(func(*Outline) { n++ })
	if n > 6 {
		t.Errorf("%d entities with MaxParts 3", n)
	}
}

func TestHeaderFields(t *testing.T) {
	hdr := []byte("From: a@b\r\nSubject: one\r\n two\r\nTo: c@d\r\nsubject : again\r\nnot a field\r\n\r\nbody: no\r\n")
	for _, c := range []struct {
		names []string
		not   bool
		want  string
	}{
		{[]string{"SUBJECT"}, false, "Subject: one\r\n two\r\nsubject : again\r\n\r\n"},
		{[]string{"subject", "from"}, true, "To: c@d\r\n\r\n"},
		{[]string{"x-none"}, false, "\r\n"},
		{nil, true, "From: a@b\r\nSubject: one\r\n two\r\nTo: c@d\r\nsubject : again\r\n\r\n"},
	} {
		if got := string(HeaderFields(hdr, c.names, c.not)); got != c.want {
			t.Errorf("%v %v: %q, want %q", c.names, c.not, got, c.want)
		}
	}
	if got := string(HeaderFields([]byte("A: 1\nB: 2\n\n"), []string{"b"}, false)); got != "B: 2\n\n" {
		t.Errorf("bare LF: %q", got)
	}
	if got := string(HeaderFields([]byte("A: 1"), []string{"a"}, false)); got != "A: 1\r\n\r\n" {
		t.Errorf("no final line end: %q", got)
	}
}

func FuzzParseOutline(f *testing.F) {
	f.Add([]byte(nestedMsg))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b--"))
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/digest; boundary=x\r\n\r\n--x\r\n\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		lim := Limits{MaxDepth: 8, MaxParts: 50}
		o := ParseOutlineLimits(msg, lim)
		checkOffsets(t, msg, o)
		n := 0
		o.Walk(func(*Outline) { n++ })
		if n > 2*lim.MaxParts+1 {
			t.Fatalf("%d entities", n)
		}
		// Every section path, to a depth of 3 numbers: in bounds.
		var try func(path []int)
		try = func(path []int) {
			for i := 0; i <= 4; i++ {
				p := append(append([]int(nil), path...), i)
				e, ok := o.Section(p)
				if !ok {
					continue
				}
				if e.Start < 0 || e.End > len(msg) || e.Start > e.BodyStart || e.BodyStart > e.End {
					t.Fatalf("section %v: %d %d %d", p, e.Start, e.BodyStart, e.End)
				}
				if len(p) < 3 {
					try(p)
				}
			}
		}
		try(nil)
	})
}

func BenchmarkParseOutlineLarge(b *testing.B) {
	var m bytes.Buffer
	m.WriteString("From: a@b.test\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
	for range 2 {
		m.WriteString("--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		line := strings.Repeat("QUJD", 19) + "\r\n"
		for m.Len() < 5<<20*(1+bytes.Count(m.Bytes(), []byte("--zz\r\nContent-Type: application"))-1)+1 {
			m.WriteString(line)
		}
	}
	m.WriteString("--zz--\r\n")
	msg := m.Bytes()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		o := ParseOutline(msg)
		if len(o.Parts) != 3 {
			b.Fatalf("%d parts", len(o.Parts))
		}
	}
}
