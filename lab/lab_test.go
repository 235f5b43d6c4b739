package lab_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestNewManagerRejectsBadConfig(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	for name, cfg := range map[string]lab.Config{
		"no runner":             {},
		"negative idle ttl":     {Runner: r, IdleTTL: -time.Second},
		"negative down timeout": {Runner: r, DownTimeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := lab.NewManager(cfg)
			require.Error(t, err)
			assert.Nil(t, m)
		})
	}
}

func TestAcquireStartsLab(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA, "configs/r1.cfg", "hostname r1\n")
	var seen []byte
	r.UpHook = func(ctx context.Context, spec lab.Spec) error {
		// The bundle is in place, in its layout, when Up runs.
		var err error
		seen, err = os.ReadFile(filepath.Join(spec.Dir, "configs", "r1.cfg"))
		if err != nil {
			return err
		}
		_, err = os.Stat(filepath.Join(spec.Dir, spec.Bundle.TopologyName()))
		return err
	}

	res, err := e.m.TryAcquire(t.Context(), "holder-a", b, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	assert.Equal(t, b.Fingerprint(), res.Fingerprint)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	assert.Equal(t, "hostname r1\n", string(seen))

	st := e.m.Status()
	assert.Equal(t, lab.StateRunning, st.State)
	assert.Equal(t, b.Fingerprint(), st.Fingerprint)
	assert.Equal(t, "lab.yml", st.TopologyName)
	assert.Equal(t, map[string]int{"holder-a": 1}, st.Holders)
	assert.Equal(t, 1, st.RefCount)
	assert.True(t, st.IdleUntil.IsZero())
	assert.Equal(t, []string{st.Dir}, workDirs(t, e.work))
	assert.True(t, strings.HasPrefix(filepath.Base(st.Dir), "remotelab-lab-"), st.Dir)

	calls := r.Calls()
	require.Equal(t, []string{"up"}, ops(calls))
	assert.Equal(t, st.Dir, calls[0].Dir)
	assert.Equal(t, b.Fingerprint(), calls[0].Fingerprint)

	devs, err := e.m.Devices()
	require.NoError(t, err)
	assert.Equal(t, res.Devices, devs)
}

func TestAttachSameFingerprint(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)
	// Same content under another name is the same lab.
	same := newBundle(t, "other.yaml", topoA)

	_, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	res, err := e.m.TryAcquire(t.Context(), "b", same, true)
	require.NoError(t, err)
	assert.True(t, res.Reused)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	res, err = e.m.Acquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	assert.True(t, res.Reused)

	assert.Equal(t, map[string]int{"a": 2, "b": 1}, e.m.Status().Holders)
	assert.Equal(t, 3, e.m.Status().RefCount)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
}

func TestExtraFilesChangeIdentity(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	plain := newBundle(t, "lab.yml", topoA)
	withFile := newBundle(t, "lab.yml", topoA, "x.cfg", "x")

	_, err := e.m.TryAcquire(t.Context(), "a", plain, true)
	require.NoError(t, err)
	require.NoError(t, e.m.Release("a"))
	res, err := e.m.TryAcquire(t.Context(), "a", withFile, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	assert.Equal(t, []string{"up", "down", "up"}, ops(r.Calls()))
}

func TestIdleLabIsReattached(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	_, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	require.NoError(t, e.m.Release("a"))
	st := e.m.Status()
	assert.Equal(t, lab.StateIdle, st.State)
	assert.Equal(t, 0, st.RefCount)
	assert.Empty(t, st.Holders)
	assert.False(t, st.IdleUntil.IsZero())
	// An idle lab still has its devices.
	_, err = e.m.Devices()
	require.NoError(t, err)

	res, err := e.m.TryAcquire(t.Context(), "b", b, true)
	require.NoError(t, err)
	assert.True(t, res.Reused, "re-attaching an idle lab runs no up")
	st = e.m.Status()
	assert.Equal(t, lab.StateRunning, st.State)
	assert.True(t, st.IdleUntil.IsZero())
	assert.Equal(t, map[string]int{"b": 1}, st.Holders)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
}

func TestSwitchTopology(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)

	_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
	require.NoError(t, err)
	oldDir := e.m.Status().Dir
	require.NoError(t, e.m.Release("s1"))

	res, err := e.m.TryAcquire(t.Context(), "s2", b, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	assert.Equal(t, []string{"s1"}, deviceNames(res.Devices))
	assert.Equal(t, b.Fingerprint(), res.Fingerprint)

	calls := r.Calls()
	require.Equal(t, []string{"up", "down", "up"}, ops(calls))
	assert.Equal(t, oldDir, calls[1].Dir)
	assert.NoDirExists(t, oldDir)
	st := e.m.Status()
	assert.Equal(t, "b.yml", st.TopologyName)
	assert.Equal(t, []string{st.Dir}, workDirs(t, e.work))
}

func TestExclusiveRestart(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	_, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	first := e.m.Status().Dir

	// Referenced by another holder: reuse=false must wait.
	_, err = e.m.TryAcquire(t.Context(), "b", b, false)
	require.ErrorIs(t, err, lab.ErrBusy)

	require.NoError(t, e.m.Release("a"))
	res, err := e.m.TryAcquire(t.Context(), "b", b, false)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	assert.Equal(t, []string{"up", "down", "up"}, ops(r.Calls()))
	assert.NotEqual(t, first, e.m.Status().Dir)
	assert.NoDirExists(t, first)
}

func TestConflict(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)

	_, err := e.m.TryAcquire(t.Context(), "s", a, true)
	require.NoError(t, err)
	before := e.m.Status()

	_, err = e.m.TryAcquire(t.Context(), "s", b, true)
	require.ErrorIs(t, err, lab.ErrConflict)
	_, err = e.m.TryAcquire(t.Context(), "s", a, false)
	require.ErrorIs(t, err, lab.ErrConflict)
	// Acquire does not wait for the holder's own references.
	_, err = e.m.Acquire(t.Context(), "s", b, true)
	require.ErrorIs(t, err, lab.ErrConflict)
	// Another holder on the same lab does not change that.
	_, err = e.m.TryAcquire(t.Context(), "t", a, true)
	require.NoError(t, err)
	_, err = e.m.TryAcquire(t.Context(), "s", b, true)
	require.ErrorIs(t, err, lab.ErrConflict)

	after := e.m.Status()
	assert.Equal(t, before.Dir, after.Dir)
	assert.Equal(t, map[string]int{"s": 1, "t": 1}, after.Holders)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
}

func TestBusyWhileOthersHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r)
		a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)

		_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
		require.NoError(t, err)
		_, err = e.m.TryAcquire(t.Context(), "s2", b, true)
		require.ErrorIs(t, err, lab.ErrBusy)

		// A cancelled Acquire leaves everything as it was.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		_, err = e.m.Acquire(ctx, "s2", b, true)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, map[string]int{"s1": 1}, e.m.Status().Holders)
		assert.Equal(t, []string{"up"}, ops(r.Calls()))

		// Acquire waits until the other holder lets go.
		type result struct {
			res lab.Result
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := e.m.Acquire(t.Context(), "s2", b, true)
			done <- result{res, err}
		}()
		synctest.Wait()
		select {
		case got := <-done:
			t.Fatalf("Acquire returned while the lab was held: %+v", got)
		default:
		}
		require.NoError(t, e.m.Release("s1"))
		got := <-done
		require.NoError(t, got.err)
		assert.False(t, got.res.Reused)
		assert.Equal(t, b.Fingerprint(), e.m.Status().Fingerprint)
		assert.Equal(t, []string{"up", "down", "up"}, ops(r.Calls()))
	})
}

func TestReleaseAccounting(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	require.ErrorIs(t, e.m.Release("a"), lab.ErrNoLab)
	e.m.ReleaseAll("a") // no lab: nothing to do

	for range 2 {
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		require.NoError(t, err)
	}
	for range 3 {
		_, err := e.m.TryAcquire(t.Context(), "b", b, true)
		require.NoError(t, err)
	}

	// A holder can release only what it holds.
	require.NoError(t, e.m.Release("stranger"))
	e.m.ReleaseAll("stranger")
	assert.Equal(t, map[string]int{"a": 2, "b": 3}, e.m.Status().Holders)

	require.NoError(t, e.m.Release("a"))
	assert.Equal(t, map[string]int{"a": 1, "b": 3}, e.m.Status().Holders)
	e.m.ReleaseAll("b")
	assert.Equal(t, map[string]int{"a": 1}, e.m.Status().Holders)
	assert.Equal(t, lab.StateRunning, e.m.Status().State)

	require.NoError(t, e.m.Release("a"))
	st := e.m.Status()
	assert.Equal(t, lab.StateIdle, st.State)
	assert.Equal(t, 0, st.RefCount)
	// Releasing again is a no-op on the idle lab.
	require.NoError(t, e.m.Release("a"))
	assert.Equal(t, lab.StateIdle, e.m.Status().State)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
}

func TestDestroy(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)

	had, err := e.m.Destroy(t.Context(), false)
	require.NoError(t, err)
	assert.False(t, had)

	_, err = e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	dir := e.m.Status().Dir

	had, err = e.m.Destroy(t.Context(), false)
	require.ErrorIs(t, err, lab.ErrInUse)
	assert.False(t, had)
	assert.Equal(t, lab.StateRunning, e.m.Status().State)

	had, err = e.m.Destroy(t.Context(), true)
	require.NoError(t, err)
	assert.True(t, had)
	st := e.m.Status()
	assert.Equal(t, lab.StateNone, st.State)
	assert.Empty(t, st.Fingerprint)
	assert.Empty(t, st.Holders)
	assert.NoDirExists(t, dir)
	_, err = e.m.Devices()
	require.ErrorIs(t, err, lab.ErrNoLab)
	require.ErrorIs(t, e.m.Release("a"), lab.ErrNoLab)
	assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))

	// An idle lab goes without force.
	_, err = e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	require.NoError(t, e.m.Release("a"))
	had, err = e.m.Destroy(t.Context(), false)
	require.NoError(t, err)
	assert.True(t, had)
	assert.Empty(t, workDirs(t, e.work))
}

// TestCancelledCallerTouchesNothing: an operation whose context already
// ended (its session was removed between the check and the call) neither
// destroys nor switches the lab another holder uses.
func TestCancelledCallerTouchesNothing(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	_, err := e.m.TryAcquire(t.Context(), "b", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	require.NoError(t, e.m.Release("b"))

	gone, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.m.TryAcquire(gone, "a", newBundle(t, "other.yml", topoB), true)
	require.ErrorIs(t, err, context.Canceled)
	_, err = e.m.TryAcquire(t.Context(), "b", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	had, err := e.m.Destroy(gone, true)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, had)

	st := e.m.Status()
	assert.Equal(t, lab.StateRunning, st.State)
	assert.Equal(t, map[string]int{"b": 1}, st.Holders)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
}

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
		e := newEnv(t, r, func(c *lab.Config) {
			c.IdleTTL = ttl
			c.DownTimeout = downTimeout
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
		assert.Equal(t, lab.StateIdle, e.m.Status().State, "the stale expiry tore the lab down")
		assert.Equal(t, []string{"up"}, ops(r.Calls()))

		time.Sleep(time.Until(idleAgain.Add(ttl)))
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}

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

func TestBusyDuringBlockedUp(t *testing.T) {
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

	// Everything answers at once while Up runs.
	st := e.m.Status()
	assert.Equal(t, lab.StateStarting, st.State)
	assert.Equal(t, a.Fingerprint(), st.Fingerprint)
	assert.Equal(t, dir, st.Dir)
	assert.Equal(t, 0, st.RefCount)
	for _, bb := range []struct {
		holder string
		reuse  bool
	}{{"s2", true}, {"s1", true}, {"s2", false}} {
		_, err := e.m.TryAcquire(t.Context(), bb.holder, a, bb.reuse)
		require.ErrorIs(t, err, lab.ErrBusy)
	}
	_, err := e.m.TryAcquire(t.Context(), "s2", b, true)
	require.ErrorIs(t, err, lab.ErrBusy)
	_, err = e.m.Destroy(t.Context(), true)
	require.ErrorIs(t, err, lab.ErrBusy)
	_, err = e.m.Devices()
	require.ErrorIs(t, err, lab.ErrNoLab)
	require.ErrorIs(t, e.m.Release("s1"), lab.ErrNoLab)
	e.m.ReleaseAll("s1")

	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, map[string]int{"s1": 1}, e.m.Status().Holders)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
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

func TestStateRecord(t *testing.T) {
	started, release := make(chan string, 1), make(chan struct{})
	r := &remotelabtest.FakeRunner{UpHook: blockingUp(started, release)}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)
	recPath := filepath.Join(e.state, "lab.json")

	done := make(chan error, 1)
	go func() {
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		done <- err
	}()
	dir := <-started
	// The record exists before Up runs, so a crash during Up is recovered.
	rec := readRecord(t, recPath)
	assert.Equal(t, dir, rec["dir"])
	assert.Equal(t, b.Fingerprint(), rec["fingerprint"])
	assert.Equal(t, "lab.yml", rec["topology"])
	_, err := time.Parse(time.RFC3339Nano, rec["started_at"].(string))
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-done)
	assert.FileExists(t, recPath)

	_, err = e.m.Destroy(t.Context(), true)
	require.NoError(t, err)
	assert.NoFileExists(t, recPath)
	ents, err := os.ReadDir(e.state)
	require.NoError(t, err)
	assert.Empty(t, ents, "no temporary files left in the state dir")
}

func readRecord(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(data, &rec))
	return rec
}

func TestRecover(t *testing.T) {
	// A first process starts a lab and "crashes": its Manager is never
	// closed before the second one recovers.
	r1 := &remotelabtest.FakeRunner{}
	e1 := newEnv(t, r1)
	b := newBundle(t, "lab.yml", topoA)
	_, err := e1.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	crashed := e1.m.Status().Dir

	r2 := &remotelabtest.FakeRunner{}
	e2 := newEnv(t, r2, func(c *lab.Config) {
		c.StateDir = e1.state
		c.LockPath = e1.lockPath
	})
	// A directory of another lab beside it is left alone.
	other, err := os.MkdirTemp(e1.work, "remotelab-lab-*")
	require.NoError(t, err)

	had, err := e2.m.Recover(t.Context())
	require.NoError(t, err)
	assert.True(t, had)
	calls := r2.Calls()
	require.Len(t, calls, 1)
	assert.Equal(t, remotelabtest.Call{Op: "down", Dir: crashed}, calls[0])
	assert.NoDirExists(t, crashed)
	assert.DirExists(t, other)
	assert.NoFileExists(t, filepath.Join(e1.state, "lab.json"))
	assert.Equal(t, lab.StateNone, e2.m.Status().State)

	had, err = e2.m.Recover(t.Context())
	require.NoError(t, err)
	assert.False(t, had)
}

// TestRecoverLeavesOwnLab: a Recover after this Manager started a lab finds
// its own record and must not tear that lab down.
func TestRecoverLeavesOwnLab(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	_, err := e.m.TryAcquire(t.Context(), "a", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	dir := e.m.Status().Dir

	had, err := e.m.Recover(t.Context())
	require.NoError(t, err)
	assert.False(t, had)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
	assert.Equal(t, lab.StateRunning, e.m.Status().State)
	assert.DirExists(t, dir)
	assert.Equal(t, dir, readRecord(t, filepath.Join(e.state, "lab.json"))["dir"])
}

func TestRecoverKeepsRecordWhenDownFails(t *testing.T) {
	e := newEnv(t, &remotelabtest.FakeRunner{})
	dir, err := os.MkdirTemp(e.work, "remotelab-lab-*")
	require.NoError(t, err)
	writeRecord(t, e.state, dir)

	downErr := errors.New("down failed")
	r := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error { return downErr }}
	e2 := newEnv(t, r, func(c *lab.Config) { c.StateDir = e.state })
	had, err := e2.m.Recover(t.Context())
	assert.True(t, had)
	require.ErrorIs(t, err, downErr)
	assert.DirExists(t, dir)
	assert.FileExists(t, filepath.Join(e.state, "lab.json"))
}

func TestRecoverRejectsForeignRecord(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	victim := t.TempDir()
	writeRecord(t, e.state, victim)

	_, err := e.m.Recover(t.Context())
	require.Error(t, err)
	assert.Empty(t, r.Calls())
	assert.DirExists(t, victim)

	// No state dir: nothing to recover.
	e2 := newEnv(t, r, func(c *lab.Config) { c.StateDir = "" })
	had, err := e2.m.Recover(t.Context())
	require.NoError(t, err)
	assert.False(t, had)
}

func writeRecord(t *testing.T, stateDir, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(stateDir, 0o755))
	data, err := json.Marshal(map[string]any{"dir": dir, "fingerprint": "f", "topology": "lab.yml", "started_at": time.Now()})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(stateDir, "lab.json"), data, 0o644))
}

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

func TestLogs(t *testing.T) {
	var buf syncBuffer
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r, func(c *lab.Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)
	const holder = "0123456789abcdef-session"

	_, err := e.m.TryAcquire(t.Context(), holder, a, true)
	require.NoError(t, err)
	_, err = e.m.TryAcquire(t.Context(), holder, a, true)
	require.NoError(t, err)
	e.m.ReleaseAll(holder)
	_, err = e.m.TryAcquire(t.Context(), "other", b, true)
	require.NoError(t, err)

	out := buf.String()
	for _, want := range []string{
		`msg="Starting lab - this may take several minutes..." topology=a.yml holder=01234567`,
		`msg="Lab started" topology=a.yml devices=2`,
		`msg="Re-using lab" topology=a.yml holder=01234567 ref=2`,
		`msg="Lab became idle – awaiting next user or teardown" topology=a.yml`,
		`msg="Switching topology" from=a.yml to=b.yml`,
		`msg="Tearing down lab" topology=a.yml reason=topology-switch`,
		`msg="Lab torn down" topology=a.yml`,
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, holder, "holder ids are shortened")
}
