package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Optimal is the mode of the course's constructive schedule, which attains
// the P2P bound (Kurose & Ross, the two cases after the bound's proof).
// With N peers of upload u each:
//
//   - server slow (u_s <= N·u/(N-1)): the file is cut into N parts of F/N;
//     the server sends part i to peer i at u_s/N, and peer i relays it to
//     the N-1 others as it arrives, at u/(N-1) each. Everyone has the file
//     after about F/u_s.
//   - server fast: the server sends part i to peer i at u/(N-1), which peer
//     i relays at full upload rate, and with what is left of u_s it sends a
//     common part to every peer directly. Everyone has the file after about
//     N·F/(u_s + N·u).
//
// Each stream runs over its own TCP connection, paced by its own token
// bucket at the schedule's rate; the hosts' links are token buckets too
// with --shaper userspace, and tc with --shaper netns.
const Optimal = "p2p-optimal"

// plan is the schedule for one run: byte ranges and stream rates.
type plan struct {
	relayLen     int64   // bytes of each relay part (the last one may differ)
	relayRate    float64 // server -> peer i, bytes/s; peer i forwards as it arrives
	commonLen    int64   // bytes of the part the server sends to every peer
	commonRate   float64 // server -> each peer, bytes/s
	relayStart   []int64 // where part i starts
	commonStarts int64   // where the common part starts
	serverSlow   bool    // the first case: only relay parts
}

func makePlan(p Params, n int) plan {
	F, us, u := float64(p.FileSize), float64(p.ServerUp), float64(p.PeerUp)
	pl := plan{relayStart: make([]int64, n)}
	if n == 1 {
		pl.commonLen = p.FileSize
		pl.commonRate = us
		return pl
	}
	N := float64(n)
	if us <= N*u/(N-1) {
		// Server slow: N parts of F/N, each sent at us/N and forwarded
		// as it arrives (at us/N to each other peer, within u/(N-1)).
		pl.serverSlow = true
		pl.relayRate = us / N
		var off int64
		for i := range n {
			size := int64(F) / int64(n)
			if i == n-1 {
				size = p.FileSize - off
			}
			pl.relayStart[i] = off
			off += size
			if i == 0 {
				pl.relayLen = size
			}
		}
		pl.commonStarts = p.FileSize
		return pl
	}
	// Server fast: T = N·F/(us + N·u); relay parts of T·u/(N-1) at u/(N-1),
	// the rest common at (us - N·u/(N-1))/N to each peer.
	T := N * F / (us + N*u)
	pl.relayRate = u / (N - 1)
	relay := int64(T * u / (N - 1))
	var off int64
	for i := range n {
		pl.relayStart[i] = off
		off += relay
	}
	pl.relayLen = relay
	pl.commonStarts = off
	pl.commonLen = p.FileSize - off
	pl.commonRate = (us - N*u/(N-1)) / N
	return pl
}

// runOptimal runs the constructive schedule once.
func runOptimal(ctx context.Context, p Params, nw network, n int, data []byte, sum [32]byte) (Result, error) {
	pl := makePlan(p, n)
	ctx, cancel := context.WithTimeout(ctx, 20*p.Bound(P2P, n)+30*time.Second)
	defer cancel()
	// Each stream is paced at the rate the schedule gives it, with either
	// shaper: the rates are the schedule, not the links' limits. (Under tc,
	// a server sending unpaced shares its link equally per peer, between
	// that peer's relay part and its common part, and the common part,
	// which needs most of it, comes late: 1.11 against 1.01 at N = 32.)
	bucket := func(rateBps float64) *tokenBucket {
		if rateBps <= 0 {
			return nil
		}
		return newBucket(int64(rateBps))
	}

	// Every peer listens; a stream opens with its offset and length.
	type peerState struct {
		ln    net.Listener
		buf   []byte
		mu    sync.Mutex
		got   int64
		done  chan struct{}
		once  sync.Once
		down  *tokenBucket
		up    *tokenBucket
		relay []net.Conn // to the others, for part i
	}
	peers := make([]*peerState, n)
	for i := range n {
		ln, err := nw.listen(i + 1)
		if err != nil {
			return Result{}, err
		}
		defer ln.Close()
		peers[i] = &peerState{ln: ln, buf: make([]byte, p.FileSize), done: make(chan struct{})}
		if !nw.shaped() {
			peers[i].down = newBucket(p.PeerDown)
			peers[i].up = newBucket(p.PeerUp)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n*n+4)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		cancel()
	}
	// receive reads streams arriving at peer i: a header (offset, length),
	// then the bytes, which it stores; a relay part is also forwarded.
	receive := func(i int, c net.Conn, forward bool) {
		defer c.Close()
		ps := peers[i]
		var hdr [16]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			fail(fmt.Errorf("peer %d: %w", i, err))
			return
		}
		off, length := int64(binary.BigEndian.Uint64(hdr[:8])), int64(binary.BigEndian.Uint64(hdr[8:]))
		if off < 0 || length < 0 || off+length > p.FileSize {
			fail(fmt.Errorf("peer %d: bad stream header", i))
			return
		}
		var fwd []net.Conn
		if forward {
			for _, rc := range ps.relay {
				if _, err := rc.Write(hdr[:]); err != nil {
					fail(err)
					return
				}
				fwd = append(fwd, rc)
			}
		}
		chunk := make([]byte, 16<<10)
		for pos := off; pos < off+length; {
			k := min(int64(len(chunk)), off+length-pos)
			m, err := io.ReadFull(c, chunk[:k])
			if m > 0 {
				if ps.down != nil {
					if werr := waitN(ctx, ps.down, m); werr != nil {
						fail(werr)
						return
					}
				}
				copy(ps.buf[pos:], chunk[:m])
				for _, rc := range fwd {
					if ps.up != nil {
						if werr := waitN(ctx, ps.up, m); werr != nil {
							fail(werr)
							return
						}
					}
					if _, werr := rc.Write(chunk[:m]); werr != nil {
						fail(werr)
						return
					}
				}
				pos += int64(m)
				ps.mu.Lock()
				ps.got += int64(m)
				full := ps.got == p.FileSize
				ps.mu.Unlock()
				if full {
					ps.once.Do(func() { close(ps.done) })
				}
			}
			if err != nil {
				fail(fmt.Errorf("peer %d: %w", i, err))
				return
			}
		}
		for _, rc := range fwd {
			rc.Close()
		}
	}
	// Peer i accepts: first the server's relay stream (forwarded), then
	// the server's common stream and the others' forwards (kept).
	streamsIn := make([]int, n)
	for i := range n {
		streamsIn[i] = 1 + (n - 1)
		if pl.commonLen > 0 {
			streamsIn[i]++
		}
		if n == 1 {
			streamsIn[i] = 1
		}
	}
	// Relay connections between peers, opened before the clock starts.
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			c, err := nw.dial(i+1)(ctx, "tcp", peers[j].ln.Addr().String())
			if err != nil {
				return Result{}, err
			}
			defer c.Close()
			if _, err := c.Write([]byte{'K'}); err != nil {
				return Result{}, err
			}
			peers[i].relay = append(peers[i].relay, c)
		}
	}
	// Accept after the relays are dialled (they wait in the listen
	// backlog), so every peer's relay list is complete before it is read.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range streamsIn[i] {
				c, err := peers[i].ln.Accept()
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				// The first byte says whether to forward.
				var kind [1]byte
				if _, err := io.ReadFull(c, kind[:]); err != nil {
					c.Close()
					fail(err)
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					receive(i, c, kind[0] == 'R')
				}()
			}
		}()
	}
	start := time.Now()
	send := func(to int, kind byte, off, length int64, bps float64) {
		defer wg.Done()
		c, err := nw.dial(0)(ctx, "tcp", peers[to].ln.Addr().String())
		if err != nil {
			fail(err)
			return
		}
		defer c.Close()
		var hdr [17]byte
		hdr[0] = kind
		binary.BigEndian.PutUint64(hdr[1:9], uint64(off))
		binary.BigEndian.PutUint64(hdr[9:], uint64(length))
		if _, err := c.Write(hdr[:]); err != nil {
			fail(err)
			return
		}
		l := bucket(bps)
		for pos := off; pos < off+length; {
			k := min(int64(16<<10), off+length-pos)
			if l != nil {
				if err := waitN(ctx, l, int(k)); err != nil {
					fail(err)
					return
				}
			}
			if _, err := c.Write(data[pos : pos+k]); err != nil {
				fail(err)
				return
			}
			pos += k
		}
	}
	for i := range n {
		if n > 1 {
			length := pl.relayLen
			if i == n-1 && pl.serverSlow {
				length = p.FileSize - pl.relayStart[i]
			}
			wg.Add(1)
			go send(i, 'R', pl.relayStart[i], length, pl.relayRate)
		}
		if pl.commonLen > 0 {
			wg.Add(1)
			go send(i, 'K', pl.commonStarts, pl.commonLen, pl.commonRate)
		}
	}
	times := make([]time.Duration, n)
	for i := range n {
		select {
		case <-peers[i].done:
			times[i] = time.Since(start)
		case <-ctx.Done():
			select {
			case err := <-errs:
				return Result{}, err
			default:
				return Result{}, fmt.Errorf("peer %d did not complete", i)
			}
		}
	}
	cancel()
	for _, ps := range peers {
		ps.ln.Close()
	}
	wg.Wait()
	for i, ps := range peers {
		if sha256.Sum256(ps.buf) != sum {
			return Result{}, fmt.Errorf("peer %d's copy differs from the file", i)
		}
	}
	r := finish(times)
	r.ServerSent = float64(n*int(pl.relayLen)+n*int(pl.commonLen)) / float64(p.FileSize)
	if pl.serverSlow {
		r.ServerSent = 1
	}
	return r, nil
}
