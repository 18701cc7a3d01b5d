package metainfo

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLayoutSpans(t *testing.T) {
	info := Info{
		Name:        "d",
		PieceLength: 8,
		Pieces:      make([][20]byte, 5),
		Files: []File{
			{Length: 0, Path: []string{"empty1"}},
			{Length: 10, Path: []string{"a"}},
			{Length: 0, Path: []string{"empty2"}},
			{Length: 5, Path: []string{"sub", "b"}},
			{Length: 20, Path: []string{"c"}},
		},
	}
	l := NewLayout(&info)
	if l.TotalLength != 35 || l.NumPieces != 5 {
		t.Fatalf("layout %+v", l)
	}
	if diff := cmp.Diff([]string{"d", "sub", "b"}, l.Files[3].Path); diff != "" {
		t.Errorf("path: %s", diff)
	}
	if l.Files[4].Offset != 15 {
		t.Errorf("offset of c = %d", l.Files[4].Offset)
	}
	tests := []struct {
		off, n int64
		want   []Span
	}{
		{0, 35, []Span{{1, 0, 10}, {3, 0, 5}, {4, 0, 20}}},
		{9, 3, []Span{{1, 9, 1}, {3, 0, 2}}},
		{10, 5, []Span{{3, 0, 5}}},
		{10, 6, []Span{{3, 0, 5}, {4, 0, 1}}},
		{34, 1, []Span{{4, 19, 1}}},
		{35, 0, nil},
		{0, 0, nil},
	}
	for _, tt := range tests {
		got, err := l.Spans(tt.off, tt.n)
		if err != nil {
			t.Errorf("Spans(%d, %d): %v", tt.off, tt.n, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Spans(%d, %d) (-want +got):\n%s", tt.off, tt.n, diff)
		}
	}
	for _, bad := range [][2]int64{{-1, 1}, {0, -1}, {36, 0}, {30, 6}, {1, 1 << 62}} {
		if _, err := l.Spans(bad[0], bad[1]); err == nil {
			t.Errorf("Spans(%d, %d): no error", bad[0], bad[1])
		}
	}
	got, err := l.PieceSpans(4)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Span{{4, 17, 3}}, got); diff != "" {
		t.Errorf("PieceSpans(4): %s", diff)
	}
	for _, bad := range []int{-1, 5} {
		if _, err := l.PieceSpans(bad); err == nil {
			t.Errorf("PieceSpans(%d): no error", bad)
		}
	}
	// Every piece's spans are contiguous and add up to the piece.
	for i := range l.NumPieces {
		spans, _ := l.PieceSpans(i)
		var sum int64
		for _, s := range spans {
			if l.Files[s.File].Offset+s.Offset != l.PieceOffset(i)+sum {
				t.Errorf("piece %d: span %+v is not contiguous", i, s)
			}
			sum += s.Length
		}
		if sum != l.PieceSize(i) || sum != info.PieceSize(i) {
			t.Errorf("piece %d: spans add up to %d, want %d", i, sum, info.PieceSize(i))
		}
	}
}

func TestLayoutSingleFile(t *testing.T) {
	info := Info{Name: "x.iso", PieceLength: 4, Length: 10, Pieces: make([][20]byte, 3)}
	l := NewLayout(&info)
	want := []FileEntry{{Path: []string{"x.iso"}, Length: 10}}
	if diff := cmp.Diff(want, l.Files); diff != "" {
		t.Errorf("files: %s", diff)
	}
	got, _ := l.PieceSpans(2)
	if diff := cmp.Diff([]Span{{0, 8, 2}}, got); diff != "" {
		t.Errorf("PieceSpans(2): %s", diff)
	}
}
