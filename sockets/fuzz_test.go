package sockets

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"unicode/utf8"
)

func FuzzAppendUpper(f *testing.F) {
	f.Add([]byte("hello"))
	f.Add([]byte("crêpes \xff\xfe"))
	f.Add([]byte("\xe2\x82"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := AppendUpper(nil, in)
		if utf8.Valid(in) {
			if want := bytes.ToUpper(in); !bytes.Equal(out, want) {
				t.Errorf("AppendUpper(%q) = %q, want %q", in, out, want)
			}
		}
		// Bytes outside letters pass through, so line endings survive.
		if bytes.Count(out, []byte("\n")) != bytes.Count(in, []byte("\n")) {
			t.Errorf("AppendUpper(%q) = %q changed the line endings", in, out)
		}
	})
}

// expectedReplies is the server's documented answer to the bytes in, sent
// on one connection that is then half-closed.
func expectedReplies(in []byte, max int) []byte {
	var out []byte
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		line := in
		if i >= 0 {
			line = in[:i+1]
		}
		if n := len(bytes.TrimSuffix(line, []byte("\n"))); n > max {
			return append(out, fmt.Sprintf("ERROR line too long (max %d bytes)\n", max)...)
		}
		out = AppendUpper(out, line)
		in = in[len(line):]
	}
	return out
}

// FuzzTCPServer sends arbitrary bytes to a real server on loopback and
// checks the answer is exactly the documented one, byte for byte.
func FuzzTCPServer(f *testing.F) {
	for _, seed := range []string{
		"hello\n", "a\nb\r\nc", "", "\n\n\n",
		string(bytes.Repeat([]byte("x"), 64)) + "\n",
		string(bytes.Repeat([]byte("x"), 65)) + "\n",
		"ok\n" + string(bytes.Repeat([]byte("y"), 100)),
		"\x00\xff\xfe\r\n",
	} {
		f.Add([]byte(seed))
	}
	const max = 64
	addr := startTCP(f, &TCPServer{MaxLine: max})
	f.Fuzz(func(t *testing.T, in []byte) {
		got := exchange(t, addr, in)
		if want := expectedReplies(in, max); !bytes.Equal(got, want) {
			t.Errorf("sent %q\ngot  %q\nwant %q", in, got, want)
		}
	})
}

// dialServer starts a server on loopback and returns a connection to it.
func dialServer(b *testing.B, network string) net.Conn {
	var addr string
	if network == "udp" {
		addr = startUDP(b, &UDPServer{})
	} else {
		addr = startTCP(b, &TCPServer{})
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkTCPRoundTrip(b *testing.B) {
	c := dialServer(b, "tcp")
	r := bufio.NewReader(c)
	line := []byte("the quick brown fox jumps over the lazy dog\n")
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if _, err := c.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCPPipelined measures throughput when a client streams lines
// without waiting for each answer.
func BenchmarkTCPPipelined(b *testing.B) {
	c := dialServer(b, "tcp")
	line := []byte("the quick brown fox jumps over the lazy dog\n")
	b.SetBytes(int64(len(line)))
	done := make(chan error, 1)
	n := b.N
	go func() {
		_, err := io.CopyN(io.Discard, c, int64(n*len(line)))
		done <- err
	}()
	w := bufio.NewWriterSize(c, 64<<10)
	b.ResetTimer()
	for range n {
		w.Write(line)
	}
	w.Flush()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkUDPRoundTrip(b *testing.B) {
	c := dialServer(b, "udp")
	msg := []byte("the quick brown fox jumps over the lazy dog")
	buf := make([]byte, 2048)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
