package remotelabtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/lab"
)

// FakeRunner is an in-memory lab.Runner for tests. Its zero value is ready
// to use: Up returns one device per topology node (with the same realistic
// data as remotelabd --runner sim) and Down succeeds. Delays, hooks and
// failures are configured through its fields before first use; Calls
// records what ran. It is safe for concurrent use.
//
// It is also a lab.Prober that answers from memory: a directory runs after
// a successful Up until a successful Down, so a second lab.Manager over the
// same FakeRunner (a restarted process) can adopt the first one's lab. Up
// reports the steps "up" and then "inspect", Down the step "down" (see
// lab.Progress).
//
// Every call fails at once with an error wrapping ctx.Err() when ctx has
// already ended, and is interrupted the same way when ctx ends during a
// delay.
type FakeRunner struct {
	// UpDelay and DownDelay are waited (honouring ctx) before each call.
	UpDelay, DownDelay time.Duration
	// UpHook, if set, runs at the start of Up (after UpDelay); a non-nil
	// error fails the call. Block in it (on a channel, honouring ctx) to
	// hold a lab start open in a test.
	UpHook func(ctx context.Context, spec lab.Spec) error
	// DownHook is UpHook for Down.
	DownHook func(ctx context.Context, dir string) error
	// Devices, if set, replaces the default devices.
	Devices func(spec lab.Spec) []lab.Device

	mu      sync.Mutex
	calls   []Call
	running map[string]bool // directories whose lab runs
}

// Call records one Runner call.
type Call struct {
	Op          string // "up" or "down"
	Dir         string
	Fingerprint string // bundle fingerprint (up only)
	Err         error  // what the call returned
}

// Up implements lab.Runner. The default devices are those of sim.Runner:
// sim.Devices for the bundle's topology, with the lab name Netlab would
// give it (the topology's name, else one derived from spec.Dir). The call
// is recorded when it returns.
func (f *FakeRunner) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	devs, err := f.up(ctx, spec)
	c := Call{Op: "up", Dir: spec.Dir, Err: err}
	if spec.Bundle != nil {
		c.Fingerprint = spec.Bundle.Fingerprint()
	}
	f.record(c)
	return devs, err
}

func (f *FakeRunner) up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	progress := lab.ProgressFrom(ctx)
	progress.Step("up")
	if err := sim.Delay(ctx, f.UpDelay); err != nil {
		return nil, fmt.Errorf("fake up: %w", err)
	}
	if f.UpHook != nil {
		if err := f.UpHook(ctx, spec); err != nil {
			return nil, err
		}
	}
	progress.Step("inspect")
	if f.Devices != nil {
		return f.Devices(spec), nil
	}
	if spec.Bundle == nil {
		return nil, errors.New("fake up: spec has no bundle")
	}
	t := spec.Bundle.Topology()
	return sim.Devices(t, sim.Addressing{LabName: sim.LabName(t, spec.Dir)}), nil
}

// Down implements lab.Runner. The call is recorded when it returns.
func (f *FakeRunner) Down(ctx context.Context, dir string) error {
	lab.ProgressFrom(ctx).Step("down")
	err := sim.Delay(ctx, f.DownDelay)
	if err != nil {
		err = fmt.Errorf("fake down: %w", err)
	} else if f.DownHook != nil {
		err = f.DownHook(ctx, dir)
	}
	f.record(Call{Op: "down", Dir: dir, Err: err})
	return err
}

// Running implements lab.Prober: dir runs after a successful Up until a
// successful Down. It is not recorded in Calls.
func (f *FakeRunner) Running(ctx context.Context, dir string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("fake running: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[dir], nil
}

// Calls returns a copy of the calls made so far, in order.
func (f *FakeRunner) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// record appends c; a successful up starts its directory's lab, a
// successful down ends it.
func (f *FakeRunner) record(c Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	switch {
	case c.Err != nil:
	case c.Op == "up":
		if f.running == nil {
			f.running = make(map[string]bool)
		}
		f.running[c.Dir] = true
	case c.Op == "down":
		delete(f.running, c.Dir)
	}
}

var _ lab.Prober = (*FakeRunner)(nil)
