package ftpwire

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestToCRLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\r\nb", "a\r\nb"},
		{"\n\n", "\r\n\r\n"},
		{"lone\rcr\n", "lone\rcr\r\n"},
		{"", ""},
		{"\xff\x00\n", "\xff\x00\r\n"},
	}
	for _, tt := range tests {
		// Byte at a time, so that state crosses Write calls.
		var buf bytes.Buffer
		w := ToCRLF(&buf)
		for i := 0; i < len(tt.in); i++ {
			if n, err := w.Write([]byte{tt.in[i]}); n != 1 || err != nil {
				t.Fatalf("Write: %d %v", n, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("ToCRLF(%q) byte by byte = %q, want %q", tt.in, buf.String(), tt.want)
		}
		buf.Reset()
		w = ToCRLF(&buf)
		w.Write([]byte(tt.in))
		w.Close()
		if buf.String() != tt.want {
			t.Errorf("ToCRLF(%q) = %q, want %q", tt.in, buf.String(), tt.want)
		}
	}
}

func TestFromCRLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\nb\n"},
		{"a\nb", "a\nb"},
		{"cr\r\x00nul", "cr\rnul"},
		{"lone\rcr", "lone\rcr"},
		{"end\r", "end\r"},
		{"\r\r\n", "\r\n"},
		{"\r\r\r", "\r\r\r"},
		{"", ""},
	}
	for _, tt := range tests {
		for name, r := range map[string]io.Reader{
			"whole":    FromCRLF(strings.NewReader(tt.in)),
			"one byte": FromCRLF(iotest.OneByteReader(strings.NewReader(tt.in))),
			"half":     iotest.HalfReader(FromCRLF(iotest.HalfReader(strings.NewReader(tt.in)))),
		} {
			got, err := io.ReadAll(r)
			if err != nil || string(got) != tt.want {
				t.Errorf("FromCRLF(%q) %s = %q, %v; want %q", tt.in, name, got, err, tt.want)
			}
		}
		// Reads into a one-byte buffer.
		r := FromCRLF(strings.NewReader(tt.in))
		var got []byte
		var b [1]byte
		for {
			n, err := r.Read(b[:])
			got = append(got, b[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != tt.want {
			t.Errorf("FromCRLF(%q) into one byte = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCRLFRoundTrip(t *testing.T) {
	// Unix text survives TYPE A both ways.
	in := strings.Repeat("line one\nline two\r with a lone CR\n\n", 5000)
	var wire bytes.Buffer
	w := ToCRLF(&wire)
	io.Copy(w, strings.NewReader(in))
	w.Close()
	if bytes.Contains(bytes.ReplaceAll(wire.Bytes(), []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("a bare LF went on the wire")
	}
	back, _ := io.ReadAll(FromCRLF(&wire))
	if string(back) != in {
		t.Fatal("round trip changed the text")
	}
}
