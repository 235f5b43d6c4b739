//go:build linux

package netlab_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
)

// becomeSubreaper makes orphaned descendants (the fake's child once the
// fake exits) children of the test process, so a test can wait for them.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("cannot become a child subreaper: %v", errno)
	}
}

// readPids reads the fake's pid file: its pid (= its process group) and
// its child's.
func readPids(t *testing.T, path string) (pgid, child int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fake pid file: %v", err)
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		t.Fatalf("fake pid file %q: want pid and child pid", data)
	}
	pgid, _ = strconv.Atoi(f[0])
	child, _ = strconv.Atoi(f[1])
	return pgid, child
}

// waitKilled waits for the orphaned child and checks SIGKILL ended it.
func waitKilled(t *testing.T, pid int) {
	t.Helper()
	done := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		done <- ws
	}()
	select {
	case ws := <-done:
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("child %d ended with %v, want SIGKILL", pid, ws)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("child %d survived the group kill", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
}

// liveGroupMembers lists processes of group pgid that are not zombies.
func liveGroupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// Fields after "(comm) ": state ppid pgrp ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			live = append(live, fmt.Sprintf("pid %s state %s", e.Name(), f[0]))
		}
	}
	return live
}

// TestUpDeadlineKillsProcessGroup: the up deadline interrupts netlab
// (SIGINT, which it reports) and kills its child, which ignores SIGINT,
// after the grace period.
func TestUpDeadlineKillsProcessGroup(t *testing.T) {
	becomeSubreaper(t)
	e := newEnv(t)
	pidfile := filepath.Join(t.TempDir(), "pids")
	r := e.runner(netlab.Config{UpTimeout: 2 * time.Second, KillGrace: 300 * time.Millisecond},
		"FAKE_NETLAB_UP_DELAY=1h", "FAKE_NETLAB_SPAWN_CHILD=1", "FAKE_NETLAB_PIDFILE="+pidfile)

	_, err := r.Up(t.Context(), e.spec(threeNodes))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Up = %v, want context.DeadlineExceeded", err)
	}
	var ne *netlab.Error
	if !errors.As(err, &ne) {
		t.Fatalf("error %v is not a *netlab.Error", err)
	}
	if !strings.Contains(ne.Stderr, "netlab up command was interrupted") {
		t.Errorf("netlab did not get SIGINT; stderr:\n%s", ne.Stderr)
	}
	if !strings.HasPrefix(err.Error(), "netlab up: interrupted after ") ||
		!strings.Contains(err.Error(), "s (its deadline is 2s): context deadline exceeded") {
		t.Errorf("error text %q", err)
	}
	if ne.Timeout != 2*time.Second {
		t.Errorf("Timeout = %v, want the up deadline, 2s", ne.Timeout)
	}
	pgid, child := readPids(t, pidfile)
	waitKilled(t, child)
	if live := liveGroupMembers(t, pgid); len(live) > 0 {
		t.Errorf("process group %d survived: %v", pgid, live)
	}
	if st := e.statusFile(); !strings.Contains(st, "netlab up command was interrupted") {
		t.Errorf("interruption not logged in the status file:\n%s", st)
	}
	if err := e.runner(netlab.Config{}).Down(t.Context(), e.dir); err != nil {
		t.Errorf("down after interrupted up: %v", err)
	}
}

// TestUpCancelKillsProcessGroup cancels once netlab has spawned its
// child (seen in the output it reports), so no timing is involved.
func TestUpCancelKillsProcessGroup(t *testing.T) {
	becomeSubreaper(t)
	e := newEnv(t)
	pidfile := filepath.Join(t.TempDir(), "pids")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ctx = lab.WithProgress(ctx, &progressLog{onOutput: func(line string) {
		if strings.HasPrefix(line, "fake netlab: spawned child") {
			cancel()
		}
	}})
	r := e.runner(netlab.Config{KillGrace: 300 * time.Millisecond},
		"FAKE_NETLAB_UP_DELAY=1h", "FAKE_NETLAB_SPAWN_CHILD=1", "FAKE_NETLAB_PIDFILE="+pidfile)

	_, err := r.Up(ctx, e.spec(threeNodes))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Up = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "netlab up command was interrupted") {
		t.Errorf("error lacks netlab's interruption message: %v", err)
	}
	if ne, ok := errors.AsType[*netlab.Error](err); !ok || ne.Timeout != 0 || strings.Contains(err.Error(), "deadline") {
		t.Errorf("a cancelled command is not a timed-out one: %v", err)
	}
	pgid, child := readPids(t, pidfile)
	waitKilled(t, child)
	if live := liveGroupMembers(t, pgid); len(live) > 0 {
		t.Errorf("process group %d survived: %v", pgid, live)
	}
}

// TestRecoverKillsNetlabOfDeadOwner: the daemon running `netlab up` is
// killed (kill -9); netlab and its child live on. The next daemon's
// Recover kills that recorded process group before it tears the lab down.
func TestRecoverKillsNetlabOfDeadOwner(t *testing.T) {
	becomeSubreaper(t)
	e := newEnv(t)
	state, work := t.TempDir(), t.TempDir()
	pidfile := filepath.Join(t.TempDir(), "pids")
	owner := exec.Command(os.Args[0], "-test.run=^$")
	owner.Env = append(os.Environ(), ownerHelperEnv+"="+state, "NETLAB_TEST_WORK="+work, "HOME="+e.home,
		"FAKE_NETLAB_UP_DELAY=1h", "FAKE_NETLAB_SPAWN_CHILD=1", "FAKE_NETLAB_PIDFILE="+pidfile)
	owner.Stderr = os.Stderr
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = owner.Process.Kill()
		_ = owner.Wait()
	})

	// Wait until netlab up is recorded and has spawned its child.
	recorded, spawned := 0, false
	lines := bufio.NewScanner(out)
	for (recorded == 0 || !spawned) && lines.Scan() {
		l := lines.Text()
		switch {
		case strings.HasPrefix(l, "recorded "):
			recorded, _ = strconv.Atoi(strings.TrimPrefix(l, "recorded "))
		case strings.HasPrefix(l, "output fake netlab: spawned child"):
			spawned = true
		case strings.HasPrefix(l, "error "):
			t.Fatalf("owner: %s", l)
		}
	}
	if recorded == 0 || !spawned {
		t.Fatalf("owner ended before netlab up got going (recorded %d, spawned %v)", recorded, spawned)
	}
	if err := owner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()
	pgid, child := readPids(t, pidfile)
	if pgid != recorded {
		t.Fatalf("recorded process group %d, netlab up runs as %d", recorded, pgid)
	}
	if live := liveGroupMembers(t, pgid); len(live) != 2 {
		t.Fatalf("after the owner died, netlab's group has %v; want netlab and its child", live)
	}

	r := e.runner(netlab.Config{})
	m, err := lab.NewManager(lab.Config{Runner: r, WorkRoot: work, StateDir: state, LockPath: "-", Logger: r.Config().Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	got, err := m.Recover(t.Context())
	if err != nil || got != lab.RecoveredTornDown {
		t.Fatalf("Recover = %v, %v; want torn down", got, err)
	}
	waitKilled(t, pgid)
	waitKilled(t, child)
	if live := liveGroupMembers(t, pgid); len(live) > 0 {
		t.Errorf("process group %d survived: %v", pgid, live)
	}
	if st := e.statusFile(); strings.Contains(st, "dir:") {
		t.Errorf("status entry left:\n%s", st)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("working directories left: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(state, "lab.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("record left: %v", err)
	}
}
