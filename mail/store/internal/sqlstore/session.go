package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"appnet/mail/store"
)

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// session is a user's authenticated state.
type session struct {
	s    *Store
	id   int64
	name string
}

func (ss *session) User() string { return ss.name }
func (ss *session) Close() error { return nil }

// lookup finds a mailbox by canonical name.
func (ss *session) lookup(ctx context.Context, db queryRower, name string) (id int64, uidValidity uint32, err error) {
	var uv int64
	err = db.QueryRowContext(ctx, `SELECT id, uidvalidity FROM mailboxes WHERE user_id = $1 AND name = $2`, ss.id, name).Scan(&id, &uv)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("%w: %q", store.ErrNoMailbox, name)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: mailbox %q: %w", name, err)
	}
	return id, uint32(uv), nil
}

func (ss *session) Mailboxes(ctx context.Context) ([]store.MailboxInfo, error) {
	rows, err := ss.s.r.QueryContext(ctx, `SELECT name, subscribed, special_use FROM mailboxes WHERE user_id = $1`, ss.id)
	if err != nil {
		return nil, fmt.Errorf("store: mailboxes: %w", err)
	}
	defer rows.Close()
	var out []store.MailboxInfo
	for rows.Next() {
		var m store.MailboxInfo
		var sub int
		if err := rows.Scan(&m.Name, &sub, &m.SpecialUse); err != nil {
			return nil, err
		}
		m.Subscribed = sub != 0
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Sort by bytes in Go: the databases' collations differ.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := range out {
		p := out[i].Name + store.Delimiter
		for j := i + 1; j < len(out) && strings.HasPrefix(out[j].Name, out[i].Name); j++ {
			if strings.HasPrefix(out[j].Name, p) {
				out[i].HasChildren = true
				break
			}
		}
	}
	return out, nil
}

// superiors lists the names above name in its hierarchy, shortest first.
func superiors(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}

// createSuperiors creates the levels above name that are missing.
func (ss *session) createSuperiors(t *txn, name string) error {
	for _, sup := range superiors(name) {
		if _, _, err := ss.lookup(t.ctx, t.tx, sup); err == nil {
			continue
		}
		if err := t.createMailbox(ss.id, sup, "", false); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) CreateMailbox(ctx context.Context, name string) error {
	name, err := store.MailboxName(name)
	if err != nil {
		return err
	}
	return ss.s.write(ctx, func(t *txn) error {
		// RFC 3501 §6.3.3: create the superiors that are missing.
		if err := ss.createSuperiors(t, name); err != nil {
			return err
		}
		return t.createMailbox(ss.id, name, "", false)
	})
}

func (ss *session) DeleteMailbox(ctx context.Context, name string) error {
	name, err := store.MailboxName(name)
	if err != nil {
		return err
	}
	if name == store.Inbox {
		return store.ErrInbox
	}
	return ss.s.write(ctx, func(t *txn) error {
		id, _, err := ss.lookup(ctx, t.tx, name)
		if err != nil {
			return err
		}
		var n int
		if err := t.row(`SELECT COUNT(*) FROM mailboxes WHERE user_id = $1 AND substr(name, 1, $2) = $3`,
			ss.id, len(name)+1, name+store.Delimiter).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %q", store.ErrHasChildren, name)
		}
		blobs, err := t.blobsOf(`SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = $1`, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM mailboxes WHERE id = $1`, id); err != nil {
			return err
		}
		if err := t.touched(id); err != nil {
			return err
		}
		return t.gcBlobs(blobs)
	})
}

func (ss *session) RenameMailbox(ctx context.Context, from, to string) error {
	from, err := store.MailboxName(from)
	if err != nil {
		return err
	}
	to, err = store.MailboxName(to)
	if err != nil {
		return err
	}
	if to == store.Inbox || from == to || strings.HasPrefix(to, from+store.Delimiter) {
		return fmt.Errorf("%w: cannot rename %q to %q", store.ErrBadName, from, to)
	}
	return ss.s.write(ctx, func(t *txn) error {
		id, _, err := ss.lookup(ctx, t.tx, from)
		if err != nil {
			return err
		}
		if _, _, err := ss.lookup(ctx, t.tx, to); err == nil {
			return fmt.Errorf("%w: %q", store.ErrMailboxExists, to)
		}
		if err := ss.createSuperiors(t, to); err != nil {
			return err
		}
		if from == store.Inbox {
			// RFC 3501 §6.3.5: renaming INBOX moves its messages to a new
			// mailbox and leaves INBOX (and its inferiors) in place.
			if err := t.createMailbox(ss.id, to, "", false); err != nil {
				return err
			}
			dest, _, err := ss.lookup(ctx, t.tx, to)
			if err != nil {
				return err
			}
			_, err = t.transfer(id, dest, nil, true)
			return err
		}
		// The mailbox and its inferiors, by id.
		rows, err := t.tx.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE user_id = $1 AND (name = $2 OR substr(name, 1, $3) = $4)`,
			ss.id, from, len(from)+1, from+store.Delimiter)
		if err != nil {
			return err
		}
		type ren struct {
			id   int64
			name string
		}
		var rs []ren
		for rows.Next() {
			var r ren
			if err := rows.Scan(&r.id, &r.name); err != nil {
				rows.Close()
				return err
			}
			rs = append(rs, r)
		}
		rows.Close()
		for _, r := range rs {
			nn := to + strings.TrimPrefix(r.name, from)
			if len(nn) > store.MaxMailboxName {
				return fmt.Errorf("%w: %q would be too long", store.ErrBadName, nn)
			}
			if _, err := t.exec(`UPDATE mailboxes SET name = $1 WHERE id = $2`, nn, r.id); err != nil {
				if ss.s.d.IsUnique(err) {
					return fmt.Errorf("%w: %q", store.ErrMailboxExists, nn)
				}
				return err
			}
			if err := t.touched(r.id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (ss *session) Subscribe(ctx context.Context, name string, on bool) error {
	name, err := store.MailboxName(name)
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	return ss.s.write(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE mailboxes SET subscribed = $1 WHERE user_id = $2 AND name = $3`, v, ss.id, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %q", store.ErrNoMailbox, name)
		}
		return nil
	})
}

func (ss *session) Status(ctx context.Context, name string) (store.MailboxStatus, error) {
	name, err := store.MailboxName(name)
	if err != nil {
		return store.MailboxStatus{}, err
	}
	id, _, err := ss.lookup(ctx, ss.s.r, name)
	if err != nil {
		return store.MailboxStatus{}, err
	}
	return (&mailbox{ss: ss, id: id, name: name}).Status(ctx)
}

func (ss *session) Append(ctx context.Context, name string, msg []byte, flags []string, date time.Time) (store.AppendResult, error) {
	name, err := store.MailboxName(name)
	if err != nil {
		return store.AppendResult{}, err
	}
	if int64(len(msg)) > ss.s.opt.MaxSize() {
		return store.AppendResult{}, fmt.Errorf("%w: %d bytes, the limit is %d", store.ErrTooLarge, len(msg), ss.s.opt.MaxSize())
	}
	if len(msg) == 0 {
		return store.AppendResult{}, store.ErrEmptyMessage
	}
	bits, kw, err := store.ParseFlags(flags)
	if err != nil {
		return store.AppendResult{}, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	sum := sum256(msg)
	var res store.AppendResult
	err = ss.s.write(ctx, func(t *txn) error {
		id, _, err := ss.lookup(ctx, t.tx, name)
		if err != nil {
			return err
		}
		first, uv, modseq, err := t.allocate(id, 1)
		if err != nil {
			return err
		}
		blob, err := t.putBlob(sum, msg)
		if err != nil {
			return err
		}
		_, off := date.Zone()
		if _, err := t.exec(`INSERT INTO messages (mailbox_id, uid, blob_id, size, flags, keywords, modseq, internal_date, date_zone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, int64(first), blob, int64(len(msg)), bits, strings.Join(kw, " "), int64(modseq), date.Unix(), off); err != nil {
			return err
		}
		res = store.AppendResult{UIDValidity: uv, UID: first}
		return t.touched(id)
	})
	if err != nil {
		return store.AppendResult{}, err
	}
	return res, nil
}

// allocate takes n UIDs and a new modification sequence in mailbox id;
// the UPDATE is also what serializes writers of the mailbox.
func (t *txn) allocate(id int64, n int) (first store.UID, uidValidity uint32, modseq uint64, err error) {
	var next, uv, ms int64
	err = t.row(`UPDATE mailboxes SET uidnext = uidnext + $2, highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING uidnext, uidvalidity, highestmodseq`,
		id, n).Scan(&next, &uv, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, store.ErrNoMailbox
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("store: allocate uid: %w", err)
	}
	// UIDs are 32 bits (RFC 3501 §2.3.1.1); UIDNEXT may be 2^32 at most.
	if next > 1<<32 {
		return 0, 0, 0, store.ErrUIDsExhausted
	}
	return store.UID(next - int64(n)), uint32(uv), uint64(ms), nil
}

// bumpModSeq takes a new modification sequence in mailbox id.
func (t *txn) bumpModSeq(id int64) (uint64, error) {
	var ms int64
	err := t.row(`UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq`, id).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNoMailbox
	}
	return uint64(ms), err
}

func (ss *session) Select(ctx context.Context, name string) (store.Mailbox, error) {
	name, err := store.MailboxName(name)
	if err != nil {
		return nil, err
	}
	id, uv, err := ss.lookup(ctx, ss.s.r, name)
	if err != nil {
		return nil, err
	}
	return &mailbox{ss: ss, id: id, name: name, uidValidity: uv}, nil
}

// ---- POP3 maildrop lock ----

type lock struct {
	s     *Store
	user  int64
	token string
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (ss *session) LockMaildrop(ctx context.Context) (store.Lock, error) {
	s := ss.s
	lease := s.opt.Lease()
	l := &lock{s: s, user: ss.id, token: newToken(), stop: make(chan struct{}), done: make(chan struct{})}
	err := s.write(ctx, func(t *txn) error {
		// Take the lock if nobody holds it or its holder's lease ran out
		// (a server that died holding it). Times are the database's
		// clock, which every server sharing it agrees on.
		var got string
		now := s.d.NowMillis
		err := t.row(`INSERT INTO maildrop_locks (user_id, token, expires) VALUES ($1, $2, `+now+` + $3)
			ON CONFLICT (user_id) DO UPDATE SET token = excluded.token, expires = excluded.expires
			WHERE maildrop_locks.expires < `+now+` RETURNING token`,
			ss.id, l.token, lease.Milliseconds()).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrLocked
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	started := s.Go(func(ctx context.Context) {
		defer close(l.done)
		tick := time.NewTicker(lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				rctx, cancel := context.WithTimeout(ctx, lease/3)
				s.w.ExecContext(rctx, `UPDATE maildrop_locks SET expires = `+s.d.NowMillis+` + $1 WHERE user_id = $2 AND token = $3`,
					lease.Milliseconds(), l.user, l.token)
				cancel()
			}
		}
	})
	if !started {
		close(l.done)
		l.Release(ctx)
		return nil, store.ErrClosed
	}
	return l, nil
}

func (l *lock) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		_, err = l.s.w.ExecContext(ctx, `DELETE FROM maildrop_locks WHERE user_id = $1 AND token = $2`, l.user, l.token)
		if err != nil {
			err = fmt.Errorf("store: release maildrop lock: %w", err)
		}
	})
	return err
}
