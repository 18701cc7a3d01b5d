package proxy

import (
	"bufio"
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"appnet/internal/atomicfile"
)

// Store defaults.
const (
	DefaultCacheSize = 256 << 20 // bytes on disk (or in memory without a directory)
	DefaultMemSize   = 64 << 20  // bytes of bodies kept in memory when there is a directory
)

const fileMagic = "appnet-cache-1\n"

// Store is the cache's storage: an index in memory, bodies in memory and,
// with a directory, on disk, bounded in bytes and evicting the least
// recently used response first. Bodies are written atomically (temporary
// file, rename); at start the index is rebuilt from the files, oldest use
// first, so the cache and its LRU order survive a restart.
type Store struct {
	dir     string
	maxSize int64
	maxMem  int64

	mu      sync.Mutex
	byKey   map[string][]*item // primary key -> variants
	lru     *list.List         // of *item, most recent at the front
	mem     *list.List         // of *item whose body is in memory
	size    int64
	memSize int64
}

type item struct {
	meta    Meta
	body    []byte // nil when only on disk
	file    string // "" without a directory
	used    time.Time
	elem    *list.Element
	memElem *list.Element
	removed bool
}

// NewStore opens a store of at most size bytes in dir ("" keeps everything
// in memory), with at most mem bytes of bodies held in memory. Zero sizes
// take the defaults.
func NewStore(dir string, size, mem int64) (*Store, error) {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if mem <= 0 {
		mem = DefaultMemSize
	}
	if dir == "" {
		mem = size
	}
	s := &Store{dir: dir, maxSize: size, maxMem: mem, byKey: map[string][]*item{}, lru: list.New(), mem: list.New()}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("proxy: cache: %w", err)
	}
	if err := s.rebuild(); err != nil {
		return nil, err
	}
	return s, nil
}

// rebuild reads the meta of every cache file, oldest use first.
func (s *Store) rebuild() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("proxy: cache: %w", err)
	}
	type found struct {
		it   *item
		used time.Time
	}
	var all []found
	for _, e := range ents {
		name := e.Name()
		full := filepath.Join(s.dir, name)
		if atomicfile.IsTemp(name) {
			os.Remove(full) // a write cut short by a crash
			continue
		}
		if !strings.HasSuffix(name, ".cache") {
			continue
		}
		m, err := readMeta(full)
		fi, serr := e.Info()
		if err != nil || serr != nil {
			os.Remove(full)
			continue
		}
		all = append(all, found{&item{meta: *m, file: full}, fi.ModTime()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	var drop []string
	s.mu.Lock()
	for _, f := range all {
		f.it.used = f.used
		drop = append(drop, s.insertLocked(f.it)...)
	}
	s.mu.Unlock()
	for _, f := range drop {
		os.Remove(f)
	}
	return nil
}

func readMeta(file string) (*Meta, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := decodeHead(bufio.NewReader(f))
	return m, err
}

// decodeHead reads the magic line and the meta of a cache file and returns
// the meta and the number of bytes before the body.
func decodeHead(r io.Reader) (*Meta, int64, error) {
	head := make([]byte, len(fileMagic)+4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, 0, err
	}
	if string(head[:len(fileMagic)]) != fileMagic {
		return nil, 0, errors.New("proxy: cache: not a cache file")
	}
	n := binary.BigEndian.Uint32(head[len(fileMagic):])
	if n > 1<<20 {
		return nil, 0, errors.New("proxy: cache: meta too long")
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return nil, 0, err
	}
	var m Meta
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, 0, fmt.Errorf("proxy: cache: %w", err)
	}
	if m.Key == "" || m.Size < 0 {
		return nil, 0, errors.New("proxy: cache: bad meta")
	}
	return &m, int64(len(head)) + int64(n), nil
}

// cost is what an item counts against the size bound.
func (it *item) cost() int64 { return it.meta.Size + 512 }

// insertLocked adds it, replacing the variant with the same secondary key,
// and evicts; it returns the files to remove.
func (s *Store) insertLocked(it *item) (drop []string) {
	it.meta.hit = newHitInfo(&it.meta)
	sk := secondaryKey(it.meta.Vary)
	vs := s.byKey[it.meta.Key]
	for i, old := range vs {
		if secondaryKey(old.meta.Vary) == sk {
			drop = append(drop, s.unlinkLocked(old)...)
			vs = append(vs[:i:i], vs[i+1:]...)
			break
		}
	}
	s.byKey[it.meta.Key] = append(vs, it)
	it.elem = s.lru.PushFront(it)
	s.size += it.cost()
	if it.body != nil {
		it.memElem = s.mem.PushFront(it)
		s.memSize += int64(len(it.body))
	}
	for s.size > s.maxSize && s.lru.Len() > 1 {
		last := s.lru.Back().Value.(*item)
		drop = append(drop, s.removeLocked(last)...)
	}
	s.trimMemLocked()
	return drop
}

func (s *Store) trimMemLocked() {
	for s.memSize > s.maxMem && s.mem.Len() > 0 {
		last := s.mem.Back().Value.(*item)
		if last.file == "" {
			// no disk copy: the item goes entirely
			s.removeLocked(last)
			continue
		}
		s.dropBodyLocked(last)
	}
}

func (s *Store) dropBodyLocked(it *item) {
	if it.memElem != nil {
		s.mem.Remove(it.memElem)
		it.memElem = nil
		s.memSize -= int64(len(it.body))
	}
	it.body = nil
}

// unlinkLocked takes it out of the LRU lists (not out of byKey).
func (s *Store) unlinkLocked(it *item) []string {
	if it.removed {
		return nil
	}
	it.removed = true
	s.lru.Remove(it.elem)
	s.size -= it.cost()
	s.dropBodyLocked(it)
	if it.file != "" {
		return []string{it.file}
	}
	return nil
}

func (s *Store) removeLocked(it *item) []string {
	drop := s.unlinkLocked(it)
	vs := s.byKey[it.meta.Key]
	for i, v := range vs {
		if v == it {
			vs = append(vs[:i:i], vs[i+1:]...)
			break
		}
	}
	if len(vs) == 0 {
		delete(s.byKey, it.meta.Key)
	} else {
		s.byKey[it.meta.Key] = vs
	}
	return drop
}

// Lookup returns the stored variant of key that req's fields select, and
// its body. The Meta and the body are the store's: they must not be
// modified.
func (s *Store) Lookup(key string, match func(*Meta) bool) (*Meta, []byte, bool) {
	return s.lookup(key, match, time.Now())
}

// lookup is Lookup at the time now (the last use of what it finds).
func (s *Store) lookup(key string, match func(*Meta) bool, now time.Time) (*Meta, []byte, bool) {
	s.mu.Lock()
	var found *item
	for _, it := range s.byKey[key] {
		if match(&it.meta) {
			found = it
			break
		}
	}
	if found == nil {
		s.mu.Unlock()
		return nil, nil, false
	}
	s.lru.MoveToFront(found.elem)
	found.used = now
	m, body, file := &found.meta, found.body, found.file
	if found.memElem != nil {
		s.mem.MoveToFront(found.memElem)
	}
	s.mu.Unlock()
	if body != nil || m.Size == 0 {
		return m, body, true
	}
	body, err := readBody(file, m.Size)
	if err != nil {
		s.mu.Lock()
		if !found.removed {
			s.removeLocked(found)
		}
		s.mu.Unlock()
		return nil, nil, false
	}
	s.mu.Lock()
	if !found.removed && found.body == nil {
		found.body = body
		found.memElem = s.mem.PushFront(found)
		s.memSize += int64(len(body))
		s.trimMemLocked()
	}
	s.mu.Unlock()
	return m, body, true
}

func readBody(file string, size int64) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if _, _, err := decodeHead(br); err != nil {
		return nil, err
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return body, nil
}

// Put stores a response. With a directory, the file is written before Put
// returns.
func (s *Store) Put(m Meta, body []byte) error {
	m.Size = int64(len(body))
	m.Header = m.Header.Clone()
	it := &item{meta: m, body: body, used: time.Now()}
	if s.dir != "" {
		it.file = filepath.Join(s.dir, fileName(m))
	}
	if it.cost() > s.maxSize {
		return nil
	}
	var data []byte
	if it.file != "" {
		js, err := json.Marshal(&it.meta)
		if err != nil {
			return fmt.Errorf("proxy: cache: %w", err)
		}
		data = make([]byte, 0, len(fileMagic)+4+len(js)+len(body))
		data = append(data, fileMagic...)
		data = binary.BigEndian.AppendUint32(data, uint32(len(js)))
		data = append(append(data, js...), body...)
		if err := atomicfile.Write(it.file, data, false); err != nil {
			return fmt.Errorf("proxy: cache: %w", err)
		}
	}
	s.mu.Lock()
	drop := s.insertLocked(it)
	s.mu.Unlock()
	for _, f := range drop {
		os.Remove(f)
	}
	return nil
}

// fileName is unique per stored response: a hash of its keys and a random
// suffix, so replacing a variant never races with removing the old file.
func fileName(m Meta) string {
	h := sha256.Sum256([]byte(m.Key + "\n" + secondaryKey(m.Vary)))
	r := make([]byte, 4)
	rand.Read(r) //nolint:errcheck
	return hex.EncodeToString(h[:12]) + "-" + hex.EncodeToString(r) + ".cache"
}

// Invalidate removes every variant stored under key (RFC 9111 §4.4).
func (s *Store) Invalidate(key string) bool {
	s.mu.Lock()
	vs := append([]*item(nil), s.byKey[key]...)
	var drop []string
	for _, it := range vs {
		drop = append(drop, s.removeLocked(it)...)
	}
	s.mu.Unlock()
	for _, f := range drop {
		os.Remove(f)
	}
	return len(vs) > 0
}

// Len returns the number of stored responses and their bytes.
func (s *Store) Len() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len(), s.size
}

// Close records the LRU order in the files' modification times, so that
// the next NewStore evicts in the same order.
func (s *Store) Close() error {
	if s.dir == "" {
		return nil
	}
	type use struct {
		file string
		t    time.Time
	}
	s.mu.Lock()
	var uses []use
	for e := s.lru.Front(); e != nil; e = e.Next() {
		it := e.Value.(*item)
		uses = append(uses, use{it.file, it.used})
	}
	s.mu.Unlock()
	var errs []error
	for _, u := range uses {
		if err := os.Chtimes(u.file, u.t, u.t); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ParseSize reads a size such as 512, 64K, 256MiB, 1G or 2GB (powers of
// 1024).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("proxy: bad size %q (want e.g. 256MiB)", s)
	}
	return n * mult, nil
}
