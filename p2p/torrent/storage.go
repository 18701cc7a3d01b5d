package torrent

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"appnet/p2p/metainfo"
)

// Storage holds a torrent's bytes, addressed as one stream (the torrent's
// files concatenated in order). Implementations must allow concurrent
// calls: peers read and write blocks in parallel.
type Storage interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes everything written so far durable.
	Sync() error
	Close() error
}

// FileStorage stores a torrent in its files below a directory, writing each
// block at its file offset: nothing is buffered whole. Files are created
// at their full length (sparse where the file system allows) on open.
type FileStorage struct {
	layout *metainfo.Layout
	files  []*os.File // nil for empty files
	empty  bool       // every file was new or empty when opened
	opened []FileState

	mu     sync.Mutex
	dirty  []bool // written since the last Sync
	closed bool
}

// OpenFiles opens (creating as needed) the files of info below dir. It
// refuses a layout whose paths would leave dir.
func OpenFiles(dir string, info *metainfo.Info) (*FileStorage, error) {
	layout := metainfo.NewLayout(info)
	s := &FileStorage{layout: layout, files: make([]*os.File, len(layout.Files)), dirty: make([]bool, len(layout.Files)), empty: true}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("torrent: %w", err)
	}
	for i, fe := range layout.Files {
		path := filepath.Join(append([]string{root}, fe.Path...)...)
		if rel, err := filepath.Rel(root, path); err != nil || rel == ".." || len(rel) > 2 && rel[:3] == ".."+string(filepath.Separator) {
			s.Close()
			return nil, fmt.Errorf("torrent: file %q would be outside %s", filepath.Join(fe.Path...), dir)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			s.Close()
			return nil, fmt.Errorf("torrent: %w", err)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("torrent: %w", err)
		}
		s.files[i] = f
		st, err := f.Stat()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("torrent: %w", err)
		}
		if st.Size() > 0 {
			s.empty = false
		}
		s.opened = append(s.opened, FileState{Size: st.Size(), MTime: st.ModTime()})
		if st.Size() != fe.Length {
			if err := f.Truncate(fe.Length); err != nil {
				s.Close()
				return nil, fmt.Errorf("torrent: %w", err)
			}
		}
	}
	return s, nil
}

// Opened returns each file's size and modification time as they were
// when OpenFiles found them, before it created or resized any.
func (s *FileStorage) Opened() []FileState { return s.opened }

// FileStates returns each file's size and modification time now.
func (s *FileStorage) FileStates() ([]FileState, error) {
	out := make([]FileState, len(s.files))
	for i, f := range s.files {
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("torrent: %w", err)
		}
		out[i] = FileState{Size: st.Size(), MTime: st.ModTime()}
	}
	return out, nil
}

// Empty reports whether every file was new (or of length 0) when opened:
// nothing of the torrent is on disk, and there is nothing to check.
func (s *FileStorage) Empty() bool { return s.empty }

// ReadAt reads len(p) bytes of the torrent stream at off.
func (s *FileStorage) ReadAt(p []byte, off int64) (int, error) {
	spans, err := s.layout.Spans(off, int64(len(p)))
	if err != nil {
		return 0, fmt.Errorf("torrent: %w", err)
	}
	n := 0
	for _, sp := range spans {
		m, err := s.files[sp.File].ReadAt(p[n:n+int(sp.Length)], sp.Offset)
		n += m
		if err != nil && !(errors.Is(err, io.EOF) && m == int(sp.Length)) {
			return n, fmt.Errorf("torrent: %w", err)
		}
	}
	return n, nil
}

// WriteAt writes p to the torrent stream at off.
func (s *FileStorage) WriteAt(p []byte, off int64) (int, error) {
	spans, err := s.layout.Spans(off, int64(len(p)))
	if err != nil {
		return 0, fmt.Errorf("torrent: %w", err)
	}
	n := 0
	for _, sp := range spans {
		m, err := s.files[sp.File].WriteAt(p[n:n+int(sp.Length)], sp.Offset)
		n += m
		if err != nil {
			return n, fmt.Errorf("torrent: %w", err)
		}
		s.mu.Lock()
		s.dirty[sp.File] = true
		s.mu.Unlock()
	}
	return n, nil
}

// Sync flushes every file written since the last Sync to stable storage.
func (s *FileStorage) Sync() error {
	s.mu.Lock()
	var todo []*os.File
	for i, d := range s.dirty {
		if d {
			todo = append(todo, s.files[i])
			s.dirty[i] = false
		}
	}
	s.mu.Unlock()
	for _, f := range todo {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("torrent: %w", err)
		}
	}
	return nil
}

// Close closes every file.
func (s *FileStorage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, f := range s.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// verifyPiece reads piece i from st and checks its SHA-1 against info.
// buf is reused when large enough.
func verifyPiece(st Storage, layout *metainfo.Layout, info *metainfo.Info, i int, buf []byte) (bool, []byte, error) {
	size := int(layout.PieceSize(i))
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := st.ReadAt(buf, layout.PieceOffset(i)); err != nil {
		return false, buf, err
	}
	return sha1.Sum(buf) == info.PieceHash(i), buf, nil
}
