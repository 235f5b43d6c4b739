//go:build linux

package lab_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// startGroup starts the test binary as a sleeping helper in its own
// process group, as a Runner starts netlab, and returns it with its
// recorded identity. The process is killed and reaped when the test ends.
func startGroup(t *testing.T) (*exec.Cmd, lab.Process) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), sleepHelperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // not reaped: the group id is still ours
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	p := lab.ProcessOf(cmd.Process.Pid)
	require.Equal(t, cmd.Process.Pid, p.PGID)
	if p.StartTime == 0 || p.BootID == "" {
		t.Skip("no /proc: process start time and boot id unknown")
	}
	return cmd, p
}

// TestRecoverKillsRecordedProcessGroup: a runner command that outlived the
// process that started it (kill -9 of the daemon) is killed before the lab
// is touched; processes that merely reuse a recorded id are not.
func TestRecoverKillsRecordedProcessGroup(t *testing.T) {
	orphan, p := startGroup(t)
	reused, q := startGroup(t)
	rebooted, w := startGroup(t)
	q.StartTime++           // the id now names another process
	w.BootID = "other-boot" // recorded before a reboot

	dir := filepath.Join(t.TempDir(), "remotelab-lab-1")
	require.NoError(t, os.Mkdir(dir, 0o755))
	store := &memRecords{rec: &lab.Record{Dir: dir, State: lab.StateStarting, Processes: []lab.Process{p, q, w}}}
	var killedBeforeDown bool
	r := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		killedBeforeDown = orphan.ProcessState == nil && !alive(orphan.Process.Pid)
		return nil
	}}
	e := newEnv(t, r, func(c *lab.Config) { c.Records = store })
	got, err := e.m.Recover(t.Context())
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredTornDown, got)
	assert.True(t, killedBeforeDown, "the group was still alive when Down ran")

	err = orphan.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal())
	assert.True(t, alive(reused.Process.Pid), "a process that reuses a recorded id was killed")
	assert.True(t, alive(rebooted.Process.Pid), "a process recorded before a reboot was killed")
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := bytes.Cut(data[bytes.LastIndexByte(data, ')')+1:], []byte(" "))
	return len(rest) > 0 && rest[0] != 'Z'
}

// TestRecoverKillsGroupWithoutLeader: netlab (the group leader) is gone
// but a child it started in its group lives on: the group is still the
// recorded one and is killed.
func TestRecoverKillsGroupWithoutLeader(t *testing.T) {
	leader := exec.Command(os.Args[0], "-test.run=^$")
	leader.Env = append(os.Environ(), orphanHelperEnv+"=1")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	leader.Stderr = os.Stderr
	out, err := leader.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, leader.Start())
	p := lab.ProcessOf(leader.Process.Pid)
	if p.StartTime == 0 || p.BootID == "" {
		t.Skip("no /proc: process start time and boot id unknown")
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	child, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	t.Cleanup(func() {
		if alive(child) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
	})
	require.NoError(t, leader.Wait()) // the leader is gone and reaped
	require.True(t, alive(child), "the child died with its leader")

	store := &memRecords{rec: &lab.Record{Dir: "/nonexistent/remotelab-lab-1", State: lab.StateStarting, Processes: []lab.Process{p}}}
	e := newEnv(t, &remotelabtest.FakeRunner{}, func(c *lab.Config) { c.Records = store })
	got, err := e.m.Recover(t.Context())
	require.NoError(t, err)
	assert.Equal(t, lab.RecoveredTornDown, got)
	assert.False(t, alive(child), "the leaderless group survived Recover")
}
