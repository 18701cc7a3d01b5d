package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// AuthDelay slows down password guessing: each failed login from a source
// (an IPv4 address or an IPv6 /64, as Source groups them) waits before its
// answer, twice as long as the one before within Window, up to Max; a
// success forgets the source. SMTP AUTH, POP3, IMAP and the webmail share
// it. The zero value is not usable: call NewAuthDelay.
type AuthDelay struct {
	Base, Max, Window time.Duration

	mu   sync.Mutex
	fail map[netip.Prefix]*authFailures
}

type authFailures struct {
	n    int
	last time.Time
}

// maxAuthSources bounds the sources remembered: past it, all are
// forgotten rather than let the map grow.
const maxAuthSources = 100000

// NewAuthDelay returns an AuthDelay; zero arguments take 1 s, 30 s and
// 15 min.
func NewAuthDelay(base, max, window time.Duration) *AuthDelay {
	if base <= 0 {
		base = time.Second
	}
	if max <= 0 {
		max = 30 * time.Second
	}
	if window <= 0 {
		window = 15 * time.Minute
	}
	return &AuthDelay{Base: base, Max: max, Window: window, fail: map[netip.Prefix]*authFailures{}}
}

// Failed records a failed login from addr and returns how long to wait
// before answering it.
func (a *AuthDelay) Failed(addr net.Addr) time.Duration {
	src, ok := Source(addr)
	if !ok {
		return a.Base
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.fail[src]
	if f == nil || now.Sub(f.last) > a.Window {
		if len(a.fail) >= maxAuthSources {
			clear(a.fail)
		}
		f = &authFailures{}
		a.fail[src] = f
	}
	f.n++
	f.last = now
	d := a.Base
	for i := 1; i < f.n && d < a.Max; i++ {
		d *= 2
	}
	return min(d, a.Max)
}

// Succeeded forgets addr's failures.
func (a *AuthDelay) Succeeded(addr net.Addr) {
	if src, ok := Source(addr); ok {
		a.mu.Lock()
		delete(a.fail, src)
		a.mu.Unlock()
	}
}
