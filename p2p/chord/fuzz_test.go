package chord

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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

// rpcOps are the requests of the protocol, for FuzzRPC.
var rpcOps = []string{OpPing, OpFindSuccessor, OpFindNext, OpStabilize, OpNotify, OpGet, OpPut, OpStore, OpLeave, OpInfo}

// FuzzRPC sends every RPC of the protocol, with fuzzed keys, senders
// (none, the attacker's own address with a derived or a chosen ID, the
// victim's neighbours, the victim itself), values (unsigned, signed by
// the attacker, the honest writer's tampered with) and flags, from another
// host (127.0.0.9) to a live node of a verified ring. Whatever it sends,
// the node keeps its neighbours, answers, keeps the honest writer's value
// as the only one under its key, stays within its byte bound with its
// accounting exact, and holds no value whose signature fails.
func FuzzRPC(f *testing.F) {
	for i := range rpcOps {
		for from := range 6 {
			f.Add(uint8(i), []byte("k"), uint8(from), uint16(40000+from), []byte("EVIL"), uint8(from*7))
		}
	}
	r := newRing(f, testConfig(160, 2), 3, nil)
	r.converge(false, 10*time.Second)
	victim := r.peers[0].Node
	ctx := context.Background()
	good := &Client{Signer: NewSigner()}
	f.Cleanup(func() { good.Close() })
	goodKey := Space{160}.HashString("good")
	if _, err := good.Put(ctx, victim.Self().Addr, Key{Name: "good"}, []Value{{Data: []byte("GOOD")}}, false); err != nil {
		f.Fatal(err)
	}
	goodVals, _, err := good.Get(ctx, victim.Self().Addr, Key{Name: "good"})
	if err != nil {
		f.Fatal(err)
	}
	st := victim.State()
	pred, succ := *st.Pred, st.Succs[0]
	evil := NewSigner()
	f.Fuzz(func(t *testing.T, op uint8, keySeed []byte, fromMode uint8, port uint16, data []byte, flags uint8) {
		if len(data) > MaxValueLen {
			data = data[:MaxValueLen]
		}
		key := Space{160}.Hash(keySeed)
		if flags&1 != 0 {
			key = goodKey
		}
		req := &Message{T: 1, Op: rpcOps[int(op)%len(rpcOps)], M: 160, Key: &key, Add: flags&16 != 0,
			TTL: int(flags % 8), Budget: int64(flags) * 10}
		own := fmt.Sprintf("%s:%d", attackerIP, port)
		switch fromMode % 6 {
		case 1:
			req.From = &NodeRef{ID: Space{160}.NodeIDFor(own), Addr: own}
		case 2:
			req.From = &pred
		case 3:
			req.From = &succ
		case 4:
			req.From = &NodeRef{ID: Space{160}.Hash(data), Addr: own}
		case 5:
			s := victim.Self()
			req.From = &s
		}
		v := Value{Data: data, Ref: flags&32 != 0, TTL: int64(flags&64) * 100}
		switch {
		case flags&2 != 0:
			Sign(evil, key, NextSeq(), &v)
		case flags&4 != 0:
			v = goodVals[0]
			v.Data = data
		case flags&128 != 0:
			v = goodVals[0] // a replay of the honest value, wherever the key
		}
		req.Values = []Value{v}
		req.Items = []Item{{Key: key, Values: []Value{v}, Excl: flags&8 != 0}}
		fake := NodeRef{ID: Space{160}.NodeIDFor(own), Addr: own}
		req.Pred, req.Succs, req.Preds, req.Exclude = &fake, []NodeRef{fake}, []NodeRef{fake}, []NodeRef{pred}
		conn := dialFrom(t, attackerIP, victim.Self().Addr)
		conn.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		if frame, err := AppendFrame(nil, req); err == nil {
			conn.Write(frame)                   //nolint:errcheck
			ReadFrame(bufio.NewReader(conn), 0) //nolint:errcheck
		}
		conn.Close()

		var c Client
		defer c.Close()
		if _, _, err := c.Ping(ctx, victim.Self().Addr); err != nil {
			t.Fatalf("node does not answer after %s: %v", req.Op, err)
		}
		now := victim.State()
		if now.Pred == nil || *now.Pred != pred || now.Succs[0] != succ {
			t.Fatalf("after %s from %v: neighbours pred %v succ %v, want %v %v", req.Op, req.From, now.Pred, now.Succs[0], pred, succ)
		}
		vs, _, err := c.Get(ctx, victim.Self().Addr, Key{Name: "good"})
		if err != nil || len(vs) != 1 || string(vs[0].Data) != "GOOD" {
			t.Fatalf("after %s: the honest value reads %v, %v", req.Op, vs, err)
		}
		victim.mu.Lock()
		defer victim.mu.Unlock()
		total, _ := victim.st.recount()
		if total != victim.st.bytes || total > victim.cfg.MaxBytes {
			t.Fatalf("accounting %d, recounted %d, bound %d", victim.st.bytes, total, victim.cfg.MaxBytes)
		}
		for k, it := range victim.st.items {
			for _, v := range it.values(victim.clk.Now()) {
				if err := Verify(k, v); err != nil {
					t.Fatalf("the node holds a value under %x that fails: %v", k, err)
				}
			}
		}
	})
}
