package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// floodUnbounded is the --max-sessions of the flood scenario's
// comparison server: in effect no bound.
const floodUnbounded = 1000000

// holderPollEvery is how often the flood scenario's holder polls.
const holderPollEvery = 50 * time.Millisecond

// runFlood floods POST /session (sessions that never leave) from
// cfg.FloodWorkers workers for cfg.FloodDuration while the holder polls
// its status every 50 ms, against remotelabd with --max-sessions
// cfg.FloodCap (429 once full) and then with --max-sessions 1000000.
func runFlood(ctx context.Context, e *env, r *scenarioReport) error {
	for _, limit := range []int{e.cfg.FloodCap, floodUnbounded} {
		srv, err := e.remotelabd(ctx, "--max-sessions", strconv.Itoa(limit))
		if err != nil {
			return err
		}
		err = floodOn(ctx, e, r, srv, limit)
		srv.Stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func floodOn(ctx context.Context, e *env, r *scenarioReport, srv *server, limit int) error {
	cfg := e.cfg
	name := fmt.Sprintf("--max-sessions %d", limit)
	c := newAPIClient(srv.URL, cfg.FloodWorkers+8, 1)
	defer c.Close()
	holder, err := c.create(ctx)
	if err != nil {
		return err
	}
	rss0, _, _ := srv.RSS()
	fctx, cancel := context.WithTimeout(ctx, cfg.FloodDuration)
	defer cancel()

	var polls []time.Duration
	pollErrs := map[string]int{}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(holderPollEvery)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			t0 := time.Now()
			st, err := c.status(fctx, holder.SessionID, 0)
			switch {
			case fctx.Err() != nil:
				return
			case err != nil:
				pollErrs[classify(err)]++
			case st.Status != api.StatusActive:
				pollErrs["holder not active: "+st.Status]++
			default:
				polls = append(polls, time.Since(t0))
			}
		}
	})
	var created, full atomic.Int64
	var filled atomic.Int64 // ns after t0 of the first 429
	var mu sync.Mutex
	floodErrs := map[string]int{}
	t0 := time.Now()
	for range cfg.FloodWorkers {
		wg.Go(func() {
			for fctx.Err() == nil {
				_, err := c.create(fctx)
				switch {
				case err == nil:
					created.Add(1)
				case fctx.Err() != nil:
				case statusOf(err) == http.StatusTooManyRequests:
					if full.Add(1) == 1 {
						filled.Store(int64(time.Since(t0)))
					}
				default:
					mu.Lock()
					floodErrs[classify(err)]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	rss, hwm, _ := srv.RSS()
	h, herr := c.health(ctx)

	n := created.Load()
	fill := elapsed
	if f := filled.Load(); f > 0 {
		fill = time.Duration(f)
	}
	r.add(name+": sessions created", "%d in %s (%.0f/s, %d workers); then %d × 429 in %s", n, fmtDur(fill),
		float64(n)/fill.Seconds(), cfg.FloodWorkers, full.Load(), fmtDur(elapsed-fill))
	r.add(name+": holder status poll during the flood", "%s (every %s)", summarize(polls), holderPollEvery)
	r.add(name+": server RSS", "%s before → %s at the end (peak %s) with %d sessions", fmtMiB(rss0), fmtMiB(rss), fmtMiB(hwm), n+1)
	if len(pollErrs) > 0 {
		r.violate("%s: holder polls failed: %v", name, pollErrs)
	}
	if len(floodErrs) > 0 {
		r.violate("%s: creates failed other than 429: %v", name, floodErrs)
	}
	switch {
	case herr != nil:
		r.violate("%s: /debug/health: %v", name, herr)
	case int64(h.Sessions) < n+1 || int64(h.Sessions) > n+1+int64(cfg.FloodWorkers):
		// Creates cut off by the end of the flood may have joined
		// unacknowledged: at most one per worker.
		r.violate("%s: /debug/health counts %d sessions, %d were acknowledged", name, h.Sessions, n+1)
	case h.Sessions > limit:
		r.violate("%s: %d sessions admitted", name, h.Sessions)
	}
	if full.Load() > 0 && n+1 != int64(limit) {
		r.violate("%s: 429 with %d of %d places taken", name, n+1, limit)
	}
	return nil
}
