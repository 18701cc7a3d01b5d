package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"appnet/mail/store"
	_ "appnet/mail/store/sqlite"
	"appnet/mail/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opt store.Options) storetest.Opener {
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "mail.db")
		return func() (store.Backend, error) { return store.Open(context.Background(), dsn, opt) }
	}, storetest.Features{})
}

func BenchmarkDeliver(b *testing.B) {
	dsn := "sqlite:" + filepath.Join(b.TempDir(), "mail.db")
	storetest.BenchmarkDeliver(b, func() (store.Backend, error) {
		return store.Open(context.Background(), dsn, store.Options{WeakPasswordHash: true})
	})
}
