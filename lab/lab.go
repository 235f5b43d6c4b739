// Package lab manages the one lab a host can run. A Manager starts a lab
// from a topology.Bundle through a Runner, identifies it by the bundle's
// fingerprint, counts references per holder (a session id), keeps an idle
// lab warm for a while so the next holder with the same bundle gets it at
// once, and tears it down when nobody needs it.
//
// Lab work is serialised: in-process by the Manager and across processes by
// a file lock (by default the one the original Python fixtures use), so a
// local fixture and remotelabd on one host exclude each other. No operation
// waits for that exclusion unless asked to: TryAcquire answers ErrBusy at
// once, Acquire waits until its context ends.
//
// The package has no HTTP and no globals; netlab.Runner is the production
// Runner, remotelabtest.FakeRunner the one for tests.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/remotelab-go/remotelab/topology"
)

// Device is one node of a running lab as the Runner reports it.
type Device struct {
	// Name is the node name.
	Name string `json:"name"`
	// Raw is the node's data as a JSON object (for Netlab, the output of
	// `netlab inspect --node NAME --format json`).
	Raw json.RawMessage `json:"raw"`
}

// Spec is what a Runner needs to start a lab.
type Spec struct {
	// Dir is the lab's working directory; the bundle is already written
	// into it and every Netlab command runs there.
	Dir string
	// Bundle is the bundle written into Dir. Its TopologyName is the
	// topology file's name relative to Dir.
	Bundle *topology.Bundle
}

// Runner brings labs up and down. Implementations must honour ctx: when it
// ends, the operation is interrupted and returns an error that wraps
// ctx.Err().
type Runner interface {
	// Up starts the lab described by spec and returns its devices in node
	// order. A failed Up may leave a partly started lab behind; the
	// Manager then calls Down on the same directory.
	Up(ctx context.Context, spec Spec) ([]Device, error)
	// Down tears down the lab started in dir. Tearing down a directory
	// where nothing runs is not an error.
	Down(ctx context.Context, dir string) error
}

// Errors returned by Manager methods.
var (
	// ErrBusy: another lab operation is running, in this process or (file
	// lock) in another one. TryAcquire returns it at once; retry later.
	ErrBusy = errors.New("lab busy")
	// ErrConflict: the holder still holds references to the running lab
	// and asked for a different one, or for a fresh start of the same one
	// (reuse=false). It must release first.
	ErrConflict = errors.New("lab conflict: release the current lab first")
	// ErrInUse: Destroy without force while the lab is referenced.
	ErrInUse = errors.New("lab still in use")
	// ErrNoLab: there is no lab (for Release and Devices).
	ErrNoLab = errors.New("no lab running")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("lab manager closed")
)

// RunnerError wraps a failed Runner call. Err carries the Runner's own
// message (for Netlab, the tail of its stderr); it wraps ctx.Err() when
// the step ran out of time or was cancelled.
type RunnerError struct {
	Op  string // "up" or "down"
	Err error
}

func (e *RunnerError) Error() string { return fmt.Sprintf("%s lab: %v", e.Op, e.Err) }

// Unwrap returns Err.
func (e *RunnerError) Unwrap() error { return e.Err }

// State is the lifecycle state of the host's lab.
type State string

// Lab states.
const (
	StateNone     State = "none"     // no lab
	StateStarting State = "starting" // Runner.Up in progress
	StateRunning  State = "running"  // up, referenced
	StateIdle     State = "idle"     // up, unreferenced, kept warm
	StateStopping State = "stopping" // Runner.Down in progress
	StateDirty    State = "dirty"    // a teardown failed; the next start cleans up first
)

// Status is a snapshot of the Manager.
type Status struct {
	State        State
	Fingerprint  string         // bundle fingerprint of the current lab
	TopologyName string         // its topology file name
	Dir          string         // its working directory
	Holders      map[string]int // references per holder
	RefCount     int            // sum of Holders
	Devices      []Device
	Since        time.Time // when the current state began
	IdleUntil    time.Time // when an idle lab will be torn down (zero otherwise)
}

// Result is the outcome of a successful acquire.
type Result struct {
	// Reused is true exactly when no Runner.Up ran.
	Reused      bool
	Devices     []Device
	Fingerprint string
}

// Config configures a Manager.
type Config struct {
	// Runner starts and stops labs. Required.
	Runner Runner
	// WorkRoot is where working directories are created (default
	// os.TempDir()).
	WorkRoot string
	// StateDir is where the running lab's working directory is recorded,
	// so a restarted process can tear down what a crashed one left
	// behind (see Recover). "" disables recording.
	StateDir string
	// LockPath is the cross-process lock file (default
	// <os.TempDir()>/netlab_pytest.lock). "-" disables it.
	LockPath string
	// IdleTTL is how long an unreferenced lab stays up (default 10 min).
	IdleTTL time.Duration
	// DownTimeout bounds teardowns the Manager starts on its own (idle
	// expiry, cleanup after a failed start); default 5 min.
	DownTimeout time.Duration
	// Logger receives lifecycle events (default slog.Default()).
	Logger *slog.Logger
}

// DefaultIdleTTL is how long an idle lab stays warm by default.
const DefaultIdleTTL = 10 * time.Minute

// Manager manages the host's one lab. It is safe for concurrent use. The
// caller must call Close.
type Manager struct {
	// implementation defined
}

// NewManager returns a Manager with no lab. It does not touch the Runner.
func NewManager(cfg Config) (*Manager, error) { panic("unimplemented") }

// TryAcquire gives holder a reference to the lab described by b, starting
// it if needed, without waiting for other lab operations: it returns
// ErrBusy at once if one is running here or another process holds the
// lock. It blocks only for its own Runner calls, which end when ctx ends.
//
// Rules: the running lab with the same fingerprint and reuse is attached
// (Result.Reused). Otherwise, if the lab is unreferenced it is torn down
// and b is started. If holder itself references the lab and asks for
// another one, or for reuse=false, the error is ErrConflict; if others
// reference it, ErrBusy. State is committed only after Up succeeded; a
// failed Up is followed by a best-effort Down and leaves no lab.
func (m *Manager) TryAcquire(ctx context.Context, holder string, b *topology.Bundle, reuse bool) (Result, error) {
	panic("unimplemented")
}

// Acquire is TryAcquire that waits, until ctx ends, for other operations
// and for other holders' references to go. A cancelled Acquire leaves the
// state unchanged.
func (m *Manager) Acquire(ctx context.Context, holder string, b *topology.Bundle, reuse bool) (Result, error) {
	panic("unimplemented")
}

// Release drops one of holder's references. Releasing with nothing held is
// a no-op; with no lab at all it returns ErrNoLab. When the last reference
// goes the lab becomes idle and is torn down after IdleTTL.
func (m *Manager) Release(holder string) error { panic("unimplemented") }

// ReleaseAll drops all of holder's references (its session ended). It
// never blocks on lab work.
func (m *Manager) ReleaseAll(holder string) { panic("unimplemented") }

// Destroy tears the lab down now. Without force it fails with ErrInUse
// while the lab is referenced. It reports whether there was a lab to tear
// down; a failed teardown returns a *RunnerError and leaves StateDirty.
// Like TryAcquire it returns ErrBusy rather than wait for another
// operation.
func (m *Manager) Destroy(ctx context.Context, force bool) (bool, error) { panic("unimplemented") }

// Devices returns the running lab's devices, or ErrNoLab.
func (m *Manager) Devices() ([]Device, error) { panic("unimplemented") }

// Status returns a snapshot. It never waits for lab work.
func (m *Manager) Status() Status { panic("unimplemented") }

// Recover tears down a lab that a previous process recorded in StateDir
// and did not tear down (it crashed), then removes the record and the
// working directory. It touches only that recorded lab. It reports
// whether there was one.
func (m *Manager) Recover(ctx context.Context) (bool, error) { panic("unimplemented") }

// Close makes further operations fail with ErrClosed, interrupts running
// ones (their contexts are cancelled) and waits for them, stops the idle
// timer and tears the lab down, bounded by ctx.
func (m *Manager) Close(ctx context.Context) error { panic("unimplemented") }
