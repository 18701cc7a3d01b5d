package torrent

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDownload measures one leecher fetching a 64 MiB file in 1 MiB
// pieces from one seeder over loopback, with no rate limits: the engine's
// own cost per byte (picking, accepting and writing blocks, hashing
// pieces). Each iteration is a fresh leecher; MB/s is reported.
//
//	go test -run '^$' -bench Download -benchtime 5x ./p2p/torrent/
func BenchmarkDownload(b *testing.B) {
	const size = 64 << 20
	srcDir, mi := makeTorrent(b, size, 1<<20)
	seeder := startNode(b, mi, Config{Dir: srcDir, DisableTrackers: true, SeedRatio: SeedForever})
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		leecher := startNode(b, mi, Config{Dir: b.TempDir(), DisableTrackers: true})
		leecher.t.AddPeer(seeder.addr)
		leecher.waitComplete(b, time.Minute, "the leecher")
		b.StopTimer()
		leecher.t.Shutdown(context.Background()) //nolint:errcheck // its files go with the test
		b.StartTimer()
	}
}

// BenchmarkBlockSums is what smart ban adds for a failed piece of 1 MiB
// (and again for its good copy): the SHA-256 of each of its 64 blocks.
// Pieces that pass at the first try cost nothing.
func BenchmarkBlockSums(b *testing.B) {
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for range b.N {
		blockSums(data)
	}
}
