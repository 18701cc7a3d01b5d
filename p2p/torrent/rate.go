package torrent

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// meter counts bytes and turns them into a rate, sampled by the torrent's
// ticker: an exponentially weighted average over about the last 5 s, which
// follows a change quickly but does not jump with every block.
type meter struct {
	total    atomic.Int64
	last     int64   // total at the previous sample; owned by the ticker
	rate     float64 // bytes/s; guarded by the torrent's lock
	lastTime time.Time
}

func (m *meter) add(n int) { m.total.Add(int64(n)) }

// sample updates the rate at now. Called with the torrent's lock held.
func (m *meter) sample(now time.Time) {
	total := m.total.Load()
	if m.lastTime.IsZero() {
		m.last, m.lastTime = total, now
		return
	}
	dt := now.Sub(m.lastTime).Seconds()
	if dt <= 0 {
		return
	}
	inst := float64(total-m.last) / dt
	const window = 5.0 // seconds
	alpha := min(1, dt/window)
	if m.rate == 0 {
		m.rate = inst // the first sample sets the level
	} else {
		m.rate += alpha * (inst - m.rate)
	}
	m.last, m.lastTime = total, now
}

// limiter wraps a token bucket in bytes/s; nil means unlimited.
type limiter struct{ l *rate.Limiter }

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	// The bucket holds a quarter of a second of traffic, and at least two
	// full messages: a block never waits for a bucket too small to hold
	// it, and a writer woken late on a busy machine loses no capacity.
	burst := int(max(bytesPerSec/4, 2*maxBlockLen))
	l := rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	// Start with an empty bucket, so that from the start no interval of
	// length T carries more than bytesPerSec·T: a measurement never beats
	// the rate it was given.
	l.AllowN(time.Now(), burst)
	return &limiter{l: l}
}

// wait blocks until n bytes may pass.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.l.Burst())
		if err := l.l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
