package queue

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkDeliver measures the queue emptying to one remote server (an
// in-process go-smtp sink on loopback): 2 KiB messages, default
// concurrency (20), connections cached and reused, each recipient's
// result flushed before it counts as delivered.
//
//	go test -run '^$' -bench Deliver -benchtime 10000x ./mail/queue/
func BenchmarkDeliver(b *testing.B) {
	port := freePort(b)
	s := startSink(b, "127.0.0.13:"+strconv.Itoa(port))
	q, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	msg := append([]byte("Subject: bench\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc\r\n"), 32)...)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 20 { // filled by 20 writers, so group commit makes it quick
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += 20 {
				if err := q.Enqueue(ctx, q.NewID(), "alice@local.test", []string{"bob@remote.test"}, msg); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	flushes := q.Flushes()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	a := NewAgent(q, AgentConfig{Hostname: "bench.test", Resolver: staticResolver{netip.MustParseAddr("127.0.0.13")}, Port: port, NoSTARTTLS: true})
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(actx); close(done) }()
	for i := 0; q.Len() > 0 && i < 600000; i++ {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	if n := len(s.got()); n < b.N {
		b.Fatalf("sink got %d of %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/float64(q.Flushes()-flushes), "msgs/flush")
	b.ReportMetric(float64(s.sessions.Load()), "sessions")
}
