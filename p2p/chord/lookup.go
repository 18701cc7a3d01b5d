package chord

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Result is the outcome of a lookup: the key's successor and the nodes the
// query went through, the asking node first. Hops is len(Path)-1.
type Result struct {
	Owner NodeRef
	Path  []NodeRef
}

// Hops is the number of nodes contacted after the first.
func (r Result) Hops() int { return max(0, len(r.Path)-1) }

// ErrLookup is wrapped by every failed lookup.
var ErrLookup = errors.New("chord: lookup failed")

// caller sends one request to one node; Node.call and Client.call are.
type caller func(ctx context.Context, to NodeRef, req *Message) (*Message, error)

// iterative runs an iterative lookup from start: ask a node for the next
// hop (find_next) until one answers that the key lies between it and its
// successor. A hop that does not answer is excluded and the previous hop
// asked again. The owner it names is pinged, falling back along the
// successor list it came with, so a lookup never returns a dead node.
func iterative(ctx context.Context, call caller, start NodeRef, key ID, maxHops int) (Result, error) {
	path := []NodeRef{start}
	stack := []NodeRef{start}
	var exclude []NodeRef
	for steps := 0; steps < 2*maxHops; steps++ {
		cur := stack[len(stack)-1]
		resp, err := call(ctx, cur, &Message{Op: OpFindNext, Key: &key, Exclude: exclude})
		if err != nil {
			if !failed(ctx, err) || len(stack) == 1 {
				return Result{Path: path}, fmt.Errorf("%w: %w", ErrLookup, err)
			}
			if len(exclude) >= MaxListLen/2 {
				return Result{Path: path}, fmt.Errorf("%w: too many failed nodes", ErrLookup)
			}
			exclude = append(exclude, cur)
			stack = stack[:len(stack)-1]
			continue
		}
		if resp.Node == nil {
			return Result{Path: path}, fmt.Errorf("%w: %w: no node in the answer of %s", ErrLookup, ErrMalformed, cur.Addr)
		}
		if resp.Done {
			cands := append([]NodeRef{*resp.Node}, resp.Succs...)
			for _, c := range cands {
				if inRefs(exclude, c) {
					continue
				}
				if c.Addr == start.Addr || c.Addr == cur.Addr {
					return Result{Owner: c, Path: path}, nil
				}
				if _, err := call(ctx, c, &Message{Op: OpPing}); err != nil {
					if !failed(ctx, err) {
						return Result{Path: path}, fmt.Errorf("%w: %w", ErrLookup, err)
					}
					exclude = append(exclude, c)
					continue
				}
				return Result{Owner: c, Path: path}, nil
			}
			return Result{Path: path}, fmt.Errorf("%w: every successor %s named is down", ErrLookup, cur.Addr)
		}
		next := *resp.Node
		if next.Addr == cur.Addr || len(path) > maxHops {
			return Result{Path: path}, fmt.Errorf("%w: no progress after %d hops", ErrLookup, len(path)-1)
		}
		path = append(path, next)
		stack = append(stack, next)
	}
	return Result{Path: path}, fmt.Errorf("%w: too many steps", ErrLookup)
}

// recursive asks start to find the key's successor, each hop forwarding
// (find_successor).
func recursive(ctx context.Context, call caller, start NodeRef, key ID, maxHops int, budget time.Duration) (Result, error) {
	resp, err := call(ctx, start, &Message{Op: OpFindSuccessor, Key: &key, TTL: maxHops, Budget: budget.Milliseconds()})
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrLookup, err)
	}
	if resp.Node == nil {
		return Result{Path: resp.Path}, fmt.Errorf("%w: %w: no successor in the answer", ErrLookup, ErrMalformed)
	}
	return Result{Owner: *resp.Node, Path: resp.Path}, nil
}

// Lookup finds the successor of key, starting at this node.
func (n *Node) Lookup(ctx context.Context, key ID, mode LookupMode) (Result, error) {
	if mode == Recursive {
		return recursive(ctx, n.lookupCall, n.self, key, n.cfg.MaxHops, n.cfg.LookupTimeout)
	}
	return iterative(ctx, n.lookupCall, n.self, key, n.cfg.MaxHops)
}

// lookupCall is call, but a recursive request waits for the whole lookup,
// and a hop that fails is suspected.
func (n *Node) lookupCall(ctx context.Context, to NodeRef, req *Message) (*Message, error) {
	d := n.cfg.CallTimeout
	if req.Op == OpFindSuccessor {
		d = time.Duration(req.Budget) * time.Millisecond
	}
	resp, err := n.callTimeout(ctx, to, req, d)
	if failed(ctx, err) {
		n.suspect(to)
	}
	return resp, err
}

// put stores values under key at its owner, found from start; the owner
// copies them to its replicas before it answers. The values are signed
// with signer, afresh for each try. A stale lookup (the answer "not
// responsible") is retried, and so is a write that lost a race with one
// of the same writer's (code CodeStale: the other got a later sequence
// number but arrived first).
func put(ctx context.Context, call caller, lookup func(context.Context, ID) (Result, error), signer ed25519.PrivateKey, key ID, name string, vs []Value, add bool) (Result, error) {
	var last error
	for try := 0; try < 3; try++ {
		res, err := lookup(ctx, key)
		if err != nil {
			return res, err
		}
		_, err = call(ctx, res.Owner, &Message{Op: OpPut, Key: &key, Name: name, Values: signAll(signer, key, vs), Add: add})
		var re *RemoteError
		if errors.As(err, &re) && (re.Code == CodeNotResponsible || re.Code == CodeStale) {
			last = err
			continue
		}
		return res, err
	}
	return Result{}, last
}

// get fetches the values under key from its owner, falling back to the
// owner's successors (its replicas) when the owner has none yet. Only
// values whose signatures check are returned (Verify): a node that serves
// forged values is treated as one that has none.
func get(ctx context.Context, call caller, lookup func(context.Context, ID) (Result, error), key ID, replicas int) ([]Value, Result, error) {
	res, err := lookup(ctx, key)
	if err != nil {
		return nil, res, err
	}
	resp, err := call(ctx, res.Owner, &Message{Op: OpGet, Key: &key})
	if err != nil {
		return nil, res, err
	}
	if vs := verified(key, resp.Values); len(vs) > 0 {
		return vs, res, nil
	}
	st, err := call(ctx, res.Owner, &Message{Op: OpStabilize})
	if err == nil {
		for _, s := range st.Succs[:min(len(st.Succs), replicas)] {
			if r, err := call(ctx, s, &Message{Op: OpGet, Key: &key}); err == nil {
				if vs := verified(key, r.Values); len(vs) > 0 {
					return vs, res, nil
				}
			}
		}
	}
	return nil, res, ErrNotFound
}

// ErrNotFound is returned by Get when nothing is stored under the key.
var ErrNotFound = errors.New("chord: key not found")

// Put stores values under key through the ring, signed with
// Config.Signer: replacing what this writer had there (and holding the key
// alone), or adding to the writer's values in the shared set with add.
func (n *Node) Put(ctx context.Context, key ID, name string, vs []Value, add bool) (Result, error) {
	return put(ctx, n.call, n.lookupDefault, n.cfg.Signer, key, name, vs, add)
}

// Get returns the values stored under key, looked up through the ring.
func (n *Node) Get(ctx context.Context, key ID) ([]Value, Result, error) {
	return get(ctx, n.call, n.lookupDefault, key, n.cfg.Replicas)
}

func (n *Node) lookupDefault(ctx context.Context, key ID) (Result, error) {
	return n.Lookup(ctx, key, n.cfg.Lookup)
}

// PathLength is the number of nodes the lookup contacted after the asking
// node, the owner included: Hops, plus one when the owner is not the last
// node of Path. It counts messages; the Chord paper's path length (§6.3,
// whose mean is about ½·log2 N) is Hops, which stops at the key's
// predecessor (see p2p/chord/sim).
func (r Result) PathLength() int {
	if len(r.Path) == 0 {
		return 0
	}
	if r.Owner.Addr == r.Path[len(r.Path)-1].Addr {
		return len(r.Path) - 1
	}
	return len(r.Path)
}
