// Package sim simulates Netlab's view of a lab: the node data `netlab
// inspect` prints for a topology (management addresses, container names,
// per-device credentials) and a lab.Runner that "starts" labs in process.
// remotelabd --runner sim, remotelabtest.FakeRunner and the fake netlab
// executable share it, so every stand-in reports the same realistic data.
package sim

import (
	"context"
	"time"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/topology"
)

// Addressing is how a lab's nodes are named and numbered.
type Addressing struct {
	// LabName is the lab's name (topology `name:`, else derived from the
	// working directory as Netlab does, else "default"); containers are
	// clab-<LabName>-<node>.
	LabName string
	// MgmtPrefix is the management /24 as "a.b.c" (default "192.168.121").
	MgmtPrefix string
}

// Node is one node as `netlab inspect` shows it.
type Node struct {
	Name string
	// Summary is the node's entry in `netlab inspect --format json nodes`.
	Summary map[string]any
	// Detail is `netlab inspect --node NAME --format json`: the node data
	// merged with its device's Ansible group variables.
	Detail map[string]any
}

// Inspect returns the nodes of t in definition order (node id = index+1).
func Inspect(t *topology.Topology, a Addressing) []Node { panic("unimplemented") }

// Devices returns t's nodes as lab devices whose Raw is the Detail data.
func Devices(t *topology.Topology, a Addressing) []lab.Device { panic("unimplemented") }

// Runner is a lab.Runner that simulates Netlab: Up waits UpDelay and
// returns Devices for the bundle's topology; Down waits DownDelay. Both
// honour ctx. The zero value is ready to use.
type Runner struct {
	UpDelay   time.Duration
	DownDelay time.Duration
}

// Up implements lab.Runner.
func (r *Runner) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	panic("unimplemented")
}

// Down implements lab.Runner.
func (r *Runner) Down(ctx context.Context, dir string) error { panic("unimplemented") }
