package lab_test

import (
	"context"
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
