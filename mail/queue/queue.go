// Package queue is the mail server's durable queue of outgoing messages
// and its delivery agent (RFC 5321 §4.5.4, §5; bounces: RFC 3464).
//
// A message is accepted (Enqueue returns nil, and only then may the SMTP
// server answer 250, RFC 5321 §6.1) once its bytes and its envelope are
// on stable storage: the queue is an append-only log whose records are
// flushed with fdatasync before any caller is released. Concurrent
// Enqueue calls from many sessions share one flush (group commit): a
// single committer goroutine writes every pending record it has, flushes
// once, and releases every caller that flush covers.
//
// Each recipient has its own state (pending, delivered, bounced), written
// to the log as it changes, so a message to three recipients of which one
// fails is retried for that one only. A recipient is recorded as
// delivered only after the remote server's 250 to the final dot (or the
// local store's success) and the record's flush: a crash between the
// remote's 250 and that flush makes the message be delivered again on
// restart. That duplicate is the one SMTP itself cannot avoid (RFC 1047);
// nothing is ever lost.
//
// Recovery (Open) replays the log, drops a torn tail left by a crash and
// resumes every committed message. A queue directory is used by one
// process at a time (an flock on DIR/lock); a running server answers
// `appnet mail queue` on DIR/control.sock (see Control).
package queue

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors.
var (
	ErrClosed   = errors.New("queue: closed")
	ErrLocked   = errors.New("queue: directory in use by another process")
	ErrNotFound = errors.New("queue: no such message")
	// ErrNoSpace wraps the failure of an enqueue for want of disk space;
	// an SMTP server answers it with 452 4.3.1 (RFC 3463).
	ErrNoSpace = errors.New("queue: insufficient storage")
)

// State is a recipient's delivery state.
type State string

// Recipient states.
const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Bounced   State = "bounced"
)

// Recipient is one recipient of a queued message and how its delivery
// stands.
type Recipient struct {
	Addr      string    `json:"addr"`
	State     State     `json:"state"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	NextTry   time.Time `json:"next_try,omitzero"`
}

// Envelope is a queued message's SMTP envelope (RFC 5321 §2.3.1).
type Envelope struct {
	ID      string      `json:"id"`
	From    string      `json:"from"` // "" is the null reverse-path <>
	Rcpts   []Recipient `json:"rcpts"`
	Arrived time.Time   `json:"arrived"`
}

// Info describes a queued message for `appnet mail queue list`.
type Info struct {
	Envelope
	Size   int64  `json:"size"`
	Active bool   `json:"active"` // a delivery is under way
	Status string `json:"status"` // active, deferred or queued
}

// Config configures a queue. Only Dir is required.
type Config struct {
	Dir string
	// SegmentSize is the log size at which a new segment file starts and
	// older ones are compacted (default 64 MiB).
	SegmentSize int64
	// NoGroupCommit flushes every record by itself (for benchmarks).
	NoGroupCommit bool
	Logger        *slog.Logger
}

type entry struct {
	env      Envelope
	seg      *segment
	off      int64 // of the message bytes in seg
	size     int64
	inflight []bool
}

func (e *entry) live() bool {
	for _, r := range e.env.Rcpts {
		if r.State == Pending {
			return true
		}
	}
	return false
}

// Queue is a durable mail queue. Its methods are safe for concurrent use.
type Queue struct {
	cfg    Config
	logDir string
	lock   *os.File
	log    *slog.Logger

	reqs    chan *commitReq
	compact chan struct{}
	kick    chan struct{} // wakes the delivery agent: new mail or a flush
	stop    chan struct{}
	stopped chan struct{} // closed when the committer has returned
	wg      sync.WaitGroup

	flushes atomic.Int64 // log flushes so far

	mu      sync.Mutex // guards the fields below
	entries map[string]*entry
	segs    []*segment // oldest first; the last is the one written
	closed  bool
}

// commitReq is a unit of work for the committer. encode runs on the
// committer goroutine, in log order, and appends the request's records
// to buf (whose first byte will be at file offset base of seg).
type commitReq struct {
	encode func(buf []byte, seg *segment, base int64) []byte
	done   chan error
}

// Open opens (creating it if need be) the queue in cfg.Dir and recovers
// every committed message.
func Open(cfg Config) (*Queue, error) {
	if cfg.Dir == "" {
		return nil, errors.New("queue: no directory")
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = defaultSegSz
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		cfg:     cfg,
		logDir:  filepath.Join(cfg.Dir, logDirName),
		log:     cfg.Logger,
		reqs:    make(chan *commitReq, 1024),
		compact: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		entries: make(map[string]*entry),
	}
	if err := os.MkdirAll(q.logDir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(cfg.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, cfg.Dir)
		}
		return nil, fmt.Errorf("queue: lock: %w", err)
	}
	q.lock = lf
	if err := q.recover(); err != nil {
		q.closeFiles()
		return nil, err
	}
	q.wg.Add(2)
	go q.committer()
	go q.compactor()
	q.signal(q.compact)
	return q, nil
}

// recover replays every segment, oldest first.
func (q *Queue) recover() error {
	seqs, err := listSegments(q.logDir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for i, seq := range seqs {
		p := filepath.Join(q.logDir, segName(seq))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		seg := &segment{seq: seq, path: p, f: f}
		q.segs = append(q.segs, seg)
		end, err := scanSegment(f, func(r record) error { return q.replay(seg, r) })
		if err != nil {
			return fmt.Errorf("queue: replay %s: %w", p, err)
		}
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if end < st.Size() {
			// A torn tail: records whose write never completed, so never
			// acknowledged. Cut them off before appending after them.
			if i != len(seqs)-1 {
				q.log.Warn("queue: damaged record inside the log; the rest of the segment is ignored", "segment", p, "offset", end)
			}
			if err := f.Truncate(end); err != nil {
				return fmt.Errorf("queue: truncate torn tail: %w", err)
			}
			if err := fdatasync(f); err != nil {
				return fmt.Errorf("queue: %w", err)
			}
		}
	}
	for id, e := range q.entries {
		if !e.live() {
			delete(q.entries, id)
			continue
		}
		e.inflight = make([]bool, len(e.env.Rcpts))
	}
	var next uint64 = 1
	if n := len(q.segs); n > 0 {
		last := q.segs[n-1]
		st, err := last.f.Stat()
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if st.Size() < q.cfg.SegmentSize {
			return nil
		}
		next = last.seq + 1
	}
	seg, err := createSegment(q.logDir, next)
	if err != nil {
		return err
	}
	q.segs = append(q.segs, seg)
	return nil
}

type stateRecord struct {
	ID   string    `json:"id"`
	Rcpt int       `json:"rcpt"`
	R    Recipient `json:"r"`
}

func (q *Queue) replay(seg *segment, r record) error {
	switch r.typ {
	case recEnqueue:
		if len(r.payload) < 4 {
			return errors.New("short enqueue record")
		}
		n := int(binary.BigEndian.Uint32(r.payload))
		if n > len(r.payload)-4 {
			return errors.New("bad enqueue record")
		}
		var env Envelope
		if err := json.Unmarshal(r.payload[4:4+n], &env); err != nil {
			return err
		}
		q.entries[env.ID] = &entry{env: env, seg: seg, off: r.off + 4 + int64(n), size: int64(len(r.payload) - 4 - n)}
	case recState:
		var s stateRecord
		if err := json.Unmarshal(r.payload, &s); err != nil {
			return err
		}
		if e := q.entries[s.ID]; e != nil && s.Rcpt >= 0 && s.Rcpt < len(e.env.Rcpts) {
			e.env.Rcpts[s.Rcpt] = s.R
		}
	case recDelete:
		delete(q.entries, string(r.payload))
	}
	return nil
}

func (q *Queue) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// NewID returns a fresh queue ID: 16 hex digits, unique in practice.
func (q *Queue) NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// Enqueue stores msg for the given recipients durably. When it returns
// nil the message is on stable storage and the delivery agent will
// deliver it; otherwise nothing was accepted. A full disk gives an error
// that wraps ErrNoSpace. id is from NewID (the SMTP server names it in
// the Received: header it prepends first).
func (q *Queue) Enqueue(ctx context.Context, id, from string, rcpts []string, msg []byte) error {
	if len(rcpts) == 0 {
		return errors.New("queue: no recipients")
	}
	env := Envelope{ID: id, From: from, Arrived: time.Now().UTC().Truncate(time.Second)}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, Recipient{Addr: r, State: Pending})
	}
	ej, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	var lenb [4]byte
	binary.BigEndian.PutUint32(lenb[:], uint32(len(ej)))
	var (
		at  *segment
		off int64
	)
	err = q.commit(ctx, func(buf []byte, seg *segment, base int64) []byte {
		at, off = seg, base+int64(len(buf))+recHeader+4+int64(len(ej))
		return appendRecord(buf, recEnqueue, lenb[:], ej, msg)
	})
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.entries[id] = &entry{env: env, seg: at, off: off, size: int64(len(msg)), inflight: make([]bool, len(rcpts))}
	q.mu.Unlock()
	q.signal(q.kick)
	return nil
}

// commit hands a request to the committer and waits for the flush that
// covers it. A canceled ctx stops the hand-over, not the wait: a record
// on its way to the disk is answered for.
func (q *Queue) commit(ctx context.Context, enc func([]byte, *segment, int64) []byte) error {
	req := &commitReq{encode: enc, done: make(chan error, 1)}
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case q.reqs <- req:
	case <-q.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over, a request is committed or failed by the
	// committer; waiting for its answer is bounded by one flush.
	select {
	case err := <-req.done:
		return err
	case <-q.stopped:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// testHookSync, when set, runs before each flush.
var testHookSync func()

// Flushes returns how many log flushes (fdatasync calls) the queue has
// made: with group commit, fewer than the records committed.
func (q *Queue) Flushes() int64 { return q.flushes.Load() }

// maxBatch bounds the bytes one group commit writes.
const maxBatch = 8 << 20

// committer owns the current segment's writes. It takes every request
// waiting, writes them in one write, flushes once, and answers each.
func (q *Queue) committer() {
	defer q.wg.Done()
	defer close(q.stopped)
	var buf []byte
	for {
		var first *commitReq
		select {
		case first = <-q.reqs:
		case <-q.stop:
			// Answer anything left so no caller waits forever.
			for {
				select {
				case r := <-q.reqs:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
		batch := []*commitReq{first}
		seg, base, err := q.current()
		if err != nil {
			first.done <- err
			continue
		}
		buf = first.encode(buf[:0], seg, base)
		if !q.cfg.NoGroupCommit {
		more:
			for len(buf) < maxBatch {
				select {
				case r := <-q.reqs:
					batch = append(batch, r)
					buf = r.encode(buf, seg, base)
				default:
					break more
				}
			}
		}
		err = q.write(seg, base, buf)
		for _, r := range batch {
			r.done <- err
		}
		if cap(buf) > maxBatch*2 {
			buf = nil
		}
	}
}

// current returns the segment to write and its end, starting a new
// segment (and waking the compactor) when the current one is full.
func (q *Queue) current() (*segment, int64, error) {
	q.mu.Lock()
	seg := q.segs[len(q.segs)-1]
	q.mu.Unlock()
	st, err := seg.f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("queue: %w", err)
	}
	if st.Size() < q.cfg.SegmentSize {
		return seg, st.Size(), nil
	}
	ns, err := createSegment(q.logDir, seg.seq+1)
	if err != nil {
		return nil, 0, noSpace(err)
	}
	q.mu.Lock()
	q.segs = append(q.segs, ns)
	q.mu.Unlock()
	q.signal(q.compact)
	return ns, 0, nil
}

// write appends buf at base and flushes it. On failure it cuts the file
// back to base, so a failed batch leaves nothing that a later one could
// follow.
func (q *Queue) write(seg *segment, base int64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	_, err := seg.f.WriteAt(buf, base)
	if err == nil {
		if testHookSync != nil {
			testHookSync()
		}
		err = fdatasync(seg.f)
		q.flushes.Add(1)
	}
	if err != nil {
		if terr := seg.f.Truncate(base); terr != nil {
			q.log.Error("queue: cannot cut back a failed write", "segment", seg.path, "err", terr)
		}
		return noSpace(fmt.Errorf("queue: write log: %w", err))
	}
	return nil
}

func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// Delete removes messages from the queue, as postsuper -d does. It
// returns how many it removed. A delivery under way finishes, but its
// result is not recorded.
func (q *Queue) Delete(ctx context.Context, ids ...string) (int, error) {
	n := 0
	err := q.commit(ctx, func(buf []byte, _ *segment, _ int64) []byte {
		q.mu.Lock()
		defer q.mu.Unlock()
		for _, id := range ids {
			if _, ok := q.entries[id]; ok {
				delete(q.entries, id)
				buf = appendRecord(buf, recDelete, []byte(id))
				n++
			}
		}
		return buf
	})
	return n, err
}

// Flush makes the given messages (all, if none are named) due for
// delivery now, as postqueue -f / -i do. It returns how many.
func (q *Queue) Flush(ids ...string) int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	q.mu.Lock()
	for id, e := range q.entries {
		if len(ids) > 0 && !want[id] {
			continue
		}
		n++
		for i := range e.env.Rcpts {
			e.env.Rcpts[i].NextTry = time.Time{}
		}
	}
	q.mu.Unlock()
	q.signal(q.kick)
	return n
}

// List describes every queued message, oldest first.
func (q *Queue) List() []Info {
	q.mu.Lock()
	out := make([]Info, 0, len(q.entries))
	for _, e := range q.entries {
		in := Info{Envelope: e.env, Size: e.size, Status: "queued"}
		in.Rcpts = append([]Recipient(nil), e.env.Rcpts...)
		for i, r := range e.env.Rcpts {
			if e.inflight[i] {
				in.Active = true
			}
			if r.State == Pending && r.Attempts > 0 {
				in.Status = "deferred"
			}
		}
		if in.Active {
			in.Status = "active"
		}
		out = append(out, in)
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Arrived.Equal(out[j].Arrived) {
			return out[i].Arrived.Before(out[j].Arrived)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Message returns a queued message's bytes.
func (q *Queue) Message(id string) ([]byte, error) {
	q.mu.Lock()
	e := q.entries[id]
	if e == nil {
		q.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	seg, off, size := e.seg, e.off, e.size
	seg.acquire()
	q.mu.Unlock()
	defer seg.release()
	b := make([]byte, size)
	if _, err := seg.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("queue: read message %s: %w", id, err)
	}
	return b, nil
}

// Len returns the number of messages queued.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// compactor drops log segments from the oldest on: a segment still
// holding live messages has them copied (with their current state) to
// the segment being written first. Dropping only the oldest keeps every
// later record a live message depends on.
func (q *Queue) compactor() {
	defer q.wg.Done()
	for {
		select {
		case <-q.stop:
			return
		case <-q.compact:
		}
		for q.compactOldest() {
		}
	}
}

func (q *Queue) compactOldest() bool {
	q.mu.Lock()
	if len(q.segs) < 2 || q.closed {
		q.mu.Unlock()
		return false
	}
	old := q.segs[0]
	var ids []string
	for id, e := range q.entries {
		if e.seg == old {
			ids = append(ids, id)
		}
	}
	q.mu.Unlock()
	for _, id := range ids {
		msg, err := q.Message(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			q.log.Error("queue: compaction", "err", err)
			return false
		}
		var (
			moved bool
			at    *segment
			off   int64
		)
		err = q.commit(context.Background(), func(buf []byte, seg *segment, base int64) []byte {
			q.mu.Lock()
			defer q.mu.Unlock()
			e := q.entries[id]
			if e == nil || e.seg != old {
				return buf
			}
			ej, _ := json.Marshal(e.env)
			var lenb [4]byte
			binary.BigEndian.PutUint32(lenb[:], uint32(len(ej)))
			moved, at, off = true, seg, base+int64(len(buf))+recHeader+4+int64(len(ej))
			return appendRecord(buf, recEnqueue, lenb[:], ej, msg)
		})
		if err != nil {
			q.log.Error("queue: compaction", "err", err)
			return false
		}
		if moved {
			q.mu.Lock()
			if e := q.entries[id]; e != nil && e.seg == old {
				e.seg, e.off = at, off
			}
			q.mu.Unlock()
		}
	}
	q.mu.Lock()
	for _, e := range q.entries {
		if e.seg == old {
			q.mu.Unlock()
			return false
		}
	}
	q.segs = q.segs[1:]
	q.mu.Unlock()
	old.drop()
	return true
}

// Close stops the committer and closes the log. Requests under way are
// answered with ErrClosed (nothing they carried was acknowledged).
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
	q.closeFiles()
	return nil
}

func (q *Queue) closeFiles() {
	q.mu.Lock()
	segs := q.segs
	q.segs = nil
	q.mu.Unlock()
	for _, s := range segs {
		s.f.Close()
	}
	if q.lock != nil {
		q.lock.Close()
	}
}
