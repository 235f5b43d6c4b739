package main

// End-to-end tests: the first one builds remotelabd (with -race when the
// tests run with it) and the fake netlab, and the tests run the binary as a
// process with its own TMPDIR (so its single-instance lock and the lab
// lock file are private), HOME (the fake netlab's status file) and state
// directory. This file has the process helpers; http_test.go the HTTP
// ones.
//
// REMOTELABD_TEST_BINARY=path runs the tests against that remotelabd
// instead of building one (to check that a regression test fails on an
// older build); the fake netlab is always built from this tree.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/internal/gobuild"
)

var (
	buildDir   string // temp dir for the binaries built by the tests
	daemonBin  string // the remotelabd binary under test
	fakeBinDir string // holds the fake `netlab`

	buildDaemon = sync.OnceValue(func() error {
		if os.Getenv("REMOTELABD_TEST_BINARY") != "" {
			return nil
		}
		return gobuild.Build(context.Background(), daemonBin, "cmd/remotelabd", raceEnabled)
	})
	buildFake = sync.OnceValue(func() error {
		return gobuild.Build(context.Background(), filepath.Join(fakeBinDir, "netlab"), "netlab/fakenetlab", false)
	})
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	buildDir, err = os.MkdirTemp("", "remotelabd-test-")
	if err == nil {
		// Another user (the test that runs remotelabd as nobody) must
		// be able to run the binaries.
		err = os.Chmod(buildDir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(buildDir)
	daemonBin = filepath.Join(buildDir, "remotelabd")
	if bin := os.Getenv("REMOTELABD_TEST_BINARY"); bin != "" {
		daemonBin = bin
	}
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
	require.NoError(t, os.Chmod(fakeBinDir, 0o755))
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
	// prelude, if set, is shell code run before remotelabd replaces the
	// shell (umask, ulimit): sh -c '<prelude>; exec remotelabd ...'.
	prelude string
	// cred, if set, runs remotelabd as another user (the test runs as
	// root); dir is then its working directory.
	cred *syscall.Credential
	dir  string
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

// command returns the command running remotelabd with args in e.
func (e *env) command(args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if e.prelude != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", e.prelude + ` && exec "$0" "$@"`, daemonBin}, args...)...)
	} else {
		cmd = exec.Command(daemonBin, args...)
	}
	cmd.Env = e.vars()
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
		cmd.Dir = e.dir
	}
	return cmd
}

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
	cmd := e.command(args...)
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

// logRE returns a regexp matching a log line (text format) with message
// msg and then, in this order, the fragments attrs ("key=value", or part
// of a value), matched literally.
func logRE(msg string, attrs ...string) string {
	q := msg
	if strings.ContainsAny(msg, " =\"") {
		q = `"` + msg + `"`
	}
	re := `msg=` + regexp.QuoteMeta(q)
	for _, a := range attrs {
		re += `.*` + regexp.QuoteMeta(a)
	}
	return re
}

// mark returns the length of the output so far: waitFrom then looks only
// at what comes after it.
func (p *daemonProc) mark() int { return len(p.out.String()) }

// waitFor waits until the output matches re and returns the submatches.
func (p *daemonProc) waitFor(re string) []string {
	p.t.Helper()
	return p.waitFrom(0, re)
}

// waitFrom waits until the output after offset from matches re.
func (p *daemonProc) waitFrom(from int, re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		s, changed := p.out.snapshot()
		if m := rx.FindStringSubmatch(s[from:]); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-p.done:
			if m := rx.FindStringSubmatch(p.out.String()[from:]); m != nil {
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

// addr waits for the "listening on" line and returns the address.
func (p *daemonProc) addr() string {
	p.t.Helper()
	return p.waitFor(`listening on" .*addr=([0-9.]+:[0-9]+)`)[1]
}

// baseURL waits for the "listening on" line and returns the server URL.
func (p *daemonProc) baseURL() string {
	p.t.Helper()
	return "http://" + p.addr()
}

func (p *daemonProc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

// runToExit runs remotelabd to completion and returns its exit code,
// stdout and stderr.
func runToExit(t *testing.T, e *env, args ...string) (int, string, string) {
	t.Helper()
	cmd := e.command(args...)
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
