package sockets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"appnet/internal/testnet"
	"appnet/trace"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startTCP serves s on a loopback port and shuts it down when the test ends.
func startTCP(t testing.TB, s *TCPServer) string {
	t.Helper()
	return testnet.Serve(t, s, testnet.ListenTCP(t), ErrServerClosed)
}

func startUDP(t testing.TB, s *UDPServer) string {
	t.Helper()
	pc := testnet.ListenUDP(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(pc) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background()) //nolint:errcheck
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return pc.LocalAddr().String()
}

// exchange writes in to a new connection, half-closes, and returns all the
// server sent back.
func exchange(t testing.TB, addr string, in []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	<-errc // a write cut short by the server's refusal is expected
	return out
}

func TestAppendUpper(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", "HELLO"},
		{"Hello, World! 123", "HELLO, WORLD! 123"},
		{"crêpes à l'été", "CRÊPES À L'ÉTÉ"},
		{"αβγ", "ΑΒΓ"},
		{"bad \xff\xfe bytes", "BAD \xff\xfe BYTES"},
		{"cut \xe2\x82", "CUT \xe2\x82"},
		{"", ""},
	} {
		if got := string(AppendUpper(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("AppendUpper(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTCPTranscript(t *testing.T) {
	addr := startTCP(t, &TCPServer{})
	for _, tc := range []struct{ name, in, want string }{
		{"one line", "hello\n", "HELLO\n"},
		{"crlf kept", "hello\r\nworld\r\n", "HELLO\r\nWORLD\r\n"},
		{"pipelined", "a\nb\nc\n", "A\nB\nC\n"},
		{"empty line", "\n", "\n"},
		{"last line without newline", "one\ntwo", "ONE\nTWO"},
		{"binary kept", "x\x00\xffy\n", "X\x00\xffY\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(exchange(t, addr, []byte(tc.in))); got != tc.want {
				t.Errorf("sent %q, got %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestClientTCPAndUDP(t *testing.T) {
	taddr := startTCP(t, &TCPServer{})
	uaddr := startUDP(t, &UDPServer{})
	var cl Client
	ctx := context.Background()
	if got, err := cl.TCP(ctx, taddr, "hello"); err != nil || got != "HELLO" {
		t.Errorf("TCP: %q, %v", got, err)
	}
	if got, err := cl.UDP(ctx, uaddr, "hello"); err != nil || got != "HELLO" {
		t.Errorf("UDP: %q, %v", got, err)
	}
	if _, err := cl.TCP(ctx, taddr, "two\nlines"); err == nil {
		t.Error("TCP with a newline in the text: no error")
	}
}

// Two hundred clients connected at once each get their own line back.
func TestTCPConcurrentClients(t *testing.T) {
	const n = 200
	s := &TCPServer{MaxPerAddr: n} // every client is 127.0.0.1
	addr := startTCP(t, s)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		conns[i] = c
	}
	waitFor(t, "200 connections served at once", func() bool { return s.Active() == n })

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := bufio.NewReader(c)
			for j := range 5 {
				line := fmt.Sprintf("client %d line %d %s\n", i, j, strings.Repeat("x", i))
				if _, err := io.WriteString(c, line); err != nil {
					errs <- err
					return
				}
				got, err := r.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if want := strings.ToUpper(line); got != want {
					errs <- fmt.Errorf("client %d got %q, want %q", i, got, want)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A client sending a 1 MiB line without a newline gets the documented error,
// while another client on the same server goes on being served.
func TestTCPLineTooLong(t *testing.T) {
	s := &TCPServer{}
	addr := startTCP(t, s)

	other, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetDeadline(time.Now().Add(10 * time.Second))
	otherR := bufio.NewReader(other)
	ask := func(line string) {
		t.Helper()
		io.WriteString(other, line+"\n")
		if got, err := otherR.ReadString('\n'); err != nil || got != strings.ToUpper(line)+"\n" {
			t.Fatalf("other client: %q, %v", got, err)
		}
	}
	ask("before")

	out := exchange(t, addr, bytes.Repeat([]byte("a"), 1<<20))
	want := fmt.Sprintf("ERROR line too long (max %d bytes)\n", DefaultMaxLine)
	if string(out) != want {
		t.Errorf("over-long line: got %q, want %q", truncate(out), want)
	}
	// Lines answered before the long one still arrive first.
	out = exchange(t, addr, append([]byte("ok\n"), bytes.Repeat([]byte("b"), DefaultMaxLine+1)...))
	if string(out) != "OK\n"+want {
		t.Errorf("line then over-long line: got %q", truncate(out))
	}
	// Exactly MaxLine bytes is fine.
	line := bytes.Repeat([]byte("c"), DefaultMaxLine)
	out = exchange(t, addr, append(line, '\n'))
	if !bytes.Equal(out, append(bytes.ToUpper(line), '\n')) {
		t.Errorf("line of exactly MaxLine bytes: got %q", truncate(out))
	}
	ask("after")

	// And through the client, the error is typed.
	var cl Client
	_, err = cl.TCP(context.Background(), addr, strings.Repeat("z", DefaultMaxLine+10))
	var se *ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "line too long") {
		t.Errorf("client with an over-long line: %v", err)
	}
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", b[:80], len(b))
	}
	return string(b)
}

// readLine holds no more than MaxLine bytes (plus bufio's buffer) of a line
// however long it is.
func TestReadLineBoundedMemory(t *testing.T) {
	const max = 1000
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20)), strings.NewReader("\n")), 16)
	buf, err := readLine(r, nil, max)
	if !errors.Is(err, errLineTooLong) {
		t.Fatalf("err = %v, want errLineTooLong", err)
	}
	if cap(buf) > 2*max+64 {
		t.Errorf("buffer grew to %d bytes for a limit of %d", cap(buf), max)
	}
	for _, n := range []int{max - 1, max} {
		r := bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", n)+"\nnext\n"), 16)
		if buf, err := readLine(r, nil, max); err != nil || len(buf) != n+1 {
			t.Errorf("line of %d bytes: len %d, %v", n, len(buf), err)
		}
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	addr := startTCP(t, &TCPServer{IdleTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
}

func TestTCPMaxConns(t *testing.T) {
	s := &TCPServer{MaxConns: 2}
	addr := startTCP(t, s)
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "2 connections", func() bool { return s.Active() == 2 })
	if out := string(exchange(t, addr, []byte("third\n"))); out != "ERROR server busy\n" {
		t.Errorf("third connection got %q", out)
	}
}

// Shutdown closes idle connections at once and lets Serve return.
func TestTCPShutdown(t *testing.T) {
	s := &TCPServer{}
	ln := testnet.ListenTCP(t)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	var conns []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitFor(t, "10 connections", func() bool { return s.Active() == 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("connection after shutdown: %v, want EOF", err)
		}
	}
	if err := s.Serve(testnet.ListenTCP(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// A datagram larger than the buffer is refused with the documented error,
// not cut short, and other clients are unaffected.
func TestUDPHugeDatagram(t *testing.T) {
	s := &UDPServer{}
	addr := startUDP(t, s)
	var cl Client
	ctx := context.Background()
	for _, size := range []int{DefaultBufferSize + 1, 10000, MaxUDPPayload} {
		_, err := cl.UDP(ctx, addr, strings.Repeat("q", size))
		var se *ServerError
		want := fmt.Sprintf("ERROR datagram too long (max %d bytes)", DefaultBufferSize)
		if !errors.As(err, &se) || se.Msg != want {
			t.Errorf("datagram of %d bytes: %v, want %q", size, err, want)
		}
		if got, err := cl.UDP(ctx, addr, "still here"); err != nil || got != "STILL HERE" {
			t.Errorf("after a huge datagram: %q, %v", got, err)
		}
	}
	if got := s.TooLong.Load(); got != 3 {
		t.Errorf("TooLong = %d, want 3", got)
	}
	exact := strings.Repeat("e", DefaultBufferSize)
	if got, err := cl.UDP(ctx, addr, exact); err != nil || got != strings.ToUpper(exact) {
		t.Errorf("datagram of exactly the buffer size: %v", err)
	}
	if _, err := cl.UDP(ctx, addr, strings.Repeat("q", MaxUDPPayload+1)); err == nil {
		t.Error("client sent a datagram larger than UDP allows")
	}
}

func TestUDPConcurrentClients(t *testing.T) {
	addr := startUDP(t, &UDPServer{})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := Client{Timeout: 2 * time.Second}
			text := fmt.Sprintf("datagram from client %d", i)
			if got, err := cl.UDP(context.Background(), addr, text); err != nil || got != strings.ToUpper(text) {
				t.Errorf("client %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
}

func TestUDPNoServer(t *testing.T) {
	pc := testnet.ListenUDP(t)
	addr := pc.LocalAddr().String()
	pc.Close()
	cl := Client{Timeout: 100 * time.Millisecond, Tries: 2}
	if _, err := cl.UDP(context.Background(), addr, "anyone?"); err == nil {
		t.Error("no error with nothing listening")
	}
}

// The trace shows the course's C:/S: exchange, from both ends.
func TestTrace(t *testing.T) {
	tr := trace.New()
	sub := tr.Subscribe(1000, true)
	defer sub.Close()
	taddr := startTCP(t, &TCPServer{Host: "server", Tracer: tr})
	uaddr := startUDP(t, &UDPServer{Host: "server", Tracer: tr})
	cl := Client{Host: "client", Tracer: tr}
	if _, err := cl.TCP(context.Background(), taddr, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UDP(context.Background(), uaddr, "hello udp"); err != nil {
		t.Fatal(err)
	}
	// The server notes the end of the TCP conversation after the client has
	// its answer: collect events until then.
	var out strings.Builder
	f := trace.Format{Host: true}
	timeout := time.After(10 * time.Second)
	// TCP: 2 client events and 4 server events (opened, C, S, closed);
	// UDP: 2 and 2.
	for n := 0; n < 10; n++ {
		select {
		case e := <-sub.C():
			out.Write(f.AppendLine(nil, e))
		case <-timeout:
			t.Fatalf("got %d events, want 10:\n%s", n, out.String())
		}
	}
	for _, want := range []string{
		"client uppercase/tcp 127.0.0.1:",
		"  C: hello\n",
		"  S: HELLO\n",
		"server uppercase/tcp",
		"  *: connection opened\n",
		"client uppercase/udp",
		"  C: hello udp\n",
		"  S: HELLO UDP\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q:\n%s", want, out.String())
		}
	}
	// Both ends print the same client > server pair.
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != ">" || f[4] != taddr && f[4] != uaddr {
			t.Errorf("line does not name the server as the second address: %q", line)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTCPSlowFloodFromOneAddress: 600 connections from one address that
// never finish a line take no more than that address's share of the
// server's slots, so a client from another address is answered every
// time (issue 15: 0 of 41 lines were answered during such an attack).
// The server's total is set below 600, as the attack filled the default.
func TestTCPSlowFloodFromOneAddress(t *testing.T) {
	s := &TCPServer{MaxConns: 512}
	addr := startTCP(t, s)
	testnet.SlowFlood(t, "127.0.0.1", addr, 600, []byte("no end of line"))
	waitFor(t, "the flood's connections refused", func() bool {
		_, _, refused := s.connLimits().Stats()
		return refused >= 600-DefaultMaxPerAddr
	})
	if a := s.Active(); a > DefaultMaxPerAddr {
		t.Errorf("%d connections held for one address, want at most %d", a, DefaultMaxPerAddr)
	}
	const pings = 40
	answered := 0
	for i := range pings {
		c, err := testnet.DialFrom("127.0.0.2", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line := fmt.Sprintf("ping %d\n", i)
		io.WriteString(c, line)
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err == nil && got == strings.ToUpper(line) {
			answered++
		} else {
			t.Logf("ping %d: %q, %v", i, got, err)
		}
	}
	if answered != pings {
		t.Errorf("%d of %d pings from another address answered during the flood", answered, pings)
	}
}

// TestTCPFirstLineTimeout: a connection that sends part of a line and
// stops is closed after FirstLine, not after the (longer) idle timeout.
func TestTCPFirstLineTimeout(t *testing.T) {
	addr := startTCP(t, &TCPServer{IdleTimeout: time.Minute, FirstLine: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "half a li")
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("trickling connection: read %d, %v; want EOF at the first-line timeout", n, err)
	}
}
