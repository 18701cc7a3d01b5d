// Package atomicfile replaces a file's contents so that a reader, or a
// restart after kill -9 or a crash, sees the old contents or the new ones,
// never a mix: the data goes to a temporary file in the same folder, which
// is then renamed over the file.
package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path's contents with data. The file keeps its permissions
// (a new one gets 0644). With durable, the data and the rename are synced
// to disk before Write returns, so they survive a power loss too; without
// it (a cache, which can lose an entry), only a process crash.
func Write(path string, data []byte, durable bool) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return WritePerm(path, data, mode, durable)
}

// WritePerm is Write giving the file the permissions mode, which it has
// from the first byte written (a private key is never readable by others,
// not even in its temporary file).
func WritePerm(path string, data []byte, mode os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMark+"*") // 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if durable {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
	return nil
}

const tempMark = ".tmp"

// IsTemp reports whether a file name is one of Write's temporary files,
// which a write cut short by a crash leaves behind: a folder's owner can
// remove them when it starts.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMark)
}
