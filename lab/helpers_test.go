package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

// lockHelperEnv makes the test binary a helper process that holds the lock
// file named by its value until its stdin closes.
const lockHelperEnv = "LAB_LOCK_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHelperEnv); path != "" {
		os.Exit(lockHelper(path))
	}
	goleak.VerifyTestMain(m)
}

func lockHelper(path string) int {
	l := flock.New(path)
	if err := l.Lock(); err != nil {
		fmt.Fprintln(os.Stderr, "lock helper:", err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := l.Unlock(); err != nil {
		fmt.Fprintln(os.Stderr, "lock helper:", err)
		return 1
	}
	return 0
}

const (
	topoA = "name: alpha\nnodes:\n  r1:\n    device: eos\n  r2:\n    device: eos\nlinks:\n- r1-r2\n"
	topoB = "name: beta\nnodes: [s1]\n"
)

// newBundle builds a bundle from a topology and extra files (path, data
// pairs) and closes it when the test ends.
func newBundle(t testing.TB, name, topo string, extra ...string) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle(name, []byte(topo), topology.Limits{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	for i := 0; i+1 < len(extra); i += 2 {
		require.NoError(t, b.AddFile(extra[i], []byte(extra[i+1])))
	}
	return b
}

// env is a Manager with its directories.
type env struct {
	m                     *lab.Manager
	r                     *remotelabtest.FakeRunner
	work, state, lockPath string
	cfg                   lab.Config
}

// newEnv returns a Manager over r with private directories and lock file,
// logging to t. mod adjusts the config. The Manager is closed when the test
// ends.
func newEnv(t testing.TB, r *remotelabtest.FakeRunner, mod ...func(*lab.Config)) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{
		r:        r,
		work:     filepath.Join(root, "work"),
		state:    filepath.Join(root, "state"),
		lockPath: filepath.Join(root, "netlab.lock"),
	}
	require.NoError(t, os.Mkdir(e.work, 0o755))
	e.cfg = lab.Config{
		Runner:   r,
		WorkRoot: e.work,
		StateDir: e.state,
		LockPath: e.lockPath,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range mod {
		f(&e.cfg)
	}
	m, err := lab.NewManager(e.cfg)
	require.NoError(t, err)
	e.m = m
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("close manager: %v", err)
		}
	})
	return e
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ops returns the calls' ops, e.g. ["up", "down"].
func ops(calls []remotelabtest.Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Op
	}
	return out
}

// workDirs lists the working directories left in root.
func workDirs(t testing.TB, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(root, e.Name()))
	}
	return out
}

// deviceNames returns the devices' names.
func deviceNames(devs []lab.Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.Name
	}
	return out
}

// blockingUp returns an UpHook that reports each start on started and
// then blocks until release is closed or ctx ends.
func blockingUp(started chan<- string, release <-chan struct{}) func(context.Context, lab.Spec) error {
	return func(ctx context.Context, spec lab.Spec) error {
		started <- spec.Dir
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
