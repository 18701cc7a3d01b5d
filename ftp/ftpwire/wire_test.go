package ftpwire

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in   string
		want Command
		err  bool
	}{
		{"USER alice", Command{"USER", "alice"}, false},
		{"user alice\r", Command{"USER", "alice"}, false},
		{"PWD", Command{"PWD", ""}, false},
		{"CWD my dir ", Command{"CWD", "my dir "}, false},
		{"CWD  lead", Command{"CWD", " lead"}, false},
		{"STOR \xc3\xa9t\xc3\xa9.txt", Command{"STOR", "\u00e9t\u00e9.txt"}, false},
		// The Telnet IP and Synch before ABOR (RFC 959 §4.1.3), as lftp sends them.
		{"\xff\xf4\xff\xf2ABOR", Command{"ABOR", ""}, false},
		// The DM taken out of band: IAC IP IAC, then the line.
		{"\xff\xf4\xffABOR", Command{"ABOR", ""}, false},
		// The DM alone at the start of the line.
		{"\xf2ABOR", Command{"ABOR", ""}, false},
		{"\xff\xfb\x01NOOP", Command{"NOOP", ""}, false},
		{"RETR a\xff\xffb", Command{"RETR", "a\xffb"}, false},
		{"", Command{}, true},
		{" USER", Command{}, true},
		{"US3R x", Command{}, true},
		{"ABCDEFGHI x", Command{}, true},
		{"\xff\xf4", Command{}, true},
	}
	for _, tt := range tests {
		got, err := ParseCommand([]byte(tt.in))
		if (err != nil) != tt.err {
			t.Errorf("ParseCommand(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseCommand(%q) error %v does not wrap ErrSyntax", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCommandStringHidesPassword(t *testing.T) {
	for _, c := range []Command{{"PASS", "secret"}, {"ACCT", "secret"}} {
		if s := c.String(); strings.Contains(s, "secret") || s != c.Verb+" ****" {
			t.Errorf("%v.String() = %q", c.Verb, s)
		}
	}
	if s := (Command{"RETR", "a b"}).String(); s != "RETR a b" {
		t.Errorf("String = %q", s)
	}
	if s := (Command{"PWD", ""}).String(); s != "PWD" {
		t.Errorf("String = %q", s)
	}
}

func TestReplyAppend(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{Reply{220, []string{"ready"}}, "220 ready\r\n"},
		{Reply{200, nil}, "200 \r\n"},
		{Reply{211, []string{"Features:", " MDTM", " SIZE", "End"}}, "211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n"},
		// A middle line that would end the reply early is padded.
		{Reply{211, []string{"a", "211 forged", "211-ok", "end"}}, "211-a\r\n 211 forged\r\n211-ok\r\n211 end\r\n"},
		// Line ends inside text cannot start a new reply.
		{Reply{550, []string{"no\r\n230 forged"}}, "550 no  230 forged\r\n"},
	}
	for _, tt := range tests {
		if got := string(tt.r.Append(nil)); got != tt.want {
			t.Errorf("Append(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
		err  bool
	}{
		{"220 ready\r\n", Reply{220, []string{"ready"}}, false},
		{"220 ready\n", Reply{220, []string{"ready"}}, false},
		{"200\r\n", Reply{200, []string{""}}, false},
		{"211-Features:\r\n EPRT\r\n211-not the end\r\n212 not either\r\n211 End\r\n",
			Reply{211, []string{"Features:", " EPRT", "211-not the end", "212 not either", "End"}}, false},
		{"230-Welcome\r\n230 \r\n", Reply{230, []string{"Welcome", ""}}, false},
		{"hello\r\n", Reply{}, true},
		{"600 no\r\n", Reply{}, true},
		{"22 x\r\n", Reply{}, true},
		{"220x\r\n", Reply{}, true},
		{"220-unterminated\r\n", Reply{}, true},
		{"220 cut", Reply{}, true},
	}
	for _, tt := range tests {
		got, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)), 0)
		if (err != nil) != tt.err {
			t.Errorf("ReadReply(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && (got.Code != tt.want.Code || strings.Join(got.Lines, "|") != strings.Join(tt.want.Lines, "|")) {
			t.Errorf("ReadReply(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestReadReplyBounded(t *testing.T) {
	// A reply that never ends is cut at maxBytes, through a small buffer.
	long := "211-" + strings.Repeat("x", 100) + "\r\n" + strings.Repeat(" line\r\n", 10000)
	_, err := ReadReply(bufio.NewReaderSize(strings.NewReader(long), 16), 4096)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("error %v, want ErrTooLong", err)
	}
	_, err = ReadReply(bufio.NewReaderSize(strings.NewReader("200 "+strings.Repeat("y", 10000)+"\r\n"), 16), 4096)
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("long line: error %v, want ErrTooLong", err)
	}
	// Exactly at the limit is fine.
	r, err := ReadReply(bufio.NewReader(strings.NewReader("200 ok\r\n")), 8)
	if err != nil || r.Code != 200 {
		t.Fatalf("at the limit: %+v %v", r, err)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, r := range []Reply{
		{257, []string{`"/a ""b""" created`}},
		{211, []string{"Features:", " UTF8", " MLST type*;size*;modify*;perm*;", "End"}},
		{150, []string{"Opening BINARY mode data connection for f (10 bytes)."}},
	} {
		got, err := ReadReply(bufio.NewReader(strings.NewReader(string(r.Append(nil)))), 0)
		if err != nil || got.String() != r.String() {
			t.Errorf("round trip of %v: %v, %v", r, got, err)
		}
	}
}
