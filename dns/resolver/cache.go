package resolver

import (
	"container/list"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultCacheSize is the number of RRsets (and negative answers) a cache
// holds before it drops the least recently used.
const DefaultCacheSize = 10000

// MaxTTL caps how long anything is cached (RFC 2181 §8 allows up to
// 2^31-1 seconds; resolvers cap it lower, as BIND's max-cache-ttl does).
const MaxTTL = 86400

type cacheKey struct {
	name  string
	qtype uint16 // dns.TypeNone: the name does not exist (NXDOMAIN)
}

// rank orders the trust in cached data (RFC 2181 §5.4.1): data from an
// authoritative answer replaces glue and referral NS sets, never the
// other way round while it lives.
type rank uint8

const (
	rankGlue rank = iota
	rankAnswer
)

type entry struct {
	key     cacheKey
	rrs     []dns.RR // the RRset; nil for a negative entry
	soa     dns.RR   // the SOA of a negative entry
	rcode   int
	rank    rank
	stored  time.Time
	expires time.Time
}

// Cache is a bounded LRU cache of RRsets and negative answers whose TTLs
// count down (RFC 1034 §4.3.4, RFC 2308 §5). It is safe for concurrent use.
type Cache struct {
	now func() time.Time
	max int

	// gen counts the stores: a packed answer made from the cache is used
	// only while nothing was stored since (packedCache).
	gen atomic.Uint64

	mu    sync.Mutex
	items map[cacheKey]*list.Element
	lru   *list.List // front: most recently used
}

// NewCache returns a cache of at most size entries (0: DefaultCacheSize)
// reading time from now (nil: time.Now).
func NewCache(size int, now func() time.Time) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{now: now, max: size, items: map[cacheKey]*list.Element{}, lru: list.New()}
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func key(name string, qtype uint16) cacheKey {
	return cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
}

// get returns a live entry with its records' TTLs counted down, as copies.
func (c *Cache) get(k cacheKey) (*entry, bool) {
	now := c.now()
	c.mu.Lock()
	el, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		return nil, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.items, k)
		c.mu.Unlock()
		return nil, false
	}
	c.lru.MoveToFront(el)
	c.mu.Unlock()
	left := uint32(e.expires.Sub(now) / time.Second)
	out := &entry{key: e.key, rcode: e.rcode, rank: e.rank, stored: e.stored, expires: e.expires}
	for _, rr := range e.rrs {
		cp := dns.Copy(rr)
		cp.Header().Ttl = left
		out.rrs = append(out.rrs, cp)
	}
	if e.soa != nil {
		out.soa = dns.Copy(e.soa)
		out.soa.Header().Ttl = left
	}
	return out, true
}

// put stores e for ttl seconds unless a live entry of a higher rank is
// there.
func (c *Cache) put(e *entry, ttl uint32) {
	if ttl == 0 {
		return
	}
	ttl = min(ttl, MaxTTL)
	now := c.now()
	e.stored = now
	e.expires = now.Add(time.Duration(ttl) * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.gen.Add(1)
	if el, ok := c.items[e.key]; ok {
		old := el.Value.(*entry)
		if old.rank > e.rank && now.Before(old.expires) {
			return
		}
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.key] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.items, last.Value.(*entry).key)
	}
}

// putRRset caches one RRset; its TTL is the smallest of its records'
// (RFC 2181 §5.2).
func (c *Cache) putRRset(rrs []dns.RR, r rank) {
	if len(rrs) == 0 {
		return
	}
	ttl := rrs[0].Header().Ttl
	for _, rr := range rrs[1:] {
		ttl = min(ttl, rr.Header().Ttl)
	}
	h := rrs[0].Header()
	c.put(&entry{key: key(h.Name, h.Rrtype), rrs: rrs, rcode: dns.RcodeSuccess, rank: r}, ttl)
}

// putNegative caches NXDOMAIN (for every type of name) or NODATA (for
// qtype) for the SOA's negative TTL: min(SOA TTL, SOA MINIMUM), RFC 2308 §5.
func (c *Cache) putNegative(name string, qtype uint16, rcode int, soa *dns.SOA) {
	ttl := min(soa.Hdr.Ttl, soa.Minttl)
	k := key(name, qtype)
	if rcode == dns.RcodeNameError {
		k.qtype = dns.TypeNone
	}
	c.put(&entry{key: k, soa: soa, rcode: rcode, rank: rankAnswer}, ttl)
}

// Lookup returns what the cache knows about (name, qtype): the records
// with their remaining TTLs, or a negative answer (rcode NXDOMAIN, or
// NOERROR with no records) with its SOA; ok is false on a miss.
func (c *Cache) Lookup(name string, qtype uint16) (rrs []dns.RR, rcode int, soa dns.RR, ok bool) {
	if e, hit := c.get(key(name, dns.TypeNone)); hit {
		return nil, e.rcode, e.soa, true
	}
	e, hit := c.get(key(name, qtype))
	if !hit {
		return nil, 0, nil, false
	}
	return e.rrs, e.rcode, e.soa, true
}

// splitRRsets groups records by owner and type, keeping order.
func splitRRsets(rrs []dns.RR) [][]dns.RR {
	var out [][]dns.RR
	idx := map[cacheKey]int{}
	for _, rr := range rrs {
		h := rr.Header()
		k := key(h.Name, h.Rrtype)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], rr)
	}
	return out
}
