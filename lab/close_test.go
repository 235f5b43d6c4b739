package lab_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestCloseInterruptsUpAndTearsDown(t *testing.T) {
	started := make(chan string, 1)
	r := &remotelabtest.FakeRunner{UpHook: blockingUp(started, nil)}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	done := make(chan error, 1)
	go func() {
		_, err := e.m.TryAcquire(context.Background(), "a", b, true)
		done <- err
	}()
	dir := <-started
	require.NoError(t, e.m.Close(t.Context()))
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	var rerr *lab.RunnerError
	require.ErrorAs(t, err, &rerr)

	calls := r.Calls()
	require.Equal(t, []string{"up", "down"}, ops(calls))
	assert.Equal(t, dir, calls[1].Dir)
	assert.Equal(t, lab.StateNone, e.m.Status().State)
	assert.Empty(t, workDirs(t, e.work))

	_, err = e.m.TryAcquire(t.Context(), "a", b, true)
	require.ErrorIs(t, err, lab.ErrClosed)
	_, err = e.m.Acquire(t.Context(), "a", b, true)
	require.ErrorIs(t, err, lab.ErrClosed)
	_, err = e.m.Destroy(t.Context(), true)
	require.ErrorIs(t, err, lab.ErrClosed)
	require.ErrorIs(t, e.m.Release("a"), lab.ErrClosed)
	_, err = e.m.Recover(t.Context())
	require.ErrorIs(t, err, lab.ErrClosed)
	require.NoError(t, e.m.Close(t.Context()), "Close is idempotent")
}

func TestCloseTearsDownRunningLab(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r)
		a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)
		_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
		require.NoError(t, err)

		// A waiter for another lab is released by Close.
		done := make(chan error, 1)
		go func() {
			_, err := e.m.Acquire(context.Background(), "s2", b, true)
			done <- err
		}()
		synctest.Wait()
		require.NoError(t, e.m.Close(t.Context()))
		require.ErrorIs(t, <-done, lab.ErrClosed)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Empty(t, workDirs(t, e.work))
	})
}

func TestCloseStopsIdleTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = time.Minute })
		b := newBundle(t, "lab.yml", topoA)
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("a"))
		require.NoError(t, e.m.Close(t.Context()))
		time.Sleep(time.Hour)
		synctest.Wait()
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()), "one teardown, by Close")
	})
}

func TestCloseReportsFailedTeardown(t *testing.T) {
	downErr := errors.New("down failed")
	fail := true
	r := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if fail {
			return downErr
		}
		return nil
	}}
	root := t.TempDir()
	m, err := lab.NewManager(lab.Config{Runner: r, WorkRoot: root, LockPath: "-", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = m.TryAcquire(t.Context(), "a", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	require.ErrorIs(t, m.Close(t.Context()), downErr)
	assert.Equal(t, lab.StateDirty, m.Status().State)
	require.ErrorIs(t, m.Close(t.Context()), downErr, "later calls report the first result")
}
