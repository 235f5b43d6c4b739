package main

// End-to-end tests: the first one builds remotelabd (with -race when the
// tests run with it) and the fake netlab, and the tests run the binary as a
// process with its own TMPDIR (so its single-instance lock is private),
// HOME (the fake netlab's status file) and state directory.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/remotelab-go/remotelab/internal/gobuild"
)

var (
	buildDir   string // temp dir for the binaries built by the tests
	daemonBin  string // the remotelabd binary under test
	fakeBinDir string // holds the fake `netlab`

	buildDaemon = sync.OnceValue(func() error { return gobuild.Build(context.Background(), daemonBin, "cmd/remotelabd", raceEnabled) })
	buildFake   = sync.OnceValue(func() error {
		return gobuild.Build(context.Background(), filepath.Join(fakeBinDir, "netlab"), "netlab/fakenetlab", false)
	})
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	buildDir, err = os.MkdirTemp("", "remotelabd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(buildDir)
	daemonBin = filepath.Join(buildDir, "remotelabd")
	fakeBinDir = filepath.Join(buildDir, "fakebin")
	code := m.Run()
	httpClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

// needDaemon builds remotelabd once per test run.
func needDaemon(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test (builds and runs remotelabd)")
	}
	require.NoError(t, buildDaemon())
}

// needFake builds the fake netlab once per test run.
func needFake(t *testing.T) {
	t.Helper()
	require.NoError(t, buildFake())
}

// waitTimeout bounds every wait for the daemon (generous for -race on a
// busy machine; a passing test never waits it out).
const waitTimeout = 60 * time.Second

// logBuffer collects a process's output and wakes waiters on each write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// env is the environment of one daemon run.
type env struct {
	tmp, home, stateDir string
	path                string   // PATH; fakeBinDir first for the netlab runner
	extra               []string // more KEY=value
}

// newEnv returns a fresh, isolated environment whose PATH finds the fake
// netlab.
func newEnv(t *testing.T) *env {
	t.Helper()
	needDaemon(t)
	return &env{
		tmp:      t.TempDir(),
		home:     t.TempDir(),
		stateDir: filepath.Join(t.TempDir(), "state"),
		path:     fakeBinDir + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
}

func (e *env) vars() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "TMPDIR" || k == "HOME" || k == "PATH" || k == "XDG_CACHE_HOME",
			k == "NEOPS_NETLAB_STREAM_OUTPUT", strings.HasPrefix(k, "FAKE_NETLAB_"):
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "TMPDIR="+e.tmp, "HOME="+e.home, "PATH="+e.path)
	return append(out, e.extra...)
}

func (e *env) metaPath() string { return filepath.Join(e.tmp, metaFileName) }

// daemonProc is a running remotelabd.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
	code int
}

// start runs remotelabd with args in e. --state-dir is added. The process
// is killed at the end of the test if still running, and its output is
// logged when the test fails (or always, with REMOTELABD_TEST_LOGS=1).
func start(t *testing.T, e *env, args ...string) *daemonProc {
	t.Helper()
	args = append([]string{"--state-dir", e.stateDir}, args...)
	cmd := exec.Command(daemonBin, args...)
	cmd.Env = e.vars()
	out := newLogBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p := &daemonProc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code == -1 {
			p.code = -int(cmd.ProcessState.Sys().(syscall.WaitStatus).Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() || os.Getenv("REMOTELABD_TEST_LOGS") == "1" {
			t.Logf("remotelabd %s output:\n%s", strings.Join(args, " "), out.String())
		}
	})
	return p
}

// waitFor waits until the output matches re and returns the submatches.
func (p *daemonProc) waitFor(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		s, changed := p.out.snapshot()
		if m := rx.FindStringSubmatch(s); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-p.done:
			if m := rx.FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			p.t.Fatalf("remotelabd exited with %d before logging %q", p.code, re)
		case <-timer.C:
			p.t.Fatalf("remotelabd did not log %q within %v", re, waitTimeout)
		}
	}
}

// waitExit waits for the process to end and returns its exit code.
func (p *daemonProc) waitExit() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(waitTimeout):
		p.t.Fatalf("remotelabd did not exit within %v", waitTimeout)
		return 0
	}
}

// baseURL waits for the "listening on" line and returns the server URL.
func (p *daemonProc) baseURL() string {
	p.t.Helper()
	m := p.waitFor(`listening on ([0-9.]+:[0-9]+)`)
	return "http://" + m[1]
}

func (p *daemonProc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

// runToExit runs remotelabd to completion and returns its exit code,
// stdout and stderr.
func runToExit(t *testing.T, e *env, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(daemonBin, args...)
	cmd.Env = e.vars()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("remotelabd %v did not exit within %v; output:\n%s%s", args, waitTimeout, stdout.String(), stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// --- HTTP helpers ---------------------------------------------------------

var httpClient = &http.Client{Timeout: waitTimeout}

const testTopology = `provider: clab
defaults:
  device: frr
nodes:
  r1:
  r2:
`

type response struct {
	code int
	body []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body %s", r.body)
}

func do(t *testing.T, method, url, session string, body io.Reader, contentType string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if session != "" {
		req.Header.Set("X-Session-ID", session)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, b}
}

// doLab posts a topology to POST /lab without failing the test on a
// transport error (the server may stop meanwhile).
func doLab(base, session, topo string) (int, []byte, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, err := w.CreateFormFile("topology", "lab.yml")
	if err != nil {
		return 0, nil, err
	}
	io.WriteString(fw, topo)
	w.WriteField("reuse", "true")
	w.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/lab", &body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Session-ID", session)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// openSession creates a session and waits (long-poll, which answers when
// the status changes) until it is active.
func openSession(t *testing.T, base string) string {
	t.Helper()
	r := do(t, http.MethodPost, base+"/session", "", nil, "")
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	var created struct {
		SessionID string `json:"session_id"`
		Status    string `json:"status"`
	}
	r.json(t, &created)
	require.NotEmpty(t, created.SessionID)
	if created.Status == "active" {
		return created.SessionID
	}
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		r := do(t, http.MethodGet, base+"/session/"+created.SessionID+"?wait=10s", "", nil, "")
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		var st struct{ Status string }
		r.json(t, &st)
		if st.Status == "active" {
			return created.SessionID
		}
	}
	t.Fatalf("session %s never became active", created.SessionID)
	return ""
}

type device struct {
	Name string         `json:"name"`
	Raw  map[string]any `json:"raw"`
}

// acquire posts the test topology and returns the devices.
func acquire(t *testing.T, base, session string) []device {
	t.Helper()
	code, body, err := doLab(base, session, testTopology)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var res struct {
		Reused  bool     `json:"reused"`
		Devices []device `json:"devices"`
	}
	require.NoError(t, json.Unmarshal(body, &res))
	return res.Devices
}

func deviceNames(devs []device) []string {
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	return names
}

func readMetaFile(t *testing.T, path string) instanceMeta {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m instanceMeta
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

// --- tests ----------------------------------------------------------------

func TestVersionFlag(t *testing.T) {
	code, stdout, stderr := runToExit(t, newEnv(t), "--version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^remotelabd \S+\n$`, stdout)
	assert.Empty(t, stderr)
}

func TestHelpListsEveryFlag(t *testing.T) {
	code, stdout, _ := runToExit(t, newEnv(t), "--help")
	assert.Equal(t, 0, code)
	for _, f := range []string{
		"host", "port", "log-level", "log-format", "log-config", "debug", "version", "runner",
		"state-dir", "active-ttl", "waiting-ttl", "lab-idle-ttl", "up-timeout", "down-timeout",
		"query-timeout", "max-topology-size", "max-file-size", "max-total-size", "max-files",
		"sim-up-delay", "sim-down-delay", "shutdown-grace", "max-wait",
	} {
		assert.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(f)+`(\s|$)`, stdout, "--help lists --%s", f)
	}
	for _, d := range []string{`(default "0.0.0.0")`, "(default 8000)", "(default 5m0s)", "(default 10m0s)",
		"(default 30m0s)", "(default 1MiB)", "(default 32MiB)", "(default 128MiB)", "(default 512)", "(default 100ms)", "(default 20ms)"} {
		assert.Contains(t, stdout, d)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	e := newEnv(t)
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(badYAML, []byte("level: [\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "chatty"}, `invalid --log-level: unknown level "chatty"`},
		{[]string{"--port", "70000"}, "invalid --port 70000"},
		{[]string{"--port", "eighty"}, "invalid value"},
		{[]string{"--active-ttl", "-5s"}, "invalid --active-ttl"},
		{[]string{"--runner", "docker"}, `invalid --runner "docker"`},
		{[]string{"--log-format", "xml"}, "invalid --log-format"},
		{[]string{"--max-file-size", "lots"}, "invalid size"},
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"serve"}, `unexpected argument "serve"`},
		{[]string{"--log-config", filepath.Join(t.TempDir(), "missing.yaml")}, "read log config"},
		{[]string{"--log-config", badYAML}, "parse log config"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runToExit(t, e, append([]string{"--state-dir", e.stateDir, "--runner", "sim"}, tc.args...)...)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, tc.want)
			assert.Empty(t, stdout)
			assert.NoFileExists(t, e.metaPath())
		})
	}
}

// TestSimRoundTrip is the whole API over a real socket with the sim
// runner, then a graceful SIGTERM.
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
	devs := acquire(t, base, id)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(devs))
	assert.Contains(t, devs[0].Raw, "ansible_host")

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
	assert.Contains(t, out, "Remote Lab Manager starting up...")
	assert.Contains(t, out, "Starting Remote Lab Manager on 127.0.0.1:0")
	assert.Contains(t, out, "Received signal 15, shutting down gracefully...")
	assert.Contains(t, out, "Remote Lab Manager shutdown complete")
	assert.NoFileExists(t, e.metaPath(), "metadata removed at shutdown")

	// The lock is free again.
	p2 := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	p2.waitFor("Remote Lab Manager startup complete")
	p2.signal(syscall.SIGINT)
	assert.Equal(t, 0, p2.waitExit())
	assert.Contains(t, p2.out.String(), "Received signal 2, shutting down gracefully...")
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

// TestKill9ThenRestart: a killed server leaves its metadata; the next one
// starts anyway (flock died with the holder) and says so.
func TestKill9ThenRestart(t *testing.T) {
	e := newEnv(t)
	first := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := first.baseURL()
	id := openSession(t, base)
	acquire(t, base, id)
	first.signal(syscall.SIGKILL)
	first.waitExit()
	require.FileExists(t, e.metaPath(), "kill -9 leaves the metadata")

	second := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	second.waitFor("Remote Lab Manager startup complete")
	assert.Contains(t, second.out.String(), "did not shut down cleanly")
	assert.Contains(t, second.out.String(), "tore down the lab a previous run left behind")
	assert.NoFileExists(t, filepath.Join(e.stateDir, "sim", "lab.json"))
	m := readMetaFile(t, e.metaPath())
	assert.Equal(t, second.cmd.Process.Pid, m.PID)
	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}

func TestMissingNetlabExits1WithHint(t *testing.T) {
	e := newEnv(t)
	e.path = t.TempDir() // no netlab here
	code, stdout, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--port", "0")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	for _, line := range []string{
		"'netlab' CLI not found in PATH. The Remote Lab Manager requires Netlab to orchestrate labs.",
		"Install Netlab: https://netlab.tools/install/ubuntu/",
		"After installation, ensure your shell can find 'netlab' (relogin or reload your shell).",
	} {
		assert.Contains(t, stderr, line)
	}
	assert.NoFileExists(t, e.metaPath(), "no metadata left behind")
}

func TestBrokenNetlabExits1(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "netlab"),
		[]byte("#!/bin/sh\necho 'Cannot import netsim Python module, netlab installation is broken' >&2\nexit 1\n"), 0o755))
	e.path = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--port", "0")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "Failed to execute 'netlab version'")
	assert.Contains(t, stderr, "installation is broken")
	assert.NoFileExists(t, e.metaPath())
}

// TestSIGTERMDuringPreflight: a signal while `netlab version` hangs stops
// the startup cleanly: exit 0, no error about netlab, no metadata left.
func TestSIGTERMDuringPreflight(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "netlab"), []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	e.path = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	p := start(t, e, "--host", "127.0.0.1", "--port", "0")
	p.waitFor("Starting Remote Lab Manager on")
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
	out := p.out.String()
	assert.Contains(t, out, "Startup interrupted during the netlab pre-flight check")
	assert.NotContains(t, out, "Failed to execute 'netlab version'")
	assert.NotContains(t, out, "listening on")
	assert.NoFileExists(t, e.metaPath())
}

func TestAddressInUseExits1(t *testing.T) {
	e := newEnv(t)
	first := start(t, newEnv(t), "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	m := first.waitFor(`listening on 127\.0\.0\.1:([0-9]+)`)

	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--host", "127.0.0.1", "--port", m[1])
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "Cannot listen on 127.0.0.1:"+m[1])
	assert.Contains(t, stderr, "address already in use")
	assert.Contains(t, stderr, "another program listens on port "+m[1])
	assert.NoFileExists(t, e.metaPath(), "no metadata left behind")
}

func TestLogConfigFileOutput(t *testing.T) {
	e := newEnv(t)
	logPath := filepath.Join(t.TempDir(), "remotelabd.log")
	cfgPath := filepath.Join(t.TempDir(), "logging.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("format: json\noutput: "+logPath+"\ncomponents:\n  lab: warning\n"), 0o644))
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--log-config", cfgPath)

	// The log goes to the file, not stderr.
	waitFile(t, logPath, "listening on 127.0.0.1:")
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
	assert.Empty(t, p.out.String())
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "JSON line %q", line)
		if rec["component"] == "lab" {
			assert.NotEqual(t, "INFO", rec["level"], "lab is at WARNING: %s", line)
		}
	}
	assert.Contains(t, string(data), "Remote Lab Manager shutdown complete")
	assert.Contains(t, string(data), `"component":"server"`)
}

// waitFile waits until the file at path contains want. A file offers no
// event to wait on, so it polls, bounded by a deadline.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it has:\n%s", path, want, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- netlab runner (fake netlab on PATH) ----------------------------------

// netlabEnv is newEnv with the fake netlab built and its calls recorded.
func netlabEnv(t *testing.T, extra ...string) (*env, string) {
	t.Helper()
	e := newEnv(t)
	needFake(t)
	calls := filepath.Join(t.TempDir(), "netlab-calls")
	e.extra = append([]string{"FAKE_NETLAB_CALLS=" + calls}, extra...)
	return e, calls
}

// netlabStatus reads the fake netlab's status file ($HOME/.netlab/status.yaml):
// instance id → its entry.
func netlabStatus(t *testing.T, e *env) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.home, ".netlab", "status.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var st map[string]map[string]any
	require.NoError(t, yaml.Unmarshal(data, &st))
	return st
}

// netlabCalls returns the recorded netlab invocations as "<cwd>\t<args>".
func netlabCalls(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func hasCall(calls []string, dir, args string) bool {
	for _, c := range calls {
		if c == dir+"\t"+args {
			return true
		}
	}
	return false
}

// TestNetlabLabOfKilledServerTornDownAtRestart: kill -9 leaves a running
// lab; the next start tears it down (netlab down in its directory) before
// it serves.
func TestNetlabLabOfKilledServerTornDownAtRestart(t *testing.T) {
	e, calls := netlabEnv(t)
	first := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := first.baseURL()
	assert.Contains(t, first.out.String(), "netlab CLI found")
	id := openSession(t, base)
	devs := acquire(t, base, id)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(devs))
	assert.Equal(t, "frr", devs[0].Raw["device"])

	st := netlabStatus(t, e)
	require.Contains(t, st, "default")
	assert.Equal(t, "started", st["default"]["status"])
	labDir, _ := st["default"]["dir"].(string)
	assert.True(t, strings.HasPrefix(labDir, filepath.Join(e.stateDir, "netlab", "labs")+string(filepath.Separator)), "lab dir %s", labDir)
	assert.FileExists(t, filepath.Join(e.stateDir, "netlab", "lab.json"))

	first.signal(syscall.SIGKILL)
	first.waitExit()
	require.Contains(t, netlabStatus(t, e), "default", "the killed server's lab still runs")

	second := start(t, e, "--host", "127.0.0.1", "--port", "0")
	second.waitFor("Startup cleanup completed successfully: tore down the lab a previous run left behind")
	second.waitFor("Remote Lab Manager startup complete")
	assert.NotContains(t, netlabStatus(t, e), "default", "the lab is down")
	assert.NoDirExists(t, labDir)
	assert.NoFileExists(t, filepath.Join(e.stateDir, "netlab", "lab.json"))
	assert.True(t, hasCall(netlabCalls(t, calls), labDir, "down --cleanup --force"), "calls: %v", netlabCalls(t, calls))

	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}

type labResult struct {
	code int
	body []byte
	err  error
}

// startSlowUp starts POST /lab against a fake netlab whose up hangs, and
// returns once netlab up is running (its output is streamed with --debug).
func startSlowUp(t *testing.T, p *daemonProc) <-chan labResult {
	t.Helper()
	base := p.baseURL()
	id := openSession(t, base)
	res := make(chan labResult, 1)
	go func() {
		code, body, err := doLab(base, id, testTopology)
		res <- labResult{code, body, err}
	}()
	m := p.waitFor(`line="INFO Creating lab directory|path=/lab status=(\d+)`)
	require.Empty(t, m[1], "POST /lab ended before netlab up got going")
	return res
}

// TestSIGTERMInterruptsSlowUp: SIGTERM while netlab up runs: the request
// gets the grace, then netlab up is interrupted, the lab torn down, the
// metadata removed, exit 0.
func TestSIGTERMInterruptsSlowUp(t *testing.T) {
	e, calls := netlabEnv(t, "FAKE_NETLAB_UP_DELAY=10m")
	p := start(t, e, "--debug", "--host", "127.0.0.1", "--port", "0", "--shutdown-grace", "200ms")
	res := startSlowUp(t, p)
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())

	select {
	case r := <-res:
		if r.err == nil {
			assert.GreaterOrEqual(t, r.code, 500, "the interrupted POST /lab fails: %s", r.body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("POST /lab never returned")
	}
	out := p.out.String()
	assert.Contains(t, out, "Received signal 15, shutting down gracefully...")
	assert.Contains(t, out, "shutdown grace; cancelling them")
	assert.Contains(t, out, "netlab up command was interrupted")
	assert.Contains(t, out, "Remote Lab Manager shutdown complete")

	var upDir string
	for _, c := range netlabCalls(t, calls) {
		if dir, args, _ := strings.Cut(c, "\t"); args == "up lab.yml" {
			upDir = dir
		}
	}
	require.NotEmpty(t, upDir, "netlab up ran")
	assert.True(t, hasCall(netlabCalls(t, calls), upDir, "down --cleanup --force"), "the lab was torn down: %v", netlabCalls(t, calls))
	assert.NotContains(t, netlabStatus(t, e), "default")
	assert.NoDirExists(t, upDir)
	assert.NoFileExists(t, filepath.Join(e.stateDir, "netlab", "lab.json"))
	assert.NoFileExists(t, e.metaPath())
}

// TestSecondSignalExitsAtOnce: a second SIGTERM does not wait for the
// shutdown grace (10m here); netlab up still gets its SIGINT, and the next
// start leaves no lab behind.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	e, _ := netlabEnv(t, "FAKE_NETLAB_UP_DELAY=10m")
	p := start(t, e, "--debug", "--host", "127.0.0.1", "--port", "0", "--shutdown-grace", "10m")
	res := startSlowUp(t, p)
	p.signal(syscall.SIGTERM)
	p.waitFor("shutting down gracefully")
	p.waitFor("Active sessions at shutdown")
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 1, p.waitExit())
	assert.Contains(t, p.out.String(), "Received signal 15 again, exiting immediately")
	assert.NoFileExists(t, e.metaPath())
	select {
	case <-res:
	case <-time.After(waitTimeout):
		t.Fatal("POST /lab never returned")
	}

	again := start(t, e, "--host", "127.0.0.1", "--port", "0")
	again.waitFor("Remote Lab Manager startup complete")
	assert.NotContains(t, netlabStatus(t, e), "default")
	assert.NoFileExists(t, filepath.Join(e.stateDir, "netlab", "lab.json"))
	again.signal(syscall.SIGTERM)
	assert.Equal(t, 0, again.waitExit())
}

// TestFatalErrorEchoedWhenLoggingToFile: with logs in a file, the reason a
// start failed still reaches stderr (systemctl status, a terminal).
func TestFatalErrorEchoedWhenLoggingToFile(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	holder, err := lockInstance(e.tmp, lockFileName, metaFileName, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer holder.release()
	meta := newInstanceMeta(Config{Host: "0.0.0.0", Port: 8000}, "INFO", []string{"remotelabd"})
	require.NoError(t, holder.writeMeta(meta)) // our pid: alive for the daemon

	logPath := filepath.Join(t.TempDir(), "remotelabd.log")
	cfgPath := filepath.Join(t.TempDir(), "logging.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("output: "+logPath+"\n"), 0o644))
	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--log-config", cfgPath)
	assert.Equal(t, 1, code)
	assert.Equal(t, "remotelabd: Not starting: one Remote Lab Manager per host (stop the running one first) (details in "+logPath+")\n", stderr)
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(data), fmt.Sprintf("Running instance details\" component=server pid=%d", os.Getpid()))
}

// TestRunInProcess runs the server in this process (so the race detector
// and the leak check of TestMain see all of it) and stops it through ctx,
// while a long-poll runs: the long-poll (and --max-wait 10m, --shutdown-grace
// 10m) must not delay the shutdown, which relies on httpserver.Server.Drain.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newLogBuffer()
	var stdout bytes.Buffer
	code := make(chan int, 1)
	// polling receives a value when a long-poll reaches the handler: from
	// then on the server must answer it (a request read once the shutdown
	// has begun would be dropped instead).
	polling := make(chan struct{}, 1)
	testHookHandler = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("wait") {
				select {
				case polling <- struct{}{}:
				default:
				}
			}
			h.ServeHTTP(w, r)
		})
	}
	defer func() { testHookHandler = nil }()
	p := &daemonProc{t: t, out: out, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		code <- run(ctx, []string{"--runner", "sim", "--host", "127.0.0.1", "--port", "0",
			"--state-dir", t.TempDir(), "--shutdown-grace", "10m", "--max-wait", "10m"}, &stdout, out)
	}()
	base := p.baseURL()
	id := openSession(t, base)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(acquire(t, base, id)))
	assert.FileExists(t, filepath.Join(tmp, metaFileName))

	// A waiting session long-polls; the shutdown must not wait for it
	// (nor for the 10m grace).
	r := do(t, http.MethodPost, base+"/session", "", nil, "")
	require.Equal(t, http.StatusCreated, r.code)
	var waiting struct {
		SessionID string `json:"session_id"`
		Status    string `json:"status"`
	}
	r.json(t, &waiting)
	require.Equal(t, "waiting", waiting.Status)
	polled := make(chan response, 1)
	go func() {
		resp, err := httpClient.Get(base + "/session/" + waiting.SessionID + "?wait=10m")
		if err != nil {
			polled <- response{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- response{resp.StatusCode, b}
	}()
	<-polling

	cancel()
	select {
	case r := <-polled:
		require.Equal(t, http.StatusOK, r.code, "the long-poll answers the current status at shutdown: %s", r.body)
		var st struct{ Status string }
		r.json(t, &st)
		assert.Equal(t, "waiting", st.Status)
	case <-time.After(waitTimeout):
		t.Fatal("the long-poll held the shutdown")
	}
	select {
	case c := <-code:
		assert.Equal(t, 0, c)
	case <-time.After(waitTimeout):
		t.Fatal("run did not return")
	}
	assert.Contains(t, out.String(), "Remote Lab Manager shutdown complete")
	assert.Contains(t, out.String(), "Cleaning up 2 remaining sessions...")
	assert.NoFileExists(t, filepath.Join(tmp, metaFileName))
	assert.Empty(t, stdout.String())
	httpClient.CloseIdleConnections()
}
