package chord

import (
	"bytes"
	"time"
)

// entry is one stored value.
type entry struct {
	data    []byte
	ref     bool
	expires time.Time // zero: never
}

// item is what a node holds under one key.
type item struct {
	name   string
	values []entry
}

// store is a node's key/value table. Its owner's mutex guards it.
type store struct {
	items map[ID]*item
}

func (s *store) live(it *item, now time.Time) []entry {
	out := it.values[:0:0]
	for _, e := range it.values {
		if e.expires.IsZero() || now.Before(e.expires) {
			out = append(out, e)
		}
	}
	return out
}

func toEntries(vs []Value, now time.Time) []entry {
	out := make([]entry, 0, len(vs))
	for _, v := range vs {
		e := entry{data: bytes.Clone(v.Data), ref: v.Ref}
		if v.TTL > 0 {
			e.expires = now.Add(time.Duration(v.TTL) * time.Millisecond)
		}
		out = append(out, e)
	}
	return out
}

func toValues(es []entry, now time.Time) []Value {
	out := make([]Value, 0, len(es))
	for _, e := range es {
		v := Value{Data: e.data, Ref: e.ref}
		if !e.expires.IsZero() {
			v.TTL = max(1, e.expires.Sub(now).Milliseconds())
		}
		out = append(out, v)
	}
	return out
}

// put replaces the values under key, or with add merges them into the set
// (a value with the same data and kind is refreshed). It reports false
// when the table or the set is full.
func (s *store) put(key ID, name string, vs []Value, add bool, now time.Time, maxKeys int) bool {
	it := s.items[key]
	if it == nil {
		if len(s.items) >= maxKeys {
			return false
		}
		it = &item{name: name}
		s.items[key] = it
	}
	if name != "" {
		it.name = name
	}
	es := toEntries(vs, now)
	if !add {
		it.values = es
		return true
	}
	it.values = s.live(it, now)
	for _, e := range es {
		replaced := false
		for i := range it.values {
			if it.values[i].ref == e.ref && bytes.Equal(it.values[i].data, e.data) {
				it.values[i] = e
				replaced = true
				break
			}
		}
		if !replaced {
			if len(it.values) >= MaxValues {
				return false
			}
			it.values = append(it.values, e)
		}
	}
	return true
}

// get returns the live values under key.
func (s *store) get(key ID, now time.Time) (name string, vs []Value, ok bool) {
	it := s.items[key]
	if it == nil {
		return "", nil, false
	}
	live := s.live(it, now)
	if len(live) == 0 {
		return it.name, nil, false
	}
	return it.name, toValues(live, now), true
}

// collect returns the items whose keys satisfy in.
func (s *store) collect(now time.Time, in func(ID) bool) []Item {
	var out []Item
	for k, it := range s.items {
		if !in(k) {
			continue
		}
		live := s.live(it, now)
		if len(live) == 0 {
			continue
		}
		out = append(out, Item{Key: k, Name: it.name, Values: toValues(live, now)})
	}
	return out
}

// expire drops expired values and keys left empty.
func (s *store) expire(now time.Time) {
	for k, it := range s.items {
		it.values = s.live(it, now)
		if len(it.values) == 0 {
			delete(s.items, k)
		}
	}
}
