package lab

import (
	"context"
	"encoding/json"
	"fmt"

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
// ctx.Err(). A Runner reports what it does through ProgressFrom(ctx).
type Runner interface {
	// Up starts the lab described by spec and returns its devices in node
	// order. A failed Up may leave a partly started lab behind; the
	// Manager then calls Down on the same directory.
	Up(ctx context.Context, spec Spec) ([]Device, error)
	// Down tears down the lab started in dir. Tearing down a directory
	// where nothing runs is not an error.
	Down(ctx context.Context, dir string) error
}

// Prober is implemented by Runners that can tell whether the lab started in
// dir still runs, so Recover can adopt a lab a previous process left.
type Prober interface {
	// Running reports whether the lab started in dir still runs. It
	// blocks until it knows or ctx ends.
	Running(ctx context.Context, dir string) (bool, error)
}

// RunnerError wraps a failed Runner call. Err carries the Runner's own
// message (for Netlab, the tails of its output); it wraps ctx.Err() when
// the step ran out of time or was cancelled.
type RunnerError struct {
	Op  string // "up" or "down"
	Err error
}

// Error says which step failed and why.
func (e *RunnerError) Error() string { return fmt.Sprintf("%s lab: %v", e.Op, e.Err) }

// Unwrap returns Err.
func (e *RunnerError) Unwrap() error { return e.Err }
