package main

// Regression tests for issue 11 (trust under faults and hostile clients),
// findings 1 to 4: uploads cannot hold the head, background lab work
// never shows as 423, the state directory is locked, and the lab lock file
// works across users.

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startUpload opens a connection to addr and sends the headers of a POST
// /lab for session id whose body (len bytes) is to follow.
func startUpload(t *testing.T, addr, id, ctype string, length int) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /lab HTTP/1.1\r\nHost: %s\r\nX-Session-ID: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		addr, id, ctype, length)
	require.NoError(t, err)
	return conn
}

// readAnswer reads the response to the request sent on conn.
func readAnswer(t *testing.T, conn net.Conn) response {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(waitTimeout)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&body)
	require.NoError(t, err)
	return response{resp.StatusCode, []byte(body.String()), resp.Header}
}

// TestTrickledUploadTimesOut (issue 11, finding 1): the holder sends the
// headers of POST /lab and then one body byte every 250 ms. The bytes keep
// its session alive past the active TTL (6 s), but the upload must be
// complete within --upload-timeout (8 s): it gets 408 "Upload timed out"
// and no lab work starts. A client can no longer hold the head forever by
// trickling a body.
func TestTrickledUploadTimesOut(t *testing.T) {
	e, calls := netlabEnv(t)
	p := start(t, e, "--host", "127.0.0.1", "--port", "0", "--active-ttl", "6s", "--upload-timeout", "8s")
	addr := p.addr()
	base := "http://" + addr
	holder := openSession(t, base)
	waiter, status := createSession(t, base)
	require.Equal(t, "waiting", status)

	body, ctype := labForm(testTopology, true)
	sent := time.Now()
	conn := startUpload(t, addr, holder, ctype, len(body))
	stop := make(chan struct{})
	trickled := make(chan int, 1)
	go func() {
		// The slow client is the scenario: this timer is what it does,
		// not a wait for the server.
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for n < len(body) {
			if _, err := conn.Write(body[n : n+1]); err != nil {
				break
			}
			n++
			select {
			case <-stop:
				trickled <- n
				return
			case <-tick.C:
			}
		}
		trickled <- n
	}()
	r := readAnswer(t, conn)
	elapsed := time.Since(sent)
	close(stop)
	n := <-trickled

	assert.Equal(t, http.StatusRequestTimeout, r.code, "%s", r.body)
	assert.True(t, strings.HasPrefix(r.detail(t), "Upload timed out"), "detail %q", r.detail(t))
	assert.GreaterOrEqual(t, elapsed, 8*time.Second, "cut by the upload timeout, not before")
	assert.Less(t, n, len(body), "the body never arrived in full")
	st, sr := sessionStatus(t, base, holder)
	assert.Equal(t, "active", st, "the trickle kept the holder alive past its TTL: %s", sr.body)
	st, _ = sessionStatus(t, base, waiter)
	assert.Equal(t, "waiting", st)
	assert.Empty(t, callsOf(netlabCalls(t, calls), "up lab.yml"), "nothing started")
	assert.Equal(t, "none", labState(t, base, holder))
}

// TestPausedUploadExpires (issue 11, finding 1): a holder that stops
// sending in the middle of its upload is not kept alive by the open
// request: it expires after the active TTL (3 s; the upload timeout is the
// default 5 min) and the waiter is promoted; nothing started.
func TestPausedUploadExpires(t *testing.T) {
	e, calls := netlabEnv(t)
	p := start(t, e, "--host", "127.0.0.1", "--port", "0", "--active-ttl", "3s")
	addr := p.addr()
	base := "http://" + addr
	holder := openSession(t, base)
	waiter, status := createSession(t, base)
	require.Equal(t, "waiting", status)

	body, ctype := labForm(testTopology, true)
	sent := time.Now()
	conn := startUpload(t, addr, holder, ctype, len(body))
	_, err := conn.Write(body[:len(body)/2])
	require.NoError(t, err)

	waitActive(t, base, waiter)
	assert.GreaterOrEqual(t, time.Since(sent), 3*time.Second, "not before the active TTL")
	r := readAnswer(t, conn)
	assert.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	var ended struct{ Detail, Outcome string }
	r.json(t, &ended)
	assert.Equal(t, "Session not found", ended.Detail)
	assert.Equal(t, "expired", ended.Outcome)
	_, sr := sessionStatus(t, base, holder)
	assert.Equal(t, http.StatusNotFound, sr.code)
	assert.Contains(t, string(sr.body), `"outcome":"expired"`)
	p.waitFor(logRE("Session promoted to ACTIVE", "session="+waiter[:8]))
	assert.Empty(t, callsOf(netlabCalls(t, calls), "up lab.yml"), "nothing started")
}

// TestBackgroundTeardownMakesLabCallsWait (issue 11, finding 2): while the
// idle lab is being torn down in the background (--lab-idle-ttl 1s, a
// netlab down that takes 4 s), the active session's DELETE /lab and POST
// /lab are not refused with 423: they wait for that work and then do
// theirs.
func TestBackgroundTeardownMakesLabCallsWait(t *testing.T) {
	e, calls := netlabEnv(t, "FAKE_NETLAB_DOWN_DELAY=4s")
	p := start(t, e, "--host", "127.0.0.1", "--port", "0", "--lab-idle-ttl", "1s")
	base := p.baseURL()
	id := openSession(t, base)

	// idleTeardown starts the lab, releases it and returns while its idle
	// teardown runs.
	idleTeardown := func() {
		t.Helper()
		mark := p.mark()
		acquire(t, base, id)
		require.Equal(t, http.StatusNoContent, do(t, http.MethodPost, base+"/lab/release", id, nil, "").code)
		p.waitFrom(mark, logRE("Tearing down lab", "reason=idle-timeout"))
		require.Equal(t, "stopping", labState(t, base, id))
	}

	idleTeardown()
	mark := p.mark()
	r := do(t, http.MethodDelete, base+"/lab?force=true", id, nil, "")
	assert.Equal(t, http.StatusNoContent, r.code, "waited for the idle teardown, then had nothing to destroy: %s", r.body)
	p.waitFrom(mark, logRE("Lab torn down", "reason=idle-timeout")) // before the answer; the pipe may lag
	assert.Equal(t, "none", labState(t, base, id))

	idleTeardown()
	mark = p.mark()
	res := acquire(t, base, id)
	assert.False(t, res.Reused, "a new lab after the teardown")
	p.waitFrom(mark, logRE("Lab torn down", "reason=idle-timeout"))
	assert.Equal(t, "running", labState(t, base, id))
	got := netlabCalls(t, calls)
	assert.Len(t, callsOf(got, "up lab.yml"), 3, "calls: %v", got)
	assert.Len(t, callsOf(got, "down --cleanup --force"), 2, "calls: %v", got)
	assert.NotContains(t, p.out.String(), "status=423")
}

// TestStateDirSharedBySecondInstanceRefused (issue 11, finding 3): a second
// instance under another TMPDIR (so the host lock does not stop it) but
// with the same --state-dir exits 1 naming the state directory's lock,
// before it touches anything: no recovery, no netlab command; the first
// instance's lab is intact.
func TestStateDirSharedBySecondInstanceRefused(t *testing.T) {
	e, _ := netlabEnv(t)
	first := start(t, e, "--host", "127.0.0.1", "--port", "0")
	base := first.baseURL()
	id := openSession(t, base)
	acquire(t, base, id)
	dir := labDir(t, base, id)
	stateMeta := filepath.Join(e.stateDir, stateMetaName)
	assert.FileExists(t, stateMeta)
	before, _ := os.ReadFile(stateMeta)

	second := *e
	second.tmp = t.TempDir()
	calls2 := filepath.Join(t.TempDir(), "netlab-calls")
	second.extra = []string{"FAKE_NETLAB_CALLS=" + calls2}
	code, stdout, stderr := runToExit(t, &second, "--state-dir", e.stateDir, "--host", "127.0.0.1", "--port", "0")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Regexp(t, logRE("Not starting: another Remote Lab Manager uses this state directory (stop it first, or pass another --state-dir)",
		"lock="+filepath.Join(e.stateDir, stateLockName)), stderr)
	for _, s := range []string{"Recovering", "Adopted", "Tearing down", "Startup cleanup", "netlab CLI found"} {
		assert.NotContains(t, stderr, s)
	}
	assert.NoFileExists(t, calls2, "no netlab command ran")
	assert.NoFileExists(t, second.metaPath(), "its host lock metadata is removed at exit")
	after, _ := os.ReadFile(stateMeta)
	assert.Equal(t, string(before), string(after), "the first instance's metadata is untouched")

	assert.Equal(t, "started", netlabStatus(t, e)["default"]["status"])
	assert.DirExists(t, dir)
	assert.True(t, acquire(t, base, id).Reused, "the first instance's lab is intact")
}

// sharedDir makes a directory outside the test's private temp directory
// (which only root can enter) owned by uid:gid.
func sharedDir(t *testing.T, parent, name string, uid, gid int) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chown(dir, uid, gid))
	return dir
}

// TestLockFileOfRootUnusableByServiceUser (issue 11, finding 4): a lab
// lock file left 0600 by root (a fixture or an old daemon run as root)
// cannot be opened by the daemon running as a service user: POST /lab and
// /readyz answer 503 naming the file (never 500), /healthz stays 204.
func TestLockFileOfRootUnusableByServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs remotelabd as nobody beside a root-owned lock file")
	}
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	root, err := os.MkdirTemp("", "remotelabd-nobody-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	require.NoError(t, os.Chmod(root, 0o755))

	e := newEnv(t)
	e.tmp = sharedDir(t, root, "tmp", uid, gid)
	e.home = sharedDir(t, root, "home", uid, gid)
	e.stateDir = filepath.Join(sharedDir(t, root, "var", uid, gid), "state")
	e.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	e.dir = e.home
	lockPath := filepath.Join(e.tmp, "netlab_pytest.lock")
	require.NoError(t, os.WriteFile(lockPath, nil, 0o600))
	require.NoError(t, os.Chmod(lockPath, 0o600))

	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := p.baseURL()
	assert.Equal(t, http.StatusNoContent, do(t, http.MethodGet, base+"/healthz", "", nil, "").code)

	id := openSession(t, base)
	code, body, err := doLab(base, id, testTopology)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, code, "%s", body)
	detail := response{body: body}.detail(t)
	assert.Contains(t, detail, lockPath)
	assert.Contains(t, detail, "permission denied")
	assert.Equal(t, "none", labState(t, base, id))

	p.waitFor(logRE("Lab host not ready", "lock_file=", lockPath, "permission denied"))
	r := do(t, http.MethodGet, base+"/readyz", "", nil, "")
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
	var ready struct {
		Ready  bool
		Reason string
	}
	r.json(t, &ready)
	assert.False(t, ready.Ready)
	assert.Contains(t, ready.Reason, lockPath)
	assert.Equal(t, http.StatusNoContent, do(t, http.MethodGet, base+"/healthz", "", nil, "").code)

	fi, err := os.Stat(lockPath)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "another user's file keeps its mode")
}

// TestLockFileCreatedForEveryUser (issue 11, finding 4): remotelabd run as
// root with umask 077 creates the lab lock file 0666, so a later daemon
// (or test fixture) running as a service user can use it.
func TestLockFileCreatedForEveryUser(t *testing.T) {
	e := newEnv(t)
	e.prelude = "umask 077"
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := p.baseURL()
	id := openSession(t, base)
	acquire(t, base, id)
	fi, err := os.Stat(filepath.Join(e.tmp, "netlab_pytest.lock"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o666), fi.Mode().Perm())
	r := do(t, http.MethodGet, base+"/readyz", "", nil, "")
	assert.Equal(t, http.StatusOK, r.code, "%s", r.body)
}
