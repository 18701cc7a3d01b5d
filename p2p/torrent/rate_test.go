package torrent

import (
	"testing"
	"time"
)

// A limiter is a link: time it spent idle is lost. After a second with
// nothing to send, it lets through at once no more than its small
// burst, and over the following second no more than the rate allows.
func TestLimiterLosesIdleTime(t *testing.T) {
	const rate = 2 << 20
	l := newLimiter(rate)
	start := time.Now()
	if got := l.l.TokensAt(start); got > 1024 { // what the rate adds in the microseconds since
		t.Fatalf("a new limiter holds %.0f bytes; want an empty bucket", got)
	}
	idle := start.Add(time.Second)
	now := l.l.TokensAt(idle)
	if limit := float64(rate/50 + BlockSize); now > limit {
		t.Fatalf("after a second idle the limiter lets %.0f bytes through at once; want at most %.0f (20 ms of its rate, or a block)", now, limit)
	}
	// Take blocks as fast as the limiter allows, from the idle moment,
	// for a second: the total is the rate, plus the burst at most.
	sent, at := 0, idle
	for at.Before(idle.Add(time.Second)) {
		r := l.l.ReserveN(at, BlockSize)
		if !r.OK() {
			t.Fatal("a block is larger than the bucket")
		}
		at = at.Add(r.DelayFrom(at))
		if at.Before(idle.Add(time.Second)) {
			sent += BlockSize
		}
	}
	if max := rate + rate/50 + BlockSize; sent > max {
		t.Fatalf("after a second idle, the next second carried %d bytes; a link of %d bytes/s carries at most %d", sent, rate, max)
	}
	if sent < rate*9/10 {
		t.Fatalf("the limiter carried %d bytes in a second at %d bytes/s", sent, rate)
	}
}
