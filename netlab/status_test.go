package netlab_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
	"github.com/remotelab-go/remotelab/topology"
)

// TestReportsProgress: Up reports its steps, netlab's output lines and
// each command's process group (started, then ended); Down its step.
func TestReportsProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{})
	var p progressLog
	ctx := lab.WithProgress(t.Context(), &p)
	spec := e.spec(threeNodes)
	if _, err := r.Up(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if want := []string{"up", "inspect"}; !slices.Equal(p.steps, want) {
		t.Errorf("steps = %v, want %v", p.steps, want)
	}
	for _, want := range []string{"provider clab: executing sudo -E containerlab deploy --reconfigure -t clab.yml",
		"The lab is up and running"} {
		if !slices.Contains(p.lines, want) {
			t.Errorf("output lines lack %q: %q", want, p.lines)
		}
	}
	for _, l := range p.lines {
		if strings.HasPrefix(strings.TrimSpace(l), "{") || strings.Contains(l, `"ansible_host"`) {
			t.Errorf("inspect JSON reported as output: %q", l)
		}
	}
	// netlab up, inspect nodes and one inspect per node.
	if len(p.started) != 5 || len(p.ended) != 5 {
		t.Fatalf("processes started %v, ended %v; want 5 each", p.started, p.ended)
	}
	for _, proc := range p.started {
		if proc.PGID <= 1 || proc.StartTime == 0 || proc.BootID == "" {
			t.Errorf("process %+v: want pgid, start time and boot id", proc)
		}
		if !slices.Contains(p.ended, proc) {
			t.Errorf("process %+v never reported ended", proc)
		}
	}

	var down progressLog
	if err := r.Down(lab.WithProgress(t.Context(), &down), e.dir); err != nil {
		t.Fatal(err)
	}
	if want := []string{"down"}; !slices.Equal(down.steps, want) {
		t.Errorf("down steps = %v, want %v", down.steps, want)
	}
	if !slices.Contains(down.lines, "Stopping clab nodes") {
		t.Errorf("down output lines: %q", down.lines)
	}
}

// TestErrorShowsStdout: netlab gives the reason of some fatal errors only
// on stdout ("... aborting"); the error carries it.
func TestErrorShowsStdout(t *testing.T) {
	t.Parallel()
	other := newEnv(t)
	if _, err := other.runner(netlab.Config{}).Up(t.Context(), other.spec(threeNodes)); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.home = other.home // the instance "default" runs in other.dir
	_, err := e.runner(netlab.Config{}).Up(t.Context(), e.spec(threeNodes))
	var ne *netlab.Error
	if !errors.As(err, &ne) {
		t.Fatalf("Up = %v, want a *netlab.Error", err)
	}
	reason := "It looks like the lab instance 'default' is already running in directory " + other.dir
	if !strings.Contains(ne.Stdout, reason) {
		t.Errorf("Stdout = %q, want the reason %q", ne.Stdout, reason)
	}
	msg := err.Error()
	if !strings.Contains(msg, `netlab up: exit status 1: Fatal error in netlab: aborting "netlab up" request`+"\nstdout: ") ||
		!strings.Contains(msg, reason) {
		t.Errorf("error %q lacks stderr and stdout tails", msg)
	}
	if !strings.Contains(e.logs.String(), `stdout="`) {
		t.Errorf("the failure log line lacks stdout:\n%s", e.logs.String())
	}
}

func TestErrorFormats(t *testing.T) {
	for _, c := range []struct {
		e    netlab.Error
		want string
	}{
		{netlab.Error{Args: []string{"up"}, Err: errors.New("exit status 1"), Stderr: "E"}, "netlab up: exit status 1: E"},
		{netlab.Error{Args: []string{"up"}, Err: errors.New("exit status 1"), Stdout: "O"}, "netlab up: exit status 1: stdout: O"},
		{netlab.Error{Args: []string{"up"}, Err: errors.New("exit status 1"), Stderr: "E", Stdout: "O"}, "netlab up: exit status 1: E\nstdout: O"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

func TestRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner(netlab.Config{})
	running := func(what, dir string, want bool) {
		t.Helper()
		got, err := r.Running(t.Context(), dir)
		if err != nil || got != want {
			t.Errorf("%s: Running = %v, %v; want %v", what, got, err, want)
		}
	}
	spec := e.spec(threeNodes)
	running("no status file (warning, exit 1)", e.dir, false)
	running("no such directory", filepath.Join(e.dir, "gone"), false)
	if _, err := r.Up(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	running("after up", e.dir, true)
	running("another directory (error, exit 0)", t.TempDir(), false)

	// A netlab before 26.02 has no --format: lock and snapshot decide.
	old := e.runner(netlab.Config{}, "FAKE_NETLAB_VERSION=25.09-post1")
	if got, err := old.Running(t.Context(), e.dir); err != nil || !got {
		t.Errorf("old netlab after up: Running = %v, %v; want true", got, err)
	}
	if err := r.Down(t.Context(), e.dir); err != nil {
		t.Fatal(err)
	}
	running("after down", e.dir, false)
	if got, err := old.Running(t.Context(), e.dir); err != nil || got {
		t.Errorf("old netlab after down: Running = %v, %v; want false", got, err)
	}

	// A status file netlab cannot read: no answer.
	if _, err := e.runner(netlab.Config{}, "FAKE_NETLAB_FAIL=statuslock").Running(t.Context(), e.dir); err == nil {
		t.Error("Running with an unreadable status file answered")
	}
}

// TestRunningFollowsNetlabsStartedRule: a lab whose up failed after its
// containers started counts as started for netlab ("clab workload
// started" in its log), and so for Running.
func TestRunningFollowsNetlabsStartedRule(t *testing.T) {
	t.Parallel()
	for fail, want := range map[string]bool{"initial": true, "deploy": false} {
		e := newEnv(t)
		if _, err := e.runner(netlab.Config{}, "FAKE_NETLAB_FAIL="+fail).Up(t.Context(), e.spec(threeNodes)); err == nil {
			t.Fatalf("up with FAKE_NETLAB_FAIL=%s succeeded", fail)
		}
		got, err := e.runner(netlab.Config{}).Running(t.Context(), e.dir)
		if err != nil || got != want {
			t.Errorf("after a failed %s: Running = %v, %v; want %v", fail, got, err, want)
		}
		if err := e.runner(netlab.Config{}).Down(t.Context(), e.dir); err != nil {
			t.Fatal(err)
		}
	}
}

// TestManagerAdoptsNetlabLab: a Manager closed with KeepOnClose leaves the
// lab up; the next one adopts it after `netlab status` (no up, no down),
// with its holders and devices.
func TestManagerAdoptsNetlabLab(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	calls := filepath.Join(t.TempDir(), "calls")
	r := e.runner(netlab.Config{}, "FAKE_NETLAB_CALLS="+calls)
	work, state := t.TempDir(), t.TempDir()
	newManager := func(keep bool) *lab.Manager {
		m, err := lab.NewManager(lab.Config{Runner: r, WorkRoot: work, StateDir: state, LockPath: "-",
			KeepOnClose: keep, Logger: r.Config().Logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		return m
	}
	b, err := topology.NewBundle("lab.yml", []byte(threeNodes), topology.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	first := newManager(true)
	res, err := first.TryAcquire(t.Context(), "s1", b, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := readCalls(t, calls)

	second := newManager(false)
	got, err := second.Recover(t.Context())
	if err != nil || got != lab.RecoveredAdopted {
		t.Fatalf("Recover = %v, %v; want adopted", got, err)
	}
	st := second.Status()
	if st.State != lab.StateRunning || st.Holders["s1"] != 1 || len(st.Devices) != len(res.Devices) {
		t.Errorf("adopted lab: %+v", st)
	}
	if after := readCalls(t, calls)[len(before):]; !slices.Equal(after, []string{"status --format json"}) {
		t.Errorf("netlab calls of the adoption: %q", after)
	}
	if _, err := second.Destroy(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if st := e.statusFile(); strings.Contains(st, "dir:") {
		t.Errorf("status entry left after destroy:\n%s", st)
	}
}

// readCalls returns the arguments of the fake's recorded invocations.
func readCalls(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		_, args, _ := strings.Cut(l, "\t")
		out = append(out, args)
	}
	return out
}
