package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// variant is one side of a comparison: the server it names and the call
// its workers make back to back.
type variant struct {
	name string
	fn   func(ctx context.Context) error
	srv  *server // whose CPU time each phase costs (nil: not measured)
}

// tally adds up the phases of one variant.
type tally struct {
	calls   int
	elapsed time.Duration
	errs    map[string]int
	lat     []time.Duration
	phases  []float64     // calls per second of each phase
	cpu     time.Duration // the server's CPU time during the phases
}

// rate returns the calls per second over all phases.
func (t tally) rate() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.calls) / t.elapsed.Seconds()
}

// cpuPerCall prints the server's CPU time per call ("" if not measured).
func (t tally) cpuPerCall() string {
	if t.cpu <= 0 || t.calls == 0 {
		return "server CPU not measured"
	}
	return fmt.Sprintf("server CPU %.1f µs/call", float64(t.cpu)/float64(time.Microsecond)/float64(t.calls))
}

// spread prints the lowest and highest phase rate.
func (t tally) spread() string {
	if len(t.phases) == 0 {
		return "no phases"
	}
	return fmt.Sprintf("phases %.0f–%.0f/s", slices.Min(t.phases), slices.Max(t.phases))
}

// failures prints the failures by class, or "" when there were none.
func (t tally) failures() string { return countsString(t.errs) }

// alternate measures the variants in the same run, in turns, so that a
// machine whose speed drifts (other work, thermal limits) affects each of
// them alike, and reads each server's CPU time around its phases (on a
// machine the load generator saturates, CPU per call shows a server's
// cost better than calls per second): after one unmeasured warm-up phase each, it runs rounds
// rounds of one phase per variant, forwards in even rounds and backwards
// in odd ones (A B C, C B A, A B C …), so no variant always goes first
// or last. Each phase runs fn from workers goroutines for phase.
func alternate(ctx context.Context, rounds int, phase time.Duration, workers int, vs []variant) ([]tally, error) {
	out := make([]tally, len(vs))
	for i := range out {
		out[i].errs = map[string]int{}
	}
	for _, v := range vs {
		hammer(ctx, workers, max(phase/4, 100*time.Millisecond), v.fn)
	}
	for r := range rounds {
		for k := range vs {
			i := k
			if r%2 == 1 {
				i = len(vs) - 1 - k
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			cpu0, cerr := time.Duration(0), errors.New("not measured")
			if vs[i].srv != nil {
				cpu0, cerr = vs[i].srv.CPUTime()
			}
			t0 := time.Now()
			n, errs, lat := hammer(ctx, workers, phase, vs[i].fn)
			d := time.Since(t0)
			t := &out[i]
			if cerr == nil {
				if cpu1, err := vs[i].srv.CPUTime(); err == nil {
					t.cpu += cpu1 - cpu0
				}
			}
			t.calls += n
			t.elapsed += d
			t.lat = append(t.lat, lat...)
			t.phases = append(t.phases, float64(n)/d.Seconds())
			for k, v := range errs {
				t.errs[k] += v
			}
		}
	}
	return out, nil
}

// ratio prints b relative to a as a percentage ("97.3 %").
func ratio(b, a float64) string {
	if a <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %%", 100*b/a)
}

// goal prints whether a measured share (b/a) reaches want (0.9 for
// "within 10 %").
func goal(b, a, want float64) string {
	if a > 0 && b/a >= want {
		return "met"
	}
	return "NOT met"
}
