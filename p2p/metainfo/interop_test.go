package metainfo

import (
	"context"
	"crypto/sha1"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"appnet/internal/testnet"

	"github.com/google/go-cmp/cmp"
)

// TestLoadTransmissionCreate loads torrents made by transmission-create, an
// independent implementation, and checks that they describe the same
// files and pieces as our own Create, down to the info hash. CI needs the
// Debian package transmission-cli.
func TestLoadTransmissionCreate(t *testing.T) {
	tool := testnet.NeedTool(t, "transmission-create")
	base := t.TempDir()
	single := filepath.Join(base, "single.bin")
	writeFile(t, single, randomBytes(7, 3*65536+999))
	tree := filepath.Join(base, "tree")
	makeTree(t, tree)

	for _, src := range []string{single, tree} {
		out := filepath.Join(t.TempDir(), "out.torrent")
		cmd := exec.Command(tool, "-p", "-s", "64", "-t", "http://tracker.test/announce", "-c", "interop", "-o", out, src)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, b)
		}
		theirs, err := LoadFile(out)
		if err != nil {
			t.Fatalf("LoadFile(%s torrent): %v", filepath.Base(src), err)
		}
		ours, err := Create(context.Background(), src, CreateOptions{PieceLength: 65536, Private: true})
		if err != nil {
			t.Fatal(err)
		}
		// transmission-create leaves out empty files; they hold no bytes
		// of any piece.
		if ours.Info.Files != nil {
			ours.Info.Files = slices.DeleteFunc(ours.Info.Files, func(f File) bool { return f.Length == 0 })
		}
		if diff := cmp.Diff(ours.Info, theirs.Info); diff != "" {
			t.Errorf("%s: info differs (-ours +transmission):\n%s", filepath.Base(src), diff)
		}
		// With the private flag set, transmission-create writes exactly the
		// keys we write, so the torrents are the same torrent.
		if sha1.Sum(ours.Info.Bytes()) != theirs.InfoHash() {
			t.Errorf("%s: info hashes differ: ours %x, transmission %x", filepath.Base(src), sha1.Sum(ours.Info.Bytes()), theirs.InfoHash())
		}
		if theirs.Announce != "http://tracker.test/announce" || theirs.Comment != "interop" {
			t.Errorf("announce %q, comment %q", theirs.Announce, theirs.Comment)
		}
	}
}
