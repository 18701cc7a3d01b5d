package tracker

import (
	"container/list"
	"time"
)

// rateTable is a token bucket of announces per source address (an IPv4
// address, an IPv6 /64): a source may announce limits.burst times at once
// and limits.rate times a second after that. The table holds at most
// limits.rateSources buckets, least recently used dropped first; a bucket
// that has filled up again is the same as none, so one is dropped as soon
// as it is idle that long. Each announce costs O(1).
type rateTable struct {
	m   map[srcKey]*list.Element // of *bucket
	lru list.List                // front: most recently used
}

// bucket is one source's tokens at time at.
type bucket struct {
	src    srcKey
	tokens float64
	at     time.Time
}

// full reports whether b has refilled to the burst by now.
func (b *bucket) full(now time.Time, l *limits) bool {
	return b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst
}

// allow takes a token from src's bucket, and reports false when there is
// none. It is called under the store's lock.
func (t *rateTable) allow(src srcKey, now time.Time, l *limits) bool {
	if l.rate <= 0 {
		return true
	}
	if t.m == nil {
		t.m = make(map[srcKey]*list.Element)
	}
	e := t.m[src]
	var b *bucket
	if e == nil {
		for l.rateSources > 0 && len(t.m) >= l.rateSources {
			t.remove(t.lru.Back())
		}
		b = &bucket{src: src, tokens: l.burst, at: now}
		t.m[src] = t.lru.PushFront(b)
	} else {
		b = e.Value.(*bucket)
		if now.After(b.at) {
			b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
			b.at = now
		}
		t.lru.MoveToFront(e)
	}
	// Forget the least recently used source once it is idle.
	if old := t.lru.Back(); old != nil && old.Value.(*bucket) != b && old.Value.(*bucket).full(now, l) {
		t.remove(old)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (t *rateTable) remove(e *list.Element) {
	delete(t.m, e.Value.(*bucket).src)
	t.lru.Remove(e)
}

func (t *rateTable) len() int { return len(t.m) }
