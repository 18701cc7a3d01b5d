package torrent

import (
	"context"
	"math/rand/v2"
	"time"

	"appnet/p2p/peerwire"
)

// loop is the torrent's housekeeping, once per Tick: rates, the choker's
// rounds, requests that timed out, dialling peers we know of, and saving
// resume data.
func (t *Torrent) loop() {
	tick := time.NewTicker(t.cfg.Tick)
	defer tick.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.kick:
			t.mu.Lock()
			dial := t.toDial(time.Now())
			t.mu.Unlock()
			t.dialAll(dial)
		case now := <-tick.C:
			t.dialAll(t.housekeeping(now))
			if now.Sub(lastSave) >= t.cfg.ResumeEvery {
				lastSave = now
				if err := t.saveResume(); err != nil {
					t.log.Error("saving resume data", "err", err)
				}
			}
		}
	}
}

func (t *Torrent) dialAll(addrs []string) {
	for _, addr := range addrs {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.dial(addr)
		}()
	}
}

// kickDial asks the loop to dial new addresses now rather than at the next
// tick.
func (t *Torrent) kickDial() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// housekeeping does one tick's work under the lock and returns the
// addresses to dial.
func (t *Torrent) housekeeping(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.downMeter.sample(now)
	t.upMeter.sample(now)
	for p := range t.peers {
		p.down.sample(now)
		p.up.sample(now)
		// Requests unanswered for too long go back to the pool, and a
		// piece this peer was to send alone goes to another.
		expired := false
		for b, at := range p.asked {
			if now.Sub(at) > t.cfg.RequestTimeout {
				t.dropRequest(p, b, now)
				expired = true
			}
		}
		if expired {
			t.picker.release(p)
			t.fillOthers(p)
		}
		for b, at := range p.late {
			if now.Sub(at) > lateFor {
				delete(p.late, b)
			}
		}
		t.fillRequests(p)
	}
	if now.Sub(t.lastChoke) >= t.choker.cfg.Interval {
		t.rechokeLocked(now)
	}
	return t.toDial(now)
}

// toDial returns known addresses to connect to, when we have fewer
// connections than WantConns; each address is tried at most once a minute.
func (t *Torrent) toDial(now time.Time) []string {
	if t.stopped || t.seedingDone() {
		return nil
	}
	free := t.cfg.WantConns - len(t.peers)
	if free <= 0 || (t.completed && *t.cfg.SeedRatio == 0) {
		return nil
	}
	connected := make(map[string]bool, len(t.peers))
	for p := range t.peers {
		connected[p.addr] = true
	}
	var out []string
	for addr, last := range t.known {
		if len(out) >= free {
			break
		}
		if connected[addr] || t.isBanned(addr) || now.Sub(last) < time.Minute {
			continue
		}
		t.known[addr] = now
		out = append(out, addr)
	}
	return out
}

func (t *Torrent) unchokedCount() int {
	n := 0
	for p := range t.peers {
		if !p.amChoking {
			n++
		}
	}
	return n
}

// rechokeLocked runs one round of tit-for-tat and sends the chokes and
// unchokes that change. While downloading, peers are ranked by how fast
// they send to us; once we seed, by how fast we send to them.
func (t *Torrent) rechokeLocked(now time.Time) {
	t.lastChoke = now
	cands := make([]chokeCandidate, 0, len(t.peers))
	for p := range t.peers {
		rate := p.down.rate
		if t.completed {
			rate = p.up.rate
		}
		cands = append(cands, chokeCandidate{key: p, interested: p.peerInterested, rate: rate, since: p.since})
	}
	// Shuffle first so equal candidates are not always in map order.
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	r := t.choker.round(now, cands)
	var unchoked, choked int
	for p := range t.peers {
		want := r.unchoke[p]
		if want == !p.amChoking {
			continue
		}
		p.amChoking = !want
		if want {
			unchoked++
			p.queue(peerwire.Message{ID: peerwire.MsgUnchoke})
		} else {
			choked++
			// BEP 3: choking discards the peer's pending requests.
			kept := p.out[:0]
			for _, om := range p.out {
				if om.m.ID != peerwire.MsgPiece {
					kept = append(kept, om)
				}
			}
			p.out = kept
			p.servedQ = 0
			p.chokeGen++
			p.queue(peerwire.Message{ID: peerwire.MsgChoke})
		}
	}
	if unchoked+choked > 0 || r.newOptimistic {
		opt := "none"
		if p, ok := r.optimistic.(*peer); ok {
			opt = p.addr
		}
		t.log.Debug("rechoke", "interested", r.candidatesRated, "regular", len(r.regular), "optimistic", opt, "new optimistic", r.newOptimistic, "unchoked", unchoked, "choked", choked, "seeding", t.completed)
	}
}

// announceLoop tells the trackers about us: started at once, then every
// interval they ask for (more often while we have few peers), retrying
// with backoff when none answers.
func (t *Torrent) announceLoop() {
	// Trackers need our port: wait for Serve's listener.
	select {
	case <-t.listening:
	case <-t.ctx.Done():
		return
	}
	event := "started"
	backoff := t.cfg.AnnounceBackoff
	for {
		interval, err := t.announce(t.ctx, event)
		wait := interval
		if err != nil {
			wait = backoff
			backoff = min(2*backoff, 10*time.Minute)
		} else {
			event = ""
			backoff = t.cfg.AnnounceBackoff
			t.mu.Lock()
			few := len(t.peers) < t.cfg.WantConns/2 && !t.completed
			t.mu.Unlock()
			if few {
				wait = min(wait, 30*time.Second)
			}
		}
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// announce sends one announce and adds the peers it returns.
func (t *Torrent) announce(ctx context.Context, event string) (time.Duration, error) {
	st := t.Status()
	t.mu.Lock()
	port, ip := t.cfg.ListenPort, t.listenIP
	t.mu.Unlock()
	req := AnnounceRequest{
		Trackers: t.cfg.Trackers, InfoHash: t.infoHash, PeerID: t.cfg.PeerID, Port: port,
		Uploaded: st.Uploaded, Downloaded: st.Downloaded, Left: st.Left, Event: event, NumWant: 50, IP: ip,
	}
	if event == "stopped" {
		req.NumWant = 0
	}
	resp, err := t.cfg.Announcer.Announce(ctx, req)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return 0, err // shutting down: not the tracker's fault
		}
		t.trackerErr = err.Error()
		t.log.Warn("announce failed", "event", event, "err", err)
		return 0, err
	}
	t.trackerErr = ""
	t.trackerOK = time.Now()
	for _, a := range resp.Peers {
		if _, ok := t.known[a]; !ok && !t.isBanned(a) {
			t.known[a] = time.Time{}
		}
	}
	t.kickDial()
	t.log.Debug("announced", "event", event, "tracker", resp.Tracker, "peers", len(resp.Peers), "interval", resp.Interval)
	if resp.Interval <= 0 {
		resp.Interval = 30 * time.Minute
	}
	return resp.Interval, nil
}
