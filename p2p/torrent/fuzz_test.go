package torrent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOnPiece hands the engine a piece message of any index, offset and
// length from a peer that was asked for the blocks of one piece (or for
// nothing): a block reaches a piece only when it answers one of those
// requests exactly, and anything else counts against its sender.
func FuzzOnPiece(f *testing.F) {
	f.Add(uint32(0), uint32(0), uint16(BlockSize), true)
	f.Add(uint32(0), uint32(BlockSize), uint16(BlockSize), false)
	f.Add(uint32(0), uint32(1), uint16(BlockSize), true)
	f.Add(uint32(1), uint32(0), uint16(BlockSize), true)
	f.Add(uint32(0), uint32(3*BlockSize), uint16(100), true)
	f.Add(uint32(9), uint32(0), uint16(1), true)
	_, mi := makeTorrent(f, 256<<10, 64<<10) // 4 pieces of 4 blocks
	f.Fuzz(func(t *testing.T, index, begin uint32, length uint16, ask bool) {
		index %= uint32(mi.Info.NumPieces()) + 2
		tr, err := New(mi, Config{Dir: t.TempDir(), DisableTrackers: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Shutdown(t.Context()) //nolint:errcheck
		p := testPeer("127.0.0.3:1")
		p.asked, p.late, p.peerChoking = make(map[block]time.Time), make(map[block]time.Time), true
		all := fullSet(mi.Info.NumPieces())
		tr.mu.Lock()
		blocks := tr.picker.pickFor(p, &all, true, 4, func(block) bool { return false }, time.Now(), func(int) time.Time { return time.Now() })
		if ask {
			for _, b := range blocks {
				p.asked[b] = time.Now()
			}
		}
		tr.mu.Unlock()
		b := block{int(index), int(begin / BlockSize)}
		_, asked := p.asked[b]
		exact := asked && begin%BlockSize == 0 && int(length) == BlockSize
		err = tr.onPiece(p, index, begin, make([]byte, length))
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for piece, pp := range tr.picker.inProgress {
			for i, got := range pp.got {
				if got && !(exact && (block{piece, i}) == b) {
					t.Fatalf("block %d of piece %d taken from piece message (%d, %d, %d bytes), asked %v", i, piece, index, begin, length, ask)
				}
			}
		}
		if pp := tr.picker.inProgress[b.piece]; exact && (err != nil || pp == nil || !pp.got[b.index]) {
			t.Fatalf("the requested block (%d, %d) was not taken: %v", index, begin, err)
		}
		if !exact && p.unrequested != int(length) {
			t.Fatalf("an unrequested block of %d bytes counted as %d", length, p.unrequested)
		}
	})
}

// FuzzReadResume reads resume data of any content: it is used only when
// it names the torrent and holds a bitfield of the right length.
func FuzzReadResume(f *testing.F) {
	var ih [20]byte
	ih[3] = 9
	dir := f.TempDir()
	have := newBitset(12)
	have.set(11)
	good := filepath.Join(dir, "good")
	if err := writeResume(good, ih, []FileState{{Size: 3, MTime: time.Unix(5, 6)}}, &have); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(good)
	f.Add(seed)
	f.Add([]byte(resumeMagic + "00\n1\n"))
	f.Add([]byte(resumeMagic + "0009000000000000000000000000000000000000\n99999999\n"))
	f.Add([]byte("appnet-resume 1\n0009000000000000000000000000000000000000\n\x00\x10"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "r")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, files, ok := readResume(path, ih, 12)
		if !ok {
			return
		}
		if got.n != 12 || len(files) > len(data) {
			t.Fatalf("read %d pieces, %d files from %d bytes", got.n, len(files), len(data))
		}
	})
}
