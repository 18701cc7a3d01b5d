package chord

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

func seedFrames(f *testing.F) {
	key := Space{6}.FromUint64(14)
	ref := NodeRef{ID: key, Addr: "127.0.0.1:4000"}
	for _, m := range []*Message{
		{T: 1, Op: OpPing, M: 6},
		{T: 2, Op: OpFindSuccessor, M: 6, Key: &key, TTL: 5, Path: []NodeRef{ref}},
		{T: 3, Op: OpPut, M: 6, Key: &key, Values: []Value{{Data: []byte("x"), Ref: true, TTL: 10}}},
		{T: 4, Re: OpStabilize, M: 6, Pred: &ref, Succs: []NodeRef{ref}},
	} {
		b, _ := AppendFrame(nil, m)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 3, 'd', 'e', 'x'})
}

func FuzzDecodeMessage(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadFrame(bytes.NewReader(data), 4096)
		if err != nil {
			return
		}
		if err := m.validate(); err != nil {
			t.Fatalf("decoded an invalid message: %v", err)
		}
		_ = m.Summary()
		b, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFrame(bytes.NewReader(b), 0); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

// FuzzServer sends arbitrary bytes to a live node, then checks it still
// answers a ping.
func FuzzServer(f *testing.F) {
	seedFrames(f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	id := Space{6}.FromUint64(1)
	cfg := testConfig(6, 2)
	cfg.ID, cfg.TrustIDs = &id, true
	p, err := NewPeer(ln, cfg, "fuzz", nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	p.Start()
	f.Cleanup(func() { p.Shutdown(context.Background()) }) //nolint:errcheck
	addr := ln.Addr().String()
	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(time.Second)) //nolint:errcheck
		conn.Write(data)                              //nolint:errcheck
		if len(data) >= 4 && int(binary.BigEndian.Uint32(data)) > len(data)-4 {
			conn.Close() // an incomplete frame: the server waits for the rest
		} else {
			buf := make([]byte, 1<<16)
			conn.Read(buf) //nolint:errcheck
			conn.Close()
		}
		var c Client
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, _, err := c.Ping(ctx, addr); err != nil {
			t.Fatalf("node does not answer after %q: %v", data, err)
		}
	})
}
