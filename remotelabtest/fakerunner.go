package remotelabtest

import (
	"context"
	"sync"
	"time"

	"github.com/remotelab-go/remotelab/lab"
)

// FakeRunner is an in-memory lab.Runner for tests. Its zero value is ready
// to use: Up returns one device per topology node (with the same realistic
// data as remotelabd --runner sim) and Down succeeds. Delays, hooks and
// failures are configured through its fields before first use; Calls
// records what ran. It is safe for concurrent use.
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

	mu    sync.Mutex
	calls []Call
}

// Call records one Runner call.
type Call struct {
	Op          string // "up" or "down"
	Dir         string
	Fingerprint string // bundle fingerprint (up only)
	Err         error  // what the call returned
}

// Up implements lab.Runner.
func (f *FakeRunner) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	panic("unimplemented")
}

// Down implements lab.Runner.
func (f *FakeRunner) Down(ctx context.Context, dir string) error { panic("unimplemented") }

// Calls returns a copy of the calls made so far, in order.
func (f *FakeRunner) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}
