package chord

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Store limits; Config sets them, these are the defaults.
const (
	// DefaultMaxBytes bounds what one node stores, replicas included,
	// counted as keys + names + values + writer metadata (StoredBytes).
	DefaultMaxBytes = 64 << 20
	// DefaultMaxWriterBytes bounds what one writer (one public key) may
	// hold at one node.
	DefaultMaxWriterBytes = 4 << 20
)

// Byte accounting: what each stored thing costs, its payload plus a fixed
// charge for the bookkeeping around it, so that many tiny values cost
// what they take. Each writer's record under a key is charged the key and
// its name as well, so a writer pays for every key it creates and the
// node's total is the sum of its writers' charges.
const (
	recordOverhead = IDBytes + 96 + ed25519.PublicKeySize + 64 // key, map entries, item and record headers, writer key
	entryOverhead  = ed25519.SignatureSize + 8 + 24 + 24 + 8   // signature, seq, expiry, slice header, kind
)

// Errors of the store, sent to the writer in the reply.
var (
	ErrNodeFull    = errors.New("chord: node store full")
	ErrWriterQuota = errors.New("chord: writer quota exceeded")
	ErrKeyTaken    = errors.New("chord: key held by another writer")
	ErrStale       = errors.New("chord: stale value (sequence number not above the stored one)")
)

// entry is one stored value.
type entry struct {
	data    []byte
	ref     bool
	expires time.Time // zero: never
	seq     int64
	sig     []byte
}

func (e *entry) size() int64 { return int64(len(e.data)) + entryOverhead }

// record is one writer's values under one key.
type record struct {
	seq    int64 // the highest sequence number accepted
	values []entry
}

func (r *record) size(nameLen int) int64 {
	s := int64(recordOverhead + nameLen)
	for i := range r.values {
		s += r.values[i].size()
	}
	return s
}

// item is what a node holds under one key: each writer's record.
type item struct {
	name    string
	excl    bool               // written by a replacing put: one writer only
	writers map[string]*record // by public key
}

func (it *item) size() int64 {
	var s int64
	for _, r := range it.writers {
		s += r.size(len(it.name))
	}
	return s
}

// store is a node's key/value table, bounded in bytes in total and per
// writer. Its owner's mutex guards it.
type store struct {
	items     map[ID]*item
	bytes     int64            // sum of item sizes
	byWriter  map[string]int64 // sum of each writer's record sizes
	maxBytes  int64
	maxWriter int64
	maxKeys   int
}

func newStore(maxBytes, maxWriter int64, maxKeys int) store {
	return store{items: map[ID]*item{}, byWriter: map[string]int64{}, maxBytes: maxBytes, maxWriter: maxWriter, maxKeys: maxKeys}
}

func live(es []entry, now time.Time) []entry {
	out := es[:0:0]
	for _, e := range es {
		if e.expires.IsZero() || now.Before(e.expires) {
			out = append(out, e)
		}
	}
	return out
}

func toEntry(v Value, now time.Time) entry {
	e := entry{data: bytes.Clone(v.Data), ref: v.Ref, seq: v.Seq, sig: bytes.Clone(v.Sig)}
	if v.TTL > 0 {
		e.expires = now.Add(time.Duration(v.TTL) * time.Millisecond)
	}
	return e
}

func toValue(pk string, e entry, now time.Time) Value {
	v := Value{Data: e.data, Ref: e.ref, PK: []byte(pk), Seq: e.seq, Sig: e.sig}
	if !e.expires.IsZero() {
		v.TTL = max(1, e.expires.Sub(now).Milliseconds())
	}
	return v
}

// writeMode says how a write meets the writer's record.
type writeMode int

const (
	modeReplace  writeMode = iota // put: the writer's values become these; the key becomes the writer's alone
	modeAdd                       // put --add: merge into the writer's set of a shared key
	modeSnapshot                  // store: a replica of the writer's record as its owner holds it
)

// write applies one writer's values under key. vs are signed by pk with
// their signatures checked by the caller. It refuses a write that would
// take the writer or the node over its byte bound, a value older than the
// record, and a write to a key another writer holds alone.
// With dry, it only says whether it would refuse.
func (s *store) write(key ID, name string, pk string, vs []Value, mode writeMode, excl bool, now time.Time, dry bool) error {
	it := s.items[key]
	if it != nil {
		s.prune(key, it, now)
		it = s.items[key]
	}
	if it == nil {
		if len(s.items) >= s.maxKeys {
			return fmt.Errorf("%w: %d keys", ErrNodeFull, s.maxKeys)
		}
		it = &item{writers: map[string]*record{}}
	}
	old := it.writers[pk]
	var seq int64
	for _, v := range vs {
		seq = max(seq, v.Seq)
	}
	if mode != modeSnapshot {
		others := len(it.writers)
		if old != nil {
			others--
		}
		switch {
		case it.excl && others > 0:
			return ErrKeyTaken
		case mode == modeReplace && others > 0:
			return fmt.Errorf("%w: a replacing put needs a key no one else writes", ErrKeyTaken)
		}
	}
	if old != nil && seq < old.seq {
		return fmt.Errorf("%w: %d < %d", ErrStale, seq, old.seq)
	}
	nr := &record{seq: seq}
	switch mode {
	case modeAdd:
		if old != nil {
			nr.values = append(nr.values, old.values...)
		}
		for _, v := range vs {
			e := toEntry(v, now)
			i := 0
			for i < len(nr.values) && !(nr.values[i].ref == e.ref && bytes.Equal(nr.values[i].data, e.data)) {
				i++
			}
			if i < len(nr.values) {
				nr.values[i] = e
			} else {
				nr.values = append(nr.values, e)
			}
		}
		if len(nr.values) > MaxValues {
			return fmt.Errorf("%w: %d values under one key", ErrWriterQuota, MaxValues)
		}
	default:
		for _, v := range vs {
			nr.values = append(nr.values, toEntry(v, now))
		}
	}
	nl := len(it.name)
	if len(it.writers) == 0 {
		nl = len(name) // a fresh item takes the first writer's name
		if !dry {
			it.name = name
		}
	}
	var oldRec int64
	if old != nil {
		oldRec = old.size(nl)
	}
	delta := nr.size(nl) - oldRec
	if delta > 0 && s.byWriter[pk]+delta > s.maxWriter {
		return fmt.Errorf("%w: %d of %d bytes held, %d more asked", ErrWriterQuota, s.byWriter[pk], s.maxWriter, delta)
	}
	if delta > 0 && s.bytes+delta > s.maxBytes {
		return fmt.Errorf("%w: %d of %d bytes held", ErrNodeFull, s.bytes, s.maxBytes)
	}
	if dry {
		return nil
	}
	// Commit.
	it.writers[pk] = nr
	if mode == modeReplace {
		it.excl = true
	} else if mode == modeSnapshot {
		it.excl = excl
	}
	s.items[key] = it
	s.charge(pk, delta)
	s.bytes += delta
	return nil
}

// prune drops the expired values of it, writers left without values and
// the item when empty, keeping the accounting.
func (s *store) prune(key ID, it *item, now time.Time) {
	nl := len(it.name)
	for pk, r := range it.writers {
		before := r.size(nl)
		r.values = live(r.values, now)
		if len(r.values) == 0 {
			delete(it.writers, pk)
		}
		d := r.size(nl) - before
		if len(r.values) == 0 {
			d = -before
		}
		s.charge(pk, d)
		s.bytes += d
	}
	if len(it.writers) == 0 {
		delete(s.items, key)
	}
}

func (s *store) charge(pk string, d int64) {
	if s.byWriter[pk] += d; s.byWriter[pk] <= 0 {
		delete(s.byWriter, pk)
	}
}

// values returns the live values of it, writer by writer.
func (it *item) values(now time.Time) []Value {
	var out []Value
	for pk, r := range it.writers {
		for _, e := range live(r.values, now) {
			out = append(out, toValue(pk, e, now))
		}
	}
	return out
}

// get returns the live values under key.
func (s *store) get(key ID, now time.Time) (name string, vs []Value, ok bool) {
	it := s.items[key]
	if it == nil {
		return "", nil, false
	}
	vs = it.values(now)
	return it.name, vs, len(vs) > 0
}

// collect returns the items whose keys satisfy in.
func (s *store) collect(now time.Time, in func(ID) bool) []Item {
	var out []Item
	for k, it := range s.items {
		if !in(k) {
			continue
		}
		if vs := it.values(now); len(vs) > 0 {
			out = append(out, Item{Key: k, Name: it.name, Values: vs, Excl: it.excl})
		}
	}
	return out
}

// expire drops expired values and keys left empty.
func (s *store) expire(now time.Time) {
	for k, it := range s.items {
		s.prune(k, it, now)
	}
}

// known reports for each value of vs whether the store holds it already,
// byte for byte with its signature: such a value was verified when it
// came, and need not be again (replication sends the same values to the
// same replicas every round).
func (s *store) known(key ID, vs []Value) []bool {
	out := make([]bool, len(vs))
	it := s.items[key]
	if it == nil {
		return out
	}
	for i, v := range vs {
		r := it.writers[string(v.PK)]
		if r == nil {
			continue
		}
		for _, e := range r.values {
			if e.seq == v.Seq && e.ref == v.Ref && bytes.Equal(e.sig, v.Sig) && bytes.Equal(e.data, v.Data) {
				out[i] = true
				break
			}
		}
	}
	return out
}

// writerBytes returns the bytes charged to the writer pk.
func (s *store) writerBytes(pk string) int64 { return s.byWriter[pk] }

// recount recomputes the accounting from the items (for tests: the
// running counts must agree with it).
func (s *store) recount() (total int64, byWriter map[string]int64) {
	byWriter = map[string]int64{}
	for _, it := range s.items {
		for pk, r := range it.writers {
			byWriter[pk] += r.size(len(it.name))
		}
		total += it.size()
	}
	return total, byWriter
}
