package lab_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestIdleTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Minute
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = ttl })
		b := newBundle(t, "lab.yml", topoA)

		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("a"))
		idleAt := time.Now()
		st := e.m.Status()
		require.Equal(t, lab.StateIdle, st.State)
		assert.Equal(t, idleAt.Add(ttl), st.IdleUntil)

		time.Sleep(ttl - time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, lab.StateIdle, e.m.Status().State, "torn down before the TTL")
		assert.Equal(t, []string{"up"}, ops(r.Calls()))

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
		assert.Empty(t, workDirs(t, e.work))
		assert.NoFileExists(t, filepath.Join(e.state, "lab.json"))
	})
}

func TestIdleTTLCancelledByReacquire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 10 * time.Minute
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = ttl })
		b := newBundle(t, "lab.yml", topoA)

		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("a"))
		time.Sleep(ttl / 2)

		res, err := e.m.TryAcquire(t.Context(), "b", b, true)
		require.NoError(t, err)
		assert.True(t, res.Reused)
		time.Sleep(3 * ttl)
		synctest.Wait()
		assert.Equal(t, lab.StateRunning, e.m.Status().State, "the old idle timer fired")

		// The next idle period gets the full TTL again.
		require.NoError(t, e.m.Release("b"))
		time.Sleep(ttl - time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, lab.StateIdle, e.m.Status().State)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}

func TestDestroyOfIdleLabStopsIdleTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		started, release := make(chan string, 1), make(chan struct{})
		downs := 0
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = ttl })
		b := newBundle(t, "lab.yml", topoA)
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("a"))

		// A Destroy of the idle lab that outlasts the TTL: the idle timer
		// must not tear it down a second time.
		r.DownHook = func(ctx context.Context, dir string) error {
			downs++
			started <- dir
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan error, 1)
		go func() {
			_, err := e.m.Destroy(t.Context(), false)
			done <- err
		}()
		<-started
		time.Sleep(2 * ttl)
		synctest.Wait()
		close(release)
		require.NoError(t, <-done)
		synctest.Wait()
		assert.Equal(t, 1, downs)
		assert.Equal(t, lab.StateNone, e.m.Status().State)
	})
}

func TestIdleExpiryLeftToHolderOfOperationLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = ttl })
		a, other := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)
		_, err := e.m.TryAcquire(t.Context(), "a", a, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("a"))

		// Another process holds the lock file; an Acquire for another lab
		// takes the operation lock and waits for the file lock across the
		// TTL, then gives up. The idle lab must still go afterwards.
		held := flockHold(t, e.lockPath)
		ctx, cancel := context.WithTimeout(t.Context(), 2*ttl)
		_, err = e.m.Acquire(ctx, "b", other, true)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, lab.StateIdle, e.m.Status().State)
		require.NoError(t, held.Unlock())
		time.Sleep(time.Second) // let the manager's lock retry come round
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}

// TestIdleExpiryRechecksAfterWaitingForLockFile: an idle expiry that waits
// for the lock file while the lab is taken and released again must leave
// the new idle period alone.
func TestIdleExpiryRechecksAfterWaitingForLockFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl, downTimeout = 10 * time.Minute, 5 * time.Minute
		r := &remotelabtest.FakeRunner{}
		var logs testutil.Buffer
		e := newEnv(t, r, func(c *lab.Config) {
			c.IdleTTL = ttl
			c.DownTimeout = downTimeout
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		b := newBundle(t, "lab.yml", topoA)
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("a"))
		held := flockHold(t, e.lockPath)

		// The expiry is due and waits for the lock file.
		time.Sleep(ttl + time.Second)
		synctest.Wait()
		require.Equal(t, lab.StateIdle, e.m.Status().State)
		assert.Contains(t, logs.String(), `msg="Waiting for the lab lock file, which another process holds" path=`+e.lockPath)

		// Meanwhile the lab is attached and released: a new idle period.
		res, err := e.m.TryAcquire(t.Context(), "b", b, true)
		require.NoError(t, err)
		assert.True(t, res.Reused)
		require.NoError(t, e.m.Release("b"))
		idleAgain := time.Now()

		// The waiting expiry gets the lock now and must give up.
		require.NoError(t, held.Unlock())
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Contains(t, logs.String(), `msg="Lab lock file taken" path=`+e.lockPath)
		assert.Equal(t, lab.StateIdle, e.m.Status().State, "the stale expiry tore the lab down")
		assert.Equal(t, []string{"up"}, ops(r.Calls()))

		time.Sleep(time.Until(idleAgain.Add(ttl)))
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}

// TestIdleTeardownDoesNotMakeTryAcquireBusy: a holder that asks for the
// lab while the Manager's own idle teardown runs waits for it and gets a
// fresh lab, never ErrBusy (remotelabd would answer 423 to the session
// at the head of the queue).
func TestIdleTeardownDoesNotMakeTryAcquireBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		downStarted, downRelease := make(chan string, 1), make(chan struct{})
		r := &remotelabtest.FakeRunner{DownHook: blockingDown(downStarted, downRelease)}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = ttl })
		b := newBundle(t, "lab.yml", topoA)
		_, err := e.m.TryAcquire(t.Context(), "s1", b, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("s1"))

		time.Sleep(ttl)
		old := <-downStarted // the idle teardown runs
		st := e.m.Status()
		require.Equal(t, lab.StateStopping, st.State)
		require.NotNil(t, st.Operation)
		assert.Equal(t, "down", st.Operation.Kind)

		type result struct {
			res lab.Result
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := e.m.TryAcquire(t.Context(), "s2", b, true)
			done <- result{res, err}
		}()
		synctest.Wait()
		select {
		case got := <-done:
			close(downRelease)
			t.Fatalf("TryAcquire returned while the idle teardown ran: %+v", got)
		default:
		}
		close(downRelease)
		got := <-done
		require.NoError(t, got.err)
		assert.False(t, got.res.Reused)
		st = e.m.Status()
		assert.Equal(t, lab.StateRunning, st.State)
		assert.Equal(t, map[string]int{"s2": 1}, st.Holders)
		assert.NotEqual(t, old, st.Dir)
		assert.Equal(t, []string{"up", "down", "up"}, ops(r.Calls()))
	})
}

// TestIdleTeardownDoesNotMakeDestroyBusy: Destroy waits for the Manager's
// own teardown too, and then finds nothing left to do.
func TestIdleTeardownDoesNotMakeDestroyBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		downStarted, downRelease := make(chan string, 1), make(chan struct{})
		r := &remotelabtest.FakeRunner{DownHook: blockingDown(downStarted, downRelease)}
		e := newEnv(t, r, func(c *lab.Config) { c.IdleTTL = ttl })
		_, err := e.m.TryAcquire(t.Context(), "s1", newBundle(t, "lab.yml", topoA), true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("s1"))
		time.Sleep(ttl)
		<-downStarted

		type result struct {
			had bool
			err error
		}
		done := make(chan result, 1)
		go func() {
			had, err := e.m.Destroy(t.Context(), false)
			done <- result{had, err}
		}()
		synctest.Wait()
		select {
		case got := <-done:
			close(downRelease)
			t.Fatalf("Destroy returned while the idle teardown ran: %+v", got)
		default:
		}
		close(downRelease)
		got := <-done
		require.NoError(t, got.err)
		assert.False(t, got.had, "the idle teardown left nothing to destroy")
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}

// TestBusyAtOnceWhileBackgroundWaitsForLockFile: when the Manager's own
// work waits for the lock file another process holds (which may last
// indefinitely), TryAcquire and Destroy answer ErrBusy at once instead of
// waiting behind it.
func TestBusyAtOnceWhileBackgroundWaitsForLockFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl, downTimeout = time.Minute, time.Hour
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) {
			c.IdleTTL = ttl
			c.DownTimeout = downTimeout
		})
		a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)
		_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
		require.NoError(t, err)
		require.NoError(t, e.m.Release("s1"))
		held := flockHold(t, e.lockPath)
		time.Sleep(ttl + time.Second) // the idle expiry now waits for the lock file
		synctest.Wait()

		start := time.Now()
		_, err = e.m.TryAcquire(t.Context(), "s2", b, true)
		require.ErrorIs(t, err, lab.ErrBusy)
		assert.Contains(t, err.Error(), e.lockPath)
		_, err = e.m.Destroy(t.Context(), false)
		require.ErrorIs(t, err, lab.ErrBusy)
		assert.Zero(t, time.Since(start), "answered at once")
		// Attaching needs no lock.
		res, err := e.m.TryAcquire(t.Context(), "s2", a, true)
		require.NoError(t, err)
		assert.True(t, res.Reused)
		assert.Equal(t, []string{"up"}, ops(r.Calls()))
		require.NoError(t, held.Unlock())
	})
}
