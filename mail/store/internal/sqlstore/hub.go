package sqlstore

import (
	"context"
	"sync"
)

// hub fans a mailbox's change out to the channels watching it, within one
// process. Sends never block: each channel holds at most one pending
// signal, which says "look again".
type hub struct {
	mu     sync.Mutex
	subs   map[int64]map[chan struct{}]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[int64]map[chan struct{}]struct{}{}} }

// watch registers a channel for mailbox id until ctx ends or the hub
// closes, when it is closed.
func (h *hub) watch(ctx context.Context, id int64) <-chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(ch)
		return ch
	}
	m := h.subs[id]
	if m == nil {
		m = map[chan struct{}]struct{}{}
		h.subs[id] = m
	}
	m[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[id][ch]; ok {
			delete(h.subs[id], ch)
			if len(h.subs[id]) == 0 {
				delete(h.subs, id)
			}
			close(ch)
		}
	})
	return ch
}

// notify signals every watcher of the mailboxes.
func (h *hub) notify(ids ...int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		for ch := range h.subs[id] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// notifyAll signals every watcher (after a lost connection to the
// notification source, when changes may have been missed).
func (h *hub) notifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for ch := range m {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// close closes every watcher's channel.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, m := range h.subs {
		for ch := range m {
			close(ch)
		}
		delete(h.subs, id)
	}
}
