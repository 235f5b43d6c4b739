package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAliveFromSignalErr(t *testing.T) {
	assert.True(t, aliveFromSignalErr(nil))
	assert.True(t, aliveFromSignalErr(syscall.EPERM), "another user's process is alive")
	assert.False(t, aliveFromSignalErr(syscall.ESRCH))
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

func TestPIDAlive(t *testing.T) {
	assert.True(t, pidAlive(os.Getppid()))
	assert.False(t, pidAlive(os.Getpid()), "our own pid was recorded by an earlier holder")
	assert.False(t, pidAlive(0))
	assert.False(t, pidAlive(-5))
	assert.False(t, pidAlive(deadPID(t)))
}

func TestForeignMetaLenient(t *testing.T) {
	var m foreignMeta
	require.NoError(t, json.Unmarshal([]byte(`{"pid":"4242","user":"ci","host":"lab1","started_at":1700000000.5,"port":8000,"host_bind":"0.0.0.0","version":"0.3.1","log_config":null}`), &m))
	assert.Equal(t, 4242, m.pid(), "the Python server may write the pid as a string")
	attrs := m.attrs()
	assert.Contains(t, attrs, "ci@lab1")
	assert.Contains(t, attrs, "0.0.0.0:8000")
	assert.Contains(t, attrs, "none")

	for _, raw := range []string{`{"pid":"x"}`, `{"pid":-3}`, `{"pid":1.5}`, `{}`} {
		m = foreignMeta{}
		require.NoError(t, json.Unmarshal([]byte(raw), &m))
		assert.Equal(t, 0, m.pid(), raw)
	}
}

func TestInstanceLockLifecycle(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	in, err := lockInstance(dir, lockFileName, metaFileName, log)
	require.NoError(t, err)
	meta := newInstanceMeta(Config{Host: "127.0.0.1", Port: 0}, "INFO", []string{"remotelabd", "--port", "0"})
	require.NoError(t, in.writeMeta(meta))
	require.NoError(t, in.updatePort(4711))

	got, err := readMeta(filepath.Join(dir, metaFileName))
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), got.pid())
	assert.Equal(t, float64(4711), got.Port)
	assert.Equal(t, "remotelabd --port 0", got.Cmd)
	fi, err := os.Stat(filepath.Join(dir, metaFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	// A second holder in this process conflicts too (flock is per open
	// file). The recorded pid is ours, which counts as stale, so the
	// second attempt removes the metadata, retries once and gives up.
	_, err = lockInstance(dir, lockFileName, metaFileName, log)
	assert.True(t, errors.Is(err, errAnotherInstance))
	assert.Contains(t, logs.String(), "Stale instance metadata detected")
	assert.Contains(t, logs.String(), "Lock still held but metadata was stale")

	require.NoError(t, in.release())
	assert.NoFileExists(t, filepath.Join(dir, metaFileName))
	assert.FileExists(t, filepath.Join(dir, lockFileName), "the lock file stays")

	in2, err := lockInstance(dir, lockFileName, metaFileName, log)
	require.NoError(t, err, "the released lock is free")
	require.NoError(t, in2.release())
	require.NoError(t, in2.release(), "release is idempotent")
}

func TestInstanceLockKeepsLiveOwnersMetadata(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	in, err := lockInstance(dir, lockFileName, metaFileName, log)
	require.NoError(t, err)
	defer in.release()
	meta := newInstanceMeta(Config{Host: "0.0.0.0", Port: 8000}, "INFO", []string{"remotelabd"})
	meta.PID = os.Getppid() // alive, and not us
	require.NoError(t, in.writeMeta(meta))

	_, err = lockInstance(dir, lockFileName, metaFileName, log)
	assert.True(t, errors.Is(err, errAnotherInstance))
	assert.Contains(t, logs.String(), "Running instance details")
	assert.Contains(t, logs.String(), "bind=0.0.0.0:8000")
	assert.Contains(t, logs.String(), "log_config=none", "no --log-config")
	assert.FileExists(t, filepath.Join(dir, metaFileName), "a live owner's metadata is kept")
}

func TestInstanceLockReplacesMetadataOfDeadHolder(t *testing.T) {
	dir := t.TempDir()
	meta := instanceMeta{PID: deadPID(t), User: "old", Host: "h", Port: 8000}
	data, _ := json.Marshal(meta)
	require.NoError(t, os.WriteFile(filepath.Join(dir, metaFileName), data, 0o644))

	var logs bytes.Buffer
	in, err := lockInstance(dir, lockFileName, metaFileName, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err, "flock is free once its holder died")
	defer in.release()
	assert.Contains(t, logs.String(), "did not shut down cleanly")
}

func TestJoinArgs(t *testing.T) {
	assert.Equal(t, `remotelabd --log-config '/etc/my logs.yaml' ''`,
		joinArgs([]string{"remotelabd", "--log-config", "/etc/my logs.yaml", ""}))
}
