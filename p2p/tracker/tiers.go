package tracker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults of Tiers.
const (
	DefaultMinBackoff     = 15 * time.Second
	DefaultMaxBackoff     = 30 * time.Minute
	DefaultTrackerTimeout = time.Minute
)

// Tiers announces to the trackers of a torrent (BEP 12): the tiers of its
// announce-list, each shuffled once, tried in order; within a tier, the
// trackers in order, and one that answers moves to the front of its tier.
// After a pass in which every tracker failed, the next pass should wait
// Backoff, which doubles with each failed pass from MinBackoff up to
// MaxBackoff. Status reports the last tracker tried and the last error,
// for a status line. A Tiers is safe for concurrent use; set its fields
// before the first Announce.
type Tiers struct {
	Client     *Client // nil: a zero Client
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// TrackerTimeout bounds the announce to one tracker (default 1
	// minute), so that a silent UDP tracker, which BEP 15 would retry
	// for hours, does not keep the next ones waiting.
	TrackerTimeout time.Duration

	mu       sync.Mutex
	tiers    [][]string
	failures int // passes in a row where every tracker failed
	lastURL  string
	lastErr  error
	lastOK   time.Time
	retryAt  time.Time
}

// TierStatus is what Tiers last saw.
type TierStatus struct {
	URL      string    // the tracker that last answered, or last tried
	Err      error     // the last pass's last error; nil after a success
	Failures int       // failed passes in a row
	LastOK   time.Time // when a tracker last answered
	RetryAt  time.Time // when the next pass is due after a failure
}

// NewTiers returns a Tiers for a torrent's announce URL and announce-list
// (BEP 12: when announce-list is given, announce is ignored). Each tier is
// shuffled, as BEP 12 asks.
func NewTiers(c *Client, announce string, announceList [][]string) *Tiers {
	t := &Tiers{Client: c}
	for _, tier := range announceList {
		var urls []string
		for _, u := range tier {
			if u != "" {
				urls = append(urls, u)
			}
		}
		if len(urls) > 0 {
			rand.Shuffle(len(urls), func(i, j int) { urls[i], urls[j] = urls[j], urls[i] })
			t.tiers = append(t.tiers, urls)
		}
	}
	if len(t.tiers) == 0 && announce != "" {
		t.tiers = [][]string{{announce}}
	}
	return t
}

// ErrNoTracker says a torrent names no tracker.
var ErrNoTracker = errors.New("tracker: the torrent names no tracker")

// Announce makes one pass over the tiers and returns the first answer and
// the URL of the tracker that gave it. When every tracker fails, the error
// names how many were tried and wraps the last error, and Backoff grows.
func (t *Tiers) Announce(ctx context.Context, req Request) (Response, string, error) {
	c := t.Client
	if c == nil {
		c = &defaultClient
	}
	t.mu.Lock()
	tiers := make([][]string, len(t.tiers))
	for i, tier := range t.tiers {
		tiers[i] = append([]string(nil), tier...)
	}
	t.mu.Unlock()
	if len(tiers) == 0 {
		return Response{}, "", ErrNoTracker
	}
	var last error
	var lastURL string
	tried := 0
	for ti, tier := range tiers {
		for _, u := range tier {
			if ctx.Err() != nil {
				return Response{}, lastURL, fmt.Errorf("tracker: %w", ctx.Err())
			}
			tried++
			tctx, cancel := context.WithTimeout(ctx, cmp.Or(t.TrackerTimeout, DefaultTrackerTimeout))
			resp, err := c.Announce(tctx, u, req)
			cancel()
			if err == nil {
				t.succeeded(ti, u)
				return resp, u, nil
			}
			last, lastURL = err, u
		}
	}
	err := fmt.Errorf("tracker: every tracker failed (%d tried): %w", tried, last)
	t.mu.Lock()
	t.failures++
	t.lastURL, t.lastErr = lastURL, err
	t.retryAt = time.Now().Add(t.backoffLocked())
	t.mu.Unlock()
	return Response{}, lastURL, err
}

func (t *Tiers) succeeded(tier int, u string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tier < len(t.tiers) {
		urls := t.tiers[tier]
		for i, v := range urls {
			if v == u { // BEP 12: move it to the front of its tier
				copy(urls[1:i+1], urls[:i])
				urls[0] = u
				break
			}
		}
	}
	t.failures, t.lastURL, t.lastErr, t.lastOK, t.retryAt = 0, u, nil, time.Now(), time.Time{}
}

// Backoff returns how long to wait before the next pass: 0 after a
// success, else MinBackoff·2^(failures-1), at most MaxBackoff.
func (t *Tiers) Backoff() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.backoffLocked()
}

func (t *Tiers) backoffLocked() time.Duration {
	if t.failures == 0 {
		return 0
	}
	lo, hi := cmp.Or(t.MinBackoff, DefaultMinBackoff), cmp.Or(t.MaxBackoff, DefaultMaxBackoff)
	d := lo
	for i := 1; i < t.failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// Status returns what the last pass saw.
func (t *Tiers) Status() TierStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TierStatus{URL: t.lastURL, Err: t.lastErr, Failures: t.failures, LastOK: t.lastOK, RetryAt: t.retryAt}
}

// AnnounceRetry announces until a tracker answers, waiting Backoff between
// failed passes, for at most attempts passes (0: until ctx ends). It
// returns the last error when it gives up.
func (t *Tiers) AnnounceRetry(ctx context.Context, req Request, attempts int) (Response, string, error) {
	for i := 1; ; i++ {
		resp, u, err := t.Announce(ctx, req)
		if err == nil || errors.Is(err, ErrNoTracker) || (attempts > 0 && i >= attempts) {
			return resp, u, err
		}
		timer := time.NewTimer(t.Backoff())
		select {
		case <-ctx.Done():
			timer.Stop()
			return resp, u, err
		case <-timer.C:
		}
	}
}
