package chord

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"appnet/internal/testnet"
)

// slowPong answers every request with a pong after a pause, so that
// concurrent calls each need a connection of their own.
type slowPong struct{ d time.Duration }

func (h slowPong) Handle(ctx context.Context, req *Message) *Message {
	time.Sleep(h.d)
	self := NodeRef{ID: Space{Bits: 6}.FromUint64(1), Addr: "127.0.0.1:1"}
	return &Message{T: req.T, Re: req.Op, M: req.M, Node: &self}
}

func serveTest(t *testing.T, ln net.Listener, s *Server) {
	t.Helper()
	testnet.Serve(t, s, ln, ErrServerClosed)
}

// fillPool makes k calls at once, leaving k idle connections to addr.
func fillPool(t *testing.T, tr *TCPTransport, addr string, k int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, k)
	for range k {
		wg.Go(func() {
			_, err := tr.Call(context.Background(), addr, &Message{Op: OpPing, M: 6})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tr.mu.Lock()
	n := len(tr.idle[addr])
	tr.mu.Unlock()
	if n != k {
		t.Fatalf("%d idle connections, want %d", n, k)
	}
}

// TestPooledConnsClosedByServer reproduces `chord: ADDR: EOF`: every
// pooled connection to a peer was closed by the peer (its idle timeout,
// or a restart at the same address). The retry after the first stale
// connection took the second stale one from the pool and failed again.
func TestPooledConnsClosedByServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serveTest(t, ln, &Server{Handler: slowPong{20 * time.Millisecond}, IdleTimeout: 30 * time.Millisecond})
	tr := &TCPTransport{MaxIdle: 2, Timeout: time.Second}
	defer tr.Close()
	for round := range 3 {
		fillPool(t, tr, addr, 2)
		time.Sleep(150 * time.Millisecond) // the server closes both connections
		if _, err := tr.Call(context.Background(), addr, &Message{Op: OpPing, M: 6}); err != nil {
			t.Fatalf("round %d: call after the server closed the idle connections: %v", round, err)
		}
	}
}

// TestPooledConnsPeerRestarted: the peer restarts at the same address;
// the next call reaches the new server.
func TestPooledConnsPeerRestarted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	first := &Server{Handler: slowPong{20 * time.Millisecond}}
	done := make(chan error, 1)
	go func() { done <- first.Serve(ln) }()
	tr := &TCPTransport{MaxIdle: 2, Timeout: time.Second}
	defer tr.Close()
	fillPool(t, tr, addr, 2)
	first.Shutdown(context.Background()) //nolint:errcheck
	<-done
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	serveTest(t, ln2, &Server{Handler: slowPong{0}})
	if _, err := tr.Call(context.Background(), addr, &Message{Op: OpPing, M: 6}); err != nil {
		t.Fatalf("call after the peer restarted: %v", err)
	}
}
