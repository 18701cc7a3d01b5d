package message

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseAddresses(t *testing.T) {
	type A = EnvelopeAddress
	for _, c := range []struct {
		in   string
		want []A
	}{
		// RFC 5322 Appendix A.1.1-A.1.3.
		{`John Doe <jdoe@machine.example>`, []A{{Name: "John Doe", Mailbox: "jdoe", Host: "machine.example"}}},
		{`"Joe Q. Public" <john.q.public@example.com>`, []A{{Name: "Joe Q. Public", Mailbox: "john.q.public", Host: "example.com"}}},
		{`Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>`, []A{
			{Name: "Mary Smith", Mailbox: "mary", Host: "x.test"}, {Mailbox: "jdoe", Host: "example.org"}, {Name: "Who?", Mailbox: "one", Host: "y.test"}}},
		{`<boss@nil.test>, "Giant; \"Big\" Box" <sysservices@example.net>`, []A{
			{Mailbox: "boss", Host: "nil.test"}, {Name: `Giant; "Big" Box`, Mailbox: "sysservices", Host: "example.net"}}},
		{`A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;`, []A{
			{Mailbox: "A Group", GroupStart: true}, {Name: "Ed Jones", Mailbox: "c", Host: "a.test"},
			{Mailbox: "joe", Host: "where.test"}, {Name: "John", Mailbox: "jdoe", Host: "one.test"}, {GroupEnd: true}}},
		{`Undisclosed recipients:;`, []A{{Mailbox: "Undisclosed recipients", GroupStart: true}, {GroupEnd: true}}},
		// RFC 5322 Appendix A.5: comments and folding white space.
		{`Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`, []A{{Name: "Pete", Mailbox: "pete", Host: "silly.test"}}},
		{`A Group(Some people):Chris Jones <c@(Chris's host.)public.example>, joe@example.org, John <jdoe@one.test> (my dear friend); (the end of the group)`, []A{
			{Mailbox: "A Group", GroupStart: true}, {Name: "Chris Jones", Mailbox: "c", Host: "public.example"},
			{Mailbox: "joe", Host: "example.org"}, {Name: "John", Mailbox: "jdoe", Host: "one.test"}, {GroupEnd: true}}},
		// RFC 5322 §4.4 obsolete route; RFC 3501's ADL.
		{`<@relay1.test,@relay2.test:user@host.test>`, []A{{ADL: "@relay1.test,@relay2.test", Mailbox: "user", Host: "host.test"}}},
		// Tolerated: encoded-words raw, comment as name, no domain, quoted local part, junk.
		{`=?utf-8?q?J=C3=BCrgen?= <j@y.test>`, []A{{Name: "=?utf-8?q?J=C3=BCrgen?=", Mailbox: "j", Host: "y.test"}}},
		{`a@b.test (Real Name)`, []A{{Name: "Real Name", Mailbox: "a", Host: "b.test"}}},
		{`root`, []A{{Mailbox: "root"}}},
		{`"john doe"@x.test`, []A{{Mailbox: "john doe", Host: "x.test"}}},
		{`Broken <a@b.test, c@d.test`, []A{{Name: "Broken", Mailbox: "a", Host: "b.test"}, {Mailbox: "c", Host: "d.test"}}},
		{`x@y.test, , ,<>`, []A{{Mailbox: "x", Host: "y.test"}}},
		{`Unfinished: a@b.test`, []A{{Mailbox: "Unfinished", GroupStart: true}, {Mailbox: "a", Host: "b.test"}, {GroupEnd: true}}},
		{`a@[192.0.2.1]`, []A{{Mailbox: "a", Host: "[192.0.2.1]"}}},
		{"", nil},
		{"  ", nil},
	} {
		if got := ParseAddresses(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

func TestParseEnvelope(t *testing.T) {
	// RFC 5322 Appendix A.1.1, folded.
	hdr := "From: John Doe <jdoe@machine.example>\r\n" +
		"To: Mary Smith <mary@example.net>\r\n" +
		"Subject: Saying\r\n Hello\r\n" +
		"Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n" +
		"Message-ID: <1234@local.machine.example>\r\n" +
		"In-Reply-To: <3456@example.net>\r\n" +
		"Sender:\r\n" +
		"\r\nbody: not a header\r\n"
	e := ParseEnvelope(ParseHeader([]byte(hdr)))
	from := []EnvelopeAddress{{Name: "John Doe", Mailbox: "jdoe", Host: "machine.example"}}
	want := Envelope{Date: "Fri, 21 Nov 1997 09:55:06 -0600", Subject: "Saying Hello",
		From: from, Sender: from, ReplyTo: from, To: []EnvelopeAddress{{Name: "Mary Smith", Mailbox: "mary", Host: "example.net"}},
		InReplyTo: "<3456@example.net>", MessageID: "<1234@local.machine.example>"}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("\n got %+v\nwant %+v", e, want)
	}
	if e := ParseEnvelope(nil); !reflect.DeepEqual(e, Envelope{}) {
		t.Errorf("empty header: %+v", e)
	}
}

func FuzzEnvelope(f *testing.F) {
	f.Add("From: a@b\r\nTo: g: c@d, \"e\\\" f\" <@r:g@h>;\r\nCc: (x\r\n\r\n")
	f.Add("To: <<<>>>,,;;::\"\r\n")
	f.Add("A: 1\r\n\tcont\r\n  more\r\nB : 2\nno colon\r\n C\r\n")
	f.Fuzz(func(t *testing.T, hdr string) {
		// ParseHeader reads as Parse does.
		hb, _ := SplitHeader([]byte(hdr))
		p := parser{lim: DefaultLimits}
		var problems []string
		if want, got := p.parseHeader(hb, &problems), ParseHeader([]byte(hdr)); !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseHeader %q\n got %q\nwant %q", hdr, got, want)
		}
		e := ParseEnvelope(ParseHeader([]byte(hdr)))
		for _, l := range [][]EnvelopeAddress{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
			if len(l) > len(hdr) {
				t.Fatalf("%d addresses from %d bytes", len(l), len(hdr))
			}
			open := false
			for _, a := range l {
				switch {
				case a.GroupStart:
					if open {
						t.Fatalf("nested group: %+v", l)
					}
					open = true
				case a.GroupEnd:
					if !open || a.Mailbox != "" || a.Host != "" {
						t.Fatalf("group end: %+v", l)
					}
					open = false
				case a.Mailbox == "" && a.Host == "":
					t.Fatalf("empty address: %+v", l)
				}
			}
			if open {
				t.Fatalf("group not closed: %+v", l)
			}
		}
	})
}

// typicalHeader is a header as a mailing list delivers it.
func typicalHeader(i int) []byte {
	return fmt.Appendf(nil, "Return-Path: <list-bounces+%d@lists.example.org>\r\n"+
		"Received: from mx.example.org (mx.example.org [192.0.2.7])\r\n\tby mail.example.net with ESMTPS id %d\r\n\tfor <bob@example.net>; Wed, 02 Dec 2026 10:00:00 +0000\r\n"+
		"Received: from [198.51.100.3] by mx.example.org; Wed, 02 Dec 2026 09:59:59 +0000\r\n"+
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from:to:subject:date;\r\n\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=%s\r\n"+
		"From: =?utf-8?q?Ren=C3=A9e?= Example <renee@example.org>\r\n"+
		"To: \"Bob, the builder\" <bob@example.net>, list@lists.example.org\r\n"+
		"Cc: Team: a@example.org, b@example.org;\r\n"+
		"Subject: Re: [list] message number %d about something\r\n"+
		"Date: Wed, 02 Dec 2026 09:59:58 +0000\r\n"+
		"Message-ID: <%d.abcdef@example.org>\r\n"+
		"In-Reply-To: <%d.abcdef@example.org>\r\n"+
		"References: <1.abcdef@example.org> <%d.abcdef@example.org>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"List-Id: <list.lists.example.org>\r\n\r\n",
		i, i, strings.Repeat("QUJD", 40), i, i, i-1, i-1)
}

func TestEnvelopeSpeed(t *testing.T) {
	// Not a timing assertion (see BenchmarkHeaderEnvelope): a check that
	// the typical header reads as expected.
	e := ParseEnvelope(ParseHeader(typicalHeader(7)))
	if len(e.To) != 2 || e.To[0].Name != "Bob, the builder" || len(e.Cc) != 4 || e.From[0].Name != "=?utf-8?q?Ren=C3=A9e?= Example" ||
		e.MessageID != "<7.abcdef@example.org>" || len(e.ReplyTo) != 1 {
		t.Errorf("%+v", e)
	}
}

// BenchmarkHeaderEnvelope reads 10,000 typical headers into envelopes per
// iteration: the FETCH 1:* ENVELOPE of a 10,000-message mailbox.
func BenchmarkHeaderEnvelope(b *testing.B) {
	hdrs := make([][]byte, 10000)
	for i := range hdrs {
		hdrs[i] = typicalHeader(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, h := range hdrs {
			e := ParseEnvelope(ParseHeader(h))
			if e.MessageID == "" {
				b.Fatal("no message-id")
			}
		}
	}
}
