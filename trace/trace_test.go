package trace

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	cli = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	srv = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 12000}
)

// A nil Tracer and the nil Conv it hands out cost no allocation.
func TestNilCostsNothing(t *testing.T) {
	var tr *Tracer
	line := []byte("hello\n")
	allocs := testing.AllocsPerRun(1000, func() {
		c := tr.Conv("h", "p", Server, cli, srv)
		c.RecvBytes(line)
		c.SendBytes(line)
		c.Send("x")
		tr.Emit(Event{Summary: "x"})
		if c.Enabled() || tr.Enabled() {
			t.Fatal("enabled")
		}
	})
	if allocs != 0 {
		t.Errorf("nil tracer: %v allocations per run, want 0", allocs)
	}
	// A tracer nobody listens to hands out nil Convs too.
	if c := New().Conv("h", "p", Client, cli, srv); c != nil {
		t.Error("Conv on a tracer without subscribers is not nil")
	}
}

func TestSpeaker(t *testing.T) {
	for _, tc := range []struct {
		side Side
		dir  Dir
		want string
	}{
		{Client, Send, "C"}, {Client, Recv, "S"}, {Server, Send, "S"}, {Server, Recv, "C"},
		{Client, Note, "*"}, {Server, Note, "*"},
	} {
		if got := (Event{Side: tc.side, Dir: tc.dir}).Speaker(); got != tc.want {
			t.Errorf("%v %v: speaker %q, want %q", tc.side, tc.dir, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello\r\n", "hello"},
		{"tab\there", `tab\there`},
		{"bell\a", `bell\a`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"crêpes", "crêpes"},
		{"esc\x1b[31mred", `esc\x1b[31mred`},
		{strings.Repeat("a", MaxSummary), strings.Repeat("a", MaxSummary)},
		{strings.Repeat("a", MaxSummary+10), strings.Repeat("a", MaxSummary) + "… (250 bytes)"},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("hello\r\n")
	f.Add("\x00\xff\x1b[2J")
	f.Add(strings.Repeat("é", 300))
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if strings.ContainsAny(c, "\r\n\x00\x1b") {
			t.Errorf("Clean(%q) = %q keeps a control character", s, c)
		}
		if len(c) > MaxSummary+40 {
			t.Errorf("Clean(%q) is %d bytes long", s, len(c))
		}
	})
}

func TestTranscriptPrintsEveryEventInOrder(t *testing.T) {
	tr := New()
	var buf bytes.Buffer
	p := NewTranscript(tr, &buf, Format{Host: true})
	client := tr.Conv("alice", "uppercase/tcp", Client, cli, srv)
	server := tr.Conv("bob", "uppercase/tcp", Server, srv, cli)
	for range 2000 { // more than the subscription's buffer: lossless waits
		client.Send("hello")
		server.Recv("hello")
		server.Send("HELLO")
		client.Recv("HELLO")
	}
	server.Notef("connection closed by %s", "client")
	p.Stop()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8001 {
		t.Fatalf("%d lines, want 8001", len(lines))
	}
	want := []string{
		"alice uppercase/tcp 127.0.0.1:40000 > 127.0.0.11:12000  C: hello",
		"bob uppercase/tcp 127.0.0.1:40000 > 127.0.0.11:12000  C: hello",
		"bob uppercase/tcp 127.0.0.1:40000 > 127.0.0.11:12000  S: HELLO",
		"alice uppercase/tcp 127.0.0.1:40000 > 127.0.0.11:12000  S: HELLO",
	}
	for i, l := range lines[:8000] {
		if l != want[i%4] {
			t.Fatalf("line %d = %q, want %q", i, l, want[i%4])
		}
	}
	if l := lines[8000]; l != "bob uppercase/tcp 127.0.0.1:40000 > 127.0.0.11:12000  *: connection closed by client" {
		t.Errorf("last line %q", l)
	}
}

func TestFormatTime(t *testing.T) {
	e := Event{Time: time.Date(2026, 1, 2, 12, 0, 1, 250e6, time.UTC), Proto: "dns/udp", Summary: "A? www.umass.test"}
	if got := string(Format{Time: true}.AppendLine(nil, e)); got != "12:00:01.250 dns/udp  C: A? www.umass.test\n" {
		t.Errorf("got %q", got)
	}
}

// A lossy subscriber that does not read drops events instead of stalling
// the protocol; other subscribers still get everything.
func TestFanOutDropsForSlowConsumer(t *testing.T) {
	tr := New()
	slow := tr.Subscribe(4, false)
	fast := tr.Subscribe(100, false)
	for i := range 10 {
		tr.Emit(Event{Summary: string(rune('a' + i))})
	}
	if got := slow.Dropped(); got != 6 {
		t.Errorf("slow subscriber dropped %d, want 6", got)
	}
	if got := len(fast.C()); got != 10 || fast.Dropped() != 0 {
		t.Errorf("fast subscriber has %d events, dropped %d", got, fast.Dropped())
	}
	slow.Close()
	tr.Emit(Event{Summary: "after"})
	if got := len(slow.C()); got != 4 {
		t.Errorf("closed subscription received more: %d", got)
	}
	tr.Close()
	select {
	case <-fast.Done():
	default:
		t.Error("Close did not end the remaining subscription")
	}
	if tr.Enabled() {
		t.Error("closed tracer still enabled")
	}
}

// Close ends a lossless subscription even while Emit waits on it.
func TestCloseUnblocksLossless(t *testing.T) {
	tr := New()
	tr.Subscribe(1, true)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 10 {
			tr.Emit(Event{Summary: "x"})
		}
	}()
	time.Sleep(10 * time.Millisecond)
	tr.Close()
	wg.Wait()
}

func BenchmarkEmitNil(b *testing.B) {
	var c *Conv
	line := []byte("hello world\n")
	for b.Loop() {
		c.RecvBytes(line)
	}
}

func BenchmarkEmitOneSubscriber(b *testing.B) {
	tr := New()
	sub := tr.Subscribe(1024, false)
	go func() {
		for {
			select {
			case <-sub.C():
			case <-sub.Done():
				return
			}
		}
	}()
	defer tr.Close()
	c := tr.Conv("h", "uppercase/tcp", Server, srv, cli)
	line := []byte("hello world\n")
	for b.Loop() {
		c.RecvBytes(line)
	}
}
