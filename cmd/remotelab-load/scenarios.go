package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// env is what scenarios share.
type env struct {
	cfg config
}

// scenario is one named measurement or fault test.
type scenario struct {
	name string
	run  func(ctx context.Context, e *env, r *scenarioReport) error
}

// scenarios run in this order.
var scenarios = []scenario{
	{"baseline", runBaseline},
	{"overhead", runOverhead},
	{"promotion-longpoll", runPromotionLongPoll},
	{"promotion-client", runPromotionClient},
	{"promotion-poll", runPromotionPoll},
	{"throughput", runThroughput},
	{"scale", runScale},
	{"lab-overhead", runLabOverhead},
	{"churn", runChurnScenario},
	{"kill9", runKill9},
	{"sigterm", runSigterm},
	{"hostile", runHostile},
	{"events", runEvents},
	{"flood", runFlood},
	{"persist", runPersist},
	{"restart", runRestart},
	{"kill9churn", runKill9Churn},
}

func scenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return n
}

func isScenario(name string) bool { return slices.Contains(scenarioNames(), name) }

// logf prints progress details with -v.
func (e *env) logf(format string, args ...any) {
	if e.cfg.Verbose {
		fmt.Fprintf(e.cfg.Out, "   "+format+"\n", args...)
	}
}

// remotelabd starts the daemon with the simulated runner and no lab
// delays on a free loopback port; extra flags are appended (the last of a
// repeated flag wins).
func (e *env) remotelabd(ctx context.Context, extra ...string) (*server, error) {
	return startProcess(ctx, "remotelabd", e.cfg.Bin, remotelabdArgs(extra...), nil)
}

// remotelabdArgs are the flags of every remotelabd the harness starts
// (sim runner without delays, loopback, a free port, its own state
// directory), then extra.
func remotelabdArgs(extra ...string) []string {
	return append([]string{"--runner", "sim", "--host", "127.0.0.1", "--port", "0",
		"--sim-up-delay", "0s", "--sim-down-delay", "0s", "--state-dir", stateDirArg}, extra...)
}

// inproc starts httpserver in a child process of this binary (role
// "serve"), which also reports its goroutines.
func (e *env) inproc(ctx context.Context, activeTTL time.Duration) (*server, error) {
	env := []string{roleEnv + "=" + roleServ}
	if activeTTL > 0 {
		env = append(env, ttlEnv+"="+activeTTL.String())
	}
	return startProcess(ctx, "httpserver", e.cfg.Self, nil, env)
}

// createMany creates n sessions with the given number of concurrent
// creators and returns their ids with the positions the server gave them.
func createMany(ctx context.Context, c *apiClient, n, workers int) ([]string, []int, error) {
	ids, pos := make([]string, n), make([]int, n)
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s, err := c.create(ctx)
				if err != nil {
					once.Do(func() { first = fmt.Errorf("create session %d: %w", i, err) })
					return
				}
				ids[i], pos[i] = s.SessionID, s.Position
			}
		})
	}
	wg.Wait()
	return ids, pos, first
}

// opener joins the queue and returns once the new session is active. It
// calls created as soon as the server has created the session (so the
// next session can be created behind it), and returns the session's epoch
// (0 if unknown) and a function that leaves the queue.
type opener func(ctx context.Context, created func()) (epoch uint64, leave func(context.Context) error, err error)

// rawOpener creates a session over the raw API and waits with wait.
func rawOpener(c *apiClient, wait func(ctx context.Context, s api.CreateSessionResponse) (api.SessionStatus, error)) opener {
	return func(ctx context.Context, created func()) (uint64, func(context.Context) error, error) {
		s, err := c.create(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("create: %w", err)
		}
		created()
		st, err := wait(ctx, s)
		if err != nil {
			return 0, nil, fmt.Errorf("wait: %w", err)
		}
		return st.Epoch, func(ctx context.Context) error { return c.leave(ctx, s.SessionID) }, nil
	}
}

// chainSlot is one session of a chain.
type chainSlot struct {
	epoch        uint64
	active, left time.Time
	err          error
}

// chain measures n hand-overs. Sessions are created strictly in order (the
// next one only after the server created the previous one), two waiters
// behind the holder; each session opens with open, holds the head for
// hold, and leaves. The latency of hand-over k is from just before
// session k sends DELETE to session k+1 knowing it is active. It also
// checks FIFO order and epochs.
func chain(ctx context.Context, n int, hold, wait time.Duration, open opener, r *scenarioReport) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make([]chainSlot, n+1)
	activated := make(chan int, n+1)
	var wg sync.WaitGroup
	start := func(k int) error {
		created := make(chan struct{})
		var once sync.Once
		wg.Go(func() {
			sl := &slots[k]
			defer once.Do(func() { close(created) })
			epoch, leave, err := open(ctx, func() { once.Do(func() { close(created) }) })
			if err != nil {
				sl.err = fmt.Errorf("session %d: %w", k, err)
				cancel()
				return
			}
			sl.active, sl.epoch = time.Now(), epoch
			activated <- k
			if k < n {
				_ = clock.Sleep(ctx, hold)
			}
			sl.left = time.Now()
			if err := leave(ctx); err != nil {
				sl.err = fmt.Errorf("leave session %d: %w", k, err)
				cancel()
			}
		})
		select {
		case <-created:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	created := 0
	var err error
loop:
	for done := 0; done <= n; done++ {
		k := -1
		if done > 0 {
			select {
			case k = <-activated:
			case <-ctx.Done():
				break loop
			}
		}
		for ; created <= min(k+3, n) && err == nil; created++ {
			err = start(created)
		}
		if err != nil {
			cancel()
			break
		}
	}
	wg.Wait()
	for _, sl := range slots {
		if sl.err != nil && (err == nil || errors.Is(err, context.Canceled)) {
			err = sl.err
		}
	}
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, n)
	fifo, epochs := 0, 0
	for k := range n {
		lat[k] = slots[k+1].active.Sub(slots[k].left)
		if lat[k] < 0 {
			fifo++
		}
		if slots[k+1].epoch != 0 && slots[k+1].epoch <= slots[k].epoch {
			epochs++
		}
	}
	if fifo > 0 {
		r.violate("%d sessions became active before their predecessor left", fifo)
	}
	if wait > 0 {
		checkWakeups(r, lat, wait)
	}
	if epochs > 0 {
		r.violate("%d promotions without a strictly increasing epoch", epochs)
	}
	return lat, nil
}

// checkWakeups reports long-poll hand-overs that took half the long-poll
// wait or longer: the waiter can only have learned of its promotion when
// its long-poll timed out, so the promotion did not wake it.
func checkWakeups(r *scenarioReport, lat []time.Duration, wait time.Duration) {
	lostWakeup := wait / 2
	n := 0
	for _, d := range lat {
		if d >= lostWakeup {
			n++
		}
	}
	if n > 0 {
		r.violate("%d of %d hand-overs took over %s: the promotion did not wake the waiter's long-poll", n, len(lat), lostWakeup)
	}
}

func runPromotionLongPoll(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := newAPIClient(srv.URL, 16, 1)
	defer c.Close()
	wait := func(ctx context.Context, s api.CreateSessionResponse) (api.SessionStatus, error) {
		return c.waitActive(ctx, s, e.cfg.LongPoll)
	}
	lat, err := chain(ctx, e.cfg.Handovers, e.cfg.Hold, e.cfg.LongPoll, rawOpener(c, wait), r)
	if err != nil {
		return err
	}
	r.add(fmt.Sprintf("hand-over, raw long-poll (?wait=%s)", e.cfg.LongPoll), "%s", summarize(lat))
	return nil
}

func runPromotionPoll(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := newAPIClient(srv.URL, 16, 1)
	defer c.Close()
	iv := e.cfg.PollInterval
	// Like the original client: poll every iv; the first poll after
	// creation, then a random phase, so the poll phase is uniform
	// relative to the holder's leave.
	wait := func(ctx context.Context, s api.CreateSessionResponse) (api.SessionStatus, error) {
		if s.Status == api.StatusActive {
			return api.SessionStatus{Status: s.Status, SessionDetails: s.SessionDetails}, nil
		}
		d := rand.N(iv)
		for {
			st, err := c.status(ctx, s.SessionID, 0)
			if err != nil || st.Status == api.StatusActive {
				return st, err
			}
			if err := clock.Sleep(ctx, d); err != nil {
				return st, err
			}
			d = iv
		}
	}
	lat, err := chain(ctx, e.cfg.PollHandovers, e.cfg.Hold, 0, rawOpener(c, wait), r)
	if err != nil {
		return err
	}
	r.add(fmt.Sprintf("hand-over, polling every %s (measured)", iv), "%s", summarize(lat))
	r.add(fmt.Sprintf("hand-over, polling every %s (model: phase uniform)", iv), "p50 %s  p99 %s  mean %s",
		fmtDur(iv/2), fmtDur(iv*99/100), fmtDur(iv/2))
	if iv != 5*time.Second {
		r.add("hand-over, polling every 5s (model: phase uniform)", "p50 2.500s  p99 4.950s  mean 2.500s")
	}
	return nil
}

// hammer runs fn from workers goroutines for d and returns the calls
// made, the failures (by class) and the latencies of the successful ones.
func hammer(ctx context.Context, workers int, d time.Duration, fn func(ctx context.Context) error) (int, map[string]int, []time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	errs := map[string]int{}
	calls := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var lat []time.Duration
			local := map[string]int{}
			n := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				err := fn(ctx)
				if ctx.Err() != nil {
					break // the phase ended mid-call
				}
				n++
				if err != nil {
					local[classify(err)]++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			calls += n
			for k, v := range local {
				errs[k] += v
			}
		})
	}
	wg.Wait()
	return calls, errs, all
}

func runThroughput(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg := e.cfg
	c := newAPIClient(srv.URL, cfg.Workers+32, 1)
	defer c.Close()
	if _, err := c.create(ctx); err != nil { // the holder
		return err
	}
	ids, _, err := createMany(ctx, c, cfg.Waiters, 16)
	if err != nil {
		return err
	}
	if h, err := c.health(ctx); err != nil {
		return err
	} else if h.Sessions != cfg.Waiters+1 {
		r.violate("/debug/health sessions = %d, want %d", h.Sessions, cfg.Waiters+1)
	}
	for _, ph := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"status polls (GET /session/{id})", func(ctx context.Context) error {
			_, err := c.status(ctx, ids[rand.N(len(ids))], 0)
			return err
		}},
		{"heartbeats (POST /session/heartbeat)", func(ctx context.Context) error {
			return c.heartbeat(ctx, ids[rand.N(len(ids))])
		}},
	} {
		n, errs, lat := hammer(ctx, cfg.Workers, cfg.Duration, ph.fn)
		r.add(ph.name+" per second", "%.0f/s (%d waiting sessions, %d workers, %s)",
			float64(n)/cfg.Duration.Seconds(), cfg.Waiters, cfg.Workers, cfg.Duration)
		r.add(ph.name+" latency", "%s", summarize(lat))
		if len(errs) > 0 {
			r.violate("%s failed: %v", ph.name, errs)
		}
	}
	rss, _, _ := srv.RSS()
	r.add("server RSS", "%s with %d sessions", fmtMiB(rss), cfg.Waiters+1)
	return nil
}

// classify names an error for counting.
func classify(err error) string {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return fmt.Sprintf("%d %s", he.Code, he.Detail)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout: no answer"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
