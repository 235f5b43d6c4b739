package main

// Restarts with the netlab runner (the fake netlab on PATH): the lab a
// killed server left is adopted when netlab says it still runs, torn down
// when it does not, kept dirty when the teardown fails; netlab commands a
// killed server left running are killed first.

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// killedWithLab starts remotelabd in e, acquires the test topology as a
// session, kills the server with SIGKILL and returns the session and the
// lab's directory; the lab still runs.
func killedWithLab(t *testing.T, e *env, args ...string) (id, dir string) {
	t.Helper()
	first := start(t, e, append([]string{"--host", "127.0.0.1", "--port", "0"}, args...)...)
	base := first.baseURL()
	assert.Contains(t, first.out.String(), "netlab CLI found")
	id = openSession(t, base)
	res := acquire(t, base, id)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	assert.Equal(t, "frr", res.Devices[0].Raw["device"])
	dir = labDir(t, base, id)
	assert.True(t, strings.HasPrefix(dir, filepath.Join(e.stateDir, "netlab", "labs")+string(filepath.Separator)), "lab dir %s", dir)

	st := netlabStatus(t, e)
	require.Contains(t, st, "default")
	assert.Equal(t, "started", st["default"]["status"])
	assert.Equal(t, dir, st["default"]["dir"])

	first.signal(syscall.SIGKILL)
	first.waitExit()
	require.Contains(t, netlabStatus(t, e), "default", "the killed server's lab still runs")
	return id, dir
}

// removeNetlabInstance deletes instance id from the fake netlab's status
// file, as if the lab had stopped behind netlab's back (a reboot).
func removeNetlabInstance(t *testing.T, e *env, id string) {
	t.Helper()
	st := netlabStatus(t, e)
	delete(st, id)
	data := []byte("{}\n")
	if len(st) > 0 {
		var err error
		data, err = yaml.Marshal(st)
		require.NoError(t, err)
	}
	require.NoError(t, os.WriteFile(netlabStatusPath(e), data, 0o644))
}

// TestNetlabKilledServerLabAdopted: kill -9 leaves a running lab; netlab
// status says it still runs, so the next start adopts it with its holder
// (no down, no up) and the holder's next acquire reuses it.
func TestNetlabKilledServerLabAdopted(t *testing.T) {
	e, calls := netlabEnv(t)
	id, dir := killedWithLab(t, e)
	ups := len(callsOf(netlabCalls(t, calls), "up lab.yml"))

	second := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := second.baseURL()
	second.waitFor(logRE("Startup cleanup completed successfully", "recovery=adopted lab=running"))
	assert.Regexp(t, logRE("Adopted the lab a previous run left running", "dir="+dir, "holders=1 ref_count=1"), second.out.String())
	got := netlabCalls(t, calls)
	assert.True(t, hasCall(got, dir, "status --format json"), "netlab was asked: %v", got)
	assert.Empty(t, callsOf(got, "down --cleanup --force"), "nothing torn down")

	assert.Equal(t, "running", labState(t, base, id))
	res := acquire(t, base, id)
	assert.True(t, res.Reused)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	assert.Len(t, callsOf(netlabCalls(t, calls), "up lab.yml"), ups, "no new netlab up")
	assert.Equal(t, "started", netlabStatus(t, e)["default"]["status"])
	assert.DirExists(t, dir)

	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
	assert.Equal(t, "started", netlabStatus(t, e)["default"]["status"], "SIGTERM keeps the lab")
}

// TestNetlabKilledServerLabTornDown: the killed server's lab is no longer
// running according to netlab, so the next start tears it down (netlab
// down in its directory) before it serves.
func TestNetlabKilledServerLabTornDown(t *testing.T) {
	e, calls := netlabEnv(t)
	id, dir := killedWithLab(t, e)
	removeNetlabInstance(t, e, "default")

	second := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := second.baseURL()
	second.waitFor(logRE("Startup cleanup completed successfully", "recovery=torn-down lab=none"))
	assert.Regexp(t, logRE("Recovered lab torn down", "dir="+dir), second.out.String())
	assert.NotContains(t, second.out.String(), "Adopted")
	got := netlabCalls(t, calls)
	assert.True(t, hasCall(got, dir, "status --format json"), "calls: %v", got)
	assert.True(t, hasCall(got, dir, "down --cleanup --force"), "calls: %v", got)
	assert.NoDirExists(t, dir)
	assert.Equal(t, "none", labState(t, base, id))

	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}

// TestFailedStartupCleanupKeepsLabDirty (issue 11, finding 5): the
// recorded lab's cleanup fails at startup (netlab cannot lock its status
// file: status and down both fail), so the lab stays recorded as dirty
// instead of being forgotten; once netlab works again, the next acquire
// retries the teardown and then starts the lab.
func TestFailedStartupCleanupKeepsLabDirty(t *testing.T) {
	failFile := filepath.Join(t.TempDir(), "fail")
	e, calls := netlabEnv(t, "FAKE_NETLAB_FAIL_FILE="+failFile)
	id, dir := killedWithLab(t, e)
	require.NoError(t, os.WriteFile(failFile, []byte("statuslock"), 0o644))

	second := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := second.baseURL()
	second.waitFor("Remote Lab Manager startup complete")
	out := second.out.String()
	assert.Regexp(t, logRE("Lab teardown failed; kept as dirty", "reason=recover", "dir="+dir, "Cannot lock lab status file"), out)
	assert.Regexp(t, logRE("Startup cleanup failed; the lab is kept as dirty and its teardown is retried before the next start", "recovery=dirty lab=dirty"), out)
	assert.NotContains(t, out, "Startup cleanup completed successfully")
	assert.Equal(t, "dirty", labState(t, base, id))
	r := do(t, http.MethodGet, base+"/queue", "", nil, "")
	require.Equal(t, http.StatusOK, r.code)
	var q struct{ Lab struct{ State string } }
	r.json(t, &q)
	assert.Equal(t, "dirty", q.Lab.State)
	assert.DirExists(t, dir, "the dirty lab's directory is kept for the retry")
	assert.True(t, hasCall(netlabCalls(t, calls), dir, "down --cleanup --force"))

	require.NoError(t, os.Remove(failFile))
	mark := second.mark()
	res := acquire(t, base, id)
	assert.False(t, res.Reused)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	second.waitFrom(mark, logRE("Cleaning up dirty lab before start", "dir="+dir))
	got := netlabCalls(t, calls)
	assert.Len(t, callsOf(got, "down --cleanup --force"), 2, "the teardown was retried: %v", got)
	assert.NoDirExists(t, dir)
	newDir := labDir(t, base, id)
	assert.NotEqual(t, dir, newDir)
	assert.Equal(t, "running", labState(t, base, id))
	assert.Equal(t, newDir, netlabStatus(t, e)["default"]["dir"])

	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}

// TestNetlabFailureDetailHasStdoutTail (finding 5): a failed netlab up is
// a 502 whose detail has the tail of netlab's stderr and of its stdout
// (some fatal reasons are printed only there). The fake's deploy failure
// prints its progress to stdout and the error to stderr.
func TestNetlabFailureDetailHasStdoutTail(t *testing.T) {
	e, _ := netlabEnv(t, "FAKE_NETLAB_FAIL=deploy")
	p := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := p.baseURL()
	id := openSession(t, base)
	code, body, err := doLab(base, id, testTopology)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadGateway, code, "%s", body)
	detail := response{body: body}.detail(t)
	assert.Contains(t, detail, "netlab up")
	assert.Contains(t, detail, "(injected by FAKE_NETLAB_FAIL=deploy)", "stderr tail")
	assert.Contains(t, detail, "stdout: ")
	assert.Contains(t, detail, "provider clab: executing sudo -E containerlab deploy", "stdout tail")
	assert.Contains(t, detail, "INFO Creating lab directory", "stdout tail")
}

// readPIDs reads the fake netlab's FAKE_NETLAB_PIDFILE: "<pid> [<child>]".
func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, n)
	}
	return pids
}

// processGone reports whether pid no longer runs: no such process, or a
// zombie nobody reaped yet.
func processGone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// killLeftovers makes sure the fake netlab processes listed in pidFile
// (FAKE_NETLAB_PIDFILE) end with the test: a daemon killed by a failing
// test leaves its netlab up (FAKE_NETLAB_UP_DELAY) running. Call it before
// start, so that it runs after the daemon is gone.
func killLeftovers(t *testing.T, pidFile string) {
	t.Cleanup(func() {
		if _, err := os.Stat(pidFile); err != nil {
			return
		}
		fake := filepath.Join(fakeBinDir, "netlab")
		for _, pid := range readPIDs(t, pidFile) {
			// Only the fake itself: a pid that ended may be reused.
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && exe == fake && !processGone(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// TestKill9DuringUpKillsOrphanedGroup (issue 11, finding 6): kill -9 while
// netlab up runs leaves that netlab (and a child that ignores SIGINT) as
// orphans; the restarted daemon kills the recorded process group before it
// touches the lab, then cleans the lab up.
func TestKill9DuringUpKillsOrphanedGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	e, calls := netlabEnv(t, "FAKE_NETLAB_UP_DELAY=10m", "FAKE_NETLAB_SPAWN_CHILD=1", "FAKE_NETLAB_PIDFILE="+pidFile)
	killLeftovers(t, pidFile)
	first := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := first.baseURL()
	id := openSession(t, base)
	res := make(chan error, 1)
	go func() {
		_, _, err := doLab(base, id, testTopology)
		res <- err
	}()
	// The fake rewrites its pid file with the child's pid once it has
	// spawned it, just before it waits in `containerlab deploy`.
	waitFile(t, pidFile, " ")
	pids := readPIDs(t, pidFile)
	require.Len(t, pids, 2)
	// The group was recorded (durably) before netlab up got this far; a
	// change acknowledged now is saved after it in any case.
	_, status := createSession(t, base)
	require.Equal(t, "waiting", status)

	first.signal(syscall.SIGKILL)
	first.waitExit()
	<-res
	for _, pid := range pids {
		require.False(t, processGone(pid), "pid %d outlived its server", pid)
	}
	upDirs := callsOf(netlabCalls(t, calls), "up lab.yml")
	require.Len(t, upDirs, 1)
	dir := upDirs[0]

	second := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base = second.baseURL()
	second.waitFor("Remote Lab Manager startup complete")
	for _, pid := range pids {
		assert.True(t, processGone(pid), "pid %d was killed", pid)
	}
	out := second.out.String()
	kill := strings.Index(out, `msg="Killing a process group a previous run left behind" component=lab pgid=`+strconv.Itoa(pids[0]))
	teardown := strings.Index(out, `msg="Tearing down lab"`)
	require.GreaterOrEqual(t, kill, 0, "the orphaned group was killed")
	require.Greater(t, teardown, kill, "killed before the lab was touched")
	assert.NotContains(t, out, "survived SIGKILL")
	assert.Regexp(t, logRE("Recovering lab left by a previous run", "dir="+dir, "state=starting"), out)
	assert.Regexp(t, logRE("Startup cleanup completed successfully", "recovery=torn-down lab=none"), out)
	assert.True(t, hasCall(netlabCalls(t, calls), dir, "down --cleanup --force"))
	assert.NoDirExists(t, dir)
	assert.NotContains(t, netlabStatus(t, e), "default")
	st, r := sessionStatus(t, base, id)
	assert.Equal(t, "active", st, "%s", r.body)
	assert.Equal(t, "none", labState(t, base, id))

	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}
