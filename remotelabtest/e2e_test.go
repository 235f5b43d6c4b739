package remotelabtest_test

// End to end: separate test binaries of a small module (testdata/e2emod),
// each run with `go test`, share one remotelabd running the netlab runner
// over the fake netlab. The daemon and the fake are built by the test.

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/internal/gobuild"
	"github.com/remotelab-go/remotelab/internal/testutil"
)

// e2eWait bounds each wait of the end-to-end test for a process (builds
// included, on a busy machine). A passing test never waits it out.
const e2eWait = 3 * time.Minute

// e2eActiveTTL is the daemon's active TTL; the test binaries heartbeat
// every second.
const e2eActiveTTL = 5 * time.Second

// TestEndToEndRestart: remotelabd restarts (SIGTERM, then a new process on
// the same port and state directory) while one test binary holds the lab
// and another waits; both carry on with their sessions: the holder keeps
// its lab (adopted, no second up) and releases it, the waiter gets it
// (reused) and passes.
func TestEndToEndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds remotelabd and runs go test")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := t.TempDir()
	require.NoError(t, gobuild.Build(t.Context(), filepath.Join(bin, "remotelabd"), "cmd/remotelabd", false))
	fakeBin := filepath.Join(bin, "fake")
	require.NoError(t, gobuild.Build(t.Context(), filepath.Join(fakeBin, "netlab"), "netlab/fakenetlab", false))

	setup := newDaemonSetup(t, filepath.Join(bin, "remotelabd"), fakeBin)
	first := setup.start(t, 0)
	ctl := newControl(t)
	mod := newE2EModule(t, root)

	a := mod.start(t, "A", first.url, ctl.url)
	evA := ctl.wait(t, "A")
	assert.False(t, evA.reused)
	b := mod.start(t, "B", first.url, ctl.url)
	first.waitFor(t, `msg="Created session" .*position=1`, 1)

	first.stop(t)
	second := setup.start(t, first.port(t))
	second.waitFor(t, `msg="Restored the saved queue" .*sessions=2`, 1)
	second.waitFor(t, `msg="Adopted the lab a previous run left running"`, 1)

	ctl.release("A")
	a.mustPass(t)
	evB := ctl.wait(t, "B")
	assert.True(t, evB.reused, "B gets the lab A kept across the restart")
	ctl.release("B")
	b.mustPass(t)
	assert.Equal(t, 0, second.queueLength(t))
	assert.NotContains(t, second.out.String(), `cmd="netlab up`, "no lab was started after the restart")
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds remotelabd and runs go test")
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := t.TempDir()
	require.NoError(t, gobuild.Build(t.Context(), filepath.Join(bin, "remotelabd"), "cmd/remotelabd", false))
	fakeBin := filepath.Join(bin, "fake")
	require.NoError(t, gobuild.Build(t.Context(), filepath.Join(fakeBin, "netlab"), "netlab/fakenetlab", false))

	d := startDaemon(t, filepath.Join(bin, "remotelabd"), fakeBin)
	ctl := newControl(t)
	mod := newE2EModule(t, root)
	run := func(name string) *goTest { return mod.start(t, name, d.url, ctl.url) }

	// FIFO: B queues while A holds the lab, and gets it once A is done.
	a := run("A")
	evA := ctl.wait(t, "A")
	assert.Equal(t, 2, evA.devices)
	assert.NotEmpty(t, evA.host)
	b := run("B")
	d.waitFor(t, `msg="Created session" .*session=\S+ position=1`, 1)
	releasedA := time.Now()
	ctl.release("A")
	a.mustPass(t)
	evB := ctl.wait(t, "B")
	t.Logf("B got the lab %v after A let go", evB.at.Sub(releasedA).Round(time.Millisecond))
	assert.True(t, evB.at.After(releasedA), "B got the lab while A held it")
	assert.Equal(t, 2, evB.devices)
	assert.True(t, evB.reused, "B reuses the lab A left idle")
	ctl.release("B")
	b.mustPass(t)
	assert.Equal(t, 0, d.queueLength(t))

	// A killed test binary: the next one gets the lab after the active TTL.
	c := run("C")
	evC := ctl.wait(t, "C")
	dd := run("D")
	d.waitFor(t, `msg="Created session" .*session=\S+ position=1`, 2)
	p, err := os.FindProcess(evC.pid)
	require.NoError(t, err)
	killed := time.Now()
	require.NoError(t, p.Kill())
	c.mustFail(t)
	evD := ctl.wait(t, "D")
	t.Logf("D got the lab %v after C was killed", evD.at.Sub(killed).Round(time.Millisecond))
	// D was promoted because C's session expired, not earlier: the
	// daemon logged the two in that order. (Comparing clocks instead
	// would fail on a busy machine that delays C's last heartbeat.)
	idC := d.waitFor(t, `msg="Created session" .*session=(\S+) position=\d+`, 3)[1]
	idD := d.waitFor(t, `msg="Created session" .*session=(\S+) position=\d+`, 4)[1]
	expired := `msg="Session removed" .*session=` + regexp.QuoteMeta(idC) + ` outcome=expired`
	promoted := `msg="Session promoted to ACTIVE" .*session=` + regexp.QuoteMeta(idD) + ` `
	d.waitFor(t, expired, 1)
	d.waitFor(t, promoted, 1)
	assert.Less(t, d.logIndex(expired), d.logIndex(promoted),
		"D got the lab before C's session expired")
	assert.Equal(t, 2, evD.devices)
	ctl.release("D")
	dd.mustPass(t)
	assert.Equal(t, 0, d.queueLength(t))
}

// daemon is a running remotelabd.
type daemon struct {
	url  string
	out  *testutil.Buffer
	done chan struct{}
	cmd  *exec.Cmd
}

func startDaemon(t *testing.T, exe, fakeBin string) *daemon {
	t.Helper()
	return newDaemonSetup(t, exe, fakeBin).start(t, 0)
}

// daemonSetup is where a remotelabd runs: its TMPDIR, HOME (the fake
// netlab's status file) and state directory, kept across restarts.
type daemonSetup struct {
	exe, fakeBin     string
	tmp, home, state string
}

func newDaemonSetup(t *testing.T, exe, fakeBin string) *daemonSetup {
	t.Helper()
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	require.NoError(t, os.Mkdir(home, 0o755))
	return &daemonSetup{exe: exe, fakeBin: fakeBin, tmp: tmp, home: home, state: filepath.Join(tmp, "state")}
}

// start runs remotelabd on port (0: a free one).
func (s *daemonSetup) start(t *testing.T, port int) *daemon {
	t.Helper()
	cmd := exec.Command(s.exe, "--runner", "netlab", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--active-ttl", e2eActiveTTL.String(), "--state-dir", s.state)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "TMPDIR" && k != "HOME" && k != "PATH" && !strings.HasPrefix(k, "FAKE_NETLAB_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Own TMPDIR (single-instance lock) and HOME (the fake's status file).
	cmd.Env = append(cmd.Env, "TMPDIR="+s.tmp, "HOME="+s.home,
		"PATH="+s.fakeBin+string(os.PathListSeparator)+os.Getenv("PATH"))
	d := &daemon{out: &testutil.Buffer{}, done: make(chan struct{}), cmd: cmd}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("remotelabd output:\n%s", d.out)
		}
	})
	m := d.waitFor(t, `listening on" .*addr=(127\.0\.0\.1:\d+)`, 1)
	d.url = "http://" + m[1]
	return d
}

// stop sends SIGINT and waits for the exit (SIGKILL after e2eWait).
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(e2eWait):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// port returns the daemon's port.
func (d *daemon) port(t *testing.T) int {
	t.Helper()
	i := strings.LastIndexByte(d.url, ':')
	p, err := strconv.Atoi(d.url[i+1:])
	require.NoError(t, err)
	return p
}

// waitFor waits until the daemon's output matches re n times and returns
// the submatches of the nth match.
func (d *daemon) waitFor(t *testing.T, re string, n int) []string {
	t.Helper()
	m, err := d.out.WaitFor(regexp.MustCompile(re), n, e2eWait, d.done)
	if err != nil {
		t.Fatalf("remotelabd: %v", err)
	}
	return m
}

// logIndex returns where the daemon's output first matches re, or -1.
func (d *daemon) logIndex(re string) int {
	if loc := regexp.MustCompile(re).FindStringIndex(d.out.String()); loc != nil {
		return loc[0]
	}
	return -1
}

func (d *daemon) queueLength(t *testing.T) int {
	t.Helper()
	h := serverHealth(t, d.url)
	n, ok := h["queue_length"].(float64)
	require.True(t, ok, "health: %v", h)
	return int(n)
}

// holdEvent is a test binary's report that it holds the lab.
type holdEvent struct {
	name    string
	pid     int
	devices int
	reused  bool
	host    string
	at      time.Time
}

// control is the server the test binaries report to; each holds the lab
// until its report is answered.
type control struct {
	url    string
	events chan holdEvent

	mu       sync.Mutex
	released map[string]chan struct{}
}

func newControl(t *testing.T) *control {
	c := &control{events: make(chan holdEvent, 8), released: make(map[string]chan struct{})}
	ts := httptest.NewServer(c)
	t.Cleanup(ts.Close)
	c.url = ts.URL
	return c
}

func (c *control) ch(name string) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released[name] == nil {
		c.released[name] = make(chan struct{})
	}
	return c.released[name]
}

func (c *control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pid, _ := strconv.Atoi(q.Get("pid"))
	devices, _ := strconv.Atoi(q.Get("devices"))
	c.events <- holdEvent{
		name: q.Get("name"), pid: pid, devices: devices,
		reused: q.Get("reused") == "true", host: q.Get("host"), at: time.Now(),
	}
	select {
	case <-c.ch(q.Get("name")):
		w.WriteHeader(http.StatusNoContent)
	case <-r.Context().Done():
	}
}

func (c *control) release(name string) { close(c.ch(name)) }

// wait waits for the next report, which must come from name.
func (c *control) wait(t *testing.T, name string) holdEvent {
	t.Helper()
	select {
	case ev := <-c.events:
		require.Equal(t, name, ev.name, "the lab went to the wrong test binary")
		return ev
	case <-time.After(e2eWait):
		t.Fatalf("test binary %s did not get the lab within %v", name, e2eWait)
		return holdEvent{}
	}
}

// e2eModule is testdata/e2emod with a go.mod whose replace directive
// points at this repository.
type e2eModule struct{ dir, modfile string }

func newE2EModule(t *testing.T, root string) *e2eModule {
	t.Helper()
	dir := filepath.Join(root, "remotelabtest", "testdata", "e2emod")
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	gomod := strings.Replace(string(b), "=> ../../..", "=> "+root, 1)
	require.NotEqual(t, string(b), gomod)
	tmp := t.TempDir()
	modfile := filepath.Join(tmp, "go.mod")
	require.NoError(t, os.WriteFile(modfile, []byte(gomod), 0o644))
	// The repository's go.sum has every checksum the module needs, so
	// `go test` resolves it from the module cache without the network.
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "go.sum"), sum, 0o644))
	return &e2eModule{dir: dir, modfile: modfile}
}

// goTest is a running `go test` of the module.
type goTest struct {
	name string
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (m *e2eModule) start(t *testing.T, name, serverURL, controlURL string) *goTest {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "test", "-modfile="+m.modfile, "-count=1", "-v", ".")
	cmd.Dir = m.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REMOTE_LAB_") && !strings.HasPrefix(kv, "GOFLAGS=") &&
			!strings.HasPrefix(kv, "GOPROXY=") && !strings.HasPrefix(kv, "GOWORK=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off",
		"REMOTE_LAB_URL="+serverURL, "REMOTE_LAB_REQUIRED=1", "REMOTE_LAB_HEARTBEAT_INTERVAL=1s",
		"E2E_NAME="+name, "E2E_CONTROL="+controlURL)
	g := &goTest{name: name, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &g.out, &g.out
	require.NoError(t, cmd.Start())
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		<-g.done // CommandContext kills it when the test ends
		if t.Failed() {
			t.Logf("go test %s output:\n%s", name, g.out.String())
		}
	})
	return g
}

func (g *goTest) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-g.done:
		return g.err
	case <-time.After(e2eWait):
		t.Fatalf("go test %s did not end within %v", g.name, e2eWait)
		return nil
	}
}

func (g *goTest) mustPass(t *testing.T) {
	t.Helper()
	err := g.wait(t)
	require.NoError(t, err, "go test %s:\n%s", g.name, g.out.String())
	require.Contains(t, g.out.String(), "--- PASS: TestHoldLab")
}

func (g *goTest) mustFail(t *testing.T) {
	t.Helper()
	err := g.wait(t)
	require.Error(t, err, fmt.Sprintf("go test %s:\n%s", g.name, g.out.String()))
}
