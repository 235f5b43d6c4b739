package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// persistJoinGoal is issue 14's goal: acknowledged joins per second with
// the state on disk.
const persistJoinGoal = 2000

// runPersist measures what saving the state costs. Create/delete pairs
// (POST /session, then DELETE of the new session: each answer only after
// its change is durable) from cfg.PersistWorkers workers, phases
// alternating, against (a) remotelabd with its state directory on disk,
// (b) httpserver in a child process without a store (memory only) and (c)
// the same child with a store in its state directory: (b) and (c) differ
// only by the store. Then status polls and heartbeats, alternating on (b)
// and (c), which must cost the same (they change nothing), and a check
// that remotelabd's state file is not written while they run.
func runPersist(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	disk, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer disk.Stop()
	mem, err := e.inproc(ctx, 0)
	if err != nil {
		return err
	}
	defer mem.Stop()
	stored, err := startProcess(ctx, "httpserver+store", e.cfg.Self, nil,
		[]string{roleEnv + "=" + roleServ, stateEnv + "=" + stateDirArg})
	if err != nil {
		return err
	}
	defer stored.Stop()

	sides := []struct {
		name string
		srv  *server
	}{
		{"(a) remotelabd, state on disk", disk},
		{"(b) httpserver, no store", mem},
		{"(c) httpserver, store on disk", stored},
	}
	var vs []variant
	for _, sd := range sides {
		c := newAPIClient(sd.srv.URL, cfg.PersistWorkers+8, 1)
		defer c.Close()
		vs = append(vs, variant{sd.name, func(ctx context.Context) error {
			// A pair runs to its end even when the phase ends meanwhile
			// (it is not counted then), so no session outlives its
			// phase and every phase does the same work.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			s, err := c.create(pctx)
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			return c.leave(pctx, s.SessionID)
		}, sd.srv})
	}
	res, err := alternate(ctx, cfg.Rounds, cfg.Phase, cfg.PersistWorkers, vs)
	if err != nil {
		return err
	}
	for i, t := range res {
		r.add("create+delete: "+vs[i].name, "%.0f joins/s acknowledged (%s), %s; pair %s", t.rate(), t.spread(), t.cpuPerCall(), summarize(t.lat))
		if len(t.errs) > 0 {
			r.violate("create+delete on %s failed: %s", vs[i].name, t.failures())
		}
	}
	for _, sd := range sides {
		c := newAPIClient(sd.srv.URL, 1, 1)
		h, err := c.health(ctx)
		c.Close()
		if err != nil || h.Sessions != 0 {
			r.violate("%s: %d sessions left after the create/delete pairs (%v)", sd.name, h.Sessions, err)
		}
	}
	r.add("(a) goal", "≥ %d acknowledged joins/s: %s (%d workers, %d × %s alternating)", persistJoinGoal,
		goal(res[0].rate(), persistJoinGoal, 1), cfg.PersistWorkers, cfg.Rounds, cfg.Phase)
	r.add("(c) / (b): the store's cost to create+delete", "%s", ratio(res[2].rate(), res[1].rate()))

	// Polls and heartbeats change nothing: the same with or without a
	// store, and no write to the state file.
	var targets []*pollTarget
	for _, srv := range []*server{mem, stored, disk} {
		c := newAPIClient(srv.URL, cfg.Workers+32, 1)
		defer c.Close()
		t, err := fill(ctx, srv, c, cfg.Waiters)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for _, kind := range pollKinds {
		res, err := alternate(ctx, cfg.Rounds, cfg.Phase, cfg.Workers, []variant{
			{"(b) no store", kind.fn(targets[0]), mem}, {"(c) store", kind.fn(targets[1]), stored},
		})
		if err != nil {
			return err
		}
		b, c := res[0], res[1]
		r.add(kind.name+": (b) no store / (c) store", "%.0f/s, %s / %.0f/s, %s: (c)/(b) %s",
			b.rate(), b.cpuPerCall(), c.rate(), c.cpuPerCall(), ratio(c.rate(), b.rate()))
		for i, t := range res {
			if len(t.errs) > 0 {
				r.violate("%s on %s failed: %s", kind.name, sides[i+1].name, t.failures())
			}
		}
	}
	db := filepath.Join(disk.StateDir, "state.db")
	before, err := os.Stat(db)
	if err != nil {
		return err
	}
	d := time.Duration(cfg.Rounds) * cfg.Phase
	np, _, _ := hammer(ctx, cfg.Workers, d, targets[2].poll)
	nh, _, _ := hammer(ctx, cfg.Workers, d, targets[2].beat)
	after, err := os.Stat(db)
	if err != nil {
		return err
	}
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		r.violate("remotelabd's state.db was written during %d polls and %d heartbeats", np, nh)
	} else {
		r.add("(a) state.db during polls and heartbeats", "not written (%d polls, %d heartbeats, %s each)", np, nh, d)
	}
	return nil
}
