package lab_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

// flockHold takes the lock file in this process through a separate file
// description, which excludes the Manager as another process would.
func flockHold(t *testing.T, path string) *flock.Flock {
	t.Helper()
	l := flock.New(path)
	ok, err := l.TryLock()
	require.NoError(t, err)
	require.True(t, ok)
	t.Cleanup(func() { l.Unlock() })
	return l
}

// startLockHolder runs the test binary as a helper process that holds the
// lock file until the returned func is called.
func startLockHolder(t *testing.T, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var once sync.Once
	release = func() {
		once.Do(func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("lock helper: %v", err)
			}
		})
	}
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)
	return release
}

func TestCrossProcessLock(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)
	_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
	require.NoError(t, err)
	require.NoError(t, e.m.Release("s1"))

	release := startLockHolder(t, e.lockPath)

	// Lab work answers ErrBusy at once.
	_, err = e.m.TryAcquire(t.Context(), "s2", b, true)
	require.ErrorIs(t, err, lab.ErrBusy)
	_, err = e.m.Destroy(t.Context(), false)
	require.ErrorIs(t, err, lab.ErrBusy)
	// Attaching to the idle lab runs no netlab and needs no lock.
	res, err := e.m.TryAcquire(t.Context(), "s2", a, true)
	require.NoError(t, err)
	assert.True(t, res.Reused)
	require.NoError(t, e.m.Release("s2"))

	// Acquire waits for the lock until its deadline (a deadline, not a
	// sleep: nothing else can release the lock meanwhile).
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = e.m.Acquire(ctx, "s2", b, true)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), e.lockPath)
	assert.Equal(t, []string{"up"}, ops(r.Calls()))
	assert.Equal(t, a.Fingerprint(), e.m.Status().Fingerprint)

	release()
	res, err = e.m.TryAcquire(t.Context(), "s2", b, true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	assert.Equal(t, []string{"up", "down", "up"}, ops(r.Calls()))
}

func TestLockFileDisabled(t *testing.T) {
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r, func(c *lab.Config) { c.LockPath = "-" })
	flockHold(t, e.lockPath)
	_, err := e.m.TryAcquire(t.Context(), "s", newBundle(t, "a.yml", topoA), true)
	require.NoError(t, err)
}

// TestHammer runs many holders against two labs. While a holder holds a
// reference, the lab must be its lab; at no time may two labs run.
func TestHammer(t *testing.T) {
	var (
		mu   sync.Mutex
		live = map[string]bool{}
	)
	r := &remotelabtest.FakeRunner{
		UpHook: func(_ context.Context, spec lab.Spec) error {
			mu.Lock()
			defer mu.Unlock()
			if len(live) != 0 {
				t.Errorf("up of %s while %v runs", spec.Dir, live)
			}
			live[spec.Dir] = true
			return nil
		},
		DownHook: func(_ context.Context, dir string) error {
			mu.Lock()
			defer mu.Unlock()
			delete(live, dir)
			return nil
		},
	}
	e := newEnv(t, r)
	labs := [...]struct {
		name, topo string
	}{{"a.yml", topoA}, {"b.yml", topoB}}
	bs := make([]*bundleRef, len(labs))
	for i, l := range labs {
		bs[i] = &bundleRef{b: newBundle(t, l.name, l.topo)}
	}

	const workers, rounds = 12, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			holder := fmt.Sprintf("holder-%02d", w)
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				br := bs[rng.IntN(len(bs))]
				reuse := rng.IntN(8) != 0
				var (
					res lab.Result
					err error
				)
				if rng.IntN(2) == 0 {
					res, err = e.m.TryAcquire(context.Background(), holder, br.b, reuse)
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					res, err = e.m.Acquire(ctx, holder, br.b, reuse)
					cancel()
				}
				switch {
				case errors.Is(err, lab.ErrBusy), errors.Is(err, context.DeadlineExceeded):
					_ = e.m.Status()
					continue
				case err != nil:
					t.Errorf("%s: acquire: %v", holder, err)
					return
				}
				br.count(res.Reused)
				if res.Fingerprint != br.b.Fingerprint() {
					t.Errorf("%s: got lab %s, want %s", holder, res.Fingerprint, br.b.Fingerprint())
				}
				if st := e.m.Status(); st.Fingerprint != br.b.Fingerprint() || st.Holders[holder] == 0 || st.State != lab.StateRunning {
					t.Errorf("%s: holds a reference but status is %s %.8s holders %v", holder, st.State, st.Fingerprint, st.Holders)
				}
				if devs, err := e.m.Devices(); err != nil || len(devs) != len(res.Devices) {
					t.Errorf("%s: devices %v, %v", holder, devs, err)
				}
				if rng.IntN(2) == 0 {
					if err := e.m.Release(holder); err != nil {
						t.Errorf("%s: release: %v", holder, err)
					}
				} else {
					e.m.ReleaseAll(holder)
				}
			}
		})
	}
	wg.Wait()

	st := e.m.Status()
	assert.Equal(t, 0, st.RefCount)
	assert.Empty(t, st.Holders)
	assert.Equal(t, lab.StateIdle, st.State)
	var starts, attaches int
	for _, br := range bs {
		starts += br.starts
		attaches += br.attaches
	}
	t.Logf("starts %d, attaches %d, runner calls %d", starts, attaches, len(r.Calls()))
	assert.Positive(t, starts)
	assert.Positive(t, attaches)
	ups := 0
	for _, c := range r.Calls() {
		switch {
		case c.Err != nil && !errors.Is(c.Err, context.DeadlineExceeded):
			t.Errorf("%s %s: %v", c.Op, c.Dir, c.Err)
		case c.Op == "up" && c.Err == nil:
			ups++
		}
	}
	assert.Equal(t, starts, ups, "Reused is false exactly when Up ran")
}

type bundleRef struct {
	b                *topology.Bundle
	mu               sync.Mutex
	starts, attaches int
}

func (br *bundleRef) count(reused bool) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if reused {
		br.attaches++
	} else {
		br.starts++
	}
}

func TestIdleExpiryRetriesWhileLockFileHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl, downTimeout = 10 * time.Minute, time.Minute
		r := &remotelabtest.FakeRunner{}
		e := newEnv(t, r, func(c *lab.Config) {
			c.IdleTTL = ttl
			c.DownTimeout = downTimeout
		})
		_, err := e.m.TryAcquire(t.Context(), "a", newBundle(t, "a.yml", topoA), true)
		require.NoError(t, err)
		held := flockHold(t, e.lockPath)
		require.NoError(t, e.m.Release("a"))

		// The expiry waits DownTimeout for the lock, then re-arms.
		time.Sleep(ttl + downTimeout)
		synctest.Wait()
		st := e.m.Status()
		require.Equal(t, lab.StateIdle, st.State)
		assert.Equal(t, time.Now().Add(ttl), st.IdleUntil)
		assert.Equal(t, []string{"up"}, ops(r.Calls()))

		require.NoError(t, held.Unlock())
		time.Sleep(ttl)
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.m.Status().State)
		assert.Equal(t, []string{"up", "down"}, ops(r.Calls()))
	})
}
