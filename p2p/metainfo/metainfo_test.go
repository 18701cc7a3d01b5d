package metainfo

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"strings"
	"testing"
	"time"

	"appnet/p2p/bencode"

	"github.com/google/go-cmp/cmp"
)

// validTorrent returns a small, valid multi-file torrent as a generic
// value: 25 bytes in two files, pieces of 16 bytes.
func validTorrent() map[string]any {
	return map[string]any{
		"announce":      "http://tracker.test/announce",
		"announce-list": []any{[]any{"http://tracker.test/announce"}, []any{"udp://t2.test:6969", "udp://t3.test:6969"}},
		"comment":       "a comment",
		"created by":    "appnet test",
		"creation date": 1700000000,
		"info": map[string]any{
			"name":         "dir",
			"piece length": 16,
			"pieces":       strings.Repeat("0123456789abcdefghij", 2),
			"files": []any{
				map[string]any{"length": 10, "path": []any{"a", "b.txt"}},
				map[string]any{"length": 15, "path": []any{"c.txt"}},
			},
		},
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func info(m map[string]any) map[string]any { return m["info"].(map[string]any) }

func files(m map[string]any) []any { return info(m)["files"].([]any) }

func file(m map[string]any, i int) map[string]any { return files(m)[i].(map[string]any) }

func TestParseValid(t *testing.T) {
	data := encode(t, validTorrent())
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &MetaInfo{
		Announce:     "http://tracker.test/announce",
		AnnounceList: [][]string{{"http://tracker.test/announce"}, {"udp://t2.test:6969", "udp://t3.test:6969"}},
		Comment:      "a comment",
		CreatedBy:    "appnet test",
		CreationDate: time.Unix(1700000000, 0).UTC(),
		Info: Info{
			Name:        "dir",
			PieceLength: 16,
			Pieces:      [][20]byte{[20]byte([]byte("0123456789abcdefghij")), [20]byte([]byte("0123456789abcdefghij"))},
			Files: []File{
				{Length: 10, Path: []string{"a", "b.txt"}},
				{Length: 15, Path: []string{"c.txt"}},
			},
		},
	}
	want.InfoBytes = encode(t, validTorrent()["info"])
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if m.InfoHash() != sha1.Sum(want.InfoBytes) {
		t.Error("InfoHash is not the SHA-1 of the info dict")
	}
	if m.Info.TotalLength() != 25 || m.Info.NumPieces() != 2 || m.Info.PieceSize(0) != 16 || m.Info.PieceSize(1) != 9 || m.Info.PieceSize(2) != 0 {
		t.Errorf("helpers: total %d, pieces %d, sizes %d %d", m.Info.TotalLength(), m.Info.NumPieces(), m.Info.PieceSize(0), m.Info.PieceSize(1))
	}
	if !m.Info.IsDir() {
		t.Error("IsDir = false")
	}
	// Write gives back the same canonical bytes.
	var buf bytes.Buffer
	if err := m.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("Write:\n got %q\nwant %q", buf.Bytes(), data)
	}
	// So does encoding Info from scratch.
	m.InfoBytes = nil
	if m.InfoHash() != sha1.Sum(want.InfoBytes) {
		t.Error("InfoHash of the re-encoded Info differs")
	}
}

func TestParseSingleFile(t *testing.T) {
	tor := map[string]any{
		"info": map[string]any{
			"name": "a.iso", "piece length": 32768, "length": 32769, "private": 1,
			"pieces": strings.Repeat("x", 40),
		},
	}
	m, err := Parse(encode(t, tor))
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.IsDir() || m.Info.Length != 32769 || !m.Info.Private || m.Info.TotalLength() != 32769 || m.Info.PieceSize(1) != 1 {
		t.Errorf("got %+v", m.Info)
	}
	if m.Announce != "" || !m.CreationDate.IsZero() {
		t.Errorf("absent fields: %q %v", m.Announce, m.CreationDate)
	}
}

// TestParseUnsortedKeys checks that a torrent whose dicts are out of order
// loads, and that its info hash is taken over the bytes as they are.
func TestParseUnsortedKeys(t *testing.T) {
	rawInfo := "d6:pieces20:0123456789abcdefghij4:name1:x12:piece lengthi16e6:lengthi5ee"
	data := []byte("d4:info" + rawInfo + "8:announce9:http://t/e")
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.InfoBytes) != rawInfo {
		t.Errorf("InfoBytes = %q", m.InfoBytes)
	}
	if m.InfoHash() != sha1.Sum([]byte(rawInfo)) {
		t.Error("InfoHash is not over the raw bytes")
	}
	if m.InfoHash() == sha1.Sum(m.Info.Bytes()) {
		t.Error("test is void: canonical and raw info dicts hash alike")
	}
	var buf bytes.Buffer
	if err := m.Write(&buf); err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if m2.InfoHash() != m.InfoHash() {
		t.Error("Write changed the info hash")
	}
}

// TestParseErrors checks that every validation error names its field.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		field  string
		msg    string // the whole message, or a part of it
	}{
		{"no info", func(m map[string]any) { delete(m, "info") }, "info", "metainfo: info: missing"},
		{"info not a dict", func(m map[string]any) { m["info"] = []any{} }, "info", "got list, want dict"},
		{"no name", func(m map[string]any) { delete(info(m), "name") }, "info.name", "metainfo: info.name: missing"},
		{"empty name", func(m map[string]any) { info(m)["name"] = "" }, "info.name", "empty file name"},
		{"dotdot name", func(m map[string]any) { info(m)["name"] = ".." }, "info.name", `file name ".." is not allowed`},
		{"dot name", func(m map[string]any) { info(m)["name"] = "." }, "info.name", `file name "." is not allowed`},
		{"slash in name", func(m map[string]any) { info(m)["name"] = "a/b" }, "info.name", "contains a slash"},
		{"NUL in name", func(m map[string]any) { info(m)["name"] = "a\x00" }, "info.name", "contains a NUL byte"},
		{"name not a string", func(m map[string]any) { info(m)["name"] = 5 }, "info.name", "got integer, want string"},
		{"no piece length", func(m map[string]any) { delete(info(m), "piece length") }, "info.piece length", "missing"},
		{"zero piece length", func(m map[string]any) { info(m)["piece length"] = 0 }, "info.piece length", "metainfo: info.piece length: must be positive"},
		{"negative piece length", func(m map[string]any) { info(m)["piece length"] = -16 }, "info.piece length", "must be positive"},
		{"huge piece length", func(m map[string]any) { info(m)["piece length"] = int64(1) << 40 }, "info.piece length", "exceeds the maximum"},
		{"piece length string", func(m map[string]any) { info(m)["piece length"] = "16" }, "info.piece length", "got string, want integer"},
		{"no pieces", func(m map[string]any) { delete(info(m), "pieces") }, "info.pieces", "missing"},
		{"pieces 41", func(m map[string]any) { info(m)["pieces"] = strings.Repeat("x", 41) }, "info.pieces", "metainfo: info.pieces: length 41 is not a multiple of 20"},
		{"too many pieces", func(m map[string]any) { info(m)["pieces"] = strings.Repeat("x", 60) }, "info.pieces", "3 hashes for 2 pieces (total length 25, piece length 16)"},
		{"too few pieces", func(m map[string]any) { info(m)["pieces"] = strings.Repeat("x", 20) }, "info.pieces", "1 hashes for 2 pieces"},
		{"pieces a list", func(m map[string]any) { info(m)["pieces"] = []any{} }, "info.pieces", "got list, want string"},
		{"length and files", func(m map[string]any) { info(m)["length"] = 25 }, "info", "metainfo: info: has both length and files"},
		{"neither", func(m map[string]any) { delete(info(m), "files") }, "info", "metainfo: info: has neither length nor files"},
		{"negative length", func(m map[string]any) {
			delete(info(m), "files")
			info(m)["length"] = -1
		}, "info.length", "-1 is negative"},
		{"zero length", func(m map[string]any) {
			delete(info(m), "files")
			info(m)["length"] = 0
			info(m)["pieces"] = ""
		}, "info.length", "the torrent has no data"},
		{"length overflow", func(m map[string]any) {
			delete(info(m), "files")
			info(m)["length"] = uint64(1) << 63
		}, "info.length", "integer 9223372036854775808 is out of range"},
		{"files empty", func(m map[string]any) { info(m)["files"] = []any{} }, "info.files", "empty list"},
		{"files not a list", func(m map[string]any) { info(m)["files"] = "x" }, "info.files", "got string, want list"},
		{"file not a dict", func(m map[string]any) { files(m)[1] = "x" }, "info.files[1]", "got string, want dict"},
		{"file no length", func(m map[string]any) { delete(file(m, 1), "length") }, "info.files[1].length", "missing"},
		{"file negative length", func(m map[string]any) { file(m, 1)["length"] = -5 }, "info.files[1].length", "-5 is negative"},
		{"file length string", func(m map[string]any) { file(m, 1)["length"] = "5" }, "info.files[1].length", "got string, want integer"},
		{"file no path", func(m map[string]any) { delete(file(m, 1), "path") }, "info.files[1].path", "missing"},
		{"file empty path", func(m map[string]any) { file(m, 1)["path"] = []any{} }, "info.files[1].path", "empty list"},
		{"path empty element", func(m map[string]any) { file(m, 0)["path"] = []any{"a", ""} }, "info.files[0].path[1]", "empty file name"},
		{"path dotdot", func(m map[string]any) { file(m, 0)["path"] = []any{"..", "etc", "passwd"} }, "info.files[0].path[0]", `file name ".." is not allowed`},
		{"path dot", func(m map[string]any) { file(m, 0)["path"] = []any{"a", "."} }, "info.files[0].path[1]", `file name "." is not allowed`},
		{"path slash", func(m map[string]any) { file(m, 1)["path"] = []any{"/etc/passwd"} }, "info.files[1].path[0]", "contains a slash"},
		{"path NUL", func(m map[string]any) { file(m, 1)["path"] = []any{"c\x00.txt"} }, "info.files[1].path[0]", "contains a NUL byte"},
		{"path element integer", func(m map[string]any) { file(m, 1)["path"] = []any{"a", 7} }, "info.files[1].path[1]", "got integer, want string"},
		{"duplicate path", func(m map[string]any) { file(m, 1)["path"] = []any{"a", "b.txt"} }, "info.files[1].path", `"a/b.txt" repeats info.files[0].path`},
		{"file is a directory", func(m map[string]any) { file(m, 1)["path"] = []any{"a"} }, "info.files[1].path", `"a" is a directory of info.files[0].path`},
		{"directory is a file", func(m map[string]any) { file(m, 1)["path"] = []any{"a", "b.txt", "c"} }, "info.files[1].path", `is inside info.files[0].path, a file`},
		{"total overflow", func(m map[string]any) {
			file(m, 0)["length"] = int64(1) << 62
			file(m, 1)["length"] = int64(1) << 62
		}, "info.files[1].length", "total length overflows"},
		{"announce integer", func(m map[string]any) { m["announce"] = 1 }, "announce", "got integer, want string"},
		{"announce-list flat", func(m map[string]any) { m["announce-list"] = []any{"http://a"} }, "announce-list[0]", "got string, want list"},
		{"announce-list integer", func(m map[string]any) { m["announce-list"] = []any{[]any{"http://a", 1}} }, "announce-list[0][1]", "got integer, want string"},
		{"comment integer", func(m map[string]any) { m["comment"] = 1 }, "comment", "got integer, want string"},
		{"created by list", func(m map[string]any) { m["created by"] = []any{} }, "created by", "got list, want string"},
		{"creation date string", func(m map[string]any) { m["creation date"] = "2024" }, "creation date", "got string, want integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validTorrent()
			tt.mutate(m)
			_, err := Parse(encode(t, m))
			fe, ok := errors.AsType[*FieldError](err)
			if !ok {
				t.Fatalf("Parse = %v, want *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (error %q)", fe.Field, tt.field, err)
			}
			if !strings.HasPrefix(err.Error(), "metainfo: "+tt.field+": ") {
				t.Errorf("error %q does not start with the field name", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestParseNotATorrent(t *testing.T) {
	for _, in := range []string{"", "i1e", "le", "d1:ai1e", "not bencode", "d4:infodee1:x"} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), "metainfo: ") {
			t.Errorf("Parse(%q) = %v", in, err)
		}
	}
	if _, err := load(zeros{}, 1000); err == nil || err.Error() != "metainfo: file larger than 1000 bytes" {
		t.Errorf("Load of a huge file = %v", err)
	}
	if _, err := LoadFile("/nonexistent/x.torrent"); err == nil {
		t.Error("LoadFile of a missing file: no error")
	}
}

func TestCheckPiece(t *testing.T) {
	data := []byte("hello, world, this is 25b")
	info := Info{Name: "x", PieceLength: 16, Length: 25}
	info.Pieces = [][20]byte{sha1.Sum(data[:16]), sha1.Sum(data[16:])}
	if !info.CheckPiece(0, data[:16]) || !info.CheckPiece(1, data[16:]) {
		t.Error("CheckPiece rejects good data")
	}
	if info.CheckPiece(1, data[:16]) || info.CheckPiece(2, nil) || info.CheckPiece(-1, nil) || info.CheckPiece(0, data[:15]) {
		t.Error("CheckPiece accepts bad data")
	}
	if info.PieceHash(1) != sha1.Sum(data[16:]) {
		t.Error("PieceHash")
	}
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
