package chord

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"appnet/trace"
)

// Client reaches a ring through any one of its nodes, from outside: it is
// not a node itself. Its zero value uses TCP with the default timeout.
type Client struct {
	Transport Transport     // nil: a TCPTransport with Host, Tracer and Timeout
	Host      string        // for the trace
	Tracer    *trace.Tracer // nil: no trace
	Timeout   time.Duration // per call; 0: DefaultCallTimeout
	Mode      LookupMode
	MaxHops   int // 0: DefaultMaxHops
	Replicas  int // successors asked when the owner has nothing; 0: 3
	// Signer signs the values the client puts; nil: ProcessSigner, the
	// process's own key. Only the holder of a key can replace or remove
	// what it wrote.
	Signer ed25519.PrivateKey

	tcp *TCPTransport
}

func (c *Client) transport() Transport {
	if c.Transport != nil {
		return c.Transport
	}
	if c.tcp == nil {
		c.tcp = &TCPTransport{Host: c.Host, Tracer: c.Tracer, Timeout: c.Timeout}
	}
	return c.tcp
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	if c.tcp != nil {
		return c.tcp.Close()
	}
	return nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCallTimeout
}

// caller for a ring of m bits.
func (c *Client) caller(m int) caller {
	return func(ctx context.Context, to NodeRef, req *Message) (*Message, error) {
		req.M = m
		d := c.timeout()
		if req.Op == OpFindSuccessor {
			d = time.Duration(req.Budget) * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		resp, err := c.transport().Call(ctx, to.Addr, req)
		if err != nil {
			return nil, err
		}
		if resp.Err != "" {
			return nil, &RemoteError{Addr: to.Addr, Code: resp.Code, Msg: resp.Err}
		}
		return resp, nil
	}
}

// Ping asks the node at addr who it is; the answer gives the ring's m.
func (c *Client) Ping(ctx context.Context, addr string) (NodeRef, Space, error) {
	// The node answers a ping of any m with an error naming its own m, or
	// with a pong when m matches; ask with m = 160 first.
	resp, err := c.caller(MaxBits)(ctx, NodeRef{Addr: addr}, &Message{Op: OpPing})
	var re *RemoteError
	if errors.As(err, &re) && re.Code == CodeWrongRing {
		var bits int
		if _, serr := fmt.Sscanf(re.Msg, "this ring has m = %d", &bits); serr == nil && (Space{bits}).Valid() {
			resp, err = c.caller(bits)(ctx, NodeRef{Addr: addr}, &Message{Op: OpPing})
		}
	}
	if err != nil {
		return NodeRef{}, Space{}, err
	}
	if resp.Node == nil {
		return NodeRef{}, Space{}, fmt.Errorf("%w: pong without a node", ErrMalformed)
	}
	return *resp.Node, Space{resp.M}, nil
}

// Key names a stored object: by Name (hashed to the ring, the usual way),
// by Number (an identifier written in decimal, or hex with 0x: the
// course's "key 14"), or by a 160-bit Hash (an info hash; reduced mod 2^m).
type Key struct {
	Name   string
	Number string
	Hash   *[IDBytes]byte
}

// ID returns the key's identifier in space sp.
func (k Key) ID(sp Space) (ID, error) {
	switch {
	case k.Hash != nil:
		return sp.Reduce(*k.Hash), nil
	case k.Number != "":
		return sp.Parse(k.Number)
	default:
		return sp.HashString(k.Name), nil
	}
}

func (k Key) label() string {
	if k.Number != "" {
		return ""
	}
	if k.Hash != nil {
		return fmt.Sprintf("%x", *k.Hash)
	}
	return k.Name
}

// session is the ring as seen through one entry node.
type session struct {
	call  caller
	entry NodeRef
	sp    Space
}

func (c *Client) session(ctx context.Context, addr string) (*session, error) {
	self, sp, err := c.Ping(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &session{call: c.caller(sp.Bits), entry: self, sp: sp}, nil
}

func (c *Client) lookupFunc(s *session) func(context.Context, ID) (Result, error) {
	hops := c.MaxHops
	if hops <= 0 {
		hops = DefaultMaxHops
	}
	return func(ctx context.Context, key ID) (Result, error) {
		if c.Mode == Recursive {
			return recursive(ctx, s.call, s.entry, key, hops, 8*c.timeout())
		}
		return iterative(ctx, s.call, s.entry, key, hops)
	}
}

// Lookup finds the successor of key through the node at addr.
func (c *Client) Lookup(ctx context.Context, addr string, key Key) (Result, Space, error) {
	s, err := c.session(ctx, addr)
	if err != nil {
		return Result{}, Space{}, err
	}
	id, err := key.ID(s.sp)
	if err != nil {
		return Result{}, s.sp, err
	}
	res, err := c.lookupFunc(s)(ctx, id)
	return res, s.sp, err
}

// Put stores values under key through the node at addr, signed with the
// client's Signer: replacing what this writer stored there (the key is
// then the writer's alone while its values live), or with add joining the
// shared set, where each writer holds its own values (each with its own
// expiry) and no writer can remove another's.
func (c *Client) Put(ctx context.Context, addr string, key Key, vs []Value, add bool) (Result, error) {
	s, err := c.session(ctx, addr)
	if err != nil {
		return Result{}, err
	}
	id, err := key.ID(s.sp)
	if err != nil {
		return Result{}, err
	}
	signer := c.Signer
	if signer == nil {
		signer = ProcessSigner()
	}
	return put(ctx, s.call, c.lookupFunc(s), signer, id, key.label(), vs, add)
}

// Get returns the values under key through the node at addr, and the
// lookup that found them. Each value carries its writer's public key (PK);
// values whose signatures do not check are dropped.
func (c *Client) Get(ctx context.Context, addr string, key Key) ([]Value, Result, error) {
	s, err := c.session(ctx, addr)
	if err != nil {
		return nil, Result{}, err
	}
	id, err := key.ID(s.sp)
	if err != nil {
		return nil, Result{}, err
	}
	reps := c.Replicas
	if reps <= 0 {
		reps = 3
	}
	return get(ctx, s.call, c.lookupFunc(s), id, reps)
}

// Info is one node's routing state as it reports it.
type Info struct {
	Space   Space
	Self    NodeRef
	Pred    *NodeRef
	Succs   []NodeRef
	Fingers []NodeRef
	Keys    int
}

// Info asks the node at addr for its routing state.
func (c *Client) Info(ctx context.Context, addr string) (*Info, error) {
	_, sp, err := c.Ping(ctx, addr)
	if err != nil {
		return nil, err
	}
	resp, err := c.caller(sp.Bits)(ctx, NodeRef{Addr: addr}, &Message{Op: OpInfo})
	if err != nil {
		return nil, err
	}
	if resp.Node == nil {
		return nil, fmt.Errorf("%w: info without a node", ErrMalformed)
	}
	return &Info{Space: sp, Self: *resp.Node, Pred: resp.Pred, Succs: resp.Succs, Fingers: resp.Fingers, Keys: resp.Keys}, nil
}

// Ring walks the ring from the node at addr along successor pointers,
// returning each node's state, until it comes back or max nodes.
func (c *Client) Ring(ctx context.Context, addr string, max int) ([]*Info, error) {
	var out []*Info
	seen := map[string]bool{}
	cur := addr
	for len(out) < max {
		info, err := c.Info(ctx, cur)
		if err != nil {
			return out, err
		}
		if seen[info.Self.Addr] {
			break
		}
		seen[info.Self.Addr] = true
		out = append(out, info)
		if len(info.Succs) == 0 {
			break
		}
		cur = info.Succs[0].Addr
	}
	return out, nil
}

// AnnouncePeer stores peerAddr ("IP:port") under key = infoHash in the
// ring reached through nodeAddr, as an indirect reference that expires
// after ttl unless announced again (trackerless torrents). Many peers
// share a key.
func AnnouncePeer(ctx context.Context, nodeAddr string, infoHash [20]byte, peerAddr string, ttl time.Duration) error {
	var c Client
	defer c.Close()
	return c.AnnouncePeer(ctx, nodeAddr, infoHash, peerAddr, ttl)
}

// GetPeers returns the peer addresses announced under infoHash and not yet
// expired; none is not an error.
func GetPeers(ctx context.Context, nodeAddr string, infoHash [20]byte) ([]string, error) {
	var c Client
	defer c.Close()
	return c.GetPeers(ctx, nodeAddr, infoHash)
}

// AnnouncePeer is the package function AnnouncePeer with this client.
func (c *Client) AnnouncePeer(ctx context.Context, nodeAddr string, infoHash [20]byte, peerAddr string, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("chord: announce: ttl must be positive")
	}
	h := infoHash
	_, err := c.Put(ctx, nodeAddr, Key{Hash: &h}, []Value{{Data: []byte(peerAddr), Ref: true, TTL: max(1, ttl.Milliseconds())}}, true)
	return err
}

// GetPeers is the package function GetPeers with this client.
func (c *Client) GetPeers(ctx context.Context, nodeAddr string, infoHash [20]byte) ([]string, error) {
	h := infoHash
	vs, _, err := c.Get(ctx, nodeAddr, Key{Hash: &h})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vs {
		if v.Ref && !strings.ContainsAny(string(v.Data), " \n") {
			out = append(out, string(v.Data))
		}
	}
	return out, nil
}
