package main

// The daemon's life with the sim runner: serving, the single-instance
// lock, signals, and what a restart (after SIGTERM or kill -9) keeps.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/internal/sim"
)

// labDir returns the working directory of the lab (from GET /lab's
// topology path), asked as session id.
func labDir(t *testing.T, base, id string) string {
	t.Helper()
	r := do(t, http.MethodGet, base+"/lab", id, nil, "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var st struct{ Topology *string }
	r.json(t, &st)
	require.NotNil(t, st.Topology, "a lab is recorded: %s", r.body)
	return filepath.Dir(*st.Topology)
}

// killedHolder starts a sim daemon in e, has a session hold a lab, and
// kills the daemon with SIGKILL; it returns the session and the lab's
// working directory.
func killedHolder(t *testing.T, e *env) (id, dir string) {
	t.Helper()
	first := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := first.baseURL()
	id = openSession(t, base)
	acquire(t, base, id)
	dir = labDir(t, base, id)
	first.signal(syscall.SIGKILL)
	first.waitExit()
	return id, dir
}

// TestSimRoundTrip is the whole API over a real socket with the sim
// runner, then a graceful SIGTERM that keeps the idle lab, which the next
// start adopts.
func TestSimRoundTrip(t *testing.T) {
	e := newEnv(t)
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := p.baseURL()
	p.waitFor("Remote Lab Manager startup complete")

	m := readMetaFile(t, e.metaPath())
	assert.Equal(t, p.cmd.Process.Pid, m.PID)
	assert.Equal(t, "127.0.0.1", m.HostBind)
	assert.Equal(t, base, fmt.Sprintf("http://127.0.0.1:%d", m.Port), "metadata has the port actually used")
	assert.Equal(t, "INFO", m.LogLevel)
	assert.NotEmpty(t, m.Version)
	assert.Contains(t, m.Cmd, "--port 0")
	assert.NotZero(t, m.StartedAt)

	assert.Equal(t, http.StatusNoContent, do(t, http.MethodGet, base+"/healthz", "", nil, "").code)

	id := openSession(t, base)
	res := acquire(t, base, id)
	assert.False(t, res.Reused)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	assert.Contains(t, res.Devices[0].Raw, "ansible_host")
	dir := labDir(t, base, id)

	r := do(t, http.MethodGet, base+"/debug/health", "", nil, "")
	require.Equal(t, http.StatusOK, r.code)
	var health struct{ Sessions int }
	r.json(t, &health)
	assert.Equal(t, 1, health.Sessions)

	assert.Equal(t, http.StatusNoContent, do(t, http.MethodPost, base+"/lab/release", id, nil, "").code)
	assert.Equal(t, http.StatusNoContent, do(t, http.MethodDelete, base+"/session/"+id, id, nil, "").code)
	assert.Equal(t, http.StatusNotFound, do(t, http.MethodGet, base+"/session/"+id, "", nil, "").code)

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
	out := p.out.String()
	assert.Regexp(t, logRE("Remote Lab Manager starting up...", "runner=sim"), out)
	assert.Regexp(t, logRE("Starting Remote Lab Manager", "addr=127.0.0.1:0"), out)
	assert.Regexp(t, logRE("Received signal, shutting down gracefully...", "signal=terminated signo=15"), out)
	assert.Regexp(t, logRE("Keeping the lab for the next start", "lab=idle", "topology=lab.yml"), out)
	assert.Regexp(t, logRE("Remote Lab Manager shutdown complete"), out)
	assert.NotContains(t, out, "Tearing down lab", "SIGTERM keeps the lab")
	assert.FileExists(t, filepath.Join(dir, sim.MarkerFile), "the lab still runs")
	assert.NoFileExists(t, e.metaPath(), "metadata removed at shutdown")

	// The lock is free again, and the kept lab is adopted and reused.
	p2 := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base = p2.baseURL()
	p2.waitFor(logRE("Adopted the lab a previous run left running", "dir="+dir, "holders=0 ref_count=0"))
	p2.waitFor(logRE("Startup cleanup completed successfully", "recovery=adopted lab=idle"))
	id2 := openSession(t, base)
	assert.True(t, acquire(t, base, id2).Reused, "the adopted lab is reused: no new up")
	assert.Equal(t, dir, labDir(t, base, id2))
	p2.signal(syscall.SIGINT)
	assert.Equal(t, 0, p2.waitExit())
	assert.Regexp(t, logRE("Received signal, shutting down gracefully...", "signal=interrupt signo=2"), p2.out.String())
}

// TestTeardownOnExitKeepsQueue: with --teardown-on-exit SIGTERM tears the
// lab down (the original's behaviour) but the queue is kept either way.
func TestTeardownOnExitKeepsQueue(t *testing.T) {
	e := newEnv(t)
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--teardown-on-exit")
	base := p.baseURL()
	holder := openSession(t, base)
	acquire(t, base, holder)
	dir := labDir(t, base, holder)
	waiter, status := createSession(t, base)
	require.Equal(t, "waiting", status)

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
	out := p.out.String()
	assert.Regexp(t, logRE("Active sessions at shutdown", "sessions=2", "lab=running"), out)
	assert.Regexp(t, logRE("Tearing the lab down at exit (--teardown-on-exit); the queue is kept"), out)
	assert.Regexp(t, logRE("Lab torn down", "reason=shutdown"), out)
	assert.NoDirExists(t, dir)

	p2 := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base = p2.baseURL()
	p2.waitFor(logRE("Restored the saved queue", "sessions=2"))
	p2.waitFor(logRE("Startup cleanup completed successfully", "recovery=nothing lab=none"))
	st, r := sessionStatus(t, base, holder)
	assert.Equal(t, "active", st, "%s", r.body)
	st, r = sessionStatus(t, base, waiter)
	assert.Equal(t, "waiting", st, "%s", r.body)
	assert.Equal(t, "none", labState(t, base, holder))
	assert.False(t, acquire(t, base, holder).Reused, "the lab was torn down: a new up")
}

func TestSecondInstanceRefused(t *testing.T) {
	e := newEnv(t)
	first := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	first.waitFor("Remote Lab Manager startup complete")
	before, err := os.ReadFile(e.metaPath())
	require.NoError(t, err)

	code, stdout, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "Another Remote Lab Manager instance is already running.")
	assert.Contains(t, stderr, "Running instance details")
	m := readMetaFile(t, e.metaPath())
	for _, want := range []string{
		fmt.Sprintf("pid=%d", first.cmd.Process.Pid),
		fmt.Sprintf("user=%s@%s", m.User, m.Host),
		"version=" + m.Version,
		fmt.Sprintf("bind=127.0.0.1:%d", m.Port),
		"started=",
		"cwd=" + m.CWD,
		"--port 0",
	} {
		assert.Contains(t, stderr, want)
	}
	after, err := os.ReadFile(e.metaPath())
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the refused instance leaves the owner's metadata alone")

	first.signal(syscall.SIGTERM)
	assert.Equal(t, 0, first.waitExit())
}

// TestLockHeldWithStaleMetadata: someone holds the lock but the metadata
// names a dead pid (the original's stale-state path): remove it, retry
// once, give up.
func TestLockHeldWithStaleMetadata(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	holder, err := lockInstance(e.tmp, lockFileName, metaFileName, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer holder.release()
	dead := deadPID(t)
	require.NoError(t, os.WriteFile(e.metaPath(), fmt.Appendf(nil, `{"pid": %d, "user": "ghost"}`, dead), 0o644))

	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--port", "0")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "Stale instance metadata detected – cleaning up...")
	assert.Contains(t, stderr, "Lock still held but metadata was stale – another process likely took the lock.")
	assert.NoFileExists(t, e.metaPath())
}

// TestKill9ThenRestartAdoptsLab: a killed server leaves its metadata and
// its lab; the next one starts anyway (flock died with the holder), says
// so, adopts the lab that still runs (the sim runner's marker file) with
// its holder, and restores the queue.
func TestKill9ThenRestartAdoptsLab(t *testing.T) {
	e := newEnv(t)
	id, dir := killedHolder(t, e)
	require.FileExists(t, e.metaPath(), "kill -9 leaves the metadata")

	second := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := second.baseURL()
	second.waitFor("Remote Lab Manager startup complete")
	out := second.out.String()
	assert.Contains(t, out, "did not shut down cleanly")
	assert.Regexp(t, logRE("Adopted the lab a previous run left running", "dir="+dir, "holders=1 ref_count=1"), out)
	assert.Regexp(t, logRE("Restored the saved queue", "sessions=1"), out)
	assert.Regexp(t, logRE("Startup cleanup completed successfully", "recovery=adopted lab=running"), out)
	assert.NotContains(t, out, "Tearing down lab")

	st, r := sessionStatus(t, base, id)
	assert.Equal(t, "active", st, "the holder survives the restart: %s", r.body)
	assert.Equal(t, "running", labState(t, base, id))
	assert.True(t, acquire(t, base, id).Reused, "the adopted lab is reused")
	m := readMetaFile(t, e.metaPath())
	assert.Equal(t, second.cmd.Process.Pid, m.PID)
	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}

// TestKill9ThenRestartTearsDownStoppedLab: the recorded lab no longer
// runs (its marker is gone), so the restart cleans it up instead of
// adopting it; the holder stays in the queue without a lab.
func TestKill9ThenRestartTearsDownStoppedLab(t *testing.T) {
	e := newEnv(t)
	id, dir := killedHolder(t, e)
	require.NoError(t, os.Remove(filepath.Join(dir, sim.MarkerFile)))

	second := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := second.baseURL()
	second.waitFor("Remote Lab Manager startup complete")
	out := second.out.String()
	assert.Regexp(t, logRE("Tearing down lab", "reason=recover", "dir="+dir), out)
	assert.Regexp(t, logRE("Recovered lab torn down", "dir="+dir), out)
	assert.Regexp(t, logRE("Startup cleanup completed successfully", "recovery=torn-down lab=none"), out)
	assert.NotContains(t, out, "Adopted")
	assert.NoDirExists(t, dir)

	st, r := sessionStatus(t, base, id)
	assert.Equal(t, "active", st, "%s", r.body)
	assert.Equal(t, "none", labState(t, base, id))
	assert.False(t, acquire(t, base, id).Reused)
}

// TestSIGTERMDuringPreflight: a signal while `netlab version` hangs stops
// the startup cleanly: exit 0, no error about netlab, no metadata left.
func TestSIGTERMDuringPreflight(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "netlab"), []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	e.path = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	p := start(t, e, "--host", "127.0.0.1", "--port", "0")
	p.waitFor(logRE("Starting Remote Lab Manager", "addr=127.0.0.1:0"))
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
	out := p.out.String()
	assert.Contains(t, out, "Startup interrupted during the netlab pre-flight check")
	assert.NotContains(t, out, "Failed to execute 'netlab version'")
	assert.NotContains(t, out, "listening on")
	assert.NoFileExists(t, e.metaPath())
}

// doneSignal is a context that sends on signal (if it can) the first time
// its Done is asked for.
type doneSignal struct {
	context.Context
	once   sync.Once
	signal chan<- struct{}
}

func (c *doneSignal) Done() <-chan struct{} {
	c.once.Do(func() {
		select {
		case c.signal <- struct{}{}:
		default:
		}
	})
	return c.Context.Done()
}

// TestRunInProcess runs the server in this process (so the race detector
// and the leak check of TestMain see all of it) and stops it through ctx,
// while a long-poll runs: the long-poll (and --max-wait 10m, --shutdown-grace
// 10m) must not delay the shutdown, which relies on httpserver.Server.Drain.
// The queue and the lab are kept: a second run restores both.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stateDir := t.TempDir()
	args := []string{"--runner", "sim", "--host", "127.0.0.1", "--port", "0",
		"--state-dir", stateDir, "--shutdown-grace", "10m", "--max-wait", "10m"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newLogBuffer()
	var stdout bytes.Buffer
	code := make(chan int, 1)
	// polling receives a value when a long-poll starts waiting: its
	// handler derives the wait's context from the request's, which asks
	// the request context for Done. From then on the drain answers it
	// with its current status (a request that came before would get 503).
	polling := make(chan struct{}, 1)
	testHookHandler = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("wait") {
				r = r.WithContext(&doneSignal{Context: r.Context(), signal: polling})
			}
			h.ServeHTTP(w, r)
		})
	}
	defer func() { testHookHandler = nil }()
	p := &daemonProc{t: t, out: out, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		code <- run(ctx, args, &stdout, out)
	}()
	base := p.baseURL()
	id := openSession(t, base)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(acquire(t, base, id).Devices))
	assert.FileExists(t, filepath.Join(tmp, metaFileName))

	// A waiting session long-polls; the shutdown must not wait for it
	// (nor for the 10m grace).
	waiting, status := createSession(t, base)
	require.Equal(t, "waiting", status)
	polled := make(chan response, 1)
	go func() {
		resp, err := httpClient.Get(base + "/session/" + waiting + "?wait=10m")
		if err != nil {
			polled <- response{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- response{code: resp.StatusCode, body: b}
	}()
	<-polling

	cancel()
	select {
	case r := <-polled:
		// Parked, it answers its current status at once (httpserver's
		// TestShutdown pins that on a fake clock); if the drain beat it
		// to the handler, it answers 503 at once. Either way it does
		// not hold the shutdown.
		if r.code != http.StatusServiceUnavailable {
			require.Equal(t, http.StatusOK, r.code, "the long-poll answers the current status at shutdown: %s", r.body)
			var st struct{ Status string }
			r.json(t, &st)
			assert.Equal(t, "waiting", st.Status)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the long-poll held the shutdown")
	}
	select {
	case c := <-code:
		assert.Equal(t, 0, c)
	case <-time.After(waitTimeout):
		t.Fatal("run did not return")
	}
	assert.Regexp(t, logRE("Active sessions at shutdown", "sessions=2", "lab=running", "holders=["+id[:8]+"]"), out.String())
	assert.Regexp(t, logRE("Keeping the lab for the next start", "lab=running"), out.String())
	assert.Contains(t, out.String(), "Remote Lab Manager shutdown complete")
	assert.NoFileExists(t, filepath.Join(tmp, metaFileName))
	assert.Empty(t, stdout.String())
	httpClient.CloseIdleConnections()

	// The next run restores the queue and adopts the lab with its holder.
	testHookHandler = nil
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	out2 := newLogBuffer()
	p2 := &daemonProc{t: t, out: out2, done: make(chan struct{})}
	go func() {
		defer close(p2.done)
		code <- run(ctx2, args, &stdout, out2)
	}()
	base = p2.baseURL()
	p2.waitFor(logRE("Restored the saved queue", "sessions=2"))
	st, r := sessionStatus(t, base, id)
	assert.Equal(t, "active", st, "%s", r.body)
	st, r = sessionStatus(t, base, waiting)
	assert.Equal(t, "waiting", st, "%s", r.body)
	assert.Equal(t, "running", labState(t, base, id))
	cancel2()
	select {
	case c := <-code:
		assert.Equal(t, 0, c)
	case <-time.After(waitTimeout):
		t.Fatal("the second run did not return")
	}
	httpClient.CloseIdleConnections()
}
