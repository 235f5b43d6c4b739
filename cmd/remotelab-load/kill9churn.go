package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// killAfter is when, after a round's clients start, the kill9churn
// scenario kills the server: a random point in [killAfterMin, +killAfterSpread).
const (
	killAfterMin    = 150 * time.Millisecond
	killAfterSpread = 450 * time.Millisecond
)

// ledgerEntry is what the clients of a kill9churn round know of one
// session whose creation was acknowledged.
type ledgerEntry struct {
	id          string
	sent, acked time.Time // the create request went out; its 201 came back
	deleteSent  bool      // a DELETE went out (acknowledged or not)
	deleteAcked bool      // its 204 came back
}

// ledger collects a round's sessions and every epoch any answer showed.
type ledger struct {
	mu       sync.Mutex
	sessions []*ledgerEntry
	unacked  int               // creates sent without an answer
	epochs   map[uint64]string // epoch → the session it was seen with
	reused   []string          // epochs seen with two sessions
	errs     map[string]int    // how each client's round ended
}

func (l *ledger) created(sent time.Time, s api.CreateSessionResponse) *ledgerEntry {
	e := &ledgerEntry{id: s.SessionID, sent: sent, acked: time.Now()}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sessions = append(l.sessions, e)
	l.sawLocked(s.SessionID, s.Status, s.Epoch)
	return e
}

func (l *ledger) saw(id, status string, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sawLocked(id, status, epoch)
}

func (l *ledger) sawLocked(id, status string, epoch uint64) {
	if status != api.StatusActive || epoch == 0 {
		return
	}
	if other, ok := l.epochs[epoch]; ok && other != id {
		l.reused = append(l.reused, fmt.Sprintf("epoch %d: %s and %s", epoch, api.ShortID(other), api.ShortID(id)))
		return
	}
	l.epochs[epoch] = id
}

// maxEpoch returns the highest epoch seen so far and its session.
func (l *ledger) maxEpoch() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m uint64
	for e := range l.epochs {
		m = max(m, e)
	}
	return m, l.epochs[m]
}

// killClient runs one client of a round until its first error (the kill):
// join, wait by long-poll until active, then (with lab) acquire a small
// lab and release it, and leave; again.
func killClient(ctx context.Context, c *apiClient, l *ledger, lab bool) {
	topo := topologyYAML(2, "kill9churn")
	err := func() error {
		for {
			sent := time.Now()
			s, err := c.create(ctx)
			if err != nil {
				if statusOf(err) == 0 {
					l.mu.Lock()
					l.unacked++
					l.mu.Unlock()
				}
				return fmt.Errorf("create: %w", err)
			}
			e := l.created(sent, s)
			st := api.SessionStatus{Status: s.Status}
			for st.Status != api.StatusActive {
				if st, err = c.status(ctx, s.SessionID, 30*time.Second); err != nil {
					return fmt.Errorf("wait: %w", err)
				}
				l.saw(s.SessionID, st.Status, st.Epoch)
			}
			if lab {
				if _, err := c.acquire(ctx, s.SessionID, upload{Topo: topo}); err != nil {
					return fmt.Errorf("acquire: %w", err)
				}
				if err := c.release(ctx, s.SessionID); err != nil {
					return fmt.Errorf("release: %w", err)
				}
			}
			l.mu.Lock()
			e.deleteSent = true
			l.mu.Unlock()
			if err := c.leave(ctx, s.SessionID); err != nil {
				return fmt.Errorf("leave: %w", err)
			}
			l.mu.Lock()
			e.deleteAcked = true
			l.mu.Unlock()
		}
	}()
	l.mu.Lock()
	l.errs[classify(err)]++
	l.mu.Unlock()
}

// runKill9Churn runs cfg.KillRounds rounds against remotelabd on one
// state directory. In each, cfg.KillClients clients churn (join, wait,
// acquire and release a lab, leave) and as many only join, wait their
// turn and leave; at a random point the harness kills remotelabd with
// SIGKILL, waits for every client to fail, restarts it on the same state
// directory and port, and checks what the restarted server has against
// what its clients were told: every session whose creation was
// acknowledged and that was not deleted is there, under the same id; no
// session whose deletion was acknowledged is; none twice; the order is
// consistent with creation (a session created after another's creation
// was acknowledged is behind it), so the holder is the earliest
// survivor; the sessions of a GET /queue taken just before the kill that
// survive keep that order; and no epoch went back or was handed out twice. Then it evicts
// the survivors, so each round starts empty.
func runKill9Churn(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer func() { srv.Stop() }()
	l := &ledger{epochs: map[uint64]string{}, errs: map[string]int{}}
	var restarts []time.Duration
	var survived, acked, deletedAcked, unackedFound, unacked int
	viol := map[string]int{}
	labs := map[string]int{}
	for round := range cfg.KillRounds {
		l.mu.Lock()
		l.sessions, l.unacked = nil, 0
		l.mu.Unlock()
		before, beforeID := l.maxEpoch()

		c := newAPIClient(srv.URL, 4*cfg.KillClients, 1)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		var wg sync.WaitGroup
		for i := range 2 * cfg.KillClients {
			wg.Go(func() { killClient(cctx, c, l, i < cfg.KillClients) })
		}
		_ = clock.Sleep(ctx, killAfterMin+rand.N(killAfterSpread))
		// The queue just before the kill: a FIFO never reorders, so the
		// sessions in it that survive must keep this order.
		var snapshot []string
		if q, err := c.queue(ctx); err == nil {
			snapshot = queueOrder(q)
		}
		srv.Kill()
		wg.Wait()
		cancel()
		c.Close()

		old := srv
		t0 := time.Now()
		if srv, err = old.Restart(ctx); err != nil {
			srv = old
			return fmt.Errorf("round %d: %w", round+1, err)
		}
		c = newAPIClient(srv.URL, 8, 1)
		q, err := c.queue(ctx)
		if err != nil {
			c.Close()
			return fmt.Errorf("round %d: GET /queue after the restart: %w", round+1, err)
		}
		restarts = append(restarts, time.Since(t0))
		labs[q.Lab.State]++

		order := queueOrder(q)
		l.mu.Lock()
		sessions := slices.Clone(l.sessions)
		unacked += l.unacked
		l.mu.Unlock()
		facts := restored{sessions: sessions, present: map[string]bool{}, order: order, snapshot: snapshot,
			before: before, beforeID: beforeID}
		for _, s := range sessions {
			st, err := c.status(ctx, s.id, 0)
			if err != nil && statusOf(err) != http.StatusNotFound {
				c.Close()
				return fmt.Errorf("round %d: status of %s: %w", round+1, api.ShortID(s.id), err)
			}
			if err == nil {
				facts.present[s.id] = true
				l.saw(s.id, st.Status, st.Epoch)
			}
		}
		if h := q.Holder; h != nil && h.Epoch != nil {
			facts.holder, facts.holderEpoch = h.ID, *h.Epoch
			id := h.ID
			for _, s := range sessions {
				if api.ShortID(s.id) == h.ID {
					id = s.id
				}
			}
			l.saw(id, api.StatusActive, *h.Epoch)
		}
		for _, f := range facts.check() {
			viol[f.kind]++
			if viol[f.kind] <= 3 {
				r.violate("round %d: %s", round+1, f.msg)
			}
		}
		st := facts.stats()
		acked += len(sessions)
		survived += st.present
		deletedAcked += st.deletedAcked
		unackedFound += st.unknown
		// Next round from an empty queue.
		for _, id := range order {
			if err := c.evict(ctx, id, "kill9churn: next round"); err != nil && statusOf(err) != http.StatusNotFound {
				c.Close()
				return fmt.Errorf("round %d: evict %s: %w", round+1, id, err)
			}
		}
		c.Close()
	}
	l.mu.Lock()
	reused := slices.Clone(l.reused)
	errs := maps.Clone(l.errs)
	l.mu.Unlock()
	for _, s := range reused {
		viol["epoch"]++
		r.violate("epoch handed out twice: %s", s)
	}
	r.add("rounds", "%d kill -9 of remotelabd, %d churning and %d waiting clients", cfg.KillRounds, cfg.KillClients, cfg.KillClients)
	r.add("restart (exec) → first GET /queue answered", "%s", summarize(restarts))
	r.add("acknowledged creations checked", "%d (%d present after the restart, %d deletions acknowledged); %d creates unanswered, %d unacknowledged sessions found",
		acked, survived, deletedAcked, unacked, unackedFound)
	r.add("lab after the restart", "%s", countsString(labs))
	r.add("clients' ends at the kills", "%s", countsString(errs))
	r.add("lost / undeleted / duplicated / out of order / holder / epoch", "%d / %d / %d / %d / %d / %d",
		viol["lost"], viol["undeleted"], viol["duplicated"], viol["order"], viol["holder"], viol["epoch"])
	return nil
}

// restored is what a restarted server showed after a kill -9, beside
// what its clients had been told before.
type restored struct {
	sessions    []*ledgerEntry  // the round's acknowledged creations
	present     map[string]bool // full id → GET /session/{id} found it
	order       []string        // short ids GET /queue listed, in order
	snapshot    []string        // short ids of a GET /queue just before the kill
	holder      string          // short id of the active holder ("" none)
	holderEpoch uint64          // and its epoch
	before      uint64          // the highest epoch seen before the kill
	beforeID    string          // the session it was seen with
}

// finding is one violation: its kind and what it says.
type finding struct{ kind, msg string }

// check returns every way the restarted server contradicts what its
// clients were told: an acknowledged session that was not deleted is
// missing ("lost"), one whose deletion was acknowledged is back
// ("undeleted"), a session is listed twice ("duplicated"), a session is
// ahead of one whose creation was acknowledged before its own creation
// was sent, or the sessions of the last snapshot came back in another
// order ("order"; "holder" when it is the head), or the holder's epoch is
// below the highest seen before or repeats it for another session
// ("epoch").
func (x restored) check() []finding {
	var out []finding
	add := func(kind, format string, args ...any) {
		out = append(out, finding{kind, fmt.Sprintf(format, args...)})
	}
	index := map[string]int{}
	for i, id := range x.order {
		if _, dup := index[id]; dup {
			add("duplicated", "session %s listed twice", id)
		}
		index[id] = i
	}
	known := map[string]*ledgerEntry{}
	for _, s := range x.sessions {
		short := api.ShortID(s.id)
		known[short] = s
		_, listed := index[short]
		switch {
		case s.deleteAcked && (x.present[s.id] || listed):
			add("undeleted", "session %s is back although its deletion was acknowledged", short)
		case !s.deleteSent && (!x.present[s.id] || !listed):
			add("lost", "acknowledged session %s lost (found %t, listed %t)", short, x.present[s.id], listed)
		}
	}
	// Walking the queue from its tail, the earliest acknowledgement
	// behind each session must not precede that session's creation.
	var minAck time.Time
	for i := len(x.order) - 1; i >= 0; i-- {
		s := known[x.order[i]]
		if s == nil {
			continue // its creation was never acknowledged
		}
		if !minAck.IsZero() && minAck.Before(s.sent) {
			kind, what := "order", "out of creation order"
			if i == 0 {
				kind, what = "holder", "the holder is not the earliest surviving session"
			}
			add(kind, "%s: session %s is ahead of one acknowledged before it was created", what, x.order[i])
		}
		if minAck.IsZero() || s.acked.Before(minAck) {
			minAck = s.acked
		}
	}
	if a, b := common(x.snapshot, index), common(x.order, toSet(x.snapshot)); !slices.Equal(a, b) {
		add("order", "the sessions queued just before the kill came back in another order (%d of them)", len(a))
	}
	if x.holder != "" {
		switch {
		case x.holderEpoch < x.before:
			add("epoch", "epoch went back: the holder has %d, %d was seen before the kill", x.holderEpoch, x.before)
		case x.holderEpoch == x.before && api.ShortID(x.beforeID) != x.holder:
			add("epoch", "epoch %d handed out again (to %s)", x.before, x.holder)
		}
	}
	return out
}

// restoredStats counts what check looked at.
type restoredStats struct{ present, deletedAcked, unknown int }

func (x restored) stats() restoredStats {
	var st restoredStats
	known := map[string]bool{}
	for _, s := range x.sessions {
		known[api.ShortID(s.id)] = true
		if x.present[s.id] {
			st.present++
		}
		if s.deleteAcked {
			st.deletedAcked++
		}
	}
	for _, id := range x.order {
		if !known[id] {
			st.unknown++
		}
	}
	return st
}

// queueOrder lists a /queue document's short ids in queue order.
func queueOrder(q api.Queue) []string {
	var ids []string
	if q.Holder != nil {
		ids = append(ids, q.Holder.ID)
	}
	for _, w := range q.Waiting {
		ids = append(ids, w.ID)
	}
	return ids
}

// common returns the ids of list that are in set, in list's order.
func common[V any](list []string, set map[string]V) []string {
	var out []string
	for _, id := range list {
		if _, ok := set[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

func toSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// countsString prints "2 × a, 1 × b" in key order.
func countsString(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
