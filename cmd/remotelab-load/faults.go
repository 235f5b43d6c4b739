package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// churnTopology is the lab every churn client acquires.
var churnTopology = topologyYAML(3, "churn")

// churnSession is one session of a churn run, in creation order.
type churnSession struct {
	id      string
	epoch   uint64
	active  time.Time // when its client saw it active
	leaving time.Time // just before its client sent DELETE
	seen    bool
	left    bool
}

// churnResult is what a churn run saw.
type churnResult struct {
	sessions []*churnSession
	fifo     int            // sessions active before every earlier session was leaving
	dup      int            // sessions seen promoted twice
	errs     map[string]int // each client's ending error, by class
	ends     []time.Time    // when each client stopped
	elapsed  time.Duration
}

// runChurn runs clients that each, until dur has passed, create a session
// (one at a time across clients, so creation order is known), wait for
// it by long-poll, acquire the churn lab, release it and leave. A client
// stops at its first error.
func runChurn(ctx context.Context, c *apiClient, clients int, dur, wait time.Duration) *churnResult {
	var createMu, mu sync.Mutex
	res := &churnResult{errs: map[string]int{}, ends: make([]time.Time, clients)}
	minNotLeaving := 0 // every session before it is leaving or gone
	t0 := time.Now()
	until := t0.Add(dur)

	leaveNow := func(cs *churnSession) error {
		mu.Lock()
		cs.leaving, cs.left = time.Now(), true
		for minNotLeaving < len(res.sessions) && res.sessions[minNotLeaving].left {
			minNotLeaving++
		}
		mu.Unlock()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return c.leave(lctx, cs.id)
	}
	cycle := func(cs *churnSession, k int, created api.CreateSessionResponse) error {
		st, err := c.waitActive(ctx, created, wait)
		if err != nil {
			_ = leaveNow(cs)
			return fmt.Errorf("wait: %w", err)
		}
		mu.Lock()
		if minNotLeaving < k {
			res.fifo++
		}
		if cs.seen {
			res.dup++
		}
		cs.seen, cs.active, cs.epoch = true, time.Now(), st.Epoch
		mu.Unlock()
		if _, err := c.acquire(ctx, cs.id, upload{Topo: churnTopology}); err != nil {
			_ = leaveNow(cs)
			return fmt.Errorf("acquire: %w", err)
		}
		if err := c.release(ctx, cs.id); err != nil {
			_ = leaveNow(cs)
			return fmt.Errorf("release: %w", err)
		}
		if err := leaveNow(cs); err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		return nil
	}
	var wg sync.WaitGroup
	for ci := range clients {
		wg.Go(func() {
			defer func() { res.ends[ci] = time.Now() }()
			// Every client runs at least one cycle.
			for first := true; first || time.Now().Before(until) && ctx.Err() == nil; first = false {
				createMu.Lock()
				s, err := c.create(ctx)
				var cs *churnSession
				k := 0
				if err == nil {
					cs = &churnSession{id: s.SessionID}
					mu.Lock()
					k = len(res.sessions)
					res.sessions = append(res.sessions, cs)
					mu.Unlock()
				}
				createMu.Unlock()
				if err == nil {
					err = cycle(cs, k, s)
				} else {
					err = fmt.Errorf("create: %w", err)
				}
				if err != nil {
					mu.Lock()
					res.errs[classify(err)]++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	return res
}

// served returns how many sessions were seen active.
func (res *churnResult) served() int {
	n := 0
	for _, s := range res.sessions {
		if s.seen {
			n++
		}
	}
	return n
}

// handovers returns, for each session after the first, the time from its
// predecessor starting to leave to it knowing it is active.
func (res *churnResult) handovers() []time.Duration {
	var lat []time.Duration
	for k := 1; k < len(res.sessions); k++ {
		p, s := res.sessions[k-1], res.sessions[k]
		if s.seen && p.seen && p.left {
			lat = append(lat, s.active.Sub(p.leaving))
		}
	}
	return lat
}

// epochErrors counts promoted sessions whose epoch is not above that of
// the session promoted before them.
func (res *churnResult) epochErrors() int {
	n := 0
	var last uint64
	for _, s := range res.sessions {
		if !s.seen {
			continue
		}
		if s.epoch <= last {
			n++
		}
		last = s.epoch
	}
	return n
}

// oneCycle runs a single session through the churn lab.
func oneCycle(ctx context.Context, c *apiClient) error {
	res := runChurn(ctx, c, 1, time.Nanosecond, time.Second)
	if len(res.errs) > 0 {
		return fmt.Errorf("warm-up cycle: %v", res.errs)
	}
	return nil
}

// runChurnScenario churns against httpserver in a child process (so the
// server's goroutines can be counted before and after).
func runChurnScenario(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.inproc(ctx, 0)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg := e.cfg
	c := newAPIClient(srv.URL, cfg.ChurnClients+8, 1)
	defer c.Close()
	// One cycle first, so the baseline has the warm lab and its state.
	if err := oneCycle(ctx, c); err != nil {
		return err
	}
	c.Close()
	g0 := srv.SettledGoroutines(ctx, -1, 5*time.Second)
	cctx, cancel := context.WithTimeout(ctx, cfg.ChurnDuration+time.Minute)
	res := runChurn(cctx, c, cfg.ChurnClients, cfg.ChurnDuration, cfg.LongPoll)
	cancel()
	c.Close()
	g1 := srv.SettledGoroutines(ctx, g0, 10*time.Second)

	n, served := len(res.sessions), res.served()
	r.add("sessions served", "%d by %d clients in %s (%.0f/s: create, long-poll, acquire, release, leave)",
		served, cfg.ChurnClients, fmtDur(res.elapsed), float64(served)/res.elapsed.Seconds())
	r.add("hand-over under churn", "%s", summarize(res.handovers()))
	checkWakeups(r, res.handovers(), cfg.LongPoll)
	r.add("FIFO violations", "%d", res.fifo)
	r.add("lost promotions", "%d (created %d, promoted before the run's bound of %s: %d)", n-served, n, cfg.ChurnDuration+time.Minute, served)
	r.add("duplicated promotions", "%d (seen twice %d, epoch not increasing %d)", res.dup+res.epochErrors(), res.dup, res.epochErrors())
	r.add("server goroutines", "%d before → %d after (idle connections closed)", g0, g1)
	if res.fifo > 0 {
		r.violate("%d FIFO violations", res.fifo)
	}
	if n != served {
		r.violate("%d promotions lost", n-served)
	}
	if res.dup+res.epochErrors() > 0 {
		r.violate("%d duplicated promotions", res.dup+res.epochErrors())
	}
	if len(res.errs) > 0 {
		r.violate("client errors: %v", res.errs)
	}
	if g0 < 0 || g1 > g0 {
		r.violate("server goroutines %d before, %d after", g0, g1)
	}
	if h, err := c.health(ctx); err != nil || h.Sessions != 0 {
		r.violate("sessions left after churn: %d (%v)", h.Sessions, err)
	}
	return nil
}

// runKill9 kills -9 a client process that holds the lab and measures how
// long the next session waits. The server runs with --active-ttl
// cfg.KillTTL; the holder heartbeats every holdHeartbeat until it is
// killed (config.validate keeps the TTL at least killTTLMargin
// heartbeats long).
func runKill9(ctx context.Context, e *env, r *scenarioReport) error {
	ttl := e.cfg.KillTTL
	srv, err := e.remotelabd(ctx, "--active-ttl", ttl.String())
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := newAPIClient(srv.URL, 4, 1)
	defer c.Close()

	holder := exec.Command(e.cfg.Self)
	holder.Env = append(os.Environ(), roleEnv+"="+roleHold, urlEnv+"="+srv.URL)
	holder.Stderr = os.Stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		return err
	}
	if err := holder.Start(); err != nil {
		return fmt.Errorf("start holder: %w", err)
	}
	line := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), holdingPrefix); ok {
				select {
				case line <- s:
				default:
				}
			}
		}
	}()
	exited := make(chan struct{})
	go func() {
		<-scanned // Wait closes the pipe, so read it to the end first
		_ = holder.Wait()
		close(exited)
	}()
	defer func() {
		_ = holder.Process.Kill()
		<-exited
	}()
	select {
	case <-line:
	case <-exited:
		return fmt.Errorf("holder exited before holding the lab")
	case <-time.After(30 * time.Second):
		return fmt.Errorf("holder did not hold the lab within 30 s")
	}
	w, err := c.create(ctx)
	if err != nil {
		return err
	}
	// The heartbeating holder outlives its TTL. (The random part keeps
	// the kill off the holder's heartbeat phase.)
	_ = clock.Sleep(ctx, ttl*3/2+rand.N(holdHeartbeat))
	if st, err := c.status(ctx, w.SessionID, 0); err != nil || st.Status != api.StatusWaiting {
		r.violate("waiter is %q (%v) while the holder heartbeats", st.Status, err)
		return nil
	}
	type result struct {
		at  time.Time
		err error
	}
	promoted := make(chan result, 1)
	wctx, cancel := context.WithTimeout(ctx, ttl+time.Minute)
	defer cancel()
	go func() {
		_, err := c.waitActive(wctx, w, e.cfg.LongPoll)
		promoted <- result{time.Now(), err}
	}()
	tKill := time.Now()
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill holder: %w", err)
	}
	p := <-promoted
	if p.err != nil {
		r.violate("waiter not promoted after kill -9: %v", p.err)
		return nil
	}
	r.add("next session active after kill -9 of the holder", "%s (--active-ttl %s, holder heartbeat %s)",
		fmtDur(p.at.Sub(tKill)), ttl, holdHeartbeat)
	ls, err := c.labStatus(ctx, w.SessionID)
	if err != nil {
		return fmt.Errorf("lab status: %w", err)
	}
	r.add("lab at promotion", "state %s, ref_count %d (the dead holder's references dropped)", ls.State, ls.RefCount)
	if ls.RefCount != 0 {
		r.violate("lab still referenced after the holder expired: ref_count %d", ls.RefCount)
	}
	t0 := time.Now()
	res, err := c.acquire(ctx, w.SessionID, upload{Topo: topologyYAML(2, "kill9")})
	if err != nil {
		r.violate("next session cannot acquire: %v", err)
		return nil
	}
	r.add("next session acquires the same lab", "%s, reused=%t", fmtDur(time.Since(t0)), res.Reused)
	r.add("kill -9 → lab usable by the next session", "%s", fmtDur(time.Since(tKill)))
	return c.leave(ctx, w.SessionID)
}

// runSigterm sends SIGTERM to remotelabd in the middle of a churn, twice:
// by default (the lab is kept for the next start, and so is the queue)
// and with --teardown-on-exit (the lab is torn down). Each time every
// client must end with a clear error, the server must exit 0 with no
// process of its group left, and leave behind only what it keeps on
// purpose.
func runSigterm(ctx context.Context, e *env, r *scenarioReport) error {
	if err := sigtermOnce(ctx, e, r, false); err != nil {
		return err
	}
	return sigtermOnce(ctx, e, r, true)
}

// keptFile reports whether a file left in a stopped server's TMPDIR is
// one it keeps on purpose: the state file and the audit log always, the
// lab's working directory when the lab is kept.
func keptFile(rel string, labKept bool) bool {
	switch {
	case rel == "state/state.db", rel == "state/audit.jsonl":
		return true
	case strings.HasPrefix(rel, "state/sim/labs/"):
		return labKept
	}
	return false
}

func sigtermOnce(ctx context.Context, e *env, r *scenarioReport, teardown bool) error {
	var extra []string
	mode := "default (lab kept)"
	if teardown {
		extra = []string{"--teardown-on-exit"}
		mode = "--teardown-on-exit"
	}
	srv, err := e.remotelabd(ctx, extra...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg := e.cfg
	c := newAPIClient(srv.URL, cfg.ChurnClients+8, 1)
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, cfg.ChurnDuration+time.Minute)
	defer cancel()
	done := make(chan *churnResult, 1)
	go func() { done <- runChurn(cctx, c, cfg.ChurnClients, time.Hour, cfg.LongPoll) }()

	_ = clock.Sleep(ctx, cfg.ChurnDuration/2)
	tTerm := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	code, werr := srv.WaitExit(time.Minute)
	tExit := time.Since(tTerm)
	res := <-done
	var last time.Duration
	for _, t := range res.ends {
		last = max(last, t.Sub(tTerm))
	}
	r.add(mode+": SIGTERM → exit", "%s, exit code %d, %d clients, %d sessions served before", fmtDur(tExit), code, cfg.ChurnClients, res.served())
	r.add(mode+": SIGTERM → last client saw its error", "%s", fmtDur(last))
	for _, k := range slices.Sorted(maps.Keys(res.errs)) {
		r.add(mode+": client ending error", "%d × %s", res.errs[k], k)
	}
	if werr != nil {
		r.violate("%s: %v", mode, werr)
		return nil
	}
	if code != 0 {
		r.violate("%s: exit code %d: %s", mode, code, srv.Tail(10))
	}
	ended := 0
	for k, v := range res.errs {
		ended += v
		if strings.HasPrefix(k, "timeout") || strings.HasPrefix(k, "decode") || k == "cancelled" {
			r.violate("%s: %d clients saw no clear error: %s", mode, v, k)
		}
	}
	if ended != cfg.ChurnClients {
		r.violate("%s: %d of %d clients ended without an error", mode, cfg.ChurnClients-ended, cfg.ChurnClients)
	}
	if srv.GroupAlive() {
		r.violate("%s: processes of the server's group still alive", mode)
	}
	want := `msg="Keeping the lab for the next start"`
	if teardown {
		want = `msg="Lab torn down"`
	}
	seen := ""
	for _, l := range srv.Logs() {
		if strings.Contains(l, want) {
			seen = l
		}
	}
	switch {
	case seen != "":
		r.add(mode+": lab at shutdown", "%s", seen[strings.Index(seen, "msg="):])
	case res.served() > 0:
		r.violate("%s: no %s in the server's log after SIGTERM", mode, want)
	}
	var kept, stray []string
	for _, f := range srv.Leftovers() {
		if keptFile(f, !teardown) {
			kept = append(kept, f)
		} else {
			stray = append(stray, f)
		}
	}
	if len(stray) > 0 {
		r.violate("%s: left behind in TMPDIR/state dir: %v", mode, stray)
	} else {
		r.add(mode+": left behind", "no process, no spool file, no metadata; kept: %s", strings.Join(kept, ", "))
	}
	if e.cfg.Verbose {
		e.logf("server log tail:\n%s", srv.Tail(15))
	}
	return nil
}
