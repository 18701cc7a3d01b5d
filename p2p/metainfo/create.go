package metainfo

import (
	"cmp"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CreateOptions configures Create. Only PieceLength has a default.
type CreateOptions struct {
	// PieceLength is the length of each piece; 0 means
	// DefaultPieceLength (256 KiB). Clients expect a power of two.
	PieceLength int64
	// Announce and AnnounceList name the trackers (BEP 3, BEP 12). When
	// only AnnounceList is given, Announce is set to its first URL, for
	// clients that do not read announce-list.
	Announce     string
	AnnounceList [][]string
	Comment      string
	CreatedBy    string
	// CreationDate is written when it is not the zero Time. It defaults
	// to nothing, so that the same files always give the same .torrent.
	CreationDate time.Time
	// Private sets the private flag (BEP 27).
	Private bool
	// Progress, if not nil, is called after each piece is hashed with the
	// number of pieces done so far and the total. It is called from the
	// goroutine that called Create, never concurrently.
	Progress func(done, total int)
}

// srcFile is a file to be hashed.
type srcFile struct {
	path   []string // path below the root; nil for a single file
	disk   string   // where to read it
	length int64
}

// Create makes a torrent of the file or directory at path. A directory's
// regular files, empty ones included, are taken in byte order of their
// slash-separated paths below the directory; empty directories are left
// out. A symbolic link inside the
// directory is followed if it leads to a regular file inside the
// directory, and is an error otherwise.
//
// Pieces are hashed in parallel by runtime.GOMAXPROCS(0) workers, each
// reading one piece at a time at its offset, so memory use is one piece
// per worker; the result is the same as hashing sequentially. Create
// stops early, with ctx's error, when ctx is done.
func Create(ctx context.Context, path string, opts CreateOptions) (*MetaInfo, error) {
	pieceLength := cmp.Or(opts.PieceLength, DefaultPieceLength)
	if err := checkPieceLength(pieceLength); err != nil {
		return nil, fmt.Errorf("metainfo: create: piece length: %w", err)
	}
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("metainfo: create: %w", err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("metainfo: create: %w", err)
	}
	name := filepath.Base(root)
	if err := checkPathElement(name); err != nil {
		return nil, fmt.Errorf("metainfo: create: %s: %w", path, err)
	}

	var files []srcFile
	switch {
	case st.Mode().IsRegular():
		files = []srcFile{{disk: root, length: st.Size()}}
	case st.IsDir():
		files, err = listDir(ctx, root)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("metainfo: create: %s: no files", path)
		}
	default:
		return nil, fmt.Errorf("metainfo: create: %s: not a regular file or directory", path)
	}

	info := Info{Name: name, PieceLength: pieceLength, Private: opts.Private}
	if st.IsDir() {
		info.Files = make([]File, len(files))
		for i, f := range files {
			info.Files[i] = File{Length: f.length, Path: f.path}
		}
	} else {
		info.Length = files[0].length
	}
	total := info.TotalLength()
	if total == 0 {
		return nil, fmt.Errorf("metainfo: create: %s: no data", path)
	}
	info.Pieces = make([][HashSize]byte, numPieces(total, pieceLength))
	workers := runtime.GOMAXPROCS(0)
	if err := hashPieces(ctx, NewLayout(&info), files, info.Pieces, workers, opts.Progress); err != nil {
		return nil, fmt.Errorf("metainfo: create: %w", err)
	}

	m := &MetaInfo{
		Announce:     opts.Announce,
		AnnounceList: opts.AnnounceList,
		Comment:      opts.Comment,
		CreatedBy:    opts.CreatedBy,
		CreationDate: opts.CreationDate,
		Info:         info,
		InfoBytes:    info.Bytes(),
	}
	if m.Announce == "" && len(m.AnnounceList) > 0 && len(m.AnnounceList[0]) > 0 {
		m.Announce = m.AnnounceList[0][0]
	}
	return m, nil
}

// listDir returns the regular files below root, sorted by path.
func listDir(ctx context.Context, root string) ([]srcFile, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("metainfo: create: %w", err)
	}
	var files []srcFile
	err = filepath.WalkDir(realRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(realRoot, p)
		if err != nil {
			return err
		}
		elems := strings.Split(filepath.ToSlash(rel), "/")
		for _, e := range elems {
			if err := checkPathElement(e); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		disk := p
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return err
			}
			if !inside(realRoot, target) {
				return fmt.Errorf("%s: symbolic link leads outside %s, to %s", p, root, target)
			}
			disk = target
		}
		st, err := os.Stat(disk)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file (%s)", p, st.Mode().Type())
		}
		files = append(files, srcFile{path: elems, disk: disk, length: st.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("metainfo: create: %w", err)
	}
	// Sort as transmission-create and mktorrent do, by the whole path as a
	// byte string ("a-b" before "a/b"), so that the same files give the
	// same info hash whichever tool made the torrent.
	slices.SortFunc(files, func(a, b srcFile) int {
		return strings.Compare(strings.Join(a.path, "/"), strings.Join(b.path, "/"))
	})
	return files, nil
}

// inside reports whether path lies within dir; both must be clean and
// free of symbolic links.
func inside(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// hashPieces fills hashes with the SHA-1 of each piece of the files, using
// up to workers goroutines.
func hashPieces(ctx context.Context, layout *Layout, files []srcFile, hashes [][HashSize]byte, workers int, progress func(int, int)) error {
	n := len(hashes)
	workers = max(1, min(workers, n))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var next atomic.Int64
	done := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			h := pieceHasher{layout: layout, files: files, buf: make([]byte, layout.PieceLength)}
			defer h.close()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				sum, err := h.hash(i)
				if err != nil {
					cancel(err)
					return
				}
				hashes[i] = sum
				select {
				case done <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	count := 0
	for range done {
		count++
		if progress != nil {
			progress(count, n)
		}
	}
	if count < n {
		return context.Cause(ctx)
	}
	return nil
}

// pieceHasher reads and hashes pieces, keeping the last file it read
// open, since consecutive pieces usually lie in the same file.
type pieceHasher struct {
	layout *Layout
	files  []srcFile
	buf    []byte
	cur    *os.File
	curIdx int
}

func (h *pieceHasher) hash(i int) ([HashSize]byte, error) {
	spans, err := h.layout.PieceSpans(i)
	if err != nil {
		return [HashSize]byte{}, err
	}
	size := h.layout.PieceSize(i)
	buf := h.buf[:size]
	pos := int64(0)
	for _, s := range spans {
		if h.cur == nil || h.curIdx != s.File {
			h.close()
			f, err := os.Open(h.files[s.File].disk)
			if err != nil {
				return [HashSize]byte{}, err
			}
			h.cur, h.curIdx = f, s.File
		}
		m, err := h.cur.ReadAt(buf[pos:pos+s.Length], s.Offset)
		if int64(m) < s.Length {
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("file shrank while it was being hashed")
			}
			return [HashSize]byte{}, fmt.Errorf("%s: %w", h.files[s.File].disk, err)
		}
		pos += s.Length
	}
	return sha1.Sum(buf), nil
}

func (h *pieceHasher) close() {
	if h.cur != nil {
		h.cur.Close()
		h.cur = nil
	}
}
