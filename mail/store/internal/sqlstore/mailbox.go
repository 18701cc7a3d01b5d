package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"appnet/mail/store"
)

// mailbox is a selected mailbox, held by id so that it follows a rename.
type mailbox struct {
	ss          *session
	id          int64
	name        string
	uidValidity uint32
}

func (m *mailbox) Name() string        { return m.name }
func (m *mailbox) UIDValidity() uint32 { return m.uidValidity }

func (m *mailbox) Status(ctx context.Context) (store.MailboxStatus, error) {
	st := store.MailboxStatus{}
	var name string
	var next, uv, ms int64
	err := m.ss.s.r.QueryRowContext(ctx, `SELECT name, uidnext, uidvalidity, highestmodseq FROM mailboxes WHERE id = $1`, m.id).Scan(&name, &next, &uv, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("%w: %q", store.ErrNoMailbox, m.name)
	}
	if err != nil {
		return st, fmt.Errorf("store: status: %w", err)
	}
	var n, unseen, deleted, size int64
	err = m.ss.s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0),
		COALESCE(SUM(CASE WHEN flags & $2 = 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN flags & $3 <> 0 THEN 1 ELSE 0 END), 0)
		FROM messages WHERE mailbox_id = $1`, m.id, store.BitSeen, store.BitDeleted).Scan(&n, &size, &unseen, &deleted)
	if err != nil {
		return st, fmt.Errorf("store: status: %w", err)
	}
	return store.MailboxStatus{
		Name: name, Messages: uint32(n), Unseen: uint32(unseen), Deleted: uint32(deleted), Size: size,
		UIDNext: store.UID(next), UIDValidity: uint32(uv), HighestModSeq: uint64(ms),
	}, nil
}

// exists checks that the mailbox is still there.
func (m *mailbox) exists(ctx context.Context, db queryRower) error {
	var one int
	err := db.QueryRowContext(ctx, `SELECT 1 FROM mailboxes WHERE id = $1`, m.id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %q", store.ErrNoMailbox, m.name)
	}
	return err
}

const infoColumns = `uid, size, internal_date, date_zone, flags, keywords, modseq`

func scanInfo(rows *sql.Rows, extra ...any) (store.MessageInfo, error) {
	var uid, size, date, ms int64
	var zone, bits int
	var kw string
	if err := rows.Scan(append([]any{&uid, &size, &date, &zone, &bits, &kw, &ms}, extra...)...); err != nil {
		return store.MessageInfo{}, err
	}
	return store.MessageInfo{
		UID: store.UID(uid), Size: size, ModSeq: uint64(ms),
		InternalDate: time.Unix(date, 0).In(time.FixedZone("", zone)),
		Flags:        store.FormatFlags(bits, splitKeywords(kw)),
	}, nil
}

func splitKeywords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func (m *mailbox) infos(ctx context.Context, q string, args ...any) ([]store.MessageInfo, error) {
	rows, err := m.ss.s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	var out []store.MessageInfo
	for rows.Next() {
		mi, err := scanInfo(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, mi)
	}
	return out, rows.Err()
}

func (m *mailbox) List(ctx context.Context) ([]store.MessageInfo, error) {
	if err := m.exists(ctx, m.ss.s.r); err != nil {
		return nil, err
	}
	return m.infos(ctx, `SELECT `+infoColumns+` FROM messages WHERE mailbox_id = $1 ORDER BY uid`, m.id)
}

func (m *mailbox) Changes(ctx context.Context, since uint64) ([]store.MessageInfo, []store.UID, error) {
	if err := m.exists(ctx, m.ss.s.r); err != nil {
		return nil, nil, err
	}
	changed, err := m.infos(ctx, `SELECT `+infoColumns+` FROM messages WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid`, m.id, int64(since))
	if err != nil {
		return nil, nil, err
	}
	rows, err := m.ss.s.r.QueryContext(ctx, `SELECT uid FROM vanished WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid`, m.id, int64(since))
	if err != nil {
		return nil, nil, fmt.Errorf("store: vanished: %w", err)
	}
	defer rows.Close()
	var gone []store.UID
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return nil, nil, err
		}
		gone = append(gone, store.UID(u))
	}
	return changed, gone, rows.Err()
}

func (m *mailbox) Fetch(ctx context.Context, uid store.UID) (*store.Message, error) {
	rows, err := m.ss.s.r.QueryContext(ctx, `SELECT m.uid, m.size, m.internal_date, m.date_zone, m.flags, m.keywords, m.modseq, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = $1 AND m.uid = $2`,
		m.id, int64(uid))
	if err != nil {
		return nil, fmt.Errorf("store: fetch: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: fetch: %w", err)
		}
		if err := m.exists(ctx, m.ss.s.r); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: uid %d in %q", store.ErrNoMessage, uid, m.name)
	}
	var body []byte
	mi, err := scanInfo(rows, &body)
	if err != nil {
		return nil, fmt.Errorf("store: fetch: %w", err)
	}
	return &store.Message{MessageInfo: mi, Body: body}, nil
}

var _ store.PartFetcher = (*mailbox)(nil)

// FetchRange implements store.PartFetcher: substr counts bytes in a BLOB
// (SQLite) and a bytea (PostgreSQL) alike, from 1.
func (m *mailbox) FetchRange(ctx context.Context, uid store.UID, offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("store: range %d+%d", offset, length)
	}
	const most = 1<<31 - 2 // substr takes 32-bit integers in PostgreSQL
	if offset > most {
		offset = most
	}
	length = min(length, most)
	var b []byte
	err := m.ss.s.r.QueryRowContext(ctx, `SELECT substr(b.data, $3, $4) FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = $1 AND m.uid = $2`,
		m.id, int64(uid), offset+1, length).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		if err := m.exists(ctx, m.ss.s.r); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: uid %d in %q", store.ErrNoMessage, uid, m.name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: fetch range: %w", err)
	}
	return b, nil
}

// Headers implements store.PartFetcher.
func (m *mailbox) Headers(ctx context.Context, uids []store.UID) ([]store.Part, error) {
	uids = uidList(uids)
	if len(uids) == 0 {
		return nil, nil
	}
	want := make(map[store.UID]bool, len(uids))
	for _, u := range uids {
		want[u] = true
	}
	rows, err := m.ss.s.r.QueryContext(ctx, `SELECT m.uid, substr(b.data, 1, CAST(b.header_size AS INTEGER)) FROM messages m JOIN blobs b ON b.id = m.blob_id
		WHERE m.mailbox_id = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid`, m.id, int64(uids[0]), int64(uids[len(uids)-1]))
	if err != nil {
		return nil, fmt.Errorf("store: headers: %w", err)
	}
	defer rows.Close()
	var out []store.Part
	for rows.Next() {
		var p store.Part
		var uid int64
		if err := rows.Scan(&uid, &p.Bytes); err != nil {
			return nil, err
		}
		if p.UID = store.UID(uid); want[p.UID] {
			out = append(out, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, m.exists(ctx, m.ss.s.r)
	}
	return out, nil
}

// row is a message's state inside a writing transaction.
type row struct {
	uid  int64
	blob int64
	size int64
	bits int
	kw   string
	ms   int64
	date int64
	zone int
}

// selectRows reads the rows of the given UIDs (all if uids is nil) in UID
// order. It reads the UID range and filters in Go, so that a long UID set
// needs no long parameter list.
func (t *txn) selectRows(id int64, uids []store.UID) ([]row, error) {
	q := `SELECT uid, blob_id, size, flags, keywords, modseq, internal_date, date_zone FROM messages WHERE mailbox_id = $1`
	args := []any{id}
	var want map[store.UID]bool
	if uids != nil {
		uids = uidList(uids)
		if len(uids) == 0 {
			return nil, nil
		}
		q += ` AND uid BETWEEN $2 AND $3`
		args = append(args, int64(uids[0]), int64(uids[len(uids)-1]))
		want = make(map[store.UID]bool, len(uids))
		for _, u := range uids {
			want[u] = true
		}
	}
	rows, err := t.tx.QueryContext(t.ctx, q+` ORDER BY uid`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.uid, &r.blob, &r.size, &r.bits, &r.kw, &r.ms, &r.date, &r.zone); err != nil {
			return nil, err
		}
		if want == nil || want[store.UID(r.uid)] {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

func (m *mailbox) SetFlags(ctx context.Context, uids []store.UID, op store.FlagOp, flags []string, unchangedSince uint64) ([]store.MessageInfo, []store.UID, error) {
	bits, kw, err := store.ParseFlags(flags)
	if err != nil {
		return nil, nil, err
	}
	if op < store.FlagsReplace || op > store.FlagsRemove {
		return nil, nil, fmt.Errorf("store: flag operation %d", op)
	}
	if len(uids) == 0 {
		return nil, nil, nil
	}
	var changed []store.MessageInfo
	var failed []store.UID
	err = m.ss.s.write(ctx, func(t *txn) error {
		changed, failed = nil, nil
		ms, err := t.bumpModSeq(m.id)
		if err != nil {
			return err
		}
		rows, err := t.selectRows(m.id, uids)
		if err != nil {
			return err
		}
		stmt, err := t.tx.PrepareContext(ctx, `UPDATE messages SET flags = $1, keywords = $2, modseq = $3 WHERE mailbox_id = $4 AND uid = $5`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			if unchangedSince > 0 && uint64(r.ms) > unchangedSince {
				failed = append(failed, store.UID(r.uid))
				continue
			}
			nb, nk := applyFlags(r.bits, splitKeywords(r.kw), op, bits, kw)
			nks := strings.Join(nk, " ")
			if nb == r.bits && nks == r.kw {
				continue
			}
			if _, err := stmt.ExecContext(ctx, nb, nks, int64(ms), m.id, r.uid); err != nil {
				return err
			}
			changed = append(changed, store.MessageInfo{
				UID: store.UID(r.uid), Size: r.size, ModSeq: ms,
				InternalDate: time.Unix(r.date, 0).In(time.FixedZone("", r.zone)),
				Flags:        store.FormatFlags(nb, nk),
			})
		}
		if len(changed) == 0 {
			return errRollback // nothing changed: the modification sequence stays
		}
		return t.touched(m.id)
	})
	if err != nil {
		return nil, nil, err
	}
	return changed, failed, nil
}

// applyFlags computes a message's new flags.
func applyFlags(bits int, kw []string, op store.FlagOp, obits int, okw []string) (int, []string) {
	switch op {
	case store.FlagsReplace:
		return obits, okw
	case store.FlagsAdd:
		set := map[string]bool{}
		for _, k := range kw {
			set[k] = true
		}
		for _, k := range okw {
			if !set[k] {
				kw = append(kw, k)
				set[k] = true
			}
		}
		if len(kw) > store.MaxKeywords {
			kw = kw[:store.MaxKeywords]
		}
		_, kw, _ = store.ParseFlags(kw) // sorts
		return bits | obits, kw
	default:
		rm := map[string]bool{}
		for _, k := range okw {
			rm[k] = true
		}
		var out []string
		for _, k := range kw {
			if !rm[k] {
				out = append(out, k)
			}
		}
		return bits &^ obits, out
	}
}

func (m *mailbox) Expunge(ctx context.Context, uids []store.UID) ([]store.UID, error) {
	if uids != nil && len(uids) == 0 {
		return nil, nil
	}
	return m.remove(ctx, uids, true)
}

func (m *mailbox) Delete(ctx context.Context, uids []store.UID) ([]store.UID, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	return m.remove(ctx, uids, false)
}

// remove expunges messages, recording their UIDs as vanished at a new
// modification sequence (RFC 7162 §3.2.10), and frees unshared bytes.
func (m *mailbox) remove(ctx context.Context, uids []store.UID, onlyDeleted bool) ([]store.UID, error) {
	var gone []store.UID
	err := m.ss.s.write(ctx, func(t *txn) error {
		gone = nil
		ms, err := t.bumpModSeq(m.id)
		if err != nil {
			return err
		}
		rows, err := t.selectRows(m.id, uids)
		if err != nil {
			return err
		}
		var blobs []int64
		for _, r := range rows {
			if onlyDeleted && r.bits&store.BitDeleted == 0 {
				continue
			}
			if err := t.expungeRow(m.id, r.uid, ms); err != nil {
				return err
			}
			gone = append(gone, store.UID(r.uid))
			blobs = append(blobs, r.blob)
		}
		if len(gone) == 0 {
			return errRollback
		}
		if err := t.gcBlobs(blobs); err != nil {
			return err
		}
		return t.touched(m.id)
	})
	return gone, err
}

func (m *mailbox) Copy(ctx context.Context, uids []store.UID, dest string) (store.CopyResult, error) {
	return m.copyOrMove(ctx, uids, dest, false)
}

func (m *mailbox) Move(ctx context.Context, uids []store.UID, dest string) (store.CopyResult, error) {
	return m.copyOrMove(ctx, uids, dest, true)
}

func (m *mailbox) copyOrMove(ctx context.Context, uids []store.UID, dest string, move bool) (store.CopyResult, error) {
	dest, err := store.MailboxName(dest)
	if err != nil {
		return store.CopyResult{}, err
	}
	var res store.CopyResult
	err = m.ss.s.write(ctx, func(t *txn) error {
		did, _, err := m.ss.lookup(ctx, t.tx, dest)
		if err != nil {
			return err
		}
		if err := m.exists(ctx, t.tx); err != nil {
			return err
		}
		if did == m.id && move {
			return fmt.Errorf("%w: cannot move to the same mailbox", store.ErrBadName)
		}
		if uids == nil {
			uids = []store.UID{}
		}
		res, err = t.transfer(m.id, did, uids, move)
		return err
	})
	return res, err
}

// transfer copies (or moves) the messages uids (all if nil) of mailbox src
// to dst, sharing their bytes. The two mailboxes' rows are locked in id
// order.
func (t *txn) transfer(src, dst int64, uids []store.UID, move bool) (store.CopyResult, error) {
	var res store.CopyResult
	var srcMS uint64
	if move {
		// Lock both rows in id order (a modification sequence taken in
		// the destination too, which costs nothing), then read.
		a, b := src, dst
		if a > b {
			a, b = b, a
		}
		for _, id := range []int64{a, b} {
			ms, err := t.bumpModSeq(id)
			if err != nil {
				return res, err
			}
			if id == src {
				srcMS = ms
			}
		}
	}
	rows, err := t.selectRows(src, uids)
	if err != nil {
		return res, err
	}
	first, uv, ms, err := t.allocate(dst, len(rows))
	if err != nil {
		return res, err
	}
	res.UIDValidity = uv
	if len(rows) == 0 {
		return res, nil
	}
	ins, err := t.tx.PrepareContext(t.ctx, `INSERT INTO messages (mailbox_id, uid, blob_id, size, flags, keywords, modseq, internal_date, date_zone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`)
	if err != nil {
		return res, err
	}
	defer ins.Close()
	for i, r := range rows {
		nu := int64(first) + int64(i)
		if _, err := ins.ExecContext(t.ctx, dst, nu, r.blob, r.size, r.bits, r.kw, int64(ms), r.date, r.zone); err != nil {
			return res, err
		}
		res.Source = append(res.Source, store.UID(r.uid))
		res.Dest = append(res.Dest, store.UID(nu))
		if move {
			if err := t.expungeRow(src, r.uid, srcMS); err != nil {
				return res, err
			}
		}
	}
	if err := t.touched(dst); err != nil {
		return res, err
	}
	if move {
		return res, t.touched(src)
	}
	return res, nil
}

// expungeRow deletes a message and records its UID as vanished at modseq.
func (t *txn) expungeRow(mailbox, uid int64, modseq uint64) error {
	if _, err := t.exec(`DELETE FROM messages WHERE mailbox_id = $1 AND uid = $2`, mailbox, uid); err != nil {
		return err
	}
	_, err := t.exec(`INSERT INTO vanished (mailbox_id, uid, modseq) VALUES ($1, $2, $3)`, mailbox, uid, int64(modseq))
	return err
}
