package postgres_test

import (
	"context"
	"testing"

	"appnet/mail/store"
	_ "appnet/mail/store/postgres"
	"appnet/mail/store/postgres/pgtest"
	"appnet/mail/store/storetest"
)

// TestConformance runs the store's suite on a real PostgreSQL server,
// a fresh database for each test; "a second server" is a second Backend
// on the same database, as two machines would have.
func TestConformance(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T, opt store.Options) storetest.Opener {
		dsn := srv.NewDatabase(t)
		return func() (store.Backend, error) { return store.Open(context.Background(), dsn, opt) }
	}, storetest.Features{SharedWatch: true})
}

func BenchmarkDeliver(b *testing.B) {
	dsn := pgtest.Start(b).NewDatabase(b)
	storetest.BenchmarkDeliver(b, func() (store.Backend, error) {
		return store.Open(context.Background(), dsn, store.Options{WeakPasswordHash: true})
	})
}
