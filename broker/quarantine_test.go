package broker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// cancelDuring acquires src for session id and cancels the acquire once
// the runner call it waits for has been entered.
func (e *env) cancelDuring(entered <-chan struct{}, id, src string) error {
	e.t.Helper()
	op, err := e.b.Begin(id)
	require.NoError(e.t, err)
	defer op.End()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := op.Acquire(ctx, bundle(e.t, src), true)
		done <- err
	}()
	<-entered
	cancel()
	return <-done
}

// A start its client gave up on (it went away, its session ended) says
// nothing about the host: clients that disconnect during netlab up, with
// different topologies, never quarantine it.
func TestCancelledStartsDoNotQuarantine(t *testing.T) {
	entered := make(chan struct{})
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, _ lab.Spec) error {
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}}
	e := newEnv(t, runner)
	s := e.join("alice")
	for _, src := range []string{topoA, topoB, topoC} {
		err := e.cancelDuring(entered, s.ID, src)
		require.ErrorIs(t, err, context.Canceled)
	}
	ready, reason := e.b.Ready()
	assert.True(t, ready, "not ready: %s", reason)
	assert.Nil(t, e.b.Queue().Quarantine)
	assert.NotContains(t, e.audit.actions(), "quarantine")
}

// Likewise a teardown cut short (its caller's context ended: a shutdown, an
// API caller of Op.Destroy that gives up) leaves the lab dirty (the next
// start retries it) but does not count as a failed teardown.
func TestCancelledTeardownsDoNotQuarantine(t *testing.T) {
	entered := make(chan struct{})
	var blockDown bool
	runner := &remotelabtest.FakeRunner{DownHook: func(ctx context.Context, _ string) error {
		if !blockDown {
			return nil
		}
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}}
	e := newEnv(t, runner)
	s := e.join("alice")
	blockDown = true // set before the runner calls below, read by them
	for range 3 {
		blockDown = false
		_, err := e.acquire(s.ID, topoA)
		require.NoError(t, err)
		e.release(s.ID)
		blockDown = true
		op, err := e.b.Begin(s.ID)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := op.Destroy(ctx, true)
			done <- err
		}()
		<-entered
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		op.End()
		assert.Equal(t, lab.StateDirty, e.b.Manager().Status().State)
	}
	ready, reason := e.b.Ready()
	assert.True(t, ready, "not ready: %s", reason)
	assert.NotContains(t, e.audit.actions(), "quarantine")

	// Failed teardowns still count.
	runner.DownHook = func(context.Context, string) error { return errors.New("containerlab destroy failed") }
	for range 3 {
		_, err := e.acquire(s.ID, topoA)
		require.Error(t, err)
	}
	_, err := e.acquire(s.ID, topoA)
	require.ErrorIs(t, err, broker.ErrQuarantined)
}

// An admin's teardown (DELETE /admin/lab) is a cleanup like the retry's:
// when it succeeds and the runner passes its probe, the quarantine is
// lifted at once; with the probe failing it stays.
func TestAdminTeardownLiftsQuarantine(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	runner := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if failing.Load() {
			return errors.New("containerlab destroy failed")
		}
		return nil
	}}
	var probeErr atomic.Pointer[error]
	e := newEnv(t, runner, func(c *broker.Config) {
		c.QuarantineAfter = 1
		c.QuarantineBackoff = time.Hour // no automatic retry in this test
		c.Probe = func(context.Context) error {
			if p := probeErr.Load(); p != nil {
				return *p
			}
			return nil
		}
	})
	s := e.join("alice")
	_, err := e.acquire(s.ID, topoA)
	require.NoError(t, err)
	op, err := e.b.Begin(s.ID)
	require.NoError(t, err)
	require.NoError(t, op.Release())
	op.End()
	_, err = e.acquire(s.ID, topoB)
	require.Error(t, err, "the switch's teardown fails")
	_, quarantined := e.b.Quarantined()
	require.True(t, quarantined)

	failing.Store(false)
	broken := errors.New("netlab version: exit status 1")
	probeErr.Store(&broken)
	_, err = e.b.DestroyLab(context.Background(), "root")
	require.NoError(t, err)
	_, quarantined = e.b.Quarantined()
	assert.True(t, quarantined, "the runner still fails its probe")

	probeErr.Store(nil)
	_, err = e.b.DestroyLab(context.Background(), "root")
	require.NoError(t, err)
	_, quarantined = e.b.Quarantined()
	assert.False(t, quarantined)
	assert.Equal(t, []string{"quarantine", "destroy_lab", "destroy_lab", "unquarantine"}, e.audit.actions())
	last := e.audit.all()[len(e.audit.all())-1]
	assert.Equal(t, "root", last.Actor)
	assert.Equal(t, "a cleanup by an admin succeeded", last.Reason)
	// (Ready may still report the failed probe if the probe loop ran
	// while it failed: that is the loop's business, not the quarantine's.)
	_, reason := e.b.Ready()
	assert.NotContains(t, reason, "quarantined")
}

// A quarantine saved by the previous run is retried as soon as the
// broker starts, not after a backoff: a restart is when an operator who
// repaired the host expects it checked.
func TestRestoredQuarantineRetriedAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		st.quarantine = &broker.Quarantine{Since: time.Now().Add(-time.Hour), Reason: "3 lab teardowns failed in a row"}
		start := time.Now()
		e := newEnv(t, nil, withStore(st), func(c *broker.Config) { c.QuarantineBackoff = time.Hour })
		synctest.Wait()
		_, quarantined := e.b.Quarantined()
		assert.False(t, quarantined, "lifted by the first cleanup")
		assert.Zero(t, time.Since(start), "at once, not after the backoff")
		assert.Equal(t, []string{"unquarantine"}, e.audit.actions())
		e.close()
	})
}
