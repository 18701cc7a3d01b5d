package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The queue is an append-only log of records in segment files,
// DIR/log/NNNNNNNNNNNNNNNN.seg. A record is
//
//	length  uint32  big-endian, of the payload
//	crc     uint32  CRC-32C of the type byte and the payload
//	type    byte
//	payload length bytes
//
// A record counts only once it is whole and its CRC matches: a write cut
// short by a crash (kill -9, power loss) leaves a torn tail, which
// recovery cuts off. Nothing is acknowledged before the fdatasync that
// covers its record has returned.
const (
	recEnqueue = 1 // payload: uint32 envelope length, envelope JSON, message bytes
	recState   = 2 // payload: stateRecord JSON
	recDelete  = 3 // payload: the message ID
)

const (
	recHeader    = 9
	maxRecord    = 1 << 30
	segExt       = ".seg"
	lockName     = "lock"
	logDirName   = "log"
	ControlName  = "control.sock" // the control socket of a running queue, in its directory
	defaultSegSz = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends one framed record to b.
func appendRecord(b []byte, typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var h [recHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(n))
	h[8] = typ
	crc := crc32.Update(0, crcTable, h[8:9])
	for _, p := range parts {
		crc = crc32.Update(crc, crcTable, p)
	}
	binary.BigEndian.PutUint32(h[4:8], crc)
	b = append(b, h[:]...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// segment is one log file. Readers (a delivery reading a message's bytes)
// hold a reference, so a segment dropped by compaction is closed and
// removed only when the last reader is done.
type segment struct {
	seq  uint64
	path string
	f    *os.File

	mu   sync.Mutex // guards refs and dead
	refs int
	dead bool
}

func segName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segExt) }

func (s *segment) acquire() { s.mu.Lock(); s.refs++; s.mu.Unlock() }

func (s *segment) release() {
	s.mu.Lock()
	s.refs--
	last := s.dead && s.refs == 0
	s.mu.Unlock()
	if last {
		s.f.Close()
		os.Remove(s.path)
	}
}

// drop marks s for removal once no reader holds it.
func (s *segment) drop() {
	s.mu.Lock()
	s.dead = true
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		s.f.Close()
		os.Remove(s.path)
	}
}

// listSegments returns the sequence numbers of dir's segments, oldest
// first. Files that are not segments are left alone.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segExt)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, n)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// syncDir makes dir's entries (a file created, removed or renamed in it)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// createSegment creates an empty segment and makes its directory entry
// durable.
func createSegment(dir string, seq uint64) (*segment, error) {
	p := filepath.Join(dir, segName(seq))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: create segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("queue: sync queue directory: %w", err)
	}
	return &segment{seq: seq, path: p, f: f}, nil
}

// record is one record read back from a segment.
type record struct {
	typ     byte
	off     int64 // of the payload in the segment
	payload []byte
}

// scanSegment reads f's records in order and calls fn for each. It
// returns the offset just past the last whole record: a torn or corrupt
// tail starts there.
func scanSegment(f *os.File, fn func(record) error) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	var off int64
	var h [recHeader]byte
	for off+recHeader <= size {
		if _, err := f.ReadAt(h[:], off); err != nil {
			return off, nil
		}
		n := int64(binary.BigEndian.Uint32(h[0:4]))
		if n > maxRecord || off+recHeader+n > size {
			return off, nil // torn: the write of this record never finished
		}
		payload := make([]byte, n)
		if _, err := f.ReadAt(payload, off+recHeader); err != nil && !errors.Is(err, io.EOF) {
			return off, nil
		}
		crc := crc32.Update(0, crcTable, h[8:9])
		crc = crc32.Update(crc, crcTable, payload)
		if crc != binary.BigEndian.Uint32(h[4:8]) {
			return off, nil
		}
		if err := fn(record{typ: h[8], off: off + recHeader, payload: payload}); err != nil {
			return off, err
		}
		off += recHeader + n
	}
	return off, nil
}

// fdatasync flushes f's data and the metadata needed to read it back
// (its size) to stable storage.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
