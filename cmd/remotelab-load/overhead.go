package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/remotelab-go/remotelab/auth"
)

// overheadOldCommit is the commit before issues 11–14 (owner bookkeeping,
// metrics, authentication, persistence), the reference of the overhead
// scenario's -old-bin.
const overheadOldCommit = "cebaff4"

// runOverhead compares status-poll throughput, phases alternating, of
// (a) the remotelabd of -old-bin (built from commit cebaff4, or any other
// build named by -old-name; skipped without it), (b) today's remotelabd without authentication, and today's
// remotelabd with --auth-file, polled (c) with a Bearer token and (d) with
// HTTP Basic (the token as password).
func runOverhead(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	dir, err := os.MkdirTemp("", "remotelab-load-auth-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	token, err := auth.NewToken()
	if err != nil {
		return err
	}
	authFile := filepath.Join(dir, "auth.yml")
	if err := os.WriteFile(authFile, []byte("tokens:\n"+auth.Entry("load", auth.User, token)), 0o600); err != nil {
		return err
	}

	type side struct {
		name  string
		srv   *server
		authz string
	}
	var sides []side
	if cfg.OldBin != "" {
		old, err := startProcess(ctx, "remotelabd-"+cfg.OldName, cfg.OldBin, remotelabdArgs(), nil)
		if err != nil {
			return err
		}
		defer old.Stop()
		sides = append(sides, side{name: "(a) remotelabd " + cfg.OldName, srv: old})
	} else {
		r.add("(a) remotelabd "+overheadOldCommit, "skipped: no -old-bin (git worktree add /tmp/old %s && go build -C /tmp/old ./cmd/remotelabd)", overheadOldCommit)
	}
	plain, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer plain.Stop()
	authed, err := e.remotelabd(ctx, "--auth-file", authFile)
	if err != nil {
		return err
	}
	defer authed.Stop()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("load:"+token))
	sides = append(sides,
		side{name: "(b) remotelabd, no auth", srv: plain},
		side{name: "(c) remotelabd, --auth-file, Bearer", srv: authed, authz: "Bearer " + token},
		side{name: "(d) remotelabd, --auth-file, Basic", srv: authed, authz: basic},
	)
	var vs []variant
	var filled *pollTarget // (c) and (d) poll the same sessions
	for _, sd := range sides {
		c := newAPIClient(sd.srv.URL, cfg.Workers+32, 1)
		c.authz = sd.authz
		defer c.Close()
		var t *pollTarget
		if filled != nil && filled.srv == sd.srv {
			t = &pollTarget{srv: sd.srv, c: c, ids: filled.ids}
		} else if t, err = fill(ctx, sd.srv, c, cfg.Waiters); err != nil {
			return err
		}
		filled = t
		vs = append(vs, variant{sd.name, t.poll, sd.srv})
	}
	res, err := alternate(ctx, cfg.Rounds, cfg.Phase, cfg.Workers, vs)
	if err != nil {
		return err
	}
	rate, cpu := map[string]float64{}, map[string]float64{}
	for i, t := range res {
		rate[vs[i].name[:3]] = t.rate()
		if t.calls > 0 {
			cpu[vs[i].name[:3]] = float64(t.cpu) / float64(t.calls)
		}
		r.add("status polls: "+vs[i].name, "%.0f/s (%s), %s; %s", t.rate(), t.spread(), t.cpuPerCall(), summarize(t.lat))
		if len(t.errs) > 0 {
			r.violate("status polls on %s failed: %s", vs[i].name, t.failures())
		}
	}
	// Throughput ratios are the goals; CPU per call says the same of the
	// server alone when the load generator is the bottleneck.
	if a, ok := rate["(a)"]; ok {
		r.add("(b) / (a): metrics and owner bookkeeping", "%s of the throughput (goal ≥ 95 %%: %s); server CPU per call %s",
			ratio(rate["(b)"], a), goal(rate["(b)"], a, 0.95), ratio(cpu["(b)"], cpu["(a)"]))
	}
	for _, k := range []string{"(c)", "(d)"} {
		r.add(fmt.Sprintf("%s / (b): authentication", k), "%s of the throughput (goal ≥ 90 %%: %s); server CPU per call %s",
			ratio(rate[k], rate["(b)"]), goal(rate[k], rate["(b)"], 0.9), ratio(cpu[k], cpu["(b)"]))
	}
	r.add("setup", "%d waiting sessions per server, %d workers, %d × %s per variant, alternating", cfg.Waiters, cfg.Workers, cfg.Rounds, cfg.Phase)
	return nil
}
