package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procRoot is where process information comes from (Linux procfs).
const procRoot = "/proc"

// killWait bounds how long Recover waits for a killed process group to go.
const killWait = 30 * time.Second

// ProcessOf describes the process group whose leader is pgid (a command a
// Runner started in its own group, so its pid is the group id): the
// leader's start time and the boot id, zero where they cannot be read
// (outside Linux). Call it right after the command started and report the
// result through Progress.Process.
func ProcessOf(pgid int) Process {
	p := Process{PGID: pgid, BootID: bootID()}
	if st, err := readStat(pgid); err == nil {
		p.StartTime = st.start
	}
	return p
}

func bootID() string {
	data, err := os.ReadFile(filepath.Join(procRoot, "sys", "kernel", "random", "boot_id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// procStat is what /proc/<pid>/stat says about a process.
type procStat struct {
	state byte   // field 3: R, S, D, Z, ...
	pgrp  int    // field 5
	start uint64 // field 22: start time in clock ticks since boot
}

func (s procStat) gone() bool { return s.state == 'Z' || s.state == 'X' }

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid pgrp ...": comm may hold anything, even ")".
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// groupMembers lists the live (not zombie) processes of group pgid.
func groupMembers(pgid int) ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.pgrp == pgid && !st.gone() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// sameGroup reports whether p's process group still runs and is the one
// that was recorded: same boot, and a leader with the recorded start time,
// or no leader left but members of the group. why explains a false.
func sameGroup(p Process) (same bool, why string) {
	if p.PGID <= 1 || p.PGID == getpgrp() {
		return false, "not a group a runner started"
	}
	if p.BootID == "" || p.BootID != bootID() {
		return false, "recorded before a reboot or on an unknown boot"
	}
	if st, err := readStat(p.PGID); err == nil && !st.gone() {
		if st.pgrp != p.PGID || p.StartTime == 0 || st.start != p.StartTime {
			return false, "its id now belongs to another process"
		}
		return true, ""
	}
	members, err := groupMembers(p.PGID)
	if err != nil {
		return false, "cannot list processes: " + err.Error()
	}
	if len(members) == 0 {
		return false, "gone"
	}
	return true, ""
}

// killProcesses kills every recorded process group that still runs and is
// the same (see sameGroup), and waits, bounded by killWait and ctx, until
// each is gone.
func (m *Manager) killProcesses(ctx context.Context, procs []Process) {
	for _, p := range procs {
		same, why := sameGroup(p)
		if !same {
			m.log.Debug("Recorded process group not killed", "pgid", p.PGID, "why", why)
			continue
		}
		m.log.Warn("Killing a process group a previous run left behind", "pgid", p.PGID)
		if err := killGroup(p.PGID); err != nil {
			m.log.Error("Cannot kill a process group a previous run left behind", "pgid", p.PGID, "err", err)
			continue
		}
		if err := waitGroupGone(ctx, p.PGID); err != nil {
			m.log.Error("Process group a previous run left behind survived SIGKILL", "pgid", p.PGID, "err", err)
		}
	}
}

// waitGroupGone polls until group pgid has no live member.
func waitGroupGone(ctx context.Context, pgid int) error {
	ctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		members, err := groupMembers(pgid)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("members %v still there: %w", members, ctx.Err())
		}
	}
}
