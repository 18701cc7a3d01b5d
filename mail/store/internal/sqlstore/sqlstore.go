// Package sqlstore implements store.Backend on database/sql, for the SQLite
// and PostgreSQL backends, which differ only in their schema's types, their
// error codes, and how a change is announced. The SQL is the subset both
// speak: $N parameters, INSERT ... ON CONFLICT, UPDATE ... RETURNING.
//
// Concurrency: every writing transaction that touches a mailbox first
// updates that mailbox's row (taking a UID or a modification sequence),
// which serializes writers per mailbox in both databases: in PostgreSQL the
// row lock, in SQLite the single writer. Transactions that two mailboxes
// take (COPY, MOVE) lock them in id order. Serialization failures,
// deadlocks and busy databases are retried a bounded number of times.
package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"appnet/mail/store"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Schema creates the tables if they are missing (run in one
	// transaction, after Lock).
	Schema []string
	// Lock, if set, runs first in the schema transaction (PostgreSQL: an
	// advisory lock, so servers starting together do not race).
	Lock string
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// Retryable reports an error after which the transaction may be run
	// again (busy, serialization failure, deadlock).
	Retryable func(error) bool
	// NowMillis is an SQL expression for the database's clock in Unix
	// milliseconds (leases are timed by it, not by each server's clock).
	NowMillis string
	// NotifySQL, if set, is run in each transaction that changed a
	// mailbox, with the mailbox id as text in $1 (PostgreSQL NOTIFY);
	// otherwise watchers are told in process after the commit.
	NotifySQL string
}

// Store is the shared implementation of store.Backend.
type Store struct {
	w, r *sql.DB // writer and reader pools (the same for PostgreSQL)
	d    Dialect
	opt  store.Options
	hub  *hub

	ctx     context.Context // ends on Close: lock renewals stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex // guards closing and wg.Add
	closing bool
	once    sync.Once
	closer  func() error
}

var _ store.Backend = (*Store)(nil)
var _ store.Watcher = (*Store)(nil)

// New creates the schema if needed and returns the store. closer runs on
// Close, after the store's own goroutines have stopped.
func New(ctx context.Context, w, r *sql.DB, d Dialect, opt store.Options, closer func() error) (*Store, error) {
	s := &Store{w: w, r: r, d: d, opt: opt, hub: newHub(), closer: closer}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	err := s.write(ctx, func(t *txn) error {
		if d.Lock != "" {
			if _, err := t.tx.ExecContext(ctx, d.Lock); err != nil {
				return err
			}
		}
		for _, q := range d.Schema {
			if _, err := t.tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", firstLine(q), err)
			}
		}
		// UIDVALIDITY values come from one counter that starts at the
		// store's creation time, so a mailbox deleted and created again
		// never gets its old value back (RFC 3501 §2.3.1.1).
		_, err := t.tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('uidvalidity', $1) ON CONFLICT (key) DO NOTHING`, time.Now().Unix())
		return err
	})
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("store: schema: %w", err)
	}
	return s, nil
}

// Context is the store's lifetime: it ends on Close.
func (s *Store) Context() context.Context { return s.ctx }

// Go runs f in a goroutine the store owns: Close waits for it. It
// reports false, and runs nothing, once the store is closing.
func (s *Store) Go(f func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f(s.ctx) }()
	return true
}

// Notify tells this process's watchers that mailboxes changed (the
// PostgreSQL backend calls it for each NOTIFY it receives).
func (s *Store) Notify(ids ...int64) { s.hub.notify(ids...) }

// NotifyAll tells every watcher to look again.
func (s *Store) NotifyAll() { s.hub.notifyAll() }

// Close stops the store's goroutines and closes the databases.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		s.hub.close()
		if s.closer != nil {
			err = s.closer()
		}
	})
	return err
}

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '('); i > 0 {
		q = q[:i]
	}
	return q
}

// txn is a writing transaction and the mailboxes it changed.
type txn struct {
	s       *Store
	ctx     context.Context
	tx      *sql.Tx
	changed []int64
}

func (t *txn) exec(q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, q, args...)
}

func (t *txn) row(q string, args ...any) *sql.Row { return t.tx.QueryRowContext(t.ctx, q, args...) }

// touched records that mailbox id changed, announcing it with the
// transaction where the database can (PostgreSQL NOTIFY is delivered at
// commit, and not at all on rollback).
func (t *txn) touched(id int64) error {
	for _, c := range t.changed {
		if c == id {
			return nil
		}
	}
	t.changed = append(t.changed, id)
	if t.s.d.NotifySQL != "" {
		if _, err := t.exec(t.s.d.NotifySQL, fmt.Sprint(id)); err != nil {
			return err
		}
	}
	return nil
}

// errRollback ends a transaction that found nothing to do, without error.
var errRollback = errors.New("sqlstore: nothing to change")

// write runs fn in a writing transaction, again if the database asks for
// a retry (at most 10 times).
func (s *Store) write(ctx context.Context, fn func(*txn) error) error {
	if s.ctx.Err() != nil {
		return store.ErrClosed
	}
	for attempt := 0; ; attempt++ {
		t := &txn{s: s, ctx: ctx}
		tx, err := s.w.BeginTx(ctx, nil)
		if err == nil {
			t.tx = tx
			err = fn(t)
			if err == nil {
				err = tx.Commit()
			} else {
				tx.Rollback()
			}
		}
		if err != nil && s.d.Retryable(err) && attempt < 10 && ctx.Err() == nil {
			backoff := time.Duration(1+attempt*attempt) * time.Millisecond
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		if errors.Is(err, errRollback) {
			return nil
		}
		if err == nil && s.d.NotifySQL == "" {
			s.hub.notify(t.changed...)
		}
		return err
	}
}

// ---- users ----

// userRow finds the user rcpt designates (store.ResolveUser). With no
// such user, id is 0 and err nil.
func (s *Store) userRow(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, rcpt string) (id int64, name, hash string, err error) {
	names, err := store.ResolveUser(rcpt)
	if err != nil {
		return 0, "", "", err
	}
	for _, n := range names {
		err = db.QueryRowContext(ctx, `SELECT id, name, password FROM users WHERE name = $1`, n).Scan(&id, &name, &hash)
		if err == nil {
			return id, name, hash, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, "", "", fmt.Errorf("store: user %q: %w", n, err)
		}
	}
	return 0, "", "", nil
}

// Login implements store.Backend.
func (s *Store) Login(ctx context.Context, user, password string) (store.Session, error) {
	id, name, hash, err := s.userRow(ctx, s.r, user)
	if err != nil && !errors.Is(err, store.ErrBadUser) {
		return nil, err
	}
	if len(password) > store.MaxPassword {
		password = password[:store.MaxPassword]
	}
	// An unknown user is checked against a dummy hash: the same work.
	if !store.VerifyPassword(hash, password) || id == 0 {
		return nil, store.ErrAuthFailed
	}
	return &session{s: s, id: id, name: name}, nil
}

// OpenSession implements store.Backend.
func (s *Store) OpenSession(ctx context.Context, user string) (store.Session, error) {
	id, name, _, err := s.userRow(ctx, s.r, user)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, fmt.Errorf("%w: %q", store.ErrNoUser, user)
	}
	return &session{s: s, id: id, name: name}, nil
}

// UserExists implements store.Backend.
func (s *Store) UserExists(ctx context.Context, rcpt string) (bool, error) {
	id, _, _, err := s.userRow(ctx, s.r, rcpt)
	if errors.Is(err, store.ErrBadUser) {
		return false, nil
	}
	return id != 0, err
}

// Deliver implements store.Backend.
func (s *Store) Deliver(ctx context.Context, rcpt string, msg []byte) error {
	sess, err := s.OpenSession(ctx, rcpt)
	if err != nil {
		return err
	}
	_, err = sess.Append(ctx, store.Inbox, msg, nil, time.Time{})
	return err
}

// defaultMailboxes are what a new user gets (RFC 6154 special use).
var defaultMailboxes = []struct{ name, use string }{
	{store.Inbox, ""},
	{"Drafts", store.SpecialDrafts},
	{"Sent", store.SpecialSent},
	{"Trash", store.SpecialTrash},
	{"Junk", store.SpecialJunk},
}

// credentials checks a user name and hashes a password.
func (s *Store) credentials(user, password string) (name, hash string, err error) {
	if name, err = store.UserName(user); err != nil {
		return "", "", err
	}
	hash, err = store.HashPasswordWith(s.opt, password)
	return name, hash, err
}

// AddUser implements store.Backend.
func (s *Store) AddUser(ctx context.Context, user, password string) error {
	name, hash, err := s.credentials(user, password)
	if err != nil {
		return err
	}
	return s.write(ctx, func(t *txn) error {
		var id int64
		err := t.row(`INSERT INTO users (name, password, created) VALUES ($1, $2, $3) RETURNING id`, name, hash, time.Now().Unix()).Scan(&id)
		if err != nil {
			if s.d.IsUnique(err) {
				return fmt.Errorf("%w: %q", store.ErrUserExists, name)
			}
			return fmt.Errorf("store: add user: %w", err)
		}
		for _, m := range defaultMailboxes {
			if err := t.createMailbox(id, m.name, m.use, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteUser implements store.Backend.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	name, err := store.UserName(user)
	if err != nil {
		return err
	}
	return s.write(ctx, func(t *txn) error {
		var id int64
		if err := t.row(`SELECT id FROM users WHERE name = $1`, name).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %q", store.ErrNoUser, name)
			}
			return err
		}
		blobs, err := t.blobsOf(`SELECT DISTINCT m.blob_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = $1`, id)
		if err != nil {
			return err
		}
		var boxes []int64
		rows, err := t.tx.QueryContext(t.ctx, `SELECT id FROM mailboxes WHERE user_id = $1`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var b int64
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return err
			}
			boxes = append(boxes, b)
		}
		rows.Close()
		if _, err := t.exec(`DELETE FROM users WHERE id = $1`, id); err != nil {
			return err
		}
		for _, b := range boxes {
			if err := t.touched(b); err != nil {
				return err
			}
		}
		return t.gcBlobs(blobs)
	})
}

// SetPassword implements store.Backend.
func (s *Store) SetPassword(ctx context.Context, user, password string) error {
	name, hash, err := s.credentials(user, password)
	if err != nil {
		return err
	}
	return s.write(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE users SET password = $1 WHERE name = $2`, hash, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %q", store.ErrNoUser, name)
		}
		return nil
	})
}

// Users implements store.Backend.
func (s *Store) Users(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: users: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Watch implements store.Watcher.
func (s *Store) Watch(ctx context.Context, user, mailbox string) (<-chan struct{}, error) {
	sess, err := s.OpenSession(ctx, user)
	if err != nil {
		return nil, err
	}
	name, err := store.MailboxName(mailbox)
	if err != nil {
		return nil, err
	}
	id, _, err := sess.(*session).lookup(ctx, s.r, name)
	if err != nil {
		return nil, err
	}
	return s.hub.watch(ctx, id), nil
}

// ---- mailboxes ----

// createMailbox creates one mailbox with a fresh UIDVALIDITY.
func (t *txn) createMailbox(user int64, name, use string, subscribed bool) error {
	var n int
	if err := t.row(`SELECT COUNT(*) FROM mailboxes WHERE user_id = $1`, user).Scan(&n); err != nil {
		return err
	}
	if n >= t.s.opt.Mailboxes() {
		return fmt.Errorf("%w: %d, the limit", store.ErrTooMany, n)
	}
	var uv int64
	if err := t.row(`UPDATE meta SET value = value + 1 WHERE key = 'uidvalidity' RETURNING value`).Scan(&uv); err != nil {
		return fmt.Errorf("store: uidvalidity: %w", err)
	}
	uv = uv%(1<<32-1) + 1 // 1 .. 2^32-1
	sub := 0
	if subscribed {
		sub = 1
	}
	_, err := t.exec(`INSERT INTO mailboxes (user_id, name, uidvalidity, uidnext, highestmodseq, subscribed, special_use) VALUES ($1, $2, $3, 1, 1, $4, $5)`,
		user, name, uv, sub, use)
	if err != nil {
		if t.s.d.IsUnique(err) {
			return fmt.Errorf("%w: %q", store.ErrMailboxExists, name)
		}
		return fmt.Errorf("store: create %q: %w", name, err)
	}
	return nil
}

// blobsOf returns the blob ids a query lists.
func (t *txn) blobsOf(q string, args ...any) ([]int64, error) {
	rows, err := t.tx.QueryContext(t.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// gcBlobs deletes the blobs no message refers to any more. In PostgreSQL a
// concurrent append that just took one of them makes this fail with a
// foreign-key violation, which is retried, and then sees the new message.
func (t *txn) gcBlobs(ids []int64) error {
	for _, id := range ids {
		if _, err := t.exec(`DELETE FROM blobs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = $1)`, id); err != nil {
			return err
		}
	}
	return nil
}

// putBlob stores the bytes once (content-addressed by SHA-256) and
// returns the blob's id.
func (t *txn) putBlob(sum []byte, msg []byte) (int64, error) {
	var id int64
	err := t.row(`SELECT id FROM blobs WHERE sha256 = $1`, sum).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	err = t.row(`INSERT INTO blobs (sha256, size, header_size, data) VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO UPDATE SET size = excluded.size RETURNING id`,
		sum, int64(len(msg)), store.HeaderSize(msg), msg).Scan(&id)
	return id, err
}

// newToken returns a random lock token.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sum256(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// uidList sorts and deduplicates UIDs.
func uidList(uids []store.UID) []store.UID {
	out := append([]store.UID(nil), uids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	n := 0
	for i, u := range out {
		if u == 0 || (i > 0 && u == out[i-1]) {
			continue
		}
		out[n] = u
		n++
	}
	return out[:n]
}
