package lab_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

func TestUpFailureCleansUp(t *testing.T) {
	boom := errors.New("netlab up: boom")
	r := &remotelabtest.FakeRunner{UpHook: func(context.Context, lab.Spec) error { return boom }}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	_, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.ErrorIs(t, err, boom)
	var rerr *lab.RunnerError
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, "up", rerr.Op)

	calls := r.Calls()
	require.Equal(t, []string{"up", "down"}, ops(calls))
	assert.Equal(t, calls[0].Dir, calls[1].Dir, "cleanup tears down the failed lab's directory")
	require.ErrorIs(t, calls[0].Err, boom)
	st := e.m.Status()
	assert.Equal(t, lab.StateNone, st.State)
	assert.Empty(t, st.Fingerprint)
	assert.Empty(t, workDirs(t, e.work))
	assert.NoFileExists(t, filepath.Join(e.state, "lab.json"))
	_, err = e.m.Devices()
	require.ErrorIs(t, err, lab.ErrNoLab)
}

func TestUpAndCleanupFailLeaveDirtyLab(t *testing.T) {
	upErr, downErr := errors.New("up failed"), errors.New("down failed")
	r := &remotelabtest.FakeRunner{}
	failUp, failDown := true, true
	r.UpHook = func(context.Context, lab.Spec) error {
		if failUp {
			return upErr
		}
		return nil
	}
	r.DownHook = func(context.Context, string) error {
		if failDown {
			return downErr
		}
		return nil
	}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	_, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.ErrorIs(t, err, upErr)
	st := e.m.Status()
	require.Equal(t, lab.StateDirty, st.State)
	dirty := st.Dir
	assert.DirExists(t, dirty, "a lab that may still run keeps its directory")
	assert.FileExists(t, filepath.Join(e.state, "lab.json"))

	failUp, failDown = false, false
	res, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	calls := r.Calls()
	require.Equal(t, []string{"up", "down", "down", "up"}, ops(calls))
	assert.Equal(t, dirty, calls[2].Dir)
	assert.NoDirExists(t, dirty)
	assert.Equal(t, []string{e.m.Status().Dir}, workDirs(t, e.work))
}

func TestDownFailureLeavesDirtyAndIsRetried(t *testing.T) {
	downErr := errors.New("containers still running")
	failDown := false
	r := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if failDown {
			return downErr
		}
		return nil
	}}
	e := newEnv(t, r)
	a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)

	_, err := e.m.TryAcquire(t.Context(), "s", a, true)
	require.NoError(t, err)
	dir := e.m.Status().Dir
	failDown = true
	had, err := e.m.Destroy(t.Context(), true)
	assert.True(t, had)
	require.ErrorIs(t, err, downErr)
	var rerr *lab.RunnerError
	require.ErrorAs(t, err, &rerr)
	assert.Equal(t, "down", rerr.Op)

	st := e.m.Status()
	assert.Equal(t, lab.StateDirty, st.State)
	assert.Equal(t, dir, st.Dir)
	assert.Empty(t, st.Holders)
	assert.DirExists(t, dir)
	_, err = e.m.Devices()
	require.ErrorIs(t, err, lab.ErrNoLab)
	require.ErrorIs(t, e.m.Release("s"), lab.ErrNoLab)

	// The next start retries the teardown first and fails with its error,
	// even for the same bundle: no Up runs over a lab that may still run.
	_, err = e.m.TryAcquire(t.Context(), "s", a, true)
	require.ErrorIs(t, err, downErr)
	assert.Equal(t, lab.StateDirty, e.m.Status().State)
	assert.Equal(t, []string{"up", "down", "down"}, ops(r.Calls()))

	failDown = false
	res, err := e.m.TryAcquire(t.Context(), "s", b, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	calls := r.Calls()
	require.Equal(t, []string{"up", "down", "down", "down", "up"}, ops(calls))
	assert.Equal(t, dir, calls[3].Dir)
	assert.NoDirExists(t, dir)
}

func TestUpDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &remotelabtest.FakeRunner{UpDelay: time.Hour}
		e := newEnv(t, r)
		b := newBundle(t, "lab.yml", topoA)

		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		_, err := e.m.TryAcquire(ctx, "a", b, true)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var rerr *lab.RunnerError
		require.ErrorAs(t, err, &rerr)
		assert.Equal(t, "up", rerr.Op)
		assert.Equal(t, 30*time.Minute, time.Since(start))

		// The cleanup ran although the caller's context had ended.
		calls := r.Calls()
		require.Equal(t, []string{"up", "down"}, ops(calls))
		require.NoError(t, calls[1].Err)
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Empty(t, workDirs(t, e.work))
	})
}

func TestCleanupBoundedByDownTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &remotelabtest.FakeRunner{
			UpHook:    func(context.Context, lab.Spec) error { return errors.New("up failed") },
			DownDelay: time.Hour,
		}
		e := newEnv(t, r, func(c *lab.Config) { c.DownTimeout = time.Minute })
		b := newBundle(t, "lab.yml", topoA)

		start := time.Now()
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.Error(t, err)
		assert.Equal(t, time.Minute, time.Since(start))
		calls := r.Calls()
		require.Equal(t, []string{"up", "down"}, ops(calls))
		require.ErrorIs(t, calls[1].Err, context.DeadlineExceeded)
		assert.Equal(t, lab.StateDirty, e.m.Status().State)
	})
}

// TestTryAcquireWaitsForRunningStart: while a start runs, everything that
// needs no lab work answers at once, and TryAcquire and Destroy wait for
// the start (bounded by their context) instead of answering ErrBusy.
func TestTryAcquireWaitsForRunningStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started, release := make(chan string, 1), make(chan struct{})
		r := &remotelabtest.FakeRunner{UpHook: blockingUp(started, release)}
		e := newEnv(t, r)
		a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)

		done := make(chan error, 1)
		go func() {
			_, err := e.m.TryAcquire(context.Background(), "s1", a, true)
			done <- err
		}()
		dir := <-started

		// Everything that needs no lab work answers at once while Up runs.
		st := e.m.Status()
		assert.Equal(t, lab.StateStarting, st.State)
		assert.Equal(t, a.Fingerprint(), st.Fingerprint)
		assert.Equal(t, dir, st.Dir)
		assert.Equal(t, 0, st.RefCount)
		_, err := e.m.Devices()
		require.ErrorIs(t, err, lab.ErrNoLab)
		require.ErrorIs(t, e.m.Release("s1"), lab.ErrNoLab)
		e.m.ReleaseAll("s1")

		// TryAcquire and Destroy wait for the start until their deadline,
		// and change nothing when it passes.
		for _, bb := range []struct {
			holder string
			b      *topology.Bundle
			reuse  bool
		}{{"s2", a, true}, {"s1", a, true}, {"s2", a, false}, {"s2", b, true}} {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			_, err := e.m.TryAcquire(ctx, bb.holder, bb.b, bb.reuse)
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		_, err = e.m.Destroy(ctx, true)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, lab.StateStarting, e.m.Status().State)

		// A waiting TryAcquire attaches once the start is done.
		got := make(chan lab.Result, 1)
		go func() {
			res, err := e.m.TryAcquire(t.Context(), "s2", a, true)
			assert.NoError(t, err)
			got <- res
		}()
		synctest.Wait()
		close(release)
		require.NoError(t, <-done)
		res := <-got
		assert.True(t, res.Reused)
		assert.Equal(t, map[string]int{"s1": 1, "s2": 1}, e.m.Status().Holders)
		assert.Equal(t, []string{"up"}, ops(r.Calls()))
	})
}

func TestAcquireWaitsForRunningOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started, release := make(chan string, 1), make(chan struct{})
		r := &remotelabtest.FakeRunner{UpHook: blockingUp(started, release)}
		e := newEnv(t, r)
		a := newBundle(t, "a.yml", topoA)

		done := make(chan error, 1)
		go func() {
			_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
			done <- err
		}()
		<-started

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		_, err := e.m.Acquire(ctx, "s2", a, true)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)

		got := make(chan lab.Result, 1)
		go func() {
			res, err := e.m.Acquire(t.Context(), "s2", a, true)
			assert.NoError(t, err)
			got <- res
		}()
		synctest.Wait()
		close(release)
		require.NoError(t, <-done)
		res := <-got
		assert.True(t, res.Reused, "the second holder attaches to the lab the first started")
		assert.Equal(t, map[string]int{"s1": 1, "s2": 1}, e.m.Status().Holders)
		assert.Equal(t, []string{"up"}, ops(r.Calls()))
	})
}
