package torrent

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// meter counts bytes and turns them into a rate, sampled by the torrent's
// ticker: an exponentially weighted average over about the last 5 s, which
// follows a change quickly but does not jump with every block (what
// tit-for-tat ranks peers by), and one over about the last second (what
// requests are timed by: when a block should arrive).
type meter struct {
	total    atomic.Int64
	last     int64   // total at the previous sample; owned by the ticker
	rate     float64 // bytes/s; guarded by the torrent's lock
	fast     float64 // bytes/s over about a second; guarded likewise
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
	m.rate = ewma(m.rate, inst, dt, 5)
	m.fast = ewma(m.fast, inst, dt, 1)
	m.last, m.lastTime = total, now
}

// ewma moves an average over about window seconds towards a sample taken
// over dt seconds; the first sample sets the level.
func ewma(avg, sample, dt, window float64) float64 {
	if avg == 0 {
		return sample
	}
	return avg + min(1, dt/window)*(sample-avg)
}

// limiter wraps a token bucket in bytes/s; nil means unlimited.
type limiter struct{ l *rate.Limiter }

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	// The bucket holds 20 ms of traffic, and at least one block: enough
	// that a writer woken a little late on a busy machine loses no
	// capacity, and no more, so that the limit behaves like a link, whose
	// idle time is lost. With a quarter of a second, a peer that had
	// nothing to send for a while then sent that long's worth at once: in
	// the distribution experiment (N = 32) that made peers 5% faster than
	// the same rates on a shaped link (0.82 F/u against 0.86 with
	// this bucket), a capacity the course's u does not give. (wait splits a longer message.)
	burst := int(max(bytesPerSec/50, BlockSize))
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
