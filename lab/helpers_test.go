package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

// Helper processes: the test binary started with one of these variables
// set does one thing instead of running tests.
const (
	// lockHelperEnv: hold the lock file named by its value until stdin
	// closes.
	lockHelperEnv = "LAB_LOCK_HELPER"
	// sleepHelperEnv: sleep (a process group for Recover to kill).
	sleepHelperEnv = "LAB_SLEEP_HELPER"
	// orphanHelperEnv: start a sleeping child in this process's group,
	// print its pid and exit, leaving a group without its leader.
	orphanHelperEnv = "LAB_ORPHAN_HELPER"
	// checkLockHelperEnv: report, as JSON on stdout, what CheckLock and
	// TryAcquire say about the lock file named by its value (with
	// LAB_WORK_ROOT as working root).
	checkLockHelperEnv = "LAB_CHECK_LOCK_HELPER"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(lockHelperEnv) != "":
		os.Exit(lockHelper(os.Getenv(lockHelperEnv)))
	case os.Getenv(sleepHelperEnv) != "":
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	case os.Getenv(orphanHelperEnv) != "":
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), sleepHelperEnv+"=1", orphanHelperEnv+"=")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "orphan helper:", err)
			os.Exit(1)
		}
		fmt.Println(child.Process.Pid)
		os.Exit(0)
	case os.Getenv(checkLockHelperEnv) != "":
		os.Exit(checkLockHelper(os.Getenv(checkLockHelperEnv), os.Getenv("LAB_WORK_ROOT")))
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

// lockReport is what checkLockHelper prints.
type lockReport struct {
	Check, Acquire             string
	CheckIsLock, AcquireIsLock bool // the error wraps lab.ErrLockUnavailable
}

func checkLockHelper(path, work string) int {
	m, err := lab.NewManager(lab.Config{Runner: &remotelabtest.FakeRunner{}, WorkRoot: work, LockPath: path,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "check lock helper:", err)
		return 1
	}
	defer m.Close(context.Background())
	b, err := topology.NewBundle("a.yml", []byte(topoA), topology.Limits{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "check lock helper:", err)
		return 1
	}
	defer b.Close()
	var rep lockReport
	if err := m.CheckLock(); err != nil {
		rep.Check, rep.CheckIsLock = err.Error(), errors.Is(err, lab.ErrLockUnavailable)
	}
	if _, err := m.TryAcquire(context.Background(), "h", b, true); err != nil {
		rep.Acquire, rep.AcquireIsLock = err.Error(), errors.Is(err, lab.ErrLockUnavailable)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
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

// memRecords is an in-memory lab.RecordStore that remembers every save.
// Set failSave to make saves fail.
type memRecords struct {
	mu       sync.Mutex
	rec      *lab.Record
	saves    []lab.Record
	deletes  int
	failSave error
}

func (s *memRecords) Load() (*lab.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return nil, nil
	}
	rec := *s.rec
	return &rec, nil
}

func (s *memRecords) Save(rec lab.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSave != nil {
		return s.failSave
	}
	s.rec = &rec
	s.saves = append(s.saves, rec)
	return nil
}

func (s *memRecords) Delete() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec = nil
	s.deletes++
	return nil
}

// current returns the stored record (nil when there is none).
func (s *memRecords) current() *lab.Record {
	rec, _ := s.Load()
	return rec
}

func (s *memRecords) setFailSave(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failSave = err
}

// states lists the states of the saved records, in order.
func (s *memRecords) states() []lab.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []lab.State
	for _, r := range s.saves {
		out = append(out, r.State)
	}
	return out
}

// eventLog collects a Manager's events (Config.OnEvent).
type eventLog struct {
	mu     sync.Mutex
	events []lab.Event
}

func (l *eventLog) add(ev lab.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

// of returns the events of kind k, in order.
func (l *eventLog) of(k lab.EventKind) []lab.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []lab.Event
	for _, ev := range l.events {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// steps lists the EventStep ops with their outcome ("up", "inspect!" for
// a failed inspect, ...).
func (l *eventLog) steps() []string {
	var out []string
	for _, ev := range l.of(lab.EventStep) {
		s := ev.Op
		if ev.Err != nil {
			s += "!"
		}
		out = append(out, s)
	}
	return out
}

// blockingDown returns a DownHook that reports each teardown on started
// and then blocks until release is closed or ctx ends.
func blockingDown(started chan<- string, release <-chan struct{}) func(context.Context, string) error {
	return func(ctx context.Context, dir string) error {
		started <- dir
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
