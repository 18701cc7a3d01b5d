package torrent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"appnet/p2p/metainfo"
)

// childEnv makes the test binary a leecher process (see resumeChild), so a
// test can kill -9 it mid-download.
const childEnv = "APPNET_TORRENT_RESUME_CHILD"

// resumeChild downloads the torrent in $TORRENT into $DIR from the peer
// $PEER, slowly, saving resume data often, until it is killed.
func resumeChild() int {
	mi, err := metainfo.LoadFile(os.Getenv("TORRENT"))
	if err != nil {
		return 3
	}
	t, err := New(mi, Config{Dir: os.Getenv("DIR"), DisableTrackers: true, DownRate: 256 << 10, ResumeEvery: 100 * time.Millisecond, Tick: 50 * time.Millisecond})
	if err != nil {
		return 4
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 5
	}
	t.Start(context.Background())
	go t.Serve(ln) //nolint:errcheck
	t.AddPeer(os.Getenv("PEER"))
	select {} // until killed
}

// kill -9 in the middle of a download, then restart: the pieces verified
// before the crash are kept, and only the others are fetched again.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	srcDir, mi := makeTorrent(t, 2<<20, 32<<10) // 64 pieces, about 8 s at 256 KiB/s
	file := filepath.Join(t.TempDir(), "x.torrent")
	f, _ := os.Create(file)
	mi.Write(f)
	f.Close()
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever})

	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"=1", "TORRENT="+file, "DIR="+dir, "PEER="+seeder.addr)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	n := mi.Info.NumPieces()
	resume := resumePath(dir, mi.InfoHash())
	deadline := time.Now().Add(30 * time.Second)
	var saved int
	for {
		if have, _, ok := readResume(resume, mi.InfoHash(), n); ok && have.count() >= n/4 {
			saved = have.count()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child saved no resume data in 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	child.Process.Kill() // SIGKILL: no chance to save anything more
	child.Wait()
	have, _, _ := readResume(resume, mi.InfoHash(), n)
	kept := have.count()
	if kept < saved || kept == n {
		t.Fatalf("resume data after the kill: %d pieces (saw %d before; %d in all)", kept, saved, n)
	}

	restarted := startNode(t, mi, Config{Dir: dir, DisableTrackers: true})
	if got := restarted.t.Status().Have; got != kept {
		t.Fatalf("after restart: have %d pieces, want the %d recorded", got, kept)
	}
	restarted.t.AddPeer(seeder.addr)
	restarted.waitComplete(t, 30*time.Second, "the restarted leecher")
	sameFile(t, filepath.Join(srcDir, "payload.bin"), filepath.Join(dir, "payload.bin"))
	// Only the pieces not verified before the crash were fetched again.
	want := mi.Info.TotalLength() - int64(kept)*mi.Info.PieceLength
	if got := restarted.t.Status().Downloaded; got != want {
		t.Errorf("downloaded %d bytes after restart, want %d (%d of %d pieces were kept)", got, want, kept, n)
	}
	t.Logf("killed with %d of %d pieces recorded; fetched %d bytes after restart", kept, n, want)
}

// A new download's files are empty: New checks nothing, and reports no
// piece. Files with data in them are checked, piece by piece.
func TestNewFilesAreNotHashed(t *testing.T) {
	src, mi := makeTorrent(t, 1<<20, 64<<10)
	dir := t.TempDir()
	st, err := OpenFiles(dir, &mi.Info)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Empty() {
		t.Error("new files: Empty() = false")
	}
	// Two pieces' worth of the real data, written where they belong.
	data, err := os.ReadFile(filepath.Join(src, mi.Info.Name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteAt(data[64<<10:192<<10], 64<<10); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var logs syncWriter
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, err := New(mi, Config{Dir: dir, DisableTrackers: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background()) //nolint:errcheck
	if got := tr.Status().Have; got != 2 {
		t.Errorf("files with two pieces written: Have = %d, want 2", got)
	}
	if !strings.Contains(logs.String(), "checked existing data") {
		t.Errorf("files with data were not checked:\n%s", logs.String())
	}
	logs.mu.Lock()
	logs.b.Reset()
	logs.mu.Unlock()
	empty, err := New(mi, Config{Dir: t.TempDir(), DisableTrackers: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Shutdown(context.Background()) //nolint:errcheck
	if got := empty.Status().Have; got != 0 {
		t.Errorf("new files: Have = %d", got)
	}
	if out := logs.String(); strings.Contains(out, "checked existing data") || !strings.Contains(out, "nothing to check") {
		t.Errorf("new files were hashed:\n%s", out)
	}
}

// A piece recorded as complete and then zeroed on disk (which changes the
// file's time, as any write does) is checked again on restart without
// Verify, found missing and fetched again; before, resume data was
// trusted and the download "completed" with the wrong bytes. A file left
// as the engine recorded it at Shutdown, blocks written to the last
// included, is trusted without a check.
func TestResumeRechecksChangedFile(t *testing.T) {
	srcDir, mi := makeTorrent(t, 1<<20, 64<<10) // 16 pieces
	n := mi.Info.NumPieces()
	seeder := startNode(t, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever})
	dir := t.TempDir()
	first := startNode(t, mi, Config{Dir: dir, DisableTrackers: true})
	first.t.AddPeer(seeder.addr)
	first.waitComplete(t, 30*time.Second, "the first download")
	first.stop(t)

	var logs syncWriter
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	again, err := New(mi, Config{Dir: dir, DisableTrackers: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Status().Have; got != n || strings.Contains(logs.String(), "checked") {
		t.Fatalf("an untouched download: have %d of %d, log:\n%s", got, n, logs.String())
	}
	again.Shutdown(context.Background()) //nolint:errcheck

	// Zero piece 5 on disk; its time moves on, as a real write's would
	// (set explicitly: two writes in one clock tick can share a time).
	path := filepath.Join(dir, "payload.bin")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 64<<10), 5*64<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	later := before.ModTime().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	restarted := startNode(t, mi, Config{Dir: dir, DisableTrackers: true})
	if st := restarted.t.Status(); st.Have != n-1 || st.Complete {
		t.Fatalf("after the file changed: have %d of %d (complete %v), want the zeroed piece missing", st.Have, n, st.Complete)
	}
	restarted.t.AddPeer(seeder.addr)
	restarted.waitComplete(t, 30*time.Second, "the restarted download")
	sameFile(t, filepath.Join(srcDir, "payload.bin"), path)
	if got := restarted.t.Status().Downloaded; got != 64<<10 {
		t.Errorf("fetched %d bytes after the restart, want the one piece (%d)", got, 64<<10)
	}
}

// Resume data names each file's size and time; a record in the old format
// (without them) is not used.
func TestResumeRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r")
	var ih [20]byte
	ih[0] = 7
	have := newBitset(10)
	have.set(3)
	files := []FileState{{Size: 5, MTime: time.Unix(0, 1234567890123)}, {Size: 0, MTime: time.Unix(99, 0)}}
	if err := writeResume(path, ih, files, &have); err != nil {
		t.Fatal(err)
	}
	got, gotFiles, ok := readResume(path, ih, 10)
	if !ok || !got.get(3) || got.count() != 1 || len(gotFiles) != 2 || gotFiles[0].Size != 5 || !gotFiles[0].MTime.Equal(files[0].MTime) || !gotFiles[1].MTime.Equal(files[1].MTime) {
		t.Fatalf("read back %v %v %v", got, gotFiles, ok)
	}
	old := "appnet-resume 1\n" + strings.Repeat("00", 20) + "\n\x10\x00"
	os.WriteFile(path, []byte(old), 0o644)
	if _, _, ok := readResume(path, [20]byte{}, 10); ok {
		t.Error("a record without file times was used")
	}
}
