package metainfo

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"appnet/p2p/bencode"
)

const (
	// DefaultPieceLength is the piece length Create uses when none is given.
	DefaultPieceLength = 256 << 10
	// MaxPieceLength is the largest piece length Load and Create accept.
	// Real torrents use 16 KiB to 16 MiB; a peer holds a piece in memory
	// while it verifies it.
	MaxPieceLength = 1 << 30
	// MaxFileSize is the largest .torrent file Load reads.
	MaxFileSize = 64 << 20
	// HashSize is the size of a SHA-1 piece hash and of an info hash.
	HashSize = sha1.Size
)

// MetaInfo is the content of a .torrent file (BEP 3 §metainfo files).
type MetaInfo struct {
	// Announce is the tracker's announce URL.
	Announce string
	// AnnounceList holds tiers of tracker URLs (BEP 12).
	AnnounceList [][]string
	// Comment and CreatedBy are free text.
	Comment   string
	CreatedBy string
	// CreationDate is when the torrent was made; the zero Time means the
	// file does not say.
	CreationDate time.Time
	// Info is the decoded info dict.
	Info Info
	// InfoBytes is the info dict exactly as read or written. When it is not
	// empty it is authoritative: InfoHash hashes it and Write writes it,
	// so a loaded torrent keeps its identity even if its info dict is not
	// canonical. Set it to nil after changing Info.
	InfoBytes bencode.RawMessage
}

// Info is the info dict of a torrent (BEP 3 §info dictionary). A torrent
// has a single file when Files is nil, and a directory of files otherwise.
type Info struct {
	// Name is the file name of a single-file torrent, or the directory
	// name of a multi-file one.
	Name string
	// PieceLength is the number of bytes in each piece but the last.
	PieceLength int64
	// Pieces holds the SHA-1 hash of each piece.
	Pieces [][HashSize]byte
	// Length is the length of a single-file torrent's file.
	Length int64
	// Files lists the files of a multi-file torrent, in the order in which
	// their bytes are concatenated into pieces.
	Files []File
	// Private asks clients to use only the torrent's trackers (BEP 27).
	Private bool
}

// File is one file of a multi-file torrent.
type File struct {
	Length int64
	// Path is the file's path below the torrent's directory, one element
	// per directory level and the file name last.
	Path []string
}

// FieldError reports a field of a metainfo file that is missing or
// invalid. Field names the field as a path of dict keys and list indexes,
// such as "info.piece length" or "info.files[3].path[1]".
type FieldError struct {
	Field string
	Err   error
}

// Error names the field and the problem.
func (e *FieldError) Error() string {
	return "metainfo: " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// lenient reads the dicts of real torrents, some of which have unsorted
// keys. The info hash is taken over the raw bytes, so it is not affected.
var lenient = bencode.DecodeOptions{AllowUnsortedKeys: true}

// LoadFile reads and checks the .torrent file at path.
func LoadFile(path string) (*MetaInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metainfo: %w", err)
	}
	defer f.Close()
	return Load(f)
}

// Load reads a .torrent file of at most MaxFileSize bytes from r and checks
// it as Parse does.
func Load(r io.Reader) (*MetaInfo, error) {
	return load(r, MaxFileSize)
}

func load(r io.Reader, limit int64) (*MetaInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("metainfo: read: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("metainfo: file larger than %d bytes", limit)
	}
	return Parse(data)
}

// Parse decodes and checks a .torrent file. A problem with a field is a
// *FieldError naming it; input that is not bencoded is a wrapped
// *bencode.SyntaxError.
func Parse(data []byte) (*MetaInfo, error) {
	var top map[string]bencode.RawMessage
	if err := lenient.Unmarshal(data, &top); err != nil {
		if _, ok := errors.AsType[*bencode.UnmarshalTypeError](err); ok {
			return nil, errors.New("metainfo: file is not a bencoded dict")
		}
		return nil, fmt.Errorf("metainfo: %w", err)
	}
	m := &MetaInfo{}
	if err := decodeField(top, "", "announce", &m.Announce); err != nil {
		return nil, err
	}
	if err := decodeField(top, "", "announce-list", &m.AnnounceList); err != nil {
		return nil, err
	}
	if len(m.AnnounceList) == 0 {
		m.AnnounceList = nil // an empty list is as good as none
	}
	if err := decodeField(top, "", "comment", &m.Comment); err != nil {
		return nil, err
	}
	if err := decodeField(top, "", "created by", &m.CreatedBy); err != nil {
		return nil, err
	}
	var date *int64
	if err := decodeField(top, "", "creation date", &date); err != nil {
		return nil, err
	}
	if date != nil {
		m.CreationDate = time.Unix(*date, 0).UTC()
	}
	raw, ok := top["info"]
	if !ok {
		return nil, fieldErr("info", "missing")
	}
	info, err := ParseInfo(raw)
	if err != nil {
		return nil, err
	}
	m.Info = *info
	m.InfoBytes = raw
	return m, nil
}

// infoWire is the info dict as bencoded. Pointers tell a missing key from a
// zero value.
type infoWire struct {
	Name        *string     `bencode:"name"`
	PieceLength *int64      `bencode:"piece length"`
	Pieces      *[]byte     `bencode:"pieces"`
	Length      *int64      `bencode:"length"`
	Files       *[]fileWire `bencode:"files"`
	Private     *int64      `bencode:"private"`
}

type fileWire struct {
	Length *int64    `bencode:"length"`
	Path   *[]string `bencode:"path"`
}

// ParseInfo decodes and checks an info dict, such as one received from
// peers (BEP 9). Errors name fields as "info.…".
func ParseInfo(data []byte) (*Info, error) {
	var w infoWire
	if err := lenient.Unmarshal(data, &w); err != nil {
		if te, ok := errors.AsType[*bencode.UnmarshalTypeError](err); ok {
			return nil, typeFieldError("info", te)
		}
		return nil, fmt.Errorf("metainfo: info: %w", err)
	}
	info := &Info{}
	switch {
	case w.Name == nil:
		return nil, fieldErr("info.name", "missing")
	case w.PieceLength == nil:
		return nil, fieldErr("info.piece length", "missing")
	case w.Pieces == nil:
		return nil, fieldErr("info.pieces", "missing")
	}
	info.Name = *w.Name
	if err := checkPathElement(info.Name); err != nil {
		return nil, &FieldError{Field: "info.name", Err: err}
	}
	info.PieceLength = *w.PieceLength
	if err := checkPieceLength(info.PieceLength); err != nil {
		return nil, &FieldError{Field: "info.piece length", Err: err}
	}
	if n := len(*w.Pieces); n%HashSize != 0 {
		return nil, fieldErr("info.pieces", "length %d is not a multiple of %d", n, HashSize)
	}
	info.Pieces = make([][HashSize]byte, len(*w.Pieces)/HashSize)
	for i := range info.Pieces {
		copy(info.Pieces[i][:], (*w.Pieces)[i*HashSize:])
	}
	if w.Private != nil {
		info.Private = *w.Private == 1 // BEP 27: "private=1"
	}

	var total int64
	lengthField := "info.length"
	switch {
	case w.Length != nil && w.Files != nil:
		return nil, fieldErr("info", "has both length and files")
	case w.Length == nil && w.Files == nil:
		return nil, fieldErr("info", "has neither length nor files")
	case w.Length != nil:
		info.Length = *w.Length
		if info.Length < 0 {
			return nil, fieldErr("info.length", "%d is negative", info.Length)
		}
		total = info.Length
	default:
		lengthField = "info.files"
		files, t, err := checkFiles(*w.Files)
		if err != nil {
			return nil, err
		}
		info.Files, total = files, t
	}
	if total == 0 {
		return nil, fieldErr(lengthField, "the torrent has no data")
	}
	if want := numPieces(total, info.PieceLength); int64(len(info.Pieces)) != want {
		return nil, fieldErr("info.pieces", "%d hashes for %d pieces (total length %d, piece length %d)",
			len(info.Pieces), want, total, info.PieceLength)
	}
	return info, nil
}

func checkPieceLength(n int64) error {
	switch {
	case n <= 0:
		return errors.New("must be positive")
	case n > MaxPieceLength:
		return fmt.Errorf("%d exceeds the maximum %d", n, MaxPieceLength)
	}
	return nil
}

func numPieces(total, pieceLength int64) int64 {
	return (total + pieceLength - 1) / pieceLength
}

// checkFiles checks the files of a multi-file torrent and returns them
// with their total length.
func checkFiles(wire []fileWire) ([]File, int64, error) {
	if len(wire) == 0 {
		return nil, 0, fieldErr("info.files", "empty list")
	}
	files := make([]File, len(wire))
	var total int64
	// A path may not repeat, nor be a directory of another path.
	seen := map[string]int{} // file path -> index
	dirs := map[string]int{} // directory path -> index of a file in it
	for i, fw := range wire {
		name := "info.files[" + strconv.Itoa(i) + "]"
		switch {
		case fw.Length == nil:
			return nil, 0, fieldErr(name+".length", "missing")
		case *fw.Length < 0:
			return nil, 0, fieldErr(name+".length", "%d is negative", *fw.Length)
		case fw.Path == nil:
			return nil, 0, fieldErr(name+".path", "missing")
		case len(*fw.Path) == 0:
			return nil, 0, fieldErr(name+".path", "empty list")
		}
		if *fw.Length > math.MaxInt64-total {
			return nil, 0, fieldErr(name+".length", "total length overflows")
		}
		total += *fw.Length
		path := *fw.Path
		for j, elem := range path {
			if err := checkPathElement(elem); err != nil {
				return nil, 0, &FieldError{Field: name + ".path[" + strconv.Itoa(j) + "]", Err: err}
			}
		}
		key := strings.Join(path, "/")
		if k, ok := seen[key]; ok {
			return nil, 0, fieldErr(name+".path", "%q repeats info.files[%d].path", key, k)
		}
		if k, ok := dirs[key]; ok {
			return nil, 0, fieldErr(name+".path", "%q is a directory of info.files[%d].path", key, k)
		}
		seen[key] = i
		for j := 1; j < len(path); j++ {
			dir := strings.Join(path[:j], "/")
			if k, ok := seen[dir]; ok {
				return nil, 0, fieldErr(name+".path", "%q is inside info.files[%d].path, a file", key, k)
			}
			if _, ok := dirs[dir]; !ok {
				dirs[dir] = i
			}
		}
		files[i] = File{Length: *fw.Length, Path: path}
	}
	return files, total, nil
}

// checkPathElement checks one element of a file path, so that a torrent
// can never name a file outside its own directory.
func checkPathElement(s string) error {
	switch {
	case s == "":
		return errors.New("empty file name")
	case s == "." || s == "..":
		return fmt.Errorf("file name %q is not allowed", s)
	case strings.ContainsRune(s, '/'):
		return fmt.Errorf("file name %q contains a slash", s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("file name %q contains a NUL byte", s)
	}
	return nil
}

// decodeField decodes top[key], if present, into v. prefix is the path of
// the dict that holds key.
func decodeField(top map[string]bencode.RawMessage, prefix, key string, v any) error {
	raw, ok := top[key]
	if !ok {
		return nil
	}
	name := key
	if prefix != "" {
		name = prefix + "." + key
	}
	if err := lenient.Unmarshal(raw, v); err != nil {
		if te, ok := errors.AsType[*bencode.UnmarshalTypeError](err); ok {
			return typeFieldError(name, te)
		}
		return &FieldError{Field: name, Err: err}
	}
	return nil
}

// typeFieldError turns a bencode type error inside the value named field
// into a FieldError naming the innermost field.
func typeFieldError(field string, te *bencode.UnmarshalTypeError) *FieldError {
	switch {
	case te.Field == "":
	case strings.HasPrefix(te.Field, "["):
		field += te.Field
	default:
		field += "." + te.Field
	}
	t := te.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var want string
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = "integer"
		if strings.HasPrefix(te.Value, "integer ") {
			return &FieldError{Field: field, Err: fmt.Errorf("%s is out of range: %w", te.Value, te)}
		}
	case reflect.String:
		want = "string"
	case reflect.Slice:
		want = "list"
		if t.Elem().Kind() == reflect.Uint8 {
			want = "string"
		}
	case reflect.Map, reflect.Struct:
		want = "dict"
	default:
		want = t.String()
	}
	return &FieldError{Field: field, Err: fmt.Errorf("got %s, want %s: %w", te.Value, want, te)}
}

// metaWire is the top-level dict as written.
type metaWire struct {
	Announce     string             `bencode:"announce,omitempty"`
	AnnounceList [][]string         `bencode:"announce-list,omitempty"`
	Comment      string             `bencode:"comment,omitempty"`
	CreatedBy    string             `bencode:"created by,omitempty"`
	CreationDate *int64             `bencode:"creation date"`
	Info         bencode.RawMessage `bencode:"info"`
}

// infoOut is the info dict as written.
type infoOut struct {
	Name        string    `bencode:"name"`
	PieceLength int64     `bencode:"piece length"`
	Pieces      []byte    `bencode:"pieces"`
	Length      *int64    `bencode:"length"`
	Files       []fileOut `bencode:"files,omitempty"`
	Private     bool      `bencode:"private,omitempty"`
}

type fileOut struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

// Bytes returns the canonical bencoding of the info dict.
func (info *Info) Bytes() []byte {
	out := infoOut{
		Name:        info.Name,
		PieceLength: info.PieceLength,
		Pieces:      make([]byte, 0, len(info.Pieces)*HashSize),
		Private:     info.Private,
	}
	for _, p := range info.Pieces {
		out.Pieces = append(out.Pieces, p[:]...)
	}
	if info.Files == nil {
		out.Length = &info.Length
	} else {
		out.Files = make([]fileOut, len(info.Files))
		for i, f := range info.Files {
			out.Files[i] = fileOut(f)
		}
	}
	b, err := bencode.Marshal(out)
	if err != nil {
		panic("metainfo: encoding an info dict cannot fail: " + err.Error())
	}
	return b
}

// InfoHash returns the SHA-1 hash of the info dict, which names the
// torrent (BEP 3 §trackers: info_hash). It hashes InfoBytes, the dict as
// read, when there are any, and the canonical encoding of Info otherwise.
func (m *MetaInfo) InfoHash() [HashSize]byte {
	if len(m.InfoBytes) > 0 {
		return sha1.Sum(m.InfoBytes)
	}
	return sha1.Sum(m.Info.Bytes())
}

// Write writes m as a .torrent file, with the dict keys in canonical order
// and the info dict from InfoBytes, unchanged, when there are any.
func (m *MetaInfo) Write(w io.Writer) error {
	out := metaWire{
		Announce:     m.Announce,
		AnnounceList: m.AnnounceList,
		Comment:      m.Comment,
		CreatedBy:    m.CreatedBy,
		Info:         m.InfoBytes,
	}
	if !m.CreationDate.IsZero() {
		d := m.CreationDate.Unix()
		out.CreationDate = &d
	}
	if len(out.Info) == 0 {
		out.Info = m.Info.Bytes()
	}
	b, err := bencode.Marshal(out)
	if err != nil {
		return fmt.Errorf("metainfo: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("metainfo: write: %w", err)
	}
	return nil
}

// IsDir reports whether the torrent is a directory of files.
func (info *Info) IsDir() bool { return info.Files != nil }

// TotalLength returns the number of bytes in the torrent.
func (info *Info) TotalLength() int64 {
	if info.Files == nil {
		return info.Length
	}
	var n int64
	for _, f := range info.Files {
		n += f.Length
	}
	return n
}

// NumPieces returns the number of pieces.
func (info *Info) NumPieces() int { return len(info.Pieces) }

// PieceHash returns the SHA-1 hash of piece i. It panics if i is out of
// range.
func (info *Info) PieceHash(i int) [HashSize]byte { return info.Pieces[i] }

// PieceSize returns the length of piece i: PieceLength, except for the
// last piece, which holds what remains. It returns 0 if i is out of range.
func (info *Info) PieceSize(i int) int64 {
	if i < 0 || i >= len(info.Pieces) {
		return 0
	}
	if i < len(info.Pieces)-1 {
		return info.PieceLength
	}
	return info.TotalLength() - int64(i)*info.PieceLength
}

// CheckPiece reports whether data is piece i, by its hash.
func (info *Info) CheckPiece(i int, data []byte) bool {
	return i >= 0 && i < len(info.Pieces) && int64(len(data)) == info.PieceSize(i) &&
		sha1.Sum(data) == info.Pieces[i]
}
