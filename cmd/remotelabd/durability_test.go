package main

// Durability (SPEC §11) with the real binary: a state file that cannot be
// read, a state directory that cannot be written or fills up, and a host
// whose teardowns keep failing (quarantine).

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readyz returns /readyz's code and reason.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	r := do(t, http.MethodGet, base+"/readyz", "", nil, "")
	var body struct{ Reason string }
	r.json(t, &body)
	return r.code, body.Reason
}

// waitReady polls /readyz until its answer is code (a condition the
// server reaches on its own: a retry, a probe), failing after waitTimeout.
func waitReady(t *testing.T, base string, code int) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got, reason := readyz(t, base)
		if got == code {
			return reason
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d; last %d %q", code, got, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountTmpfs mounts a tmpfs with the given options on a new directory,
// unmounted when the test ends; it skips the test where mounting is not
// allowed (not root, a container without the capability).
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); run as root to test a read-only or full state directory", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestCorruptStateFileMovedAside: a state.db that cannot be read is moved
// aside (kept, never deleted) with an ERROR line, and the daemon starts
// with an empty queue; the lab its lost record named is torn down rather
// than left running unseen.
func TestCorruptStateFileMovedAside(t *testing.T) {
	e := newEnv(t)
	id, dir := killedHolder(t, e)

	db := filepath.Join(e.stateDir, stateDBName)
	garbage := bytes.Repeat([]byte("not a bbolt file "), 1000)
	require.NoError(t, os.WriteFile(db, garbage, 0o600))

	second := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := second.baseURL()
	m := second.waitFor(logRE("The state file cannot be read; moved it aside and starting with an empty queue", "path="+db) + ` moved_to=(\S+)`)
	moved, err := os.ReadFile(m[1])
	require.NoError(t, err, "moved, not deleted")
	assert.Equal(t, garbage, moved)
	second.waitFor(logRE("Tore down labs no record named", "removed=1"))
	assert.NoDirExists(t, dir, "the lab its lost record named is gone")

	_, r := sessionStatus(t, base, id)
	assert.Equal(t, http.StatusNotFound, r.code, "the queue starts empty")
	code, reason := readyz(t, base)
	assert.Equal(t, http.StatusOK, code, reason)
	id2 := openSession(t, base)
	assert.False(t, acquire(t, base, id2).Reused)

	second.signal(syscall.SIGTERM)
	assert.Equal(t, 0, second.waitExit())
}

// TestReadOnlyStateDir: a state directory that cannot be written does not
// stop the daemon: it serves from memory, and /readyz says why it is not
// ready.
func TestReadOnlyStateDir(t *testing.T) {
	e := newEnv(t)
	e.stateDir = mountTmpfs(t, "ro,size=1m")
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := p.baseURL()
	p.waitFor(logRE("The state directory cannot be written; serving without saving state until it can"))
	p.waitFor(logRE("Cannot open the state store: the queue is not saved and /readyz says not ready", "read-only file system"))

	assert.Equal(t, http.StatusNoContent, do(t, http.MethodGet, base+"/healthz", "", nil, "").code)
	code, reason := readyz(t, base)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, reason, "state not saved")
	assert.Contains(t, reason, "read-only file system")
	id := openSession(t, base)
	_, r := sessionStatus(t, base, id)
	assert.Equal(t, http.StatusOK, r.code, "sessions are served from memory")

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
}

// TestFullStateDir: when the state directory fills up, changes are still
// answered (from memory), /readyz says the state is not saved, and once
// space is freed the kept changes are saved and the daemon is ready again.
func TestFullStateDir(t *testing.T) {
	e := newEnv(t)
	e.stateDir = mountTmpfs(t, "size=2m")
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base := p.baseURL()
	code, reason := readyz(t, base)
	require.Equal(t, http.StatusOK, code, reason)

	// Fill the file system, then make changes until a commit fails.
	filler := filepath.Join(e.stateDir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	labels := `{"labels": {"pad": "` + strings.Repeat("x", 250) + `"}}`
	var ids []string
	for i := 0; ; i++ {
		r := do(t, http.MethodPost, base+"/session", "", strings.NewReader(labels), "application/json")
		require.Equal(t, http.StatusCreated, r.code, "changes are still answered: %s", r.body)
		var created struct {
			SessionID string `json:"session_id"`
		}
		r.json(t, &created)
		ids = append(ids, created.SessionID)
		if code, _ := readyz(t, base); code == http.StatusServiceUnavailable {
			break
		}
		require.Less(t, i, 5000, "a full disk never failed a commit")
	}
	_, reason = readyz(t, base)
	assert.Contains(t, reason, "state not saved")
	assert.Contains(t, reason, "no space left on device")
	p.waitFor(logRE("Cannot save the state; retrying"))

	require.NoError(t, os.Remove(filler))
	waitReady(t, base, http.StatusOK)
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())

	// Every acknowledged session was saved once there was room.
	again := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	base = again.baseURL()
	for _, id := range ids {
		_, r := sessionStatus(t, base, id)
		require.Equal(t, http.StatusOK, r.code, "session %s after the restart", id[:8])
	}
	again.signal(syscall.SIGTERM)
	assert.Equal(t, 0, again.waitExit())
}

// TestQuarantineAndAutomaticLift: teardowns failing in a row quarantine the
// host (POST /lab 503, /readyz 503, an audit line); once the failure is
// cleared, the next cleanup retry lifts it by itself.
func TestQuarantineAndAutomaticLift(t *testing.T) {
	failFile := filepath.Join(t.TempDir(), "fail")
	e, _ := netlabEnv(t, "FAKE_NETLAB_FAIL_FILE="+failFile)
	p := start(t, e, "--host", "127.0.0.1", "--port", "0", "--quarantine-after", "2", "--quarantine-backoff", "1s")
	base := p.baseURL()
	id := openSession(t, base)
	acquire(t, base, id)
	require.Equal(t, http.StatusNoContent, do(t, http.MethodPost, base+"/lab/release", id, nil, "").code)

	// Switching topologies needs a teardown; make every one fail.
	require.NoError(t, os.WriteFile(failFile, []byte("statuslock"), 0o644))
	other := testTopology + "# another lab\n"
	for range 2 {
		code, body, err := doLab(base, id, other)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadGateway, code, "%s", body)
	}
	code, body, err := doLab(base, id, other)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, string(body), "Lab host quarantined: 2 lab teardowns failed in a row")
	qcode, reason := readyz(t, base)
	assert.Equal(t, http.StatusServiceUnavailable, qcode)
	assert.Contains(t, reason, "quarantined")
	p.waitFor(logRE("Lab host quarantined: lab work is refused until a cleanup succeeds"))
	r := do(t, http.MethodGet, base+"/admin/audit", "", nil, "")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, string(r.body), `"action":"quarantine"`)

	require.NoError(t, os.Remove(failFile))
	waitReady(t, base, http.StatusOK)
	p.waitFor(logRE("Lab host quarantine lifted", "actor=remotelabd", `reason="a cleanup succeeded"`))
	code, body, err = doLab(base, id, other)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "%s", body)

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
}
