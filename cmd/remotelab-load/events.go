package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// eventSpacing is the least time between two changes of the events
// scenario: above the server's coalescing interval (250 ms), so each
// change gets an event of its own without waiting out the interval.
const eventSpacing = 300 * time.Millisecond

// change is one change of the events scenario: the marker its new
// document holds, and when the change's answer arrived.
type change struct {
	marker   []byte
	answered time.Time
}

// viewer reads one GET /events stream and records, for every change,
// when it first received a document holding the change's marker.
type viewer struct {
	got []atomic.Int64 // by change index: unix nanoseconds, 0 until seen
}

// gotAt returns when the viewer got change k (zero: not yet).
func (v *viewer) gotAt(k int) time.Time {
	if n := v.got[k].Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// runEvents puts cfg.EventWaiters sessions in the queue and cfg.Viewers
// viewers on GET /events, then makes cfg.EventChanges changes, spaced
// 300–400 ms apart, alternately a join (with a label only it has) and the
// head leaving (the next session becomes the holder). For each change it
// measures the time from the change's answer to the last viewer holding a
// document that shows it. Then cfg.EventBursts times two joins back to
// back, each followed by a quiet second: every viewer must get a document
// with the second join (else the update was lost). Last it measures GET
// /queue with the queue still that long.
func runEvents(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := newAPIClient(srv.URL, 32, 1)
	defer c.Close()
	holder, err := c.create(ctx)
	if err != nil {
		return err
	}
	ids, pos, err := createMany(ctx, c, cfg.EventWaiters, 16)
	if err != nil {
		return err
	}
	queue := make([]string, len(ids)+1) // in queue order
	queue[0] = holder.SessionID
	for i, id := range ids {
		if pos[i] < 1 || pos[i] >= len(queue) || queue[pos[i]] != "" {
			return fmt.Errorf("session %s created at position %d", api.ShortID(id), pos[i])
		}
		queue[pos[i]] = id
	}

	// The spaced changes, then the bursts: the second join of each
	// burst is measured.
	spaced := cfg.EventChanges
	changes := make([]change, spaced+cfg.EventBursts)
	var current atomic.Int64 // the change the viewers look for; -1 none
	current.Store(-1)
	viewers := make([]*viewer, cfg.Viewers)
	vctx, stopViewers := context.WithCancel(ctx)
	defer stopViewers()
	vc := newAPIClient(srv.URL, cfg.Viewers, 1)
	defer vc.Close()
	var ready, wg sync.WaitGroup
	var mu sync.Mutex
	var viewErr error
	for i := range viewers {
		v := &viewer{got: make([]atomic.Int64, len(changes))}
		viewers[i] = v
		ready.Add(1)
		wg.Go(func() {
			err := v.watch(vctx, vc, &ready, func(doc []byte, at time.Time) {
				k := current.Load()
				if k >= 0 && v.got[k].Load() == 0 && bytes.Contains(doc, changes[k].marker) {
					v.got[k].Store(at.UnixNano())
				}
			})
			if err != nil && vctx.Err() == nil {
				mu.Lock()
				viewErr = err
				mu.Unlock()
			}
		})
	}
	ready.Wait()

	join := func(k int, tag string) error {
		s, err := c.createWith(ctx, api.SessionRequest{Labels: map[string]string{"mark": tag}})
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if k >= 0 {
			changes[k].answered = time.Now()
		}
		queue = append(queue, s.SessionID)
		return nil
	}
	for k := range spaced {
		_ = clock.Sleep(ctx, eventSpacing+rand.N(100*time.Millisecond))
		if k%2 == 0 {
			tag := fmt.Sprintf("change-%d", k)
			changes[k].marker = []byte(`{"mark":"` + tag + `"}`)
			current.Store(int64(k))
			if err := join(k, tag); err != nil {
				return err
			}
		} else {
			next := queue[1]
			changes[k].marker = []byte(`"holder":{"id":"` + api.ShortID(next) + `"`)
			current.Store(int64(k))
			if err := c.leave(ctx, queue[0]); err != nil {
				return fmt.Errorf("head leaves: %w", err)
			}
			changes[k].answered = time.Now()
			queue = queue[1:]
		}
	}
	// awaitAll gives change k at most a second to reach every viewer.
	awaitAll := func(k int) {
		deadline := time.Now().Add(time.Second)
		for !allGot(viewers, k) && time.Now().Before(deadline) {
			_ = clock.Sleep(ctx, 10*time.Millisecond)
		}
	}
	if spaced > 0 {
		awaitAll(spaced - 1)
	}
	// Bursts: two joins back to back after a quiet time, so the second
	// one's change comes while the server builds or sends the document
	// of the first. With no change after it, a document that never
	// shows it is a lost update.
	for k := spaced; k < len(changes); k++ {
		_ = clock.Sleep(ctx, eventSpacing+rand.N(100*time.Millisecond))
		tag := fmt.Sprintf("burst-%d", k)
		changes[k].marker = []byte(`{"mark":"` + tag + `"}`)
		current.Store(int64(k))
		if err := join(-1, tag+"-first"); err != nil {
			return err
		}
		if err := join(k, tag); err != nil {
			return err
		}
		awaitAll(k)
	}
	current.Store(-1)
	stopViewers()
	wg.Wait()

	var joins, leaves, all, bursts []time.Duration
	missed, late, lost := 0, 0, 0
	for k, ch := range changes {
		var last time.Time
		for _, v := range viewers {
			at := v.gotAt(k)
			if at.IsZero() {
				if k >= spaced {
					lost++
				} else {
					missed++
				}
				continue
			}
			if at.After(last) {
				last = at
			}
			if k+1 < spaced && !at.Before(changes[k+1].answered) {
				late++ // only the next change's document showed it
			}
		}
		if last.IsZero() {
			continue
		}
		d := max(last.Sub(ch.answered), 0) // a viewer may see it before the answer arrives
		switch {
		case k >= spaced:
			bursts = append(bursts, d)
			continue
		}
		all = append(all, d)
		if k%2 == 0 {
			joins = append(joins, d)
		} else {
			leaves = append(leaves, d)
		}
	}
	r.add("change answered → last of the viewers has it", "%s", summarize(all))
	r.add("  a join", "%s", summarize(joins))
	r.add("  the head leaving", "%s", summarize(leaves))
	r.add("setup", "%d waiting sessions, %d viewers on GET /events, %d changes spaced %s–%s",
		cfg.EventWaiters, cfg.Viewers, spaced, eventSpacing, eventSpacing+100*time.Millisecond)
	r.add("(viewer, change) pairs first shown by the next change's document", "%d of %d", late, len(viewers)*max(spaced-1, 0))
	r.add("second of two joins back to back → last viewer", "%s (%d bursts; %d (viewer, burst) pairs never shown within 1 s)",
		summarize(bursts), len(changes)-spaced, lost)
	if missed > 0 {
		r.violate("%d (viewer, change) pairs never received the change's document", missed)
	}
	if lost > 0 {
		r.violate("lost update: %d (viewer, burst) pairs never received the second join's document (no change followed it for 1 s)", lost)
	}
	if viewErr != nil {
		r.violate("a viewer's stream failed: %v", viewErr)
	}

	var size int
	var lat []time.Duration
	for range cfg.QueueGets {
		t0 := time.Now()
		q, n, err := c.queueSize(ctx)
		if err != nil {
			return fmt.Errorf("GET /queue: %w", err)
		}
		lat = append(lat, time.Since(t0))
		size = n
		if got := len(q.Waiting) + 1; got != len(queue) {
			r.violate("GET /queue lists %d sessions, want %d", got, len(queue))
			break
		}
	}
	r.add(fmt.Sprintf("GET /queue with %d sessions (%s)", len(queue), fmtKiB(size)), "%s", summarize(lat))
	return nil
}

// allGot reports whether every viewer has change k.
func allGot(vs []*viewer, k int) bool {
	for _, v := range vs {
		if v.got[k].Load() == 0 {
			return false
		}
	}
	return true
}

// watch reads the GET /events stream and calls seen with each document's
// data and the time it arrived. It calls ready.Done once the first
// document (the current queue) is in. It returns when ctx ends or the
// stream fails.
func (v *viewer) watch(ctx context.Context, c *apiClient, ready *sync.WaitGroup, seen func(doc []byte, at time.Time)) error {
	var once sync.Once
	defer once.Do(ready.Done)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/events", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if doc, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
			seen(doc, time.Now())
			once.Do(ready.Done)
		}
	}
	return sc.Err()
}

// fmtKiB prints a byte count in KiB.
func fmtKiB(n int) string { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }
