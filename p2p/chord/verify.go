package chord

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Identity and authenticity checks (issue 15, "hostile peers").
//
// A node's ID is SHA-1("IP:port") reduced to m bits, as Stoica et al. §4.2
// (and the paper's §6.1 footnote on virtual nodes) derive it, so that a
// node cannot choose where on the circle it sits: NodeIDFor. Virtual nodes
// are nodes at further ports of the same IP. Config.TrustIDs turns the ID
// check off for the course's small rings that place nodes at chosen IDs;
// the source, callback and neighbour checks still apply there.

type ctxKey int

const (
	sourceKey ctxKey = iota // netip.Addr: the IP a request came from
	callerKey               // string: the address of the node making a call
)

// WithSource returns ctx carrying the IP address a request came from. A
// Server sets it from the connection; an in-process transport sets it from
// CallerOf. Handle checks claimed addresses against it.
func WithSource(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, sourceKey, ip.Unmap())
}

// SourceOf returns the IP address set by WithSource.
func SourceOf(ctx context.Context) (netip.Addr, bool) {
	ip, ok := ctx.Value(sourceKey).(netip.Addr)
	return ip, ok && ip.IsValid()
}

// CallerOf returns the address of the node that makes a call, which a
// Node puts in the context it hands its Transport: the in-process
// transport of a simulator turns it into the request's source, as a
// socket's source address is on TCP.
func CallerOf(ctx context.Context) (string, bool) {
	a, ok := ctx.Value(callerKey).(string)
	return a, ok
}

// SourceForCaller returns ctx with the source set from CallerOf when the
// caller's address is an IP:port, for in-process transports.
func SourceForCaller(ctx context.Context) context.Context {
	if a, ok := CallerOf(ctx); ok {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			return WithSource(ctx, ap.Addr())
		}
	}
	return ctx
}

// NodeIDFor returns the ID a node at addr ("IP:port") must have when IDs
// are verified: SHA-1(addr) modulo 2^m.
func (s Space) NodeIDFor(addr string) ID { return s.HashString(addr) }

// sourceMatches reports whether a claimed node address may come from the
// request's source: the IPs are equal, or the source is unknown.
func sourceMatches(ctx context.Context, addr string) bool {
	src, ok := SourceOf(ctx)
	if !ok {
		return true
	}
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().Unmap() == src
}

// plausible reports whether r may be a node of this ring: its ID is
// derived from its address, unless IDs are trusted.
func (n *Node) plausible(r NodeRef) bool {
	if r.IsZero() {
		return false
	}
	if n.cfg.TrustIDs {
		return true
	}
	if _, err := netip.ParseAddrPort(r.Addr); err != nil {
		return false
	}
	return r.ID == n.sp.NodeIDFor(r.Addr)
}

// filterPlausible returns the plausible entries of list.
func (n *Node) filterPlausible(list []NodeRef) []NodeRef {
	out := make([]NodeRef, 0, len(list))
	for _, r := range list {
		if n.plausible(r) {
			out = append(out, r)
		}
	}
	return out
}

// callback asks the node at r.Addr who it is: it must answer as r (the
// same ID and address). With leaving, it must also say it is leaving.
func (n *Node) callback(ctx context.Context, r NodeRef, leaving bool) error {
	resp, err := n.call(ctx, r, &Message{Op: OpPing})
	if err != nil {
		return fmt.Errorf("callback to %s: %w", r.Addr, err)
	}
	if resp.Node == nil || *resp.Node != r {
		return fmt.Errorf("callback to %s: it does not answer as N%s", r.Addr, n.sp.Format(r.ID))
	}
	if leaving && !resp.Leaving {
		return fmt.Errorf("callback to %s: it is not leaving", r.Addr)
	}
	return nil
}

// ---- signed values ----

// signContext separates these signatures from any other use of a key.
const signContext = "appnet chord value v1\x00"

// SignedBytes is what a value's signature covers: a context string, the
// key (20 bytes), the sequence number (8 bytes, big-endian), the kind (1
// byte: 1 for an indirect reference) and SHA-256 of the data (so the
// signed message is small whatever the value's size). The key binds a
// value to its place (it cannot be replayed under another key), the
// sequence number to its time (an older value cannot replace a newer one).
func SignedBytes(key ID, seq int64, ref bool, data []byte) []byte {
	sum := sha256.Sum256(data)
	b := make([]byte, 0, len(signContext)+IDBytes+9+len(sum))
	b = append(b, signContext...)
	b = append(b, key[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	if ref {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, sum[:]...)
}

// Sign sets v's PK, Seq and Sig: v signed by priv under key.
func Sign(priv ed25519.PrivateKey, key ID, seq int64, v *Value) {
	v.PK = []byte(priv.Public().(ed25519.PublicKey))
	v.Seq = seq
	v.Sig = ed25519.Sign(priv, SignedBytes(key, seq, v.Ref, v.Data))
}

// ErrSignature is wrapped by a value whose signature does not check.
var ErrSignature = errors.New("chord: bad value signature")

// Verify checks v's signature under key.
func Verify(key ID, v Value) error {
	if len(v.PK) != ed25519.PublicKeySize || len(v.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: unsigned value", ErrSignature)
	}
	if !ed25519.Verify(ed25519.PublicKey(v.PK), SignedBytes(key, v.Seq, v.Ref, v.Data), v.Sig) {
		return fmt.Errorf("%w: signature does not match", ErrSignature)
	}
	return nil
}

// verified returns the values of vs whose signatures check under key.
func verified(key ID, vs []Value) []Value {
	out := vs[:0:0]
	for _, v := range vs {
		if Verify(key, v) == nil {
			out = append(out, v)
		}
	}
	return out
}

var lastSeq atomic.Int64

// NextSeq returns a sequence number for a write: the time in nanoseconds,
// and always more than the last one this process handed out, so a
// writer's writes are ordered even across restarts (clocks permitting).
func NextSeq() int64 {
	for {
		last := lastSeq.Load()
		next := max(last+1, time.Now().UnixNano())
		if lastSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// NewSigner returns a fresh Ed25519 private key for signing values.
func NewSigner() ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("chord: ed25519 key: %v", err)) // crypto/rand does not fail
	}
	return priv
}

var (
	processSignerOnce sync.Once
	processSigner     ed25519.PrivateKey
)

// ProcessSigner is the writer key of this process, made on first use: the
// package functions AnnouncePeer and GetPeers and a Client without a
// Signer use it, so that one process's re-announcements replace its own
// values and never pile up under new identities.
func ProcessSigner() ed25519.PrivateKey {
	processSignerOnce.Do(func() { processSigner = NewSigner() })
	return processSigner
}

// signAll signs every value of vs (a copy) with priv under key, all with
// one sequence number.
func signAll(priv ed25519.PrivateKey, key ID, vs []Value) []Value {
	seq := NextSeq()
	out := make([]Value, len(vs))
	for i, v := range vs {
		Sign(priv, key, seq, &v)
		out[i] = v
	}
	return out
}
