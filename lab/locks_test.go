//go:build unix

package lab_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// TestLockFileUsableByEveryUser: the lock file is created mode 0666 even
// under umask 077, and a file of ours with a narrower mode is widened, so
// a later run as another user can open it.
func TestLockFileUsableByEveryUser(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	require.NoFileExists(t, e.lockPath)
	require.NoError(t, e.m.CheckLock())
	assertMode(t, e.lockPath, 0o666)

	require.NoError(t, os.Remove(e.lockPath))
	_, err := e.m.TryAcquire(t.Context(), "s", newBundle(t, "a.yml", topoA), true)
	require.NoError(t, err)
	assertMode(t, e.lockPath, 0o666)

	// Left 0600 by an older version of ours: widened at the next use.
	require.NoError(t, os.Chmod(e.lockPath, 0o600))
	_, err = e.m.Destroy(t.Context(), true)
	require.NoError(t, err)
	assertMode(t, e.lockPath, 0o666)
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, want, fi.Mode().Perm(), "mode of %s", path)
}

// TestCheckLockDoesNotTakeTheLock: CheckLock answers while another process
// holds the lock, and is nil when the lock file is disabled.
func TestCheckLockDoesNotTakeTheLock(t *testing.T) {
	e := newEnv(t, &remotelabtest.FakeRunner{})
	flockHold(t, e.lockPath)
	require.NoError(t, e.m.CheckLock())

	e2 := newEnv(t, &remotelabtest.FakeRunner{}, func(c *lab.Config) { c.LockPath = "-" })
	require.NoError(t, e2.m.CheckLock())
	assert.NoFileExists(t, e2.lockPath)
}

// TestLockFileUnavailable: a lock file the Manager cannot open is
// ErrLockUnavailable naming the file (remotelabd answers 503), and
// nothing starts. As root the real case runs: a 0600 file of root's and a
// Manager running as nobody. Otherwise an unreadable file of ours stands
// in for it.
func TestLockFileUnavailable(t *testing.T) {
	if os.Geteuid() == 0 {
		lockUnavailableAsNobody(t)
		return
	}
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r)
	require.NoError(t, os.WriteFile(e.lockPath, nil, 0o000))
	t.Cleanup(func() { os.Chmod(e.lockPath, 0o600) })

	err := e.m.CheckLock()
	require.ErrorIs(t, err, lab.ErrLockUnavailable)
	assert.Contains(t, err.Error(), e.lockPath)
	_, err = e.m.TryAcquire(t.Context(), "s", newBundle(t, "a.yml", topoA), true)
	require.ErrorIs(t, err, lab.ErrLockUnavailable)
	assert.Contains(t, err.Error(), e.lockPath)
	assert.Empty(t, r.Calls())
	assert.Equal(t, lab.StateNone, e.m.Status().State)
	assertMode(t, e.lockPath, 0o000) // someone else's problem: left as it is
}

// lockUnavailableAsNobody runs a Manager as user nobody (65534) against a
// lock file root left mode 0600.
func lockUnavailableAsNobody(t *testing.T) {
	const nobody = 65534
	// t.TempDir's parent is private to root; this one nobody may enter.
	dir, err := os.MkdirTemp("", "lab-lock-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	work := filepath.Join(dir, "work")
	require.NoError(t, os.Mkdir(work, 0o777))
	require.NoError(t, os.Chmod(work, 0o777))
	lockPath := filepath.Join(dir, "netlab_pytest.lock")
	require.NoError(t, os.WriteFile(lockPath, nil, 0o600))
	// The test binary may sit in a directory only root can enter.
	bin := filepath.Join(dir, "lab.test")
	copyFile(t, os.Args[0], bin, 0o755)

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), checkLockHelperEnv+"="+lockPath, "LAB_WORK_ROOT="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("cannot run the check as user nobody: %v", err)
	}
	var rep lockReport
	require.NoError(t, json.Unmarshal(out, &rep), "helper output %q", out)
	t.Logf("as nobody: CheckLock: %s; TryAcquire: %s", rep.Check, rep.Acquire)
	assert.True(t, rep.CheckIsLock, "CheckLock as nobody: %q", rep.Check)
	assert.Contains(t, rep.Check, lockPath)
	assert.True(t, rep.AcquireIsLock, "TryAcquire as nobody: %q", rep.Acquire)
	assert.Contains(t, rep.Acquire, lockPath)
	ents, err := os.ReadDir(work)
	require.NoError(t, err)
	assert.Empty(t, ents, "no lab was started")
	assertMode(t, lockPath, 0o600) // not ours to change
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}
