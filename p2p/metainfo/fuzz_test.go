package metainfo

import (
	"bytes"
	"testing"

	"appnet/p2p/bencode"

	"github.com/google/go-cmp/cmp"
)

// FuzzLoad checks that Parse never panics, and that what it accepts is
// self-consistent: it writes and parses back to the same torrent with the
// same info hash, and its layout covers every piece exactly.
func FuzzLoad(f *testing.F) {
	seeds := []map[string]any{validTorrent()}
	single := validTorrent()
	delete(info(single), "files")
	info(single)["length"] = 25
	seeds = append(seeds, single)
	for _, s := range seeds {
		b, err := bencode.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"de",
		"d4:infodee",
		"d4:infod6:pieces20:0123456789abcdefghij4:name1:x12:piece lengthi16e6:lengthi5eee",
		"d4:infod5:filesld6:lengthi1e4:pathl2:..eee4:name1:x12:piece lengthi1e6:pieces20:01234567890123456789ee",
		"d4:infod5:filesld6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:aeee4:name1:x12:piece lengthi2e6:pieces20:01234567890123456789ee",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := m.Write(&buf); err != nil {
			t.Fatalf("Write: %v", err)
		}
		m2, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("Parse(Write(m)): %v\n%q", err, buf.Bytes())
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("Write and Parse changed the torrent:\n%s", diff)
		}
		if m.InfoHash() != m2.InfoHash() {
			t.Fatal("info hash changed")
		}
		l := NewLayout(&m.Info)
		if l.TotalLength != m.Info.TotalLength() || l.NumPieces != m.Info.NumPieces() {
			t.Fatalf("layout %+v disagrees with info", l)
		}
		for i := range min(l.NumPieces, 64) {
			spans, err := l.PieceSpans(i)
			if err != nil {
				t.Fatalf("PieceSpans(%d): %v", i, err)
			}
			var sum int64
			for _, s := range spans {
				sum += s.Length
			}
			if sum != m.Info.PieceSize(i) || sum <= 0 {
				t.Fatalf("piece %d: spans cover %d bytes, want %d", i, sum, m.Info.PieceSize(i))
			}
		}
		_ = m.Magnet().String()
	})
}
