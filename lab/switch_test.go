package lab_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// A caller that gives up while the running lab is torn down for its
// switch abandons its start, not the teardown: the old lab goes cleanly
// (cut short it would be left dirty) and nothing new starts.
func TestSwitchTeardownOutlivesItsCaller(t *testing.T) {
	started, release := make(chan string, 1), make(chan struct{})
	// The teardown reports whether its context was cut short by then.
	r := &remotelabtest.FakeRunner{DownHook: func(ctx context.Context, dir string) error {
		started <- dir
		<-release
		return ctx.Err()
	}}
	e := newEnv(t, r)
	_, err := e.m.TryAcquire(t.Context(), "a", newBundle(t, "lab.yml", "nodes: [r1]\n"), true)
	require.NoError(t, err)
	require.NoError(t, e.m.Release("a"))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := e.m.TryAcquire(ctx, "a", newBundle(t, "other.yml", "nodes: [x]\n"), true)
		done <- err
	}()
	<-started
	cancel()
	close(release)
	err = <-done
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, lab.StateNone, e.m.Status().State, "torn down, not dirty")
	assert.Equal(t, []string{"up", "down"}, ops(r.Calls()), "no second up")
}
