package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a server process this tool started: remotelabd, or this
// binary in its "serve" role (httpserver in a process of its own that also
// reports its goroutine count). Each has a private TMPDIR, so its
// single-instance lock, lab lock, spool and work directories never meet
// those of other servers on the machine.
type server struct {
	Name     string
	URL      string
	Tmp      string // the process's TMPDIR
	StateDir string
	Started  time.Time // when the process was started

	path string   // the program
	args []string // its arguments
	env  []string // its extra environment

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after exited

	mu   sync.Mutex
	tail []string // last lines of its output
}

// stateDirArg in the arguments of startProcess (and in the values of its
// environment) is replaced by the server's state directory.
const stateDirArg = "{state-dir}"

// addrRE finds a loopback host:port in the "listening on" log line.
var addrRE = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+:\d+|\[[0-9a-f:]*\]:\d+)`)

// startProcess starts path with args and extra environment in a process
// group of its own and waits (up to 30 s) for its "listening on ADDR"
// line. On failure it leaves no process and no temporary directory.
func startProcess(ctx context.Context, name, path string, args, env []string) (_ *server, err error) {
	tmp, err := os.MkdirTemp("", "remotelab-load-"+name+"-*")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	s := &server{Name: name, Tmp: tmp, StateDir: filepath.Join(tmp, "state"), path: path}
	if err := os.Mkdir(s.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.args = slices.Clone(args)
	for i, a := range s.args {
		if a == stateDirArg {
			s.args[i] = s.StateDir
		}
	}
	for _, v := range env {
		s.env = append(s.env, strings.ReplaceAll(v, stateDirArg, s.StateDir))
	}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart starts the server's program again once it has exited: same
// arguments, TMPDIR and state directory, and the same port (a "--port 0"
// becomes the port the first run listened on), so clients find it where
// it was. The old server hands its directory over: only the new one's
// Stop removes it.
func (s *server) Restart(ctx context.Context) (*server, error) {
	select {
	case <-s.exited:
	default:
		return nil, fmt.Errorf("restart %s: still running", s.Name)
	}
	n := &server{Name: s.Name, Tmp: s.Tmp, StateDir: s.StateDir, path: s.path, env: s.env, args: slices.Clone(s.args)}
	if _, port, err := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://")); err == nil {
		for i := 0; i+1 < len(n.args); i++ {
			if n.args[i] == "--port" && n.args[i+1] == "0" {
				n.args[i+1] = port
			}
		}
	}
	s.Tmp = ""
	if err := n.launch(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// launch starts the process and waits (up to 30 s) for its "listening on
// ADDR" line. On failure the process is gone.
func (s *server) launch(ctx context.Context) error {
	name := s.Name
	s.exited = make(chan struct{})
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(s.path, s.args...)
	cmd.Env = append(append(os.Environ(), "TMPDIR="+s.Tmp), s.env...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	w.Close()
	s.cmd = cmd
	addr := make(chan string, 1)
	go s.readOutput(r, addr)
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a
		return nil
	case <-s.exited:
		return fmt.Errorf("start %s: exited before listening (%v): %s", name, s.err, s.Tail(20))
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
		s.Kill()
		return fmt.Errorf("start %s: %w", name, ctx.Err())
	}
	s.Kill()
	return fmt.Errorf("start %s: no \"listening on\" line within 30 s: %s", name, s.Tail(20))
}

// readOutput keeps the last lines of the process's output and reports the
// first listening address. It returns when the process closes its output.
func (s *server) readOutput(r io.ReadCloser, addr chan<- string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !found && strings.Contains(strings.ToLower(line), "listening") {
			if m := addrRE.FindString(line); m != "" {
				found = true
				addr <- m
			}
		}
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > 400 {
			s.tail = append([]string(nil), s.tail[len(s.tail)-200:]...)
		}
		s.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line too long for the scanner
}

// Tail returns the last n lines of the process's output.
func (s *server) Tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.tail[max(0, len(s.tail)-n):]
	return strings.Join(l, "\n")
}

// Logs returns the output lines kept so far.
func (s *server) Logs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tail...)
}

// Pid returns the process id.
func (s *server) Pid() int { return s.cmd.Process.Pid }

// Signal sends sig to the process.
func (s *server) Signal(sig syscall.Signal) error { return syscall.Kill(s.Pid(), sig) }

// WaitExit waits up to d for the process to exit and returns its exit
// code (-1 if killed by a signal), or an error on timeout.
func (s *server) WaitExit(d time.Duration) (int, error) {
	select {
	case <-s.exited:
	case <-time.After(d):
		return 0, fmt.Errorf("%s did not exit within %s", s.Name, d)
	}
	return s.cmd.ProcessState.ExitCode(), nil
}

// Kill kills the process group and waits for the process.
func (s *server) Kill() {
	_ = syscall.Kill(-s.Pid(), syscall.SIGKILL)
	<-s.exited
}

// Stop sends SIGTERM, waits up to 20 s, then kills the group. It removes
// the temporary directory and returns the time the process took to exit
// after SIGTERM.
func (s *server) Stop() time.Duration {
	defer os.RemoveAll(s.Tmp)
	select {
	case <-s.exited:
		return 0
	default:
	}
	t0 := time.Now()
	_ = s.Signal(syscall.SIGTERM)
	if _, err := s.WaitExit(20 * time.Second); err != nil {
		s.Kill()
	}
	return time.Since(t0)
}

// GroupAlive reports whether any process of the server's process group is
// still alive.
func (s *server) GroupAlive() bool {
	return syscall.Kill(-s.Pid(), 0) == nil
}

// RSS returns the process's resident set size (VmRSS) and peak (VmHWM) in
// bytes.
func (s *server) RSS() (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	if err != nil {
		return 0, 0, fmt.Errorf("read rss: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux platform Go supports).
const clockTick = 10 * time.Millisecond

// CPUTime returns the CPU time (user and system, all threads) the process
// has used so far, from /proc/<pid>/stat, in steps of 10 ms.
func (s *server) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Pid()))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name in parentheses may hold spaces: fields count from
	// the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("read cpu time: malformed /proc/%d/stat", s.Pid())
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read cpu time: malformed /proc/%d/stat", s.Pid())
	}
	return time.Duration(ut+st) * clockTick, nil
}

// Goroutines returns the server's goroutine count from GET
// /debug/goroutines, or -1 if it does not report one (remotelabd).
func (s *server) Goroutines(ctx context.Context) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+goroutinesPath, nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Goroutines int `json:"goroutines"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return -1
	}
	return v.Goroutines
}

// SettledGoroutines polls Goroutines until two readings 100 ms apart
// agree and are at most target (or, with target < 0, just agree), for at
// most d, and returns the last reading.
func (s *server) SettledGoroutines(ctx context.Context, target int, d time.Duration) int {
	deadline := time.Now().Add(d)
	last := s.Goroutines(ctx)
	for time.Now().Before(deadline) && last >= 0 {
		time.Sleep(100 * time.Millisecond)
		g := s.Goroutines(ctx)
		if g == last && (target < 0 || g <= target) {
			return g
		}
		last = g
	}
	return last
}

// Leftovers lists the files the server left in its TMPDIR and state
// directory besides lock files: lab working directories' contents,
// spooled uploads, lab records, instance metadata.
func (s *server) Leftovers() []string {
	var out []string
	_ = filepath.WalkDir(s.Tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(d.Name(), ".lock") {
			return nil
		}
		rel, _ := filepath.Rel(s.Tmp, p)
		out = append(out, rel)
		return nil
	})
	return out
}
