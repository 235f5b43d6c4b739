package lab_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestRecover(t *testing.T) {
	// A first process starts a lab and "crashes": its Manager is never
	// closed before the second one recovers.
	r1 := &remotelabtest.FakeRunner{}
	e1 := newEnv(t, r1)
	b := newBundle(t, "lab.yml", topoA)
	_, err := e1.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	crashed := e1.m.Status().Dir

	// Another runner: the lab does not run for it, so it is torn down.
	r2 := &remotelabtest.FakeRunner{}
	e2 := newEnv(t, r2, func(c *lab.Config) {
		c.StateDir = e1.state
		c.LockPath = e1.lockPath
	})
	// A directory of another lab beside it is left alone.
	other, err := os.MkdirTemp(e1.work, "remotelab-lab-*")
	require.NoError(t, err)

	got, err := e2.m.Recover(t.Context())
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredTornDown, got)
	calls := r2.Calls()
	require.Len(t, calls, 1)
	assert.Equal(t, remotelabtest.Call{Op: "down", Dir: crashed}, calls[0])
	assert.NoDirExists(t, crashed)
	assert.DirExists(t, other)
	assert.NoFileExists(t, filepath.Join(e1.state, "lab.json"))
	assert.Equal(t, lab.StateNone, e2.m.Status().State)

	got, err = e2.m.Recover(t.Context())
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredNothing, got)
}

// TestRecoverLeavesOwnLab: a Recover after this Manager started a lab finds
// its own record and must not tear that lab down.
func TestRecoverLeavesOwnLab(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	_, err := e.m.TryAcquire(t.Context(), "a", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	dir := e.m.Status().Dir

	got, err := e.m.Recover(t.Context())
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredNothing, got)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
	assert.Equal(t, lab.StateRunning, e.m.Status().State)
	assert.DirExists(t, dir)
	assert.Equal(t, dir, readRecord(t, filepath.Join(e.state, "lab.json"))["dir"])
}

// TestRecoverFailedCleanupLeavesDirty: a startup cleanup whose teardown
// fails keeps the lab, visibly dirty and recorded so, until a later
// teardown succeeds. (It used to forget the lab: the next start went
// ahead beside it.)
func TestRecoverFailedCleanupLeavesDirty(t *testing.T) {
	e := newEnv(t, &remotelabtest.FakeRunner{})
	dir, err := os.MkdirTemp(e.work, "remotelab-lab-*")
	require.NoError(t, err)
	writeRecord(t, e.state, dir)

	downErr := errors.New("down failed")
	failDown := true
	r := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if failDown {
			return downErr
		}
		return nil
	}}
	e2 := newEnv(t, r, func(c *lab.Config) { c.StateDir = e.state })
	got, err := e2.m.Recover(t.Context())
	assert.Equal(t, lab.RecoveredDirty, got)
	require.ErrorIs(t, err, downErr)
	var rerr *lab.RunnerError
	require.ErrorAs(t, err, &rerr)
	assert.DirExists(t, dir)
	st := e2.m.Status()
	assert.Equal(t, lab.StateDirty, st.State)
	assert.Equal(t, dir, st.Dir)
	assert.Equal(t, "lab.yml", st.TopologyName)
	assert.Equal(t, lab.StateDirty, loadRecord(t, e.state).State)

	// The next start retries the teardown first; while it fails, no Up
	// runs beside the dirty lab.
	b := newBundle(t, "b.yml", topoB)
	_, err = e2.m.TryAcquire(t.Context(), "s", b, true)
	require.ErrorIs(t, err, downErr)
	assert.Equal(t, []string{"down", "down"}, ops(r.Calls()))
	assert.Equal(t, lab.StateDirty, e2.m.Status().State)

	failDown = false
	res, err := e2.m.TryAcquire(t.Context(), "s", b, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	calls := r.Calls()
	require.Equal(t, []string{"down", "down", "down", "up"}, ops(calls))
	assert.Equal(t, dir, calls[2].Dir)
	assert.NoDirExists(t, dir)
	assert.Equal(t, e2.m.Status().Dir, loadRecord(t, e.state).Dir)
}

// TestRecoverDirtyThenDestroy: Destroy also retries a dirty recovered lab.
func TestRecoverDirtyThenDestroy(t *testing.T) {
	store := &memRecords{rec: &lab.Record{Dir: "/nonexistent/remotelab-lab-1", State: lab.StateRunning}}
	fail := true
	r := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if fail {
			return errors.New("down failed")
		}
		return nil
	}}
	e := newEnv(t, r, func(c *lab.Config) { c.Records = store })
	got, err := e.m.Recover(t.Context())
	require.Error(t, err)
	assert.Equal(t, lab.RecoveredDirty, got)
	assert.Equal(t, lab.StateDirty, store.current().State)

	fail = false
	had, err := e.m.Destroy(t.Context(), false)
	require.NoError(t, err)
	assert.True(t, had)
	assert.Nil(t, store.current())
	assert.Equal(t, lab.StateNone, e.m.Status().State)
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
	assert.Equal(t, lab.StateNone, e.m.Status().State)

	// No state dir: nothing to recover.
	e2 := newEnv(t, r, func(c *lab.Config) { c.StateDir = "" })
	got, err := e2.m.Recover(t.Context())
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredNothing, got)
}

// TestRecoverAdoptsRunningLab: a lab the previous process left up (here:
// closed with KeepOnClose) is adopted with its holders and devices; no
// Runner call runs, and the references the layer above no longer knows
// are dropped.
func TestRecoverAdoptsRunningLab(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		r := &remotelabtest.FakeRunner{}
		e1 := newEnv(t, r, func(c *lab.Config) {
			c.KeepOnClose = true
			c.IdleTTL = ttl
		})
		b := newBundle(t, "lab.yml", topoA)
		for _, h := range []string{"s1", "s1", "s2"} {
			_, err := e1.m.TryAcquire(t.Context(), h, b, true)
			require.NoError(t, err)
		}
		before := e1.m.Status()
		require.NoError(t, e1.m.Close(t.Context()))
		assert.Equal(t, []string{"up"}, ops(r.Calls()), "KeepOnClose tears nothing down")
		assert.Equal(t, map[string]int{"s1": 2, "s2": 1}, loadRecord(t, e1.state).Holders)

		e2 := newEnv(t, r, func(c *lab.Config) {
			c.StateDir, c.LockPath, c.WorkRoot = e1.state, e1.lockPath, e1.work
			c.IdleTTL = ttl
		})
		got, err := e2.m.Recover(t.Context())
		require.NoError(t, err)
		assert.Equal(t, lab.RecoveredAdopted, got)
		st := e2.m.Status()
		assert.Equal(t, lab.StateRunning, st.State)
		assert.Equal(t, before.Dir, st.Dir)
		assert.Equal(t, before.Fingerprint, st.Fingerprint)
		assert.Equal(t, before.Holders, st.Holders)
		assert.Equal(t, before.Devices, st.Devices)
		assert.Equal(t, []string{"up"}, ops(r.Calls()))

		// The same holder re-attaches without an up: reused stays honest.
		res, err := e2.m.TryAcquire(t.Context(), "s2", b, true)
		require.NoError(t, err)
		assert.True(t, res.Reused)

		// s1 is gone after the restart; s2 goes later: the lab idles out.
		e2.m.DropHoldersExcept(func(h string) bool { return h == "s2" })
		assert.Equal(t, map[string]int{"s2": 2}, e2.m.Status().Holders)
		e2.m.ReleaseAll("s2")
		assert.Equal(t, lab.StateIdle, e2.m.Status().State)
		time.Sleep(ttl)
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e2.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}

// TestRecoverAdoptsIdleLab: an adopted lab without holders idles, with the
// idle timer armed.
func TestRecoverAdoptsIdleLab(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Minute
		r := &remotelabtest.FakeRunner{}
		b := newBundle(t, "lab.yml", topoA)
		dir := filepath.Join(t.TempDir(), "remotelab-lab-7")
		require.NoError(t, os.Mkdir(dir, 0o755))
		_, err := r.Up(t.Context(), lab.Spec{Dir: dir, Bundle: b})
		require.NoError(t, err)
		store := &memRecords{rec: &lab.Record{Dir: dir, Fingerprint: b.Fingerprint(), Topology: "lab.yml",
			State: lab.StateRunning, Holders: map[string]int{"gone": 1}}}
		e := newEnv(t, r, func(c *lab.Config) {
			c.Records = store
			c.IdleTTL = ttl
		})
		got, err := e.m.Recover(t.Context())
		require.NoError(t, err)
		require.Equal(t, lab.RecoveredAdopted, got)
		e.m.DropHoldersExcept(func(string) bool { return false })
		st := e.m.Status()
		assert.Equal(t, lab.StateIdle, st.State)
		assert.Equal(t, time.Now().Add(ttl), st.IdleUntil)
		assert.Equal(t, lab.StateIdle, store.current().State)
		time.Sleep(ttl)
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Nil(t, store.current())
		assert.NoDirExists(t, dir)
	})
}

// TestRecoverTearsDownLabThatDoesNotRun: only a lab that was up and that
// the Runner says still runs is adopted.
func TestRecoverTearsDownLabThatDoesNotRun(t *testing.T) {
	b := newBundle(t, "lab.yml", topoA)
	for _, tc := range []struct {
		name  string
		state lab.State
		up    bool // the runner has the lab up
	}{
		{"start cut short", lab.StateStarting, true},
		{"teardown cut short", lab.StateStopping, true},
		{"dirty", lab.StateDirty, true},
		{"old record without state", "", true},
		{"gone", lab.StateRunning, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &remotelabtest.FakeRunner{}
			dir := filepath.Join(t.TempDir(), "remotelab-lab-1")
			require.NoError(t, os.Mkdir(dir, 0o755))
			if tc.up {
				_, err := r.Up(t.Context(), lab.Spec{Dir: dir, Bundle: b})
				require.NoError(t, err)
			}
			store := &memRecords{rec: &lab.Record{Dir: dir, Fingerprint: b.Fingerprint(), State: tc.state}}
			e := newEnv(t, r, func(c *lab.Config) { c.Records = store })
			got, err := e.m.Recover(t.Context())
			require.NoError(t, err)
			assert.Equal(t, lab.RecoveredTornDown, got)
			assert.Equal(t, "down", ops(r.Calls())[len(r.Calls())-1])
			assert.Nil(t, store.current())
			assert.NoDirExists(t, dir)
		})
	}
}

// TestKeepOnCloseCleansUpInterruptedStart: KeepOnClose keeps an up lab,
// never a half-started one.
func TestKeepOnCloseCleansUpInterruptedStart(t *testing.T) {
	started := make(chan string, 1)
	r := &remotelabtest.FakeRunner{UpHook: blockingUp(started, nil)}
	e := newEnv(t, r, func(c *lab.Config) { c.KeepOnClose = true })
	done := make(chan error, 1)
	go func() {
		_, err := e.m.TryAcquire(context.Background(), "a", newBundle(t, "lab.yml", topoA), true)
		done <- err
	}()
	dir := <-started
	require.NoError(t, e.m.Close(t.Context()))
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	assert.NoDirExists(t, dir)
	assert.NoFileExists(t, filepath.Join(e.state, "lab.json"))
	assert.Equal(t, lab.StateNone, e.m.Status().State)
}

// TestRecoverCutShortKeepsTheLabDirty: a startup cleanup that cannot take
// the locks (another process holds the lock file until the daemon's
// recovery deadline) has not touched the recorded lab, but must not
// forget it either: the lab is kept as dirty, so the next start tears it
// down first instead of starting beside it and recording over it.
func TestRecoverCutShortKeepsTheLabDirty(t *testing.T) {
	e := newEnv(t, &remotelabtest.FakeRunner{})
	dir, err := os.MkdirTemp(e.work, "remotelab-lab-*")
	require.NoError(t, err)
	writeRecord(t, e.state, dir)
	holder := flockHold(t, e.lockPath)

	r := &remotelabtest.FakeRunner{}
	e2 := newEnv(t, r, func(c *lab.Config) {
		c.StateDir = e.state
		c.LockPath = e.lockPath
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the recovery deadline has passed
	got, err := e2.m.Recover(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, lab.RecoveredDirty, got)
	assert.Empty(t, r.Calls(), "nothing ran without the locks")
	st := e2.m.Status()
	assert.Equal(t, lab.StateDirty, st.State)
	assert.Equal(t, dir, st.Dir)
	assert.Equal(t, lab.StateDirty, loadRecord(t, e.state).State)
	assert.DirExists(t, dir)

	require.NoError(t, holder.Unlock())
	_, err = e2.m.TryAcquire(t.Context(), "s", newBundle(t, "b.yml", topoB), true)
	require.NoError(t, err)
	calls := r.Calls()
	require.Equal(t, []string{"down", "up"}, ops(calls), "the recorded lab is torn down first")
	assert.Equal(t, dir, calls[0].Dir)
	assert.NoDirExists(t, dir)
}

// TestRecoverAdoptsWhileLockFileHeld: adopting changes nothing on the
// host, so a lab that still runs is adopted at once even while another
// process (a local test run) holds the lock file; only a teardown waits
// for it.
func TestRecoverAdoptsWhileLockFileHeld(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	b := newBundle(t, "lab.yml", topoA)
	e := newEnv(t, r)
	dir, err := os.MkdirTemp(e.work, "remotelab-lab-*")
	require.NoError(t, err)
	_, err = r.Up(t.Context(), lab.Spec{Dir: dir, Bundle: b})
	require.NoError(t, err)
	store := &memRecords{rec: &lab.Record{Dir: dir, Fingerprint: b.Fingerprint(), Topology: "lab.yml",
		State: lab.StateRunning, Holders: map[string]int{"s1": 1}}}
	holder := flockHold(t, e.lockPath)
	defer holder.Unlock()

	e2 := newEnv(t, r, func(c *lab.Config) {
		c.Records = store
		c.LockPath = e.lockPath
	})
	// Far longer than the test takes when adoption does not wait.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got, err := e2.m.Recover(ctx)
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredAdopted, got)
	assert.Equal(t, map[string]int{"s1": 1}, e2.m.Status().Holders)
	assert.Equal(t, []string{"up"}, ops(r.Calls()), "no teardown, no second up")
}
