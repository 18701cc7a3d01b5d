package metainfo

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sequentialHashes hashes data piece by piece, the obvious way.
func sequentialHashes(data []byte, pieceLength int) [][20]byte {
	var hashes [][20]byte
	for off := 0; off < len(data); off += pieceLength {
		hashes = append(hashes, sha1.Sum(data[off:min(off+pieceLength, len(data))]))
	}
	return hashes
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// roundTrip writes m and loads it back.
func roundTrip(t *testing.T, m *MetaInfo) *MetaInfo {
	t.Helper()
	var buf bytes.Buffer
	if err := m.Write(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.torrent")
	writeFile(t, path, buf.Bytes())
	m2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, m2); diff != "" {
		t.Errorf("Write and LoadFile changed the torrent (-before +after):\n%s", diff)
	}
	return m2
}

func TestCreateSingleFile(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(1, 5*65536+123)
	path := filepath.Join(dir, "data.bin")
	writeFile(t, path, data)

	m, err := Create(context.Background(), path, CreateOptions{
		PieceLength:  65536,
		Announce:     "http://tracker.test/announce",
		Comment:      "test",
		CreatedBy:    "appnet",
		CreationDate: time.Unix(1700000000, 0).UTC(),
		Private:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: "data.bin", PieceLength: 65536, Length: int64(len(data)), Private: true, Pieces: sequentialHashes(data, 65536)}
	if diff := cmp.Diff(want, m.Info); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	if m.InfoHash() != sha1.Sum(want.Bytes()) {
		t.Error("InfoHash differs from the hash of the canonical info dict")
	}
	m2 := roundTrip(t, m)
	if m2.InfoHash() != m.InfoHash() || m2.Comment != "test" || !m2.Info.Private {
		t.Errorf("loaded back: %+v", m2)
	}
	for i := range m2.Info.NumPieces() {
		off := int64(i) * m2.Info.PieceLength
		if !m2.Info.CheckPiece(i, data[off:off+m2.Info.PieceSize(i)]) {
			t.Errorf("piece %d does not check", i)
		}
	}
}

// makeTree writes a directory of files, some empty, some smaller than a
// piece and some spanning several, and returns their contents in
// torrent order.
func makeTree(t *testing.T, root string) (paths [][]string, concat []byte) {
	t.Helper()
	files := []struct {
		path string
		size int
	}{
		{"z-last.bin", 70000},
		{"a/empty", 0},
		{"a/b/deep.bin", 100},
		{"a/b/zz.bin", 16384*3 + 7},
		{"a-b.bin", 5000}, // sorts before a/..., as '-' < '/'
		{"m.txt", 1},
		{"a/c.bin", 16384},
	}
	for i, f := range files {
		writeFile(t, filepath.Join(root, filepath.FromSlash(f.path)), randomBytes(uint64(i+10), f.size))
	}
	if err := os.MkdirAll(filepath.Join(root, "empty-dir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	order := []int{4, 2, 3, 6, 1, 5, 0}
	for _, i := range order {
		paths = append(paths, strings.Split(files[i].path, "/"))
		concat = append(concat, randomBytes(uint64(i+10), files[i].size)...)
	}
	return paths, concat
}

func TestCreateDirectory(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	paths, data := makeTree(t, root)
	m, err := Create(context.Background(), root, CreateOptions{PieceLength: 16384})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Name != "tree" || !m.Info.IsDir() {
		t.Errorf("name %q, dir %v", m.Info.Name, m.Info.IsDir())
	}
	var gotPaths [][]string
	for _, f := range m.Info.Files {
		gotPaths = append(gotPaths, f.Path)
	}
	if diff := cmp.Diff(paths, gotPaths); diff != "" {
		t.Errorf("file order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sequentialHashes(data, 16384), m.Info.Pieces); diff != "" {
		t.Errorf("pieces differ from sequential hashing:\n%s", diff)
	}
	if m.Info.TotalLength() != int64(len(data)) {
		t.Errorf("TotalLength = %d, want %d", m.Info.TotalLength(), len(data))
	}
	roundTrip(t, m)

	// The layout finds each piece's bytes in the files.
	layout := NewLayout(&m.Info)
	for i := range m.Info.NumPieces() {
		spans, err := layout.PieceSpans(i)
		if err != nil {
			t.Fatal(err)
		}
		var piece []byte
		for _, s := range spans {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(root), filepath.Join(layout.Files[s.File].Path...)))
			if err != nil {
				t.Fatal(err)
			}
			piece = append(piece, b[s.Offset:s.Offset+s.Length]...)
		}
		if !m.Info.CheckPiece(i, piece) {
			t.Errorf("piece %d read through the layout does not check", i)
		}
	}
}

// TestHashParallelEqualsSequential hashes the same tree with 1 and with
// several workers.
func TestHashParallelEqualsSequential(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	_, data := makeTree(t, root)
	files, err := listDir(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, pieceLength := range []int64{1000, 16384, 65536, 1 << 20} {
		info := Info{Name: "tree", PieceLength: pieceLength}
		for _, f := range files {
			info.Files = append(info.Files, File{Length: f.length, Path: f.path})
		}
		n := int(numPieces(int64(len(data)), pieceLength))
		info.Pieces = make([][20]byte, n)
		layout := NewLayout(&info)
		want := sequentialHashes(data, int(pieceLength))
		for _, workers := range []int{1, 3, 8} {
			got := make([][20]byte, n)
			if err := hashPieces(context.Background(), layout, files, got, workers, nil); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("piece length %d, %d workers: differs from sequential:\n%s", pieceLength, workers, diff)
			}
		}
	}
}

func TestCreateReproducible(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	makeTree(t, root)
	opts := CreateOptions{AnnounceList: [][]string{{"http://a.test/announce", "http://b.test/announce"}}}
	var outs [2]bytes.Buffer
	for i := range outs {
		m, err := Create(context.Background(), root, opts)
		if err != nil {
			t.Fatal(err)
		}
		if m.Announce != "http://a.test/announce" {
			t.Errorf("Announce = %q, want the first of AnnounceList", m.Announce)
		}
		if err := m.Write(&outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) {
		t.Error("two Creates of the same tree differ")
	}
	if bytes.Contains(outs[0].Bytes(), []byte("creation date")) {
		t.Error("creation date written without being asked for")
	}
}

func TestCreateProgressAndCancel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	writeFile(t, path, randomBytes(2, 100*1024))
	var calls []int
	_, err := Create(context.Background(), path, CreateOptions{PieceLength: 16384, Progress: func(done, total int) {
		if total != 7 {
			t.Errorf("total = %d, want 7", total)
		}
		calls = append(calls, done)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5, 6, 7}, calls); diff != "" {
		t.Errorf("progress calls (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	_, err = Create(ctx, path, CreateOptions{PieceLength: 16384, Progress: func(done, total int) {
		if done == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Create after cancel = %v, want context.Canceled", err)
	}
}

func TestCreateSymlinks(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	writeFile(t, filepath.Join(root, "real.txt"), []byte("real data"))
	writeFile(t, filepath.Join(base, "outside.txt"), []byte("secret"))
	if err := os.Symlink("real.txt", filepath.Join(root, "link.txt")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	m, err := Create(context.Background(), root, CreateOptions{PieceLength: 16384})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Info.Files) != 2 || m.Info.Files[0].Path[0] != "link.txt" || m.Info.Files[0].Length != 9 {
		t.Errorf("files = %+v", m.Info.Files)
	}

	bad := []struct{ target, want string }{
		{"../outside.txt", "leads outside"},
		{filepath.Join(base, "outside.txt"), "leads outside"},
		{".", "not a regular file"},
		{"missing", "no such file"},
	}
	for _, b := range bad {
		link := filepath.Join(root, "bad")
		os.Remove(link)
		if err := os.Symlink(b.target, link); err != nil {
			t.Fatal(err)
		}
		_, err := Create(context.Background(), root, CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("symlink to %q: %v, want an error containing %q", b.target, err, b.want)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty"), nil)
	if err := os.MkdirAll(filepath.Join(dir, "emptydir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "f"), []byte("x"))
	tests := []struct {
		path string
		opts CreateOptions
		want string
	}{
		{filepath.Join(dir, "missing"), CreateOptions{}, "no such file"},
		{filepath.Join(dir, "empty"), CreateOptions{}, "no data"},
		{filepath.Join(dir, "emptydir"), CreateOptions{}, "no files"},
		{filepath.Join(dir, "f"), CreateOptions{PieceLength: -1}, "piece length: must be positive"},
		{filepath.Join(dir, "f"), CreateOptions{PieceLength: 1 << 31}, "piece length: 2147483648 exceeds"},
		{"/", CreateOptions{}, "contains a slash"},
		{"/dev/null", CreateOptions{}, "not a regular file or directory"},
	}
	for _, tt := range tests {
		_, err := Create(context.Background(), tt.path, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "metainfo: create: ") {
			t.Errorf("Create(%q, %+v) = %v, want an error containing %q", tt.path, tt.opts, err, tt.want)
		}
	}
}
