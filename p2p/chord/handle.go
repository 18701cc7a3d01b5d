package chord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	if (req.Op == OpNotify || req.Op == OpLeave || req.Op == OpStore) && req.From == nil {
		return errorReply(req, CodeMalformed, "%s without from", req.Op)
	}
	var resp *Message
	switch req.Op {
	case OpPing:
		self := n.self
		n.mu.Lock()
		resp = &Message{Node: &self, Leaving: n.leaving}
		n.mu.Unlock()
	case OpStabilize:
		resp = n.handleStabilize()
	case OpNotify:
		if err := n.handleNotify(ctx, *req.From, req.Preds); err != nil {
			return errorReply(req, CodeForbidden, "notify refused: %v", err)
		}
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
		resp = n.handleStore(ctx, req)
	case OpLeave:
		if err := n.handleLeave(ctx, *req.From, req.Pred, req.Succs); err != nil {
			return errorReply(req, CodeForbidden, "leave refused: %v", err)
		}
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
	self := n.self
	r := &Message{Node: &self, Succs: slices.Clone(n.succs)}
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
	r.Fingers = slices.Clone(n.fingers)
	r.Keys = len(n.st.items)
	return r
}

// handleNotify: n' thinks it might be our predecessor (Fig. 7, notify).
// It is believed only when its address is the request's source IP, its
// ID is derived from its address (unless IDs are trusted), and it answers
// a ping at that address as that node (the callback, made without the
// lock). When it is adopted, the keys it now owns are handed over. Our
// current predecessor's notify refreshes our list of predecessors.
func (n *Node) handleNotify(ctx context.Context, from NodeRef, preds []NodeRef) error {
	if !sourceMatches(ctx, from.Addr) {
		return fmt.Errorf("%s does not come from the address it claims", from.Addr)
	}
	if from.Addr == n.self.Addr {
		return nil
	}
	if !n.plausible(from) {
		return fmt.Errorf("node N%s at %s: %w", n.sp.Format(from.ID), from.Addr, ErrUnverified)
	}
	candidate := func() bool {
		old := n.pred
		return old == nil || (old.Addr != from.Addr && Between(from.ID, old.ID, n.self.ID))
	}
	n.mu.Lock()
	if n.pred != nil && *n.pred == from {
		n.setPredsLocked(preds)
		n.mu.Unlock()
		return nil
	}
	ok := candidate()
	n.mu.Unlock()
	if !ok {
		return nil
	}
	if err := n.callback(ctx, from, false); err != nil {
		return err
	}
	n.mu.Lock()
	if !candidate() { // the state moved during the callback
		n.mu.Unlock()
		return nil
	}
	old := n.pred
	p := from
	n.pred = &p
	n.setPredsLocked(preds)
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
	return nil
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

// storeError is the reply to a write the store refused.
func storeError(req *Message, err error) *Message {
	code := CodeForbidden
	switch {
	case errors.Is(err, ErrNodeFull), errors.Is(err, ErrWriterQuota):
		code = CodeFull
	case errors.Is(err, ErrStale):
		code = CodeStale
	}
	return errorReply(req, code, "%v", err)
}

// writerOf returns the one writer of vs, or an error when the values are
// unsigned or signed by several keys.
func writerOf(vs []Value) (string, error) {
	if len(vs) == 0 {
		return "", errors.New("chord: no values")
	}
	pk := string(vs[0].PK)
	for _, v := range vs {
		if len(v.PK) == 0 || len(v.Sig) == 0 {
			return "", fmt.Errorf("%w: unsigned value", ErrSignature)
		}
		if string(v.PK) != pk {
			return "", errors.New("chord: values of several writers in one put")
		}
	}
	return pk, nil
}

// handlePut stores at the owner, then copies the item to the replicas
// before answering. The values are one writer's, each signed (Verify);
// the size is checked against the writer's and the node's bound before
// any signature is, so a writer over its quota costs little.
func (n *Node) handlePut(ctx context.Context, req *Message) *Message {
	key := *req.Key
	pk, err := writerOf(req.Values)
	if err != nil {
		return errorReply(req, CodeForbidden, "%v", err)
	}
	mode := modeReplace
	if req.Add {
		mode = modeAdd
	}
	n.mu.Lock()
	if n.pred != nil && !BetweenRight(key, n.pred.ID, n.self.ID) {
		n.mu.Unlock()
		return errorReply(req, CodeNotResponsible, "N%s is not responsible for K%s", n.sp.Format(n.self.ID), n.sp.Format(key))
	}
	// Everything but the signatures first, so a refused writer costs little.
	err = n.st.write(key, req.Name, pk, req.Values, mode, false, n.clk.Now(), true)
	n.mu.Unlock()
	if err != nil {
		return storeError(req, err)
	}
	for _, v := range req.Values {
		if err := Verify(key, v); err != nil {
			return errorReply(req, CodeForbidden, "%v", err)
		}
	}
	n.mu.Lock()
	now := n.clk.Now()
	if err := n.st.write(key, req.Name, pk, req.Values, mode, false, now, false); err != nil {
		n.mu.Unlock()
		return storeError(req, err)
	}
	items := n.st.collect(now, func(k ID) bool { return k == key })
	targets := n.replicaTargetsLocked()
	n.mu.Unlock()
	// The replicas are written at once, not one after another, so a put
	// takes one round trip to them whatever their number; the handler
	// waits for them before it answers.
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() { n.sendItems(ctx, t, items) })
	}
	wg.Wait()
	return &Message{}
}

// handleStore takes whole items: replicas and keys handed over on join or
// leave. They are accepted only from a neighbour that proves its address
// (the request's source IP) and only for keys that neighbour may hand us:
//   - from our successor (the join hand-over), keys in our own range
//     (pred, self], or any key outside (self, successor] while we have no
//     predecessor;
//   - from a node of our predecessor list but its last (the owner of the
//     keys or a predecessor after it: replication, the leave hand-over),
//     keys in (last of the list, that node], the keys it or the nodes
//     before it own; any key when the list goes round the ring. The list
//     is Replicas+1 long, so every owner we replicate for is in it.
//
// Every value's signature is checked, but for values held already byte
// for byte (store.known); each writer's values replace that writer's
// record when they are not older (Seq) than it.
func (n *Node) handleStore(ctx context.Context, req *Message) *Message {
	from := *req.From
	if !sourceMatches(ctx, from.Addr) {
		return errorReply(req, CodeForbidden, "store refused: %s does not come from the address it claims", from.Addr)
	}
	n.mu.Lock()
	isSucc := n.succs[0] == from && from.Addr != n.self.Addr
	pi := slices.Index(n.preds, from)
	if n.pred == nil || (pi == len(n.preds)-1 && !n.around) {
		pi = -1 // no predecessor, or the last of the list, whose own predecessor we do not know
	}
	var pred, last *NodeRef
	if n.pred != nil {
		p := *n.pred
		pred = &p
	}
	if pi >= 0 {
		l := n.preds[len(n.preds)-1]
		last = &l
	}
	around := n.around
	n.mu.Unlock()
	if !isSucc && pi < 0 {
		return errorReply(req, CodeForbidden, "store refused: N%s at %s is neither our successor nor a predecessor we know", n.sp.Format(from.ID), from.Addr)
	}
	may := func(k ID) bool {
		if isSucc && (pred == nil && !BetweenRight(k, n.self.ID, from.ID) || pred != nil && BetweenRight(k, pred.ID, n.self.ID)) {
			return true
		}
		if pi >= 0 && (around || BetweenRight(k, last.ID, from.ID)) {
			return true
		}
		return false
	}
	known := make([][]bool, len(req.Items))
	n.mu.Lock()
	for i, it := range req.Items {
		known[i] = n.st.known(it.Key, it.Values)
	}
	n.mu.Unlock()
	refused := 0
	var firstErr error
	for i, it := range req.Items {
		if !may(it.Key) || itemSize(it) > maxItemBytes {
			refused++
			continue
		}
		groups := map[string][]Value{}
		var order []string
		for j, v := range it.Values {
			if !known[i][j] && Verify(it.Key, v) != nil {
				continue
			}
			if _, ok := groups[string(v.PK)]; !ok {
				order = append(order, string(v.PK))
			}
			groups[string(v.PK)] = append(groups[string(v.PK)], v)
		}
		if len(order) == 0 {
			refused++
			continue
		}
		n.mu.Lock()
		now := n.clk.Now()
		for _, pk := range order {
			if err := n.st.write(it.Key, it.Name, pk, groups[pk], modeSnapshot, it.Excl, now, false); err != nil {
				refused++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		n.mu.Unlock()
	}
	if refused > 0 {
		if firstErr == nil {
			firstErr = errors.New("not in our range, or not signed")
		}
		return storeError(req, fmt.Errorf("store: %d of %d items refused: %w", refused, len(req.Items), firstErr))
	}
	return &Message{}
}

// handleLeave closes the gap a leaving neighbour leaves behind. It is
// believed only from the leaving node itself: the request's source IP is
// its address's, it is our predecessor or successor as it claims, and
// called back at its address it answers as itself and says it is leaving.
func (n *Node) handleLeave(ctx context.Context, from NodeRef, pred *NodeRef, succs []NodeRef) error {
	if !sourceMatches(ctx, from.Addr) {
		return fmt.Errorf("%s does not come from the address it claims", from.Addr)
	}
	n.mu.Lock()
	neighbour := (n.pred != nil && *n.pred == from) || (n.succs[0] == from && from.Addr != n.self.Addr)
	n.mu.Unlock()
	if !neighbour {
		return fmt.Errorf("node N%s at %s is not our predecessor or successor", n.sp.Format(from.ID), from.Addr)
	}
	if err := n.callback(ctx, from, true); err != nil {
		return err
	}
	succs = n.filterPlausible(succs)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pred != nil && *n.pred == from {
		n.pred = nil
		n.preds = nil
		if pred != nil && pred.Addr != n.self.Addr && n.plausible(*pred) {
			p := *pred
			n.pred = &p
			n.preds = []NodeRef{p}
		}
	}
	if n.succs[0] == from && len(succs) > 0 {
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
	return nil
}
