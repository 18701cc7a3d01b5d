package bencode

import (
	"bytes"
	"fmt"
	"testing"

	zeebo "github.com/zeebo/bencode"
)

// benchTorrent is a multi-file torrent of 200 files and 2000 pieces.
func benchTorrent() torrent {
	tor := torrent{
		Announce:     "http://tracker.test/announce",
		AnnounceList: [][]string{{"http://tracker.test/announce"}, {"udp://tracker2.test:6969"}},
		CreationDate: 1700000000,
		Info: infoDict{
			Name:        "dataset",
			PieceLength: 1 << 18,
			Pieces:      bytes.Repeat([]byte("0123456789abcdefghij"), 2000),
		},
	}
	for i := range 200 {
		tor.Info.Files = append(tor.Info.Files, fileEntry{
			Length: int64(i) * 1000,
			Path:   []string{"dir", fmt.Sprintf("file%03d.bin", i)},
		})
	}
	return tor
}

// BenchmarkUnmarshal decodes a torrent into a struct, with zeebo/bencode
// alongside as the anchor.
func BenchmarkUnmarshal(b *testing.B) {
	data, err := Marshal(benchTorrent())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var t torrent
			if err := Unmarshal(data, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("zeebo", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var t torrent
			if err := zeebo.DecodeBytes(data, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMarshal encodes the same torrent.
func BenchmarkMarshal(b *testing.B) {
	tor := benchTorrent()
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(tor); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("zeebo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := zeebo.EncodeBytes(tor); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValid scans without decoding.
func BenchmarkValid(b *testing.B) {
	data, err := Marshal(benchTorrent())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if !Valid(data) {
			b.Fatal("invalid")
		}
	}
}
