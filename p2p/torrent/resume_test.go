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
		if have, ok := readResume(resume, mi.InfoHash(), n); ok && have.count() >= n/4 {
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
	have, _ := readResume(resume, mi.InfoHash(), n)
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
