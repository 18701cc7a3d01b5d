package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"appnet/p2p/metainfo"
	"appnet/p2p/torrent"
)

// torrent get, run again on a download whose file was changed on disk
// since (a piece zeroed, the file's time moved on), checks that file
// again and fetches the piece, so it never exits 0 with a wrong file
// (before, it trusted its resume data and did).
func TestTorrentGetRechecksChangedFile(t *testing.T) {
	src := t.TempDir()
	data := make([]byte, 512<<10)
	rand.Read(data)
	file := filepath.Join(src, "payload.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Create(context.Background(), file, metainfo.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tfile := filepath.Join(t.TempDir(), "x.torrent")
	f, err := os.Create(tfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := mi.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	seeder, err := torrent.New(mi, torrent.Config{Dir: src, DisableTrackers: true, SeedRatio: torrent.SeedForever, MaxConnsPerAddr: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seeder.Start(context.Background())
	served := make(chan error, 1)
	go func() { served <- seeder.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		seeder.Shutdown(ctx) //nolint:errcheck
		<-served
	}()

	dir := t.TempDir()
	get := []string{"torrent", "get", tfile, "-o", dir, "--no-tracker", "--peer", ln.Addr().String(), "--seed-ratio", "0"}
	if code, _, stderr := run(t, get...); code != 0 {
		t.Fatalf("first get: exit %d\n%s", code, stderr)
	}
	got := filepath.Join(dir, "payload.bin")
	before, err := os.Stat(got)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.OpenFile(got, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt(make([]byte, 64<<10), 3*64<<10) //nolint:errcheck
	g.Close()
	later := before.ModTime().Add(2 * time.Second)
	os.Chtimes(got, later, later) //nolint:errcheck
	code, _, stderr := run(t, get...)
	if code != 0 {
		t.Fatalf("second get: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Fatal("torrent get exited 0 with a file that differs from the torrent's")
	}
}
