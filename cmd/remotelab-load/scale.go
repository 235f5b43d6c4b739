package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// runScale parks cfg.Scale sessions on long-poll at once, first against
// remotelabd (its RSS), then against httpserver in a child of this binary
// (its RSS and goroutines). In each round the head leaves; that changes
// every waiter's position, so every parked long-poll must answer: the
// time until the last answer is the fan-out time. Then it stops the
// server with all those sessions queued.
func runScale(ctx context.Context, e *env, r *scenarioReport) error {
	for _, start := range []func() (*server, error){
		func() (*server, error) { return e.remotelabd(ctx) },
		func() (*server, error) { return e.inproc(ctx, 0) },
	} {
		srv, err := start()
		if err != nil {
			return err
		}
		err = scaleOn(ctx, e, r, srv)
		d := srv.Stop()
		if err != nil {
			return err
		}
		r.add(srv.Name+": SIGTERM → exit", "%s with %d sessions queued", fmtDur(d), e.cfg.Scale+1-e.cfg.ScaleRounds)
	}
	return nil
}

func scaleOn(ctx context.Context, e *env, r *scenarioReport, srv *server) error {
	n := e.cfg.Scale
	name := srv.Name
	rss0, _, _ := srv.RSS()
	g0 := srv.Goroutines(ctx)
	c := newAPIClient(srv.URL, n+64, e.cfg.Sources)
	defer c.Close()
	holder, err := c.create(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ids, pos, err := createMany(ctx, c, n, 32)
	if err != nil {
		return err
	}
	r.add(name+": create sessions", "%d in %s (%.0f/s, 32 concurrent)", n, fmtDur(time.Since(t0)), float64(n)/time.Since(t0).Seconds())

	head := holder.SessionID
	in := make([]bool, n) // still waiting
	for i := range in {
		in[i] = true
	}
	// A semaphore ramps the long-polls up (256 being written at a time),
	// so the dial burst stays within the listen backlog.
	sem := make(chan struct{}, 256)
	for round := range e.cfg.ScaleRounds {
		var parked, answered atomic.Int64
		answers := make([]time.Time, n)
		status := make([]api.SessionStatus, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		want := 0
		for i := range n {
			if !in[i] {
				continue
			}
			want++
			wg.Go(func() {
				sem <- struct{}{}
				var once sync.Once
				done := func() { once.Do(func() { <-sem; parked.Add(1) }) }
				st, err := c.statusTraced(ctx, ids[i], time.Minute, done)
				done()
				answers[i], status[i], errs[i] = time.Now(), st, err
				answered.Add(1)
			})
		}
		// Wait until every long-poll is on the wire, then give the
		// server a moment to read them all.
		deadline := time.Now().Add(2 * time.Minute)
		for parked.Load() < int64(want) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		_ = clock.Sleep(ctx, time.Second)
		if round == 0 {
			rss, _, _ := srv.RSS()
			g := srv.Goroutines(ctx)
			r.add(name+": server RSS", "%s idle → %s with %d sessions on long-poll (%.1f KiB/session)",
				fmtMiB(rss0), fmtMiB(rss), want, float64(rss-rss0)/1024/float64(want))
			if g >= 0 {
				r.add(name+": server goroutines", "%d idle → %d with %d sessions on long-poll", g0, g, want)
			}
		}
		early := answered.Load()
		tLeave := time.Now()
		if err := c.leave(ctx, head); err != nil {
			return fmt.Errorf("leave head: %w", err)
		}
		wg.Wait()
		var lat []time.Duration
		last := time.Duration(0)
		bad, failed := 0, 0
		head = ""
		for i := range n {
			if !in[i] {
				continue
			}
			if errs[i] != nil {
				failed++
				continue
			}
			if answers[i].Before(tLeave) {
				pos[i]-- // answered early (not counted); its place moved on all the same
				continue
			}
			d := answers[i].Sub(tLeave)
			lat = append(lat, d)
			last = max(last, d)
			switch {
			case status[i].Status == api.StatusActive && pos[i] == 1:
				head = ids[i]
				in[i] = false
			case status[i].Position != pos[i]-1:
				bad++
			}
			pos[i]--
		}
		r.add(fmt.Sprintf("%s: fan-out round %d", name, round+1), "last of %d long-polls answered %s after the head left; per waiter %s",
			want, fmtDur(last), summarize(lat))
		if early > 0 {
			r.add(fmt.Sprintf("%s: fan-out round %d", name, round+1), "%d long-polls answered before the head left", early)
		}
		if failed > 0 {
			r.violate("%s: round %d: %d long-polls failed (first: %v)", name, round+1, failed, firstErr(errs))
		}
		if bad > 0 || head == "" {
			r.violate("%s: round %d: %d waiters saw a wrong position, new head found: %t", name, round+1, bad, head != "")
			return nil
		}
	}
	return nil
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// runLabOverhead measures the acquire round trip with a zero-delay sim
// runner: cold (a new fingerprint each time: the previous idle lab is
// torn down, the new one started) and warm (the next session, same
// bundle, reuse=true), without and with extra files.
func runLabOverhead(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg := e.cfg
	c := newAPIClient(srv.URL, 4, 1)
	defer c.Close()
	// cycle runs one session: create, acquire u, release, leave; it
	// returns the acquire round trip and the whole cycle.
	cycle := func(u upload, wantReused bool) (time.Duration, time.Duration, error) {
		t0 := time.Now()
		s, err := c.create(ctx)
		if err != nil {
			return 0, 0, err
		}
		if s.Status != api.StatusActive {
			return 0, 0, fmt.Errorf("new session in an empty queue is %q", s.Status)
		}
		t1 := time.Now()
		res, err := c.acquire(ctx, s.SessionID, u)
		acq := time.Since(t1)
		if err != nil {
			return 0, 0, fmt.Errorf("acquire: %w", err)
		}
		if res.Reused != wantReused {
			r.violate("acquire: reused = %t, want %t", res.Reused, wantReused)
		}
		if len(res.Devices) != cfg.Nodes {
			r.violate("acquire: %d devices, want %d", len(res.Devices), cfg.Nodes)
		}
		if err := c.release(ctx, s.SessionID); err != nil {
			return 0, 0, fmt.Errorf("release: %w", err)
		}
		if err := c.leave(ctx, s.SessionID); err != nil {
			return 0, 0, fmt.Errorf("leave: %w", err)
		}
		return acq, time.Since(t0), nil
	}
	extras := func(i int) []file {
		rnd := rand.New(rand.NewPCG(uint64(i), 1))
		const k = 4
		var fs []file
		for j := range k {
			b := make([]byte, cfg.ExtraBytes/k)
			for x := range b {
				b[x] = byte(rnd.UintN(256))
			}
			fs = append(fs, file{Name: fmt.Sprintf("configs/r%d.cfg", j+1), Data: b})
		}
		return fs
	}
	var cold, warm, coldX, warmX, cyc []time.Duration
	for i := range cfg.LabIters {
		u := upload{Topo: topologyYAML(cfg.Nodes, fmt.Sprintf("iteration %d", i))}
		a, _, err := cycle(u, false)
		if err != nil {
			return err
		}
		cold = append(cold, a)
		a, whole, err := cycle(u, true)
		if err != nil {
			return err
		}
		warm, cyc = append(warm, a), append(cyc, whole)
		u = upload{Topo: topologyYAML(cfg.Nodes, fmt.Sprintf("extra %d", i)), Extras: extras(i)}
		if a, _, err = cycle(u, false); err != nil {
			return err
		}
		coldX = append(coldX, a)
		if a, _, err = cycle(u, true); err != nil {
			return err
		}
		warmX = append(warmX, a)
	}
	mib := fmt.Sprintf("%.1f MiB", float64(cfg.ExtraBytes)/(1<<20))
	r.add(fmt.Sprintf("acquire, %d nodes, cold (sim, 0 delay)", cfg.Nodes), "%s", summarize(cold))
	r.add(fmt.Sprintf("acquire, %d nodes, warm re-acquire (next session)", cfg.Nodes), "%s", summarize(warm))
	r.add(fmt.Sprintf("acquire, %d nodes + %s extra files, cold", cfg.Nodes, mib), "%s", summarize(coldX))
	r.add(fmt.Sprintf("acquire, %d nodes + %s extra files, warm", cfg.Nodes, mib), "%s", summarize(warmX))
	r.add("whole session (create, warm acquire, release, leave)", "%s", summarize(cyc))
	return nil
}
