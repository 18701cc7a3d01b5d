package sqlstore

import "strings"

// Types are the column types a database spells its own way.
type Types struct {
	ID      string // an auto-assigned 64-bit primary key
	Int     string // a 64-bit integer
	Bytes   string // bytes
	NoRowID string // appended to tables with a composite primary key
}

// Schema returns the store's tables in a database's types: one schema for
// both backends, so their semantics cannot drift apart.
//
//	meta            key -> value: 'uidvalidity', the counter UIDVALIDITYs come from
//	users           name (lower case), password (argon2id PHC string)
//	mailboxes       per user: name, uidvalidity, uidnext, highestmodseq, subscribed, special_use
//	blobs           a message's exact bytes, once, keyed by SHA-256, and its header's length
//	messages        (mailbox, uid) -> blob, size, system flag bits, keywords, modseq, internal date + zone
//	vanished        (mailbox, uid) -> modseq of its expunge (QRESYNC)
//	maildrop_locks  user -> POP3 lock holder's token and lease expiry (Unix ms)
func Schema(ty Types) []string {
	r := strings.NewReplacer("ID_PK", ty.ID, "INT8", ty.Int, "BYTES", ty.Bytes, "NOROWID", ty.NoRowID)
	var out []string
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INT8 NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS users (
			id ID_PK,
			name TEXT NOT NULL UNIQUE,
			password TEXT NOT NULL,
			created INT8 NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS mailboxes (
			id ID_PK,
			user_id INT8 NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			name TEXT NOT NULL,
			uidvalidity INT8 NOT NULL,
			uidnext INT8 NOT NULL,
			highestmodseq INT8 NOT NULL,
			subscribed INTEGER NOT NULL DEFAULT 0,
			special_use TEXT NOT NULL DEFAULT '',
			UNIQUE (user_id, name))`,
		`CREATE TABLE IF NOT EXISTS blobs (
			id ID_PK,
			sha256 BYTES NOT NULL UNIQUE,
			size INT8 NOT NULL,
			header_size INT8 NOT NULL,
			data BYTES NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS messages (
			mailbox_id INT8 NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
			uid INT8 NOT NULL,
			blob_id INT8 NOT NULL REFERENCES blobs(id),
			size INT8 NOT NULL,
			flags INTEGER NOT NULL,
			keywords TEXT NOT NULL DEFAULT '',
			modseq INT8 NOT NULL,
			internal_date INT8 NOT NULL,
			date_zone INTEGER NOT NULL,
			PRIMARY KEY (mailbox_id, uid))NOROWID`,
		`CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq)`,
		`CREATE INDEX IF NOT EXISTS messages_blob ON messages (blob_id)`,
		`CREATE TABLE IF NOT EXISTS vanished (
			mailbox_id INT8 NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
			uid INT8 NOT NULL,
			modseq INT8 NOT NULL,
			PRIMARY KEY (mailbox_id, uid))NOROWID`,
		`CREATE TABLE IF NOT EXISTS maildrop_locks (
			user_id INT8 PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
			token TEXT NOT NULL,
			expires INT8 NOT NULL)`,
	} {
		out = append(out, r.Replace(q))
	}
	return out
}
