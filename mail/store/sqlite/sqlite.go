// Package sqlite is the embedded mailbox store: store.Backend on one SQLite
// file (modernc.org/sqlite, pure Go), the default that needs no setup.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so each
// commit fsyncs the write-ahead log before it returns. With NORMAL, WAL
// commits survive a crash of the process (kill -9) but not a power loss or
// an OS crash, which may lose the last commits; mail that a server has
// answered 250 for must survive both as far as the disk's fsync allows,
// so FULL it is (https://www.sqlite.org/pragma.html#pragma_synchronous).
//
// Concurrency: one writer connection (a pool of one, so writers queue in
// Go rather than spin on SQLITE_BUSY), whose transactions begin IMMEDIATE,
// and a pool of read-only connections, which WAL lets read while the
// writer writes. Another process on the same file (`appnet mail user add`
// beside a running server) waits up to the 10-second busy timeout.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"appnet/mail/store"
	"appnet/mail/store/internal/sqlstore"
)

func init() {
	store.Register("sqlite:", func(ctx context.Context, dsn string, opt store.Options) (store.Backend, error) {
		return Open(ctx, strings.TrimPrefix(dsn, "sqlite:"), opt)
	})
}

// schema is the store's tables (sqlstore.Schema) in this database's types.
var schema = sqlstore.Schema(sqlstore.Types{ID: "INTEGER PRIMARY KEY", Int: "INTEGER", Bytes: "BLOB", NoRowID: " WITHOUT ROWID"})

// Open opens (creating if needed) the store in the SQLite file path.
func Open(ctx context.Context, path string, opt store.Options) (store.Backend, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: bad path %q (want sqlite:PATH, PATH without ? or #)", path)
	}
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	u := "file:" + (&url.URL{Path: path}).EscapedPath()
	w, err := sql.Open("sqlite", u+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", u+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	d := sqlstore.Dialect{
		Schema:    schema,
		IsUnique:  isUnique,
		Retryable: retryable,
		NowMillis: `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`,
	}
	s, err := sqlstore.New(ctx, w, r, d, opt, func() error {
		return errors.Join(r.Close(), w.Close())
	})
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return s, nil
}

func code(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := code(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// retryable: another process holds the write lock longer than the busy
// timeout, or a read snapshot went stale under a writer.
func retryable(err error) bool {
	c := code(err) & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}
