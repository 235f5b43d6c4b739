package remotelabtest

import (
	"testing"

	"github.com/remotelab-go/remotelab/client"
)

// Binary gives the package's tests private instances of the per-binary
// state behind Main and Lab.
type Binary = binary

// NewBinary returns fresh per-binary state that reads the environment
// through getenv and makes its client with newClient.
func NewBinary(getenv func(string) string, newClient func() (*client.Client, error)) *Binary {
	b := newBinary()
	b.getenv, b.newClient = getenv, newClient
	return b
}

// Main is Main for b, running run instead of m.Run.
func (b *binary) Main(run func() int) int { return b.main(run) }

// Lab is Lab for b.
func (b *binary) Lab(t testing.TB, topologyPath string, opts ...client.AcquireOption) *LabHandle {
	t.Helper()
	return b.lab(t, topologyPath, opts)
}
