package metainfo

import (
	"fmt"
	"sort"
)

// FileEntry is one file of a torrent as stored on disk.
type FileEntry struct {
	// Path is the file's path relative to the download directory: the
	// torrent's name for a single-file torrent, and the name followed by
	// the file's path for a multi-file one.
	Path []string
	// Length is the file's length.
	Length int64
	// Offset is where the file's first byte lies in the torrent's byte
	// stream, the concatenation of all files that pieces are cut from.
	Offset int64
}

// Span is a run of bytes of the torrent's byte stream that lies in one
// file.
type Span struct {
	File   int   // index into Layout.Files
	Offset int64 // offset within that file
	Length int64
}

// Layout maps byte ranges and pieces of a torrent to the files that hold
// them (BEP 3 §info dictionary: the files are concatenated in order and
// cut into pieces). Build it once per torrent with NewLayout.
type Layout struct {
	Files       []FileEntry
	PieceLength int64
	TotalLength int64
	NumPieces   int
}

// NewLayout returns the layout of info's files.
func NewLayout(info *Info) *Layout {
	l := &Layout{PieceLength: info.PieceLength, NumPieces: len(info.Pieces)}
	if info.Files == nil {
		l.Files = []FileEntry{{Path: []string{info.Name}, Length: info.Length}}
		l.TotalLength = info.Length
		return l
	}
	l.Files = make([]FileEntry, len(info.Files))
	for i, f := range info.Files {
		path := make([]string, 0, 1+len(f.Path))
		path = append(append(path, info.Name), f.Path...)
		l.Files[i] = FileEntry{Path: path, Length: f.Length, Offset: l.TotalLength}
		l.TotalLength += f.Length
	}
	return l
}

// Spans returns the file spans that hold the length bytes at offset off of
// the torrent's byte stream, in order. Files of length zero never appear.
func (l *Layout) Spans(off, length int64) ([]Span, error) {
	if off < 0 || length < 0 || off > l.TotalLength || length > l.TotalLength-off {
		return nil, fmt.Errorf("metainfo: byte range at %d of length %d is outside the torrent's %d bytes", off, length, l.TotalLength)
	}
	// The first file that ends after off.
	i := sort.Search(len(l.Files), func(i int) bool {
		return l.Files[i].Offset+l.Files[i].Length > off
	})
	var spans []Span
	for ; length > 0 && i < len(l.Files); i++ {
		f := &l.Files[i]
		if f.Length == 0 {
			continue
		}
		in := off - f.Offset
		n := min(length, f.Length-in)
		spans = append(spans, Span{File: i, Offset: in, Length: n})
		off += n
		length -= n
	}
	return spans, nil
}

// PieceOffset returns the offset of piece i in the torrent's byte stream.
func (l *Layout) PieceOffset(i int) int64 { return int64(i) * l.PieceLength }

// PieceSize returns the length of piece i, or 0 if i is out of range.
func (l *Layout) PieceSize(i int) int64 {
	if i < 0 || i >= l.NumPieces {
		return 0
	}
	return min(l.PieceLength, l.TotalLength-l.PieceOffset(i))
}

// PieceSpans returns the file spans that hold piece i.
func (l *Layout) PieceSpans(i int) ([]Span, error) {
	if i < 0 || i >= l.NumPieces {
		return nil, fmt.Errorf("metainfo: piece %d out of range [0, %d)", i, l.NumPieces)
	}
	return l.Spans(l.PieceOffset(i), l.PieceSize(i))
}
