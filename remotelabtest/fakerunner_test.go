package remotelabtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

var (
	_ lab.Runner = (*remotelabtest.FakeRunner)(nil)
	_ lab.Prober = (*remotelabtest.FakeRunner)(nil)
)

func TestFakeRunnerZeroValue(t *testing.T) {
	for _, tc := range []struct {
		name, topo, labName string
	}{
		{"named", "name: alpha\nnodes:\n  r1:\n    device: eos\n  r2:\n    device: frr\n", "alpha"},
		// Named after the working directory, as Netlab and sim.Runner do.
		{"unnamed", "nodes: [h1, h2, h3]\n", "remotelablab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f remotelabtest.FakeRunner
			b := testutil.Bundle(t, "lab.yml", tc.topo)
			spec := lab.Spec{Dir: filepath.Join(t.TempDir(), "remotelab-lab-x"), Bundle: b}
			require.NoError(t, os.Mkdir(spec.Dir, 0o755)) // sim.Runner leaves its marker there

			devs, err := f.Up(t.Context(), spec)
			require.NoError(t, err)
			want := sim.Devices(b.Topology(), sim.Addressing{LabName: tc.labName})
			require.NotEmpty(t, want)
			assert.Equal(t, want, devs)
			simDevs, err := (&sim.Runner{}).Up(t.Context(), spec)
			require.NoError(t, err)
			assert.Equal(t, simDevs, devs, "the same data as remotelabd --runner sim")
			assert.Equal(t, b.Topology().NodeNames(), names(devs))
			for _, d := range devs {
				var raw map[string]any
				require.NoError(t, json.Unmarshal(d.Raw, &raw), "raw of %s is a JSON object", d.Name)
			}

			require.NoError(t, f.Down(t.Context(), spec.Dir))
			assert.Equal(t, []remotelabtest.Call{
				{Op: "up", Dir: spec.Dir, Fingerprint: b.Fingerprint()},
				{Op: "down", Dir: spec.Dir},
			}, f.Calls())
		})
	}
}

func names(devs []lab.Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.Name
	}
	return out
}

func TestFakeRunnerDevicesOverride(t *testing.T) {
	want := []lab.Device{{Name: "x", Raw: json.RawMessage(`{"k":1}`)}}
	var got lab.Spec
	f := &remotelabtest.FakeRunner{Devices: func(spec lab.Spec) []lab.Device {
		got = spec
		return want
	}}
	spec := lab.Spec{Dir: "/d", Bundle: testutil.Bundle(t, "lab.yml", "nodes: [a]\n")}
	devs, err := f.Up(t.Context(), spec)
	require.NoError(t, err)
	assert.Equal(t, want, devs)
	assert.Equal(t, spec, got)
}

func TestFakeRunnerHooks(t *testing.T) {
	upErr, downErr := errors.New("up failed"), errors.New("down failed")
	var upSpec lab.Spec
	var downDir string
	f := &remotelabtest.FakeRunner{
		UpHook: func(_ context.Context, spec lab.Spec) error {
			upSpec = spec
			return upErr
		},
		DownHook: func(_ context.Context, dir string) error {
			downDir = dir
			return downErr
		},
	}
	b := testutil.Bundle(t, "lab.yml", "nodes: [a]\n")
	spec := lab.Spec{Dir: "/d", Bundle: b}

	devs, err := f.Up(t.Context(), spec)
	require.ErrorIs(t, err, upErr)
	assert.Nil(t, devs)
	assert.Equal(t, spec, upSpec)
	require.ErrorIs(t, f.Down(t.Context(), "/d"), downErr)
	assert.Equal(t, "/d", downDir)

	calls := f.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, remotelabtest.Call{Op: "up", Dir: "/d", Fingerprint: b.Fingerprint(), Err: upErr}, calls[0])
	assert.Equal(t, remotelabtest.Call{Op: "down", Dir: "/d", Err: downErr}, calls[1])

	// Calls returns a copy.
	calls[0].Op = "changed"
	assert.Equal(t, "up", f.Calls()[0].Op)
}

func TestFakeRunnerDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hooked := 0
		f := &remotelabtest.FakeRunner{
			UpDelay:   time.Minute,
			DownDelay: 10 * time.Second,
			UpHook:    func(context.Context, lab.Spec) error { hooked++; return nil },
		}
		spec := lab.Spec{Dir: "/d", Bundle: testutil.Bundle(t, "lab.yml", "nodes: [a]\n")}

		start := time.Now()
		_, err := f.Up(t.Context(), spec)
		require.NoError(t, err)
		assert.Equal(t, time.Minute, time.Since(start))
		assert.Equal(t, 1, hooked, "the hook runs after the delay")

		start = time.Now()
		require.NoError(t, f.Down(t.Context(), "/d"))
		assert.Equal(t, 10*time.Second, time.Since(start))

		// A deadline inside the delay interrupts the call.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		start = time.Now()
		_, err = f.Up(ctx, spec)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 20*time.Second, time.Since(start))
		assert.Equal(t, 1, hooked)

		ctx, cancel = context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, f.Down(ctx, "/d"), context.DeadlineExceeded)

		calls := f.Calls()
		require.Len(t, calls, 4)
		require.ErrorIs(t, calls[2].Err, context.DeadlineExceeded)
		require.ErrorIs(t, calls[3].Err, context.DeadlineExceeded)
	})
}

func TestFakeRunnerCancelledContext(t *testing.T) {
	f := &remotelabtest.FakeRunner{
		UpHook:   func(context.Context, lab.Spec) error { t.Error("UpHook ran"); return nil },
		DownHook: func(context.Context, string) error { t.Error("DownHook ran"); return nil },
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := f.Up(ctx, lab.Spec{Dir: "/d", Bundle: testutil.Bundle(t, "lab.yml", "nodes: [a]\n")})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, f.Down(ctx, "/d"), context.Canceled)
}

func TestFakeRunnerHookBlocksUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, _ lab.Spec) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		b := testutil.Bundle(t, "lab.yml", "nodes: [a]\n")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := f.Up(ctx, lab.Spec{Dir: "/d", Bundle: b})
			done <- err
		}()
		synctest.Wait()
		assert.Empty(t, f.Calls(), "a call is recorded when it returns")
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		require.Len(t, f.Calls(), 1)
	})
}

func TestFakeRunnerConcurrent(t *testing.T) {
	f := &remotelabtest.FakeRunner{}
	b := testutil.Bundle(t, "lab.yml", "nodes: [a, b]\n")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				_, err := f.Up(context.Background(), lab.Spec{Dir: "/d", Bundle: b})
				assert.NoError(t, err)
				assert.NoError(t, f.Down(context.Background(), "/d"))
				_ = f.Calls()
			}
		})
	}
	wg.Wait()
	assert.Len(t, f.Calls(), 8*20*2)
}

// TestFakeRunnerRunning: a directory runs after a successful Up until a
// successful Down; failed calls change nothing.
func TestFakeRunnerRunning(t *testing.T) {
	fail := false
	f := &remotelabtest.FakeRunner{
		UpHook: func(context.Context, lab.Spec) error {
			if fail {
				return errors.New("up failed")
			}
			return nil
		},
		DownHook: func(context.Context, string) error {
			if fail {
				return errors.New("down failed")
			}
			return nil
		},
	}
	running := func(dir string, want bool) {
		t.Helper()
		got, err := f.Running(t.Context(), dir)
		require.NoError(t, err)
		assert.Equal(t, want, got, "Running(%s)", dir)
	}
	b := testutil.Bundle(t, "lab.yml", "nodes: [a]\n")
	running("/a", false)
	_, err := f.Up(t.Context(), lab.Spec{Dir: "/a", Bundle: b})
	require.NoError(t, err)
	running("/a", true)
	running("/b", false)
	fail = true
	_, err = f.Up(t.Context(), lab.Spec{Dir: "/b", Bundle: b})
	require.Error(t, err)
	running("/b", false)
	require.Error(t, f.Down(t.Context(), "/a"))
	running("/a", true)
	require.Error(t, f.Down(t.Context(), "/b"))
	running("/b", false)
	fail = false
	require.NoError(t, f.Down(t.Context(), "/a"))
	running("/a", false)
	assert.Len(t, f.Calls(), 5, "Running is not a call")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = f.Running(ctx, "/a")
	require.ErrorIs(t, err, context.Canceled)
}

// steps records the steps a Runner reports.
type steps []string

func (s *steps) Step(op string)          { *s = append(*s, op) }
func (*steps) Output(string)             {}
func (*steps) Process(lab.Process, bool) {}

func TestFakeRunnerReportsSteps(t *testing.T) {
	var f remotelabtest.FakeRunner
	var up, down steps
	_, err := f.Up(lab.WithProgress(t.Context(), &up), lab.Spec{Dir: "/d", Bundle: testutil.Bundle(t, "lab.yml", "nodes: [a]\n")})
	require.NoError(t, err)
	require.NoError(t, f.Down(lab.WithProgress(t.Context(), &down), "/d"))
	assert.Equal(t, steps{"up", "inspect"}, up)
	assert.Equal(t, steps{"down"}, down)
}
