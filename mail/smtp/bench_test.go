package smtp

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"appnet/internal/connlimit"
	"appnet/mail/queue"
)

// BenchmarkAccept measures messages accepted per second over loopback,
// each on disk (fdatasync) before its 250: 20 sessions, 2 KiB messages,
// once a new connection per message and once many messages per
// connection (pipelined MAIL, RCPT, DATA).
//
//	go test -run '^$' -bench Accept -benchtime 5000x ./mail/smtp/
func BenchmarkAccept(b *testing.B) {
	for _, perConn := range []int{1, 1 << 30} {
		name := "one-per-connection"
		if perConn > 1 {
			name = "many-per-connection"
		}
		b.Run(name, func(b *testing.B) {
			q, err := queue.Open(queue.Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			s := newServer(MX, q)
			s.Limits = connlimit.New(1000, 1000)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(ln)
			defer s.Close()
			addr := ln.Addr().String()
			msg := body("token-0-0")
			var left atomic.Int64
			left.Store(int64(b.N))
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Load() > 0 {
						if err := benchSession(addr, msg, perConn, &left); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(q.Flushes()), "msgs/flush")
		})
	}
}

// benchSession sends up to max messages on one connection while left > 0.
func benchSession(addr, msg string, max int, left *atomic.Int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	expect := func(want int) error {
		for range 100 {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if len(l) > 3 && l[3] == ' ' {
				if !strings.HasPrefix(l, fmt.Sprint(want)) {
					return fmt.Errorf("got %q, want %d", l, want)
				}
				return nil
			}
		}
		return fmt.Errorf("endless reply")
	}
	if err := expect(220); err != nil {
		return err
	}
	w.WriteString("EHLO bench.test\r\n")
	w.Flush()
	if err := expect(250); err != nil {
		return err
	}
	for i := 0; i < max && left.Add(-1) >= 0; i++ {
		w.WriteString("MAIL FROM:<alice@crepes.fr>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\n")
		w.Flush()
		for _, code := range []int{250, 250, 354} {
			if err := expect(code); err != nil {
				return err
			}
		}
		w.WriteString(msg)
		w.WriteString(".\r\n")
		w.Flush()
		if err := expect(250); err != nil {
			return err
		}
	}
	w.WriteString("QUIT\r\n")
	w.Flush()
	return expect(221)
}
