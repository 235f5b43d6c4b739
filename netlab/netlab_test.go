package netlab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/internal/gobuild"
	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
	"github.com/remotelab-go/remotelab/topology"
)

// fakeDir holds the fake netlab executable built by TestMain.
var fakeDir string

func TestMain(m *testing.M) {
	if state := os.Getenv(ownerHelperEnv); state != "" {
		os.Exit(ownerHelper(state))
	}
	dir, err := os.MkdirTemp("", "fakenetlab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The test runs in the package directory: ./fakenetlab is the fake.
	if err := gobuild.Build(context.Background(), filepath.Join(dir, "netlab"), "netlab/fakenetlab", false); err != nil {
		fmt.Fprintln(os.Stderr, "build fake netlab:", err)
		os.Exit(1)
	}
	fakeDir = dir
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// progressLog is a lab.Progress that records what a Runner reports;
// onOutput, if set, sees every output line.
type progressLog struct {
	mu       sync.Mutex
	steps    []string
	lines    []string
	started  []lab.Process
	ended    []lab.Process
	onOutput func(string)
}

func (p *progressLog) Step(op string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps = append(p.steps, op)
}

func (p *progressLog) Output(line string) {
	p.mu.Lock()
	p.lines = append(p.lines, line)
	p.mu.Unlock()
	if p.onOutput != nil {
		p.onOutput(line)
	}
}

func (p *progressLog) Process(proc lab.Process, running bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if running {
		p.started = append(p.started, proc)
	} else {
		p.ended = append(p.ended, proc)
	}
}

// env is a test lab environment: its own HOME (the fake's state root)
// and working directory.
type env struct {
	t    *testing.T
	home string
	dir  string
	logs *logBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, home: filepath.Join(root, "home"), dir: filepath.Join(root, "lab"), logs: &logBuffer{}}
	for _, d := range []string{e.home, e.dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// runner returns a Runner for this environment; extra are fake knobs.
func (e *env) runner(cfg netlab.Config, extra ...string) *netlab.Runner {
	e.t.Helper()
	cfg.Env = append([]string{"HOME=" + e.home}, extra...)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := netlab.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("runner log:\n%s", e.logs.String())
		}
	})
	return r
}

// spec writes topo into the lab directory and returns the lab spec.
func (e *env) spec(topo string) lab.Spec {
	e.t.Helper()
	b, err := topology.NewBundle("topology.yml", []byte(topo), topology.Limits{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	if err := b.WriteTo(e.dir); err != nil {
		e.t.Fatal(err)
	}
	return lab.Spec{Dir: e.dir, Bundle: b}
}

func (e *env) statusFile() string {
	data, err := os.ReadFile(filepath.Join(e.home, ".netlab", "status.yaml"))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	return string(data)
}

func (e *env) exists(name string) bool {
	_, err := os.Stat(filepath.Join(e.dir, name))
	return err == nil
}

const threeNodes = `provider: clab
defaults.device: frr
nodes:
  zeta:
  alpha:
    device: srlinux
  mid:
    device: linux
links: [zeta-alpha, alpha-mid]
`

func TestUpInventoryDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{})
	spec := e.spec(threeNodes)

	devs, err := r.Up(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := sim.Devices(spec.Bundle.Topology(), sim.Addressing{LabName: sim.LabName(spec.Bundle.Topology(), e.dir)})
	if len(devs) != len(want) {
		t.Fatalf("got %d devices, want %d", len(devs), len(want))
	}
	for i := range want {
		if devs[i].Name != want[i].Name {
			t.Errorf("device %d is %s, want %s (topology order)", i, devs[i].Name, want[i].Name)
		}
		var got, exp map[string]any
		if err := json.Unmarshal(devs[i].Raw, &got); err != nil {
			t.Fatalf("device %s raw: %v", devs[i].Name, err)
		}
		_ = json.Unmarshal(want[i].Raw, &exp)
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("device %s raw = %s, want %s", devs[i].Name, devs[i].Raw, want[i].Raw)
		}
	}
	var alpha map[string]any
	_ = json.Unmarshal(devs[1].Raw, &alpha)
	if alpha["ansible_host"] != "192.168.121.102" || alpha["ansible_ssh_pass"] != "NokiaSrl1!" {
		t.Errorf("alpha: ansible_host %v, ansible_ssh_pass %v", alpha["ansible_host"], alpha["ansible_ssh_pass"])
	}
	for _, f := range []string{"netlab.lock", "netlab.snapshot.pickle", "clab.yml", "hosts.yml", "ansible.cfg",
		"group_vars/all/topology.json", "host_vars/zeta/topology.json", "node_files"} {
		if !e.exists(f) {
			t.Errorf("%s missing after up", f)
		}
	}
	if st := e.statusFile(); !strings.Contains(st, "status: started") || !strings.Contains(st, "dir: "+e.dir) {
		t.Errorf("status file after up:\n%s", st)
	}
	if !strings.Contains(e.logs.String(), `level=INFO msg="netlab command finished successfully" cmd="netlab up topology.yml" duration=`) {
		t.Errorf("no success log line:\n%s", e.logs.String())
	}

	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"netlab.lock", "netlab.snapshot.pickle", "clab.yml", "hosts.yml", "group_vars", "node_files"} {
		if e.exists(f) {
			t.Errorf("%s still there after down", f)
		}
	}
	if !e.exists("topology.yml") {
		t.Error("down removed the topology")
	}
	if st := e.statusFile(); strings.Contains(st, "default") {
		t.Errorf("status entry still there after down:\n%s", st)
	}

	// A second teardown finds nothing to do: down removed the lock.
	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Errorf("second down: %v", err)
	}
	if !strings.Contains(e.logs.String(), "nothing to tear down") {
		t.Errorf("second down not logged as nothing to tear down:\n%s", e.logs.String())
	}
}

// TestDownStrayLock: a directory with a lock but no snapshot (left by hand
// or by an old netlab) runs netlab down, whose "snapshot file does not
// exist" answer means nothing to tear down.
func TestDownStrayLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.spec(threeNodes)
	if err := os.WriteFile(filepath.Join(e.dir, "netlab.lock"), []byte("netlab lock file, do not remove"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.runner(netlab.Config{}).Down(t.Context(), e.dir); err != nil {
		t.Fatalf("down with a stray lock: %v", err)
	}
	if !strings.Contains(e.logs.String(), `level=DEBUG msg="netlab command failed as expected" cmd="netlab down --cleanup --force" exit_code=1`) {
		t.Errorf("missing snapshot not logged as expected failure:\n%s", e.logs.String())
	}
}

// TestUpTopologyNamedLikeAFlag: a topology file whose name starts with "-"
// must reach netlab as a file, not as an option (argparse: exit 2).
func TestUpTopologyNamedLikeAFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, err := topology.NewBundle("-lab.yml", []byte(threeNodes), topology.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WriteTo(e.dir); err != nil {
		t.Fatal(err)
	}
	r := e.runner(netlab.Config{})
	devs, err := r.Up(t.Context(), lab.Spec{Dir: e.dir, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 3 {
		t.Errorf("got %d devices, want 3", len(devs))
	}
	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Fatal(err)
	}
}

func TestUpValidationError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{})
	_, err := r.Up(t.Context(), e.spec("provider: clab\nnodes: [r1, r2]\n"))
	if err == nil {
		t.Fatal("up succeeded without a device")
	}
	var ne *netlab.Error
	if !errors.As(err, &ne) || ne.ExitCode != 1 {
		t.Fatalf("error %v is not a netlab.Error with exit code 1", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"netlab up: exit status 1: ",
		"MissingValue in nodes: No device type specified for node r1 and there is no default device type",
		"Fatal error in netlab: Cannot proceed beyond this point due to errors, exiting",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if e.exists("netlab.lock") {
		t.Error("failed validation left a lock")
	}
	if !strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("failure not logged at ERROR:\n%s", e.logs.String())
	}
}

func TestUpFailuresLeaveLockForDown(t *testing.T) {
	t.Parallel()
	cases := []struct{ fail, message, status string }{
		{"deploy", "Fatal error in netlab up: sudo -E containerlab deploy --reconfigure -t clab.yml failed, aborting...", "starting provider clab"},
		{"initial", "Fatal error in netlab up: netlab initial failed, aborting...", "deploying initial configuration"},
	}
	for _, c := range cases {
		t.Run(c.fail, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.runner(netlab.Config{}, "FAKE_NETLAB_FAIL="+c.fail)
			_, err := r.Up(t.Context(), e.spec(threeNodes))
			if err == nil || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("up error = %v, want %q", err, c.message)
			}
			if !e.exists("netlab.lock") {
				t.Error("failed up did not leave its lock")
			}
			if st := e.statusFile(); !strings.Contains(st, "status: "+c.status) {
				t.Errorf("status file after failed up, want %q:\n%s", c.status, st)
			}
			if err := e.runner(netlab.Config{}).Down(t.Context(), e.dir); err != nil {
				t.Fatal(err)
			}
			if e.exists("netlab.lock") || strings.Contains(e.statusFile(), "default") {
				t.Error("down did not clear lock and status")
			}
		})
	}
}

// TestManagerSeesUpDeadline: through a lab.Manager, a netlab up that runs
// out of time is a *lab.RunnerError wrapping a *netlab.Error that wraps
// context.DeadlineExceeded (remotelabd answers 504 on that), and the
// Manager's cleanup leaves no lab, lock, status entry or directory. Any
// moment of the fake's run may be interrupted: the outcome is the same.
func TestManagerSeesUpDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{UpTimeout: 300 * time.Millisecond}, "FAKE_NETLAB_UP_DELAY=1h")
	work := t.TempDir()
	m, err := lab.NewManager(lab.Config{Runner: r, WorkRoot: work, LockPath: "-", Logger: r.Config().Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("close manager: %v", err)
		}
	})
	b, err := topology.NewBundle("lab.yml", []byte(threeNodes), topology.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	_, err = m.TryAcquire(t.Context(), "s1", b, true)
	var re *lab.RunnerError
	var ne *netlab.Error
	switch {
	case !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("TryAcquire = %v, want context.DeadlineExceeded", err)
	case !errors.As(err, &re) || re.Op != "up":
		t.Fatalf("TryAcquire = %v, want a *lab.RunnerError of up", err)
	case !errors.As(err, &ne) || len(ne.Args) == 0 || ne.Args[0] != "up":
		t.Fatalf("TryAcquire = %v, want a *netlab.Error of netlab up", err)
	}
	if st := m.Status(); st.State != lab.StateNone {
		t.Errorf("state after the failed start = %s, want none", st.State)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("working directories left: %v", ents)
	}
	if st := e.statusFile(); strings.Contains(st, "dir:") {
		t.Errorf("status entry left:\n%s", st)
	}
}

func TestUpRefusesLockedDirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{})
	spec := e.spec(threeNodes)
	if _, err := r.Up(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	_, err := r.Up(t.Context(), spec)
	if err == nil || !strings.Contains(err.Error(), "Cannot start another lab in the same directory") {
		t.Fatalf("second up = %v", err)
	}
	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Fatal(err)
	}
}

func TestDownWhereNothingRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{})
	e.spec(threeNodes)
	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Errorf("down in a fresh directory: %v", err)
	}
	if err := r.Down(t.Context(), filepath.Join(e.dir, "gone")); err != nil {
		t.Errorf("down in a missing directory: %v", err)
	}
}

func TestDownFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	spec := e.spec(threeNodes)
	if _, err := e.runner(netlab.Config{}).Up(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	err := e.runner(netlab.Config{}, "FAKE_NETLAB_FAIL=statuslock").Down(t.Context(), e.dir)
	if err == nil || !strings.Contains(err.Error(), "netlab down: exit status 1: ") ||
		!strings.Contains(err.Error(), "Cannot lock lab status file") {
		t.Fatalf("down = %v", err)
	}
	// --force carries on past a failing containerlab destroy.
	if err := e.runner(netlab.Config{}, "FAKE_NETLAB_FAIL=down").Down(t.Context(), e.dir); err != nil {
		t.Fatalf("forced down: %v", err)
	}
	if e.exists("netlab.lock") {
		t.Error("lock still there")
	}
}

func TestInventoryOrderAndNoise(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.runner(netlab.Config{}).Up(t.Context(), e.spec(threeNodes)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.runner(netlab.Config{}).Down(context.Background(), e.dir) })

	// stderr noise never reaches the JSON parser, even when streamed.
	r := e.runner(netlab.Config{Stream: true, InspectParallelism: 1}, "FAKE_NETLAB_STDERR_NOISE=1")
	devs, err := r.Inventory(t.Context(), e.dir, []string{"mid", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	if want := []string{"mid", "alpha", "zeta"}; !reflect.DeepEqual(names, want) {
		t.Errorf("order = %v, want %v (given order, then sorted)", names, want)
	}
	if !strings.Contains(e.logs.String(), "fake netlab noise on stderr") {
		t.Error("stderr was not streamed to the log")
	}
}

func TestInventoryFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.runner(netlab.Config{}).Up(t.Context(), e.spec(threeNodes)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.runner(netlab.Config{}).Down(context.Background(), e.dir) })

	_, err := e.runner(netlab.Config{}, "FAKE_NETLAB_FAIL=inspect").Inventory(t.Context(), e.dir, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "list nodes: netlab inspect: exit status 1: ") {
		t.Fatalf("inventory = %v", err)
	}
}

// TestInventoryWhereNothingRuns: without a snapshot netlab inspect
// transforms topology.yml and answers for a lab that does not run; the
// Runner must not trust that.
func TestInventoryWhereNothingRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	spec := e.spec(threeNodes)
	devs, err := e.runner(netlab.Config{}).Inventory(t.Context(), e.dir, spec.Bundle.Topology().NodeNames())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "netlab.snapshot.pickle") {
		t.Fatalf("Inventory = %d devices, %v; want an error naming the missing snapshot", len(devs), err)
	}
	if strings.Contains(e.logs.String(), `cmd="netlab inspect`) {
		t.Errorf("netlab inspect ran:\n%s", e.logs.String())
	}
}

func TestStreaming(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{true, false} {
		e := newEnv(t)
		v, err := e.runner(netlab.Config{Stream: stream}).Version(t.Context())
		if err != nil || v != "26.03" {
			t.Fatalf("Version = %q, %v", v, err)
		}
		logs := e.logs.String()
		streamed := strings.Contains(logs, `level=DEBUG msg="netlab output" stream=stdout line="netlab version 26.03"`)
		if streamed != stream {
			t.Errorf("stream %v: output line logged = %v:\n%s", stream, streamed, logs)
		}
		if !strings.Contains(logs, `level=INFO msg="netlab command finished successfully" cmd="netlab version" duration=`) {
			t.Errorf("no INFO finished line:\n%s", logs)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		reported, want string
		ok             bool
	}{
		{"26.03", "26.03", true},
		{"25.09-post1", "25.09-post1", true},
		{"1.9.6", "1.9.6", true},
		{"25.12.03", "25.12.03", true},
		{"garbage", "", false},
	}
	for _, c := range cases {
		e := newEnv(t)
		v, err := e.runner(netlab.Config{}, "FAKE_NETLAB_VERSION="+c.reported).Version(t.Context())
		if c.ok && (err != nil || v != c.want) {
			t.Errorf("version %q: got %q, %v", c.reported, v, err)
		}
		if !c.ok && !errors.Is(err, netlab.ErrNoVersion) {
			t.Errorf("version %q: got %q, %v; want ErrNoVersion", c.reported, v, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	cases := []struct {
		out, want string
	}{
		{"netlab version 26.03\n  executable location: /usr/bin/netlab\n", "26.03"},
		{"netlab version 25.09-post1\n", "25.09-post1"},
		{"netlab version 1.8.2", "1.8.2"},
		{"netlab version 2.0.0-dev3\n", "2.0.0-dev3"},
		{"netlab version 1.6.0rc1\n", "1.6.0rc1"},
		{"\nnetlab version 26.01\r\n", "26.01"},
		{"", ""},
		{"garbage\nnetlab version 26.03\n", ""},
		{"netlab version\n", ""},
		{"netlab version banana\n", ""},
		{"FatalError in netlab: Unknown command --version", ""},
	}
	for _, c := range cases {
		v, err := netlab.ParseVersion([]byte(c.out))
		if c.want == "" {
			if !errors.Is(err, netlab.ErrNoVersion) {
				t.Errorf("ParseVersion(%q) = %q, %v; want ErrNoVersion", c.out, v, err)
			}
			continue
		}
		if err != nil || v != c.want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", c.out, v, err, c.want)
		}
	}
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.runner(netlab.Config{Binary: "no-such-netlab-binary"}).Version(t.Context())
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Version = %v, want exec.ErrNotFound", err)
	}
	var ne *netlab.Error
	if !errors.As(err, &ne) || ne.ExitCode != -1 {
		t.Errorf("error %v: want *netlab.Error with exit code -1", err)
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.runner(netlab.Config{}).Up(ctx, e.spec(threeNodes))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Up = %v, want context.Canceled", err)
	}
	if e.exists("netlab.lock") || e.exists("clab.yml") {
		t.Error("a cancelled Up ran netlab")
	}
}

func TestConfig(t *testing.T) {
	bad := []netlab.Config{
		{UpTimeout: -1},
		{DownTimeout: -1},
		{QueryTimeout: -1},
		{KillGrace: -1},
		{InspectParallelism: -1},
		{Env: []string{"NOEQUALS"}},
		{Env: []string{"=x"}},
	}
	for _, c := range bad {
		if _, err := netlab.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	r, err := netlab.New(netlab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Config()
	got.Logger = nil
	if want := netlab.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("Config() = %+v, want defaults %+v", got, want)
	}
	var zero netlab.Runner
	if zero.Config().Binary != "netlab" || zero.Config().InspectParallelism != 8 {
		t.Errorf("zero Runner config = %+v", zero.Config())
	}
}

// TestDownLeavesOtherDirectorysInstance: an up that fails because instance
// "default" already runs in another directory never took this directory's
// lock, so Down does not run netlab there (real netlab would stop at its
// [y/n] prompt and crash on stdin at EOF, leaving the host dirty) and the
// other lab is untouched.
func TestDownLeavesOtherDirectorysInstance(t *testing.T) {
	t.Parallel()
	other := newEnv(t)
	if _, err := other.runner(netlab.Config{}).Up(t.Context(), other.spec(threeNodes)); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.home = other.home // one HOME, one status file: the instance clashes
	r := e.runner(netlab.Config{})
	if _, err := r.Up(t.Context(), e.spec(threeNodes)); err == nil || !strings.Contains(err.Error(), `aborting "netlab up" request`) {
		t.Fatalf("up beside a running instance = %v, want the instance clash", err)
	}
	if e.exists("netlab.lock") {
		t.Fatal("the refused up took the directory lock")
	}
	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Fatalf("down after the refused up: %v", err)
	}
	if !other.exists("netlab.lock") || !strings.Contains(other.statusFile(), other.dir) {
		t.Error("down touched the other directory's lab")
	}
}
