package torrent

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"appnet/internal/atomicfile"
)

// Resume data records which pieces were verified, so that a restart after
// a crash fetches only the others. The file is written atomically (a
// temporary file, fsync, rename, fsync of the folder) and only after the
// pieces it lists were synced to disk, so after a kill -9 it never claims a
// piece that is not on disk. Format: the line "appnet-resume 1", the info
// hash in hex on the next line, then the BEP 3 bitfield of verified pieces.

const resumeMagic = "appnet-resume 1\n"

// resumePath returns where the resume data of a torrent lives: a hidden
// folder in the download folder, one file per info hash.
func resumePath(dir string, infoHash [20]byte) string {
	return filepath.Join(dir, ".appnet", hex.EncodeToString(infoHash[:])+".resume")
}

func writeResume(path string, infoHash [20]byte, have *bitset) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("torrent: resume: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(resumeMagic)
	b.WriteString(hex.EncodeToString(infoHash[:]))
	b.WriteByte('\n')
	b.Write(have.bytes())
	if err := atomicfile.Write(path, b.Bytes(), true); err != nil {
		return fmt.Errorf("torrent: resume: %w", err)
	}
	return nil
}

// readResume returns the verified pieces recorded at path, or ok=false if
// there is no usable record (none, another torrent's, damaged).
func readResume(path string, infoHash [20]byte, numPieces int) (have bitset, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return bitset{}, false
	}
	rest, found := bytes.CutPrefix(data, []byte(resumeMagic))
	if !found || len(rest) < 41 || string(rest[:40]) != hex.EncodeToString(infoHash[:]) || rest[40] != '\n' {
		return bitset{}, false
	}
	bf := rest[41:]
	if len(bf) != (numPieces+7)/8 {
		return bitset{}, false
	}
	return bitsetFromBytes(bf, numPieces), true
}
