package torrent

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"appnet/internal/atomicfile"
)

// Resume data records which pieces were verified, so that a restart after
// a crash fetches only the others, and, as libtorrent's resume data does,
// each file's size and modification time when the record was made: on
// restart, the recorded pieces of a file whose size or time has changed
// since (someone wrote to it, or it was replaced) are hashed again before
// any is trusted.
//
// The record is written atomically (a temporary file, fsync, rename, fsync
// of the folder) and only after the pieces it lists were synced to disk,
// so after a kill -9 it never claims a piece that is not on disk. The
// file times are read after that sync: a time covers every write the sync
// made durable. Writes the engine makes after the record (blocks of
// pieces not in it; a verified piece is never written again) change the
// time, so after a crash the recorded pieces of those files are hashed
// again, at the cost of a check; after a clean Shutdown, which records
// again, they are trusted as they are.
//
// Format: the line "appnet-resume 2", the info hash in hex, the number of
// files, one line "SIZE MTIME" per file (bytes, nanoseconds since 1970),
// then the BEP 3 bitfield of verified pieces.

const resumeMagic = "appnet-resume 2\n"

// FileState is a file's size and modification time.
type FileState struct {
	Size  int64
	MTime time.Time
}

// resumePath returns where the resume data of a torrent lives: a hidden
// folder in the download folder, one file per info hash.
func resumePath(dir string, infoHash [20]byte) string {
	return filepath.Join(dir, ".appnet", hex.EncodeToString(infoHash[:])+".resume")
}

func writeResume(path string, infoHash [20]byte, files []FileState, have *bitset) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("torrent: resume: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(resumeMagic)
	b.WriteString(hex.EncodeToString(infoHash[:]))
	fmt.Fprintf(&b, "\n%d\n", len(files))
	for _, f := range files {
		fmt.Fprintf(&b, "%d %d\n", f.Size, f.MTime.UnixNano())
	}
	b.Write(have.bytes())
	if err := atomicfile.Write(path, b.Bytes(), true); err != nil {
		return fmt.Errorf("torrent: resume: %w", err)
	}
	return nil
}

// readResume returns the verified pieces and the file states recorded at
// path, or ok=false if there is no usable record (none, another
// torrent's, an older format, damaged).
func readResume(path string, infoHash [20]byte, numPieces int) (have bitset, files []FileState, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return bitset{}, nil, false
	}
	rest, found := bytes.CutPrefix(data, []byte(resumeMagic))
	if !found {
		return bitset{}, nil, false
	}
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, true
	}
	if h, ok := line(); !ok || h != hex.EncodeToString(infoHash[:]) {
		return bitset{}, nil, false
	}
	nl, ok := line()
	n, err := strconv.Atoi(nl)
	if !ok || err != nil || n < 0 || n > len(rest) {
		return bitset{}, nil, false
	}
	for range n {
		l, ok := line()
		var size, mtime int64
		if _, err := fmt.Sscanf(l, "%d %d", &size, &mtime); !ok || err != nil {
			return bitset{}, nil, false
		}
		files = append(files, FileState{Size: size, MTime: time.Unix(0, mtime)})
	}
	if len(rest) != (numPieces+7)/8 {
		return bitset{}, nil, false
	}
	return bitsetFromBytes(rest, numPieces), files, true
}
