package queue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openQ(t testing.TB, dir string, seg int64) *Queue {
	t.Helper()
	q, err := Open(Config{Dir: dir, SegmentSize: seg})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return q
}

func msgN(i int) []byte {
	return []byte(fmt.Sprintf("From: a@x.test\r\nSubject: %d\r\n\r\nbody %d\r\n.leading dot\r\n", i, i))
}

// Committed messages come back after a reopen, byte for byte, with their
// envelopes.
func TestEnqueueAndRecover(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	ctx := context.Background()
	ids := map[string][]byte{}
	for i := range 5 {
		id := q.NewID()
		if err := q.Enqueue(ctx, id, "a@x.test", []string{"b@y.test", "c@z.test"}, msgN(i)); err != nil {
			t.Fatal(err)
		}
		ids[id] = msgN(i)
	}
	q.Close()
	q = openQ(t, dir, 0)
	defer q.Close()
	list := q.List()
	if len(list) != 5 {
		t.Fatalf("after reopen: %d messages, want 5", len(list))
	}
	for _, in := range list {
		want, ok := ids[in.ID]
		if !ok {
			t.Fatalf("unknown message %s", in.ID)
		}
		got, err := q.Message(in.ID)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("message %s: %q, %v; want %q", in.ID, got, err, want)
		}
		if in.From != "a@x.test" || len(in.Rcpts) != 2 || in.Rcpts[1].Addr != "c@z.test" || in.Rcpts[0].State != Pending {
			t.Errorf("envelope %+v", in.Envelope)
		}
		if in.Size != int64(len(want)) {
			t.Errorf("size %d, want %d", in.Size, len(want))
		}
	}
}

// A second process cannot open a queue in use.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	defer q.Close()
	if _, err := Open(Config{Dir: dir}); err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
}

// A torn record at the end of the log (a write cut short by a crash) is
// dropped at recovery, and what follows is appended after the good ones.
func TestTornTailDropped(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	ctx := context.Background()
	for i := range 2 {
		if err := q.Enqueue(ctx, q.NewID(), "a@x.test", []string{"b@y.test"}, msgN(i)); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	whole := appendRecord(nil, recEnqueue, []byte{0, 0, 0, 2}, []byte("{}"), []byte("x"))
	for _, cut := range []int{3, recHeader, len(whole) - 1} {
		f, _ := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
		f.Write(whole[:cut])
		f.Close()
		q = openQ(t, dir, 0)
		if n := q.Len(); n != 2 {
			t.Fatalf("cut %d: %d messages after recovery, want 2", cut, n)
		}
		q.Close()
	}
	// A whole record with a bad checksum is not accepted either.
	bad := append([]byte(nil), whole...)
	bad[len(bad)-1] ^= 1
	f, _ := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	f.Write(bad)
	f.Close()
	q = openQ(t, dir, 0)
	if err := q.Enqueue(ctx, q.NewID(), "a@x.test", []string{"b@y.test"}, msgN(9)); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openQ(t, dir, 0)
	defer q.Close()
	if n := q.Len(); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}

// Per-recipient state survives a restart: a delivered or bounced
// recipient is not retried, and a message with none pending is gone.
func TestRecipientStateDurable(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	ctx := context.Background()
	id1, id2 := q.NewID(), q.NewID()
	q.Enqueue(ctx, id1, "a@x.test", []string{"b@y.test", "c@y.test", "d@y.test"}, msgN(1))
	q.Enqueue(ctx, id2, "a@x.test", []string{"e@y.test"}, msgN(2))
	next := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := q.setStates(ctx, id1, map[int]Recipient{
		0: {Addr: "b@y.test", State: Delivered, Attempts: 1},
		1: {Addr: "c@y.test", State: Pending, Attempts: 1, LastError: "451 try later", NextTry: next},
		2: {Addr: "d@y.test", State: Bounced, Attempts: 1, LastError: "550 no"},
	}); err != nil {
		t.Fatal(err)
	}
	q.setStates(ctx, id2, map[int]Recipient{0: {Addr: "e@y.test", State: Delivered, Attempts: 1}})
	q.Close()
	q = openQ(t, dir, 0)
	defer q.Close()
	list := q.List()
	if len(list) != 1 || list[0].ID != id1 {
		t.Fatalf("after reopen: %+v, want only %s", list, id1)
	}
	r := list[0].Rcpts
	if r[0].State != Delivered || r[1].State != Pending || r[2].State != Bounced {
		t.Errorf("states %+v", r)
	}
	if r[1].LastError != "451 try later" || !r[1].NextTry.Equal(next) || list[0].Status != "deferred" {
		t.Errorf("deferred recipient %+v, status %s", r[1], list[0].Status)
	}
	jobs, _ := q.due(time.Now().Add(2*time.Hour), 10)
	if len(jobs) != 1 || len(jobs[0].idx) != 1 || jobs[0].idx[0] != 1 {
		t.Fatalf("due jobs %+v, want recipient 1 only", jobs)
	}
}

// Concurrent enqueues share flushes: while one flush is under way the
// others gather, and the next flush covers them all.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	defer q.Close()
	const n = 40
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testHookSync = func() { once.Do(func() { close(entered); <-gate }) }
	defer func() { testHookSync = nil }()
	before := q.Flushes()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	enqueue := func(i int) {
		defer wg.Done()
		errs <- q.Enqueue(context.Background(), q.NewID(), "a@x.test", []string{"b@y.test"}, msgN(i))
	}
	// One enqueue's flush is held; the others queue up behind it.
	wg.Add(1)
	go enqueue(0)
	<-entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go enqueue(i)
	}
	for deadline := 0; len(q.reqs) < n-1 && deadline < 10000; deadline++ {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	flushes := q.Flushes() - before
	if flushes != 2 {
		t.Errorf("%d enqueues took %d flushes, want 2 (the held one and one for the rest)", n, flushes)
	}
	if q.Len() != n {
		t.Errorf("%d queued, want %d", q.Len(), n)
	}
}

// Without grouping each enqueue is flushed by itself (the benchmark's
// baseline).
func TestNoGroupCommit(t *testing.T) {
	q, err := Open(Config{Dir: t.TempDir(), NoGroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.Enqueue(context.Background(), q.NewID(), "a@x.test", []string{"b@y.test"}, msgN(i))
		}()
	}
	wg.Wait()
	if f := q.Flushes(); f != 10 {
		t.Errorf("%d flushes, want 10", f)
	}
}

// Old segments are dropped once their live messages were copied forward;
// the copies keep their state, and finished mail stays finished.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 4096)
	ctx := context.Background()
	var keep []string
	big := bytes.Repeat([]byte("x"), 1000)
	for i := range 30 {
		id := q.NewID()
		body := append(msgN(i), big...)
		if err := q.Enqueue(ctx, id, "a@x.test", []string{"b@y.test", "c@y.test"}, body); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			keep = append(keep, id)
			// One recipient done: the copy must not resend to it.
			q.setStates(ctx, id, map[int]Recipient{0: {Addr: "b@y.test", State: Delivered, Attempts: 1}})
		} else {
			q.Delete(ctx, id)
		}
	}
	// Let the compactor run: it is woken on each new segment.
	for i := 0; i < 2000; i++ {
		q.mu.Lock()
		n := len(q.segs)
		q.mu.Unlock()
		if n <= 2 {
			break
		}
		q.signal(q.compact)
		time.Sleep(time.Millisecond)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if len(segs) > 2 {
		t.Errorf("%d segments left after compaction, want at most 2", len(segs))
	}
	q.Close()
	q = openQ(t, dir, 4096)
	defer q.Close()
	list := q.List()
	if len(list) != len(keep) {
		t.Fatalf("%d messages after compaction and reopen, want %d", len(list), len(keep))
	}
	for _, in := range list {
		if in.Rcpts[0].State != Delivered || in.Rcpts[1].State != Pending {
			t.Errorf("%s: states %+v", in.ID, in.Rcpts)
		}
		b, err := q.Message(in.ID)
		if err != nil || !bytes.HasSuffix(b, big) {
			t.Errorf("%s: message lost in compaction: %v", in.ID, err)
		}
	}
}

func TestDeleteAndFlush(t *testing.T) {
	dir := t.TempDir()
	q := openQ(t, dir, 0)
	ctx := context.Background()
	a, b := q.NewID(), q.NewID()
	q.Enqueue(ctx, a, "", []string{"x@y.test"}, msgN(1))
	q.Enqueue(ctx, b, "", []string{"x@y.test"}, msgN(2))
	q.setStates(ctx, b, map[int]Recipient{0: {Addr: "x@y.test", State: Pending, Attempts: 1, NextTry: time.Now().Add(time.Hour)}})
	if n, err := q.Delete(ctx, a, "nonexistent"); n != 1 || err != nil {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if jobs, _ := q.due(time.Now(), 10); len(jobs) != 0 {
		t.Fatalf("deferred message due before flush: %+v", jobs)
	}
	if n := q.Flush(); n != 1 {
		t.Fatalf("Flush: %d", n)
	}
	jobs, _ := q.due(time.Now(), 10)
	if len(jobs) != 1 || jobs[0].id != b {
		t.Fatalf("after flush, due %+v", jobs)
	}
	q.Close()
	q = openQ(t, dir, 0)
	defer q.Close()
	if l := q.List(); len(l) != 1 || l[0].ID != b {
		t.Fatalf("after reopen %+v", l)
	}
}

// BenchmarkEnqueue measures durable enqueues per second from 20
// concurrent sessions, 2 KiB messages, with and without group commit.
func BenchmarkEnqueue(b *testing.B) {
	for _, grouped := range []bool{true, false} {
		b.Run(map[bool]string{true: "grouped", false: "ungrouped"}[grouped], func(b *testing.B) {
			q, err := Open(Config{Dir: b.TempDir(), NoGroupCommit: !grouped})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			msg := bytes.Repeat([]byte("0123456789abcdef"), 128)
			b.SetBytes(int64(len(msg)))
			b.SetParallelism(20) // 20 x GOMAXPROCS sessions
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := q.Enqueue(context.Background(), q.NewID(), "a@x.test", []string{"b@y.test"}, msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(q.Flushes()), "msgs/flush")
		})
	}
}
