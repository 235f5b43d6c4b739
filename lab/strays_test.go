package lab_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/remotelabtest"
)

// CleanStrays tears down the working directories no record names and
// leaves the current lab and other files alone.
func TestCleanStrays(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	res, err := e.m.TryAcquire(t.Context(), "a", newBundle(t, "lab.yml", "nodes: [r1]\n"), true)
	require.NoError(t, err)
	require.False(t, res.Reused)
	cur := e.m.Status().Dir
	stray := filepath.Join(e.work, "remotelab-lab-stray")
	other := filepath.Join(e.work, "not-a-lab")
	require.NoError(t, os.Mkdir(stray, 0o755))
	require.NoError(t, os.Mkdir(other, 0o755))

	n, err := e.m.CleanStrays(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.NoDirExists(t, stray)
	assert.DirExists(t, other)
	assert.DirExists(t, cur)
	calls := r.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "down", calls[1].Op)
	assert.Equal(t, stray, calls[1].Dir)

	n, err = e.m.CleanStrays(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to clean")
	assert.Len(t, r.Calls(), 2, "no runner call without strays")
}
