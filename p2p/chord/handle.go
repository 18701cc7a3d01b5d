package chord

import (
	"context"
	"fmt"
	"slices"
	"time"
)

func errorReply(req *Message, code int, format string, args ...any) *Message {
	return &Message{T: req.T, Re: req.Op, M: req.M, Code: code, Err: truncate(fmt.Sprintf(format, args...), MaxErrLen-8)}
}

// Handle answers one request. It is the node's whole server side; the
// transport calls it for each request that arrives.
func (n *Node) Handle(ctx context.Context, req *Message) *Message {
	if req.M != n.sp.Bits {
		return errorReply(req, CodeWrongRing, "this ring has m = %d, not %d", n.sp.Bits, req.M)
	}
	needKey := req.Op == OpFindSuccessor || req.Op == OpFindNext || req.Op == OpGet || req.Op == OpPut
	if needKey && req.Key == nil {
		return errorReply(req, CodeMalformed, "%s without a key", req.Op)
	}
	if (req.Op == OpNotify || req.Op == OpLeave) && req.From == nil {
		return errorReply(req, CodeMalformed, "%s without from", req.Op)
	}
	var resp *Message
	switch req.Op {
	case OpPing:
		self := n.self
		resp = &Message{Node: &self}
	case OpStabilize:
		resp = n.handleStabilize()
	case OpNotify:
		n.handleNotify(*req.From)
		resp = &Message{}
	case OpFindNext:
		resp = n.handleFindNext(*req.Key, req.Exclude)
	case OpFindSuccessor:
		resp = n.handleFindSuccessor(ctx, req)
	case OpGet:
		resp = n.handleGet(*req.Key)
	case OpPut:
		resp = n.handlePut(ctx, req)
	case OpStore:
		resp = n.handleStore(req.Items)
	case OpLeave:
		n.handleLeave(*req.From, req.Pred, req.Succs)
		resp = &Message{}
	case OpInfo:
		resp = n.handleInfo()
	default:
		return errorReply(req, CodeMalformed, "unknown op %q", req.Op)
	}
	resp.T, resp.Re, resp.M = req.T, req.Op, n.sp.Bits
	return resp
}

func (n *Node) handleStabilize() *Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := &Message{Succs: slices.Clone(n.succs)}
	if n.pred != nil {
		p := *n.pred
		r.Pred = &p
	}
	return r
}

func (n *Node) handleInfo() *Message {
	r := n.handleStabilize()
	n.mu.Lock()
	defer n.mu.Unlock()
	self := n.self
	r.Node = &self
	r.Fingers = slices.Clone(n.fingers)
	r.Keys = len(n.st.items)
	return r
}

// handleNotify: n' thinks it might be our predecessor (Fig. 7, notify).
// When it is adopted, the keys it now owns are handed over.
func (n *Node) handleNotify(from NodeRef) {
	if from.Addr == n.self.Addr {
		return
	}
	n.mu.Lock()
	old := n.pred
	if old != nil && (old.Addr == from.Addr || !Between(from.ID, old.ID, n.self.ID)) {
		n.mu.Unlock()
		return
	}
	n.pred = &from
	var items []Item
	now := n.clk.Now()
	if old != nil {
		lo := old.ID
		items = n.st.collect(now, func(k ID) bool { return BetweenRight(k, lo, from.ID) })
	} else {
		items = n.st.collect(now, func(k ID) bool { return !BetweenRight(k, from.ID, n.self.ID) })
	}
	// A newcomer between us and our successor is also our successor.
	if n.succs[0].Addr == n.self.Addr {
		n.succs = []NodeRef{from}
	}
	n.mu.Unlock()
	if len(items) > 0 {
		n.spawn(func(ctx context.Context) { n.sendItems(ctx, from, items) })
	}
}

func (n *Node) handleFindNext(key ID, exclude []NodeRef) *Message {
	n.mu.Lock()
	succs := slices.Clone(n.succs)
	n.mu.Unlock()
	if BetweenRight(key, n.self.ID, succs[0].ID) {
		return &Message{Done: true, Node: &succs[0], Succs: succs}
	}
	next := n.closestPreceding(key, exclude)
	if next.Addr == n.self.Addr {
		live := n.firstLive(exclude)
		return &Message{Done: true, Node: &live, Succs: succs}
	}
	return &Message{Node: &next}
}

// handleFindSuccessor is the recursive lookup (Fig. 5, find_successor):
// answer when the key lies between us and our successor, otherwise
// forward to the closest preceding node, going around one that fails.
func (n *Node) handleFindSuccessor(ctx context.Context, req *Message) *Message {
	key := *req.Key
	path := append(slices.Clone(req.Path), n.self)
	succ := n.successor()
	if BetweenRight(key, n.self.ID, succ.ID) {
		return &Message{Node: &succ, Path: path}
	}
	if req.TTL <= 1 || len(path) >= MaxListLen {
		return errorReply(req, CodeLookupFailed, "lookup exceeded its hop limit")
	}
	budget := time.Duration(req.Budget) * time.Millisecond
	if budget <= 0 || budget > n.cfg.LookupTimeout {
		budget = n.cfg.LookupTimeout
	}
	exclude := slices.Clone(req.Exclude)
	for try := 0; try < 4; try++ {
		next := n.closestPreceding(key, exclude)
		if next.Addr == n.self.Addr {
			live := n.firstLive(exclude)
			return &Message{Node: &live, Path: path}
		}
		inner := budget * 9 / 10
		fwd := &Message{Op: OpFindSuccessor, Key: &key, Name: req.Name, TTL: req.TTL - 1, Path: path,
			Exclude: exclude, Budget: max(1, inner.Milliseconds())}
		resp, err := n.callTimeout(ctx, next, fwd, budget)
		if err == nil {
			return &Message{Node: resp.Node, Path: resp.Path}
		}
		if !failed(ctx, err) {
			return errorReply(req, CodeLookupFailed, "%v", err)
		}
		n.suspect(next)
		if len(exclude) < MaxListLen/2 {
			exclude = append(exclude, next)
		}
	}
	return errorReply(req, CodeLookupFailed, "no live next hop")
}

func (n *Node) handleGet(key ID) *Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	name, vs, ok := n.st.get(key, n.clk.Now())
	return &Message{Found: ok, Name: name, Values: vs}
}

// handlePut stores at the owner, then copies the item to the replicas
// before answering.
func (n *Node) handlePut(ctx context.Context, req *Message) *Message {
	key := *req.Key
	size := itemSize(Item{Name: req.Name, Values: req.Values})
	n.mu.Lock()
	if n.pred != nil && !BetweenRight(key, n.pred.ID, n.self.ID) {
		n.mu.Unlock()
		return errorReply(req, CodeNotResponsible, "N%s is not responsible for K%s", n.sp.Format(n.self.ID), n.sp.Format(key))
	}
	now := n.clk.Now()
	if old, ok := n.st.items[key]; ok && req.Add {
		for _, e := range old.values {
			size += 32 + len(e.data)
		}
	}
	if size > maxItemBytes || !n.st.put(key, req.Name, req.Values, req.Add, now, n.cfg.MaxKeys) {
		n.mu.Unlock()
		return errorReply(req, CodeFull, "store full")
	}
	items := n.st.collect(now, func(k ID) bool { return k == key })
	targets := n.replicaTargetsLocked()
	n.mu.Unlock()
	for _, t := range targets {
		n.sendItems(ctx, t, items)
	}
	return &Message{}
}

// handleStore takes whole items: replicas from a predecessor, keys handed
// over on join or leave.
func (n *Node) handleStore(items []Item) *Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.clk.Now()
	for _, it := range items {
		if itemSize(it) > maxItemBytes {
			continue
		}
		n.st.put(it.Key, it.Name, it.Values, false, now, n.cfg.MaxKeys)
	}
	return &Message{}
}

// handleLeave closes the gap a leaving neighbour leaves behind.
func (n *Node) handleLeave(from NodeRef, pred *NodeRef, succs []NodeRef) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pred != nil && n.pred.Addr == from.Addr {
		n.pred = nil
		if pred != nil && pred.Addr != n.self.Addr {
			p := *pred
			n.pred = &p
		}
	}
	if n.succs[0].Addr == from.Addr && len(succs) > 0 {
		n.setSuccsLocked(succs)
	}
	n.succs = slices.DeleteFunc(n.succs, func(s NodeRef) bool { return s.Addr == from.Addr })
	if len(n.succs) == 0 {
		n.succs = []NodeRef{n.self}
	}
	for i := range n.fingers {
		if n.fingers[i].Addr == from.Addr {
			n.fingers[i] = NodeRef{}
		}
	}
}
