package queue

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadReply feeds arbitrary server replies to the reply reader the
// delivery agent uses for the greeting, EHLO and STARTTLS: it must return
// (a reply or an error), never loop or panic, and a reply's code is three
// digits.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.example ESMTP\r\n",
		"250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
		"554 5.7.1 go away\r\n",
		"250-\r\n250\r\n",
		"2\r\n",
		"abc def\r\n",
		"250-x\n250-y\n",
		"-12 negative\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		code, lines, err := readReply(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if code < 200 || code > 599 || len(lines) == 0 || len(lines) > 100 {
			t.Fatalf("code %d, %d lines from %q", code, len(lines), in)
		}
	})
}
