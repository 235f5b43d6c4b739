package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Error is a failed netlab command.
type Error struct {
	// Args are the command's arguments after "netlab".
	Args []string
	// ExitCode is netlab's exit status, or -1 when it did not exit
	// normally (killed, never started).
	ExitCode int
	// Stderr is the tail of netlab's standard error (its last lines),
	// which is where Netlab explains what went wrong.
	Stderr string
	// Elapsed is how long the command ran.
	Elapsed time.Duration
	// Err is the cause: ctx.Err() when the command was interrupted by
	// its deadline or a cancelled context, else the *exec.ExitError or
	// the error starting the command.
	Err error
}

func (e *Error) Error() string {
	step := "netlab"
	if len(e.Args) > 0 {
		step += " " + e.Args[0]
	}
	var b strings.Builder
	b.WriteString(step)
	b.WriteString(": ")
	if e.Err == context.DeadlineExceeded || e.Err == context.Canceled {
		fmt.Fprintf(&b, "interrupted after %.1fs: ", e.Elapsed.Seconds())
	}
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// stderrTailLines is how many lines of stderr an Error keeps.
const stderrTailLines = 20

// invocation is one netlab command.
type invocation struct {
	dir     string // working directory ("" = ours)
	timeout time.Duration
	args    []string
	stdout  bool // keep stdout for the caller (else it is discarded)
	// benign, if set, recognises a failure (by its stderr tail) that is
	// not one: it is logged at DEBUG and run returns no error.
	benign func(stderr string) bool
}

// run runs `netlab <args>` (the one place that does) and returns its
// stdout when inv.stdout is set. See the package comment for the process
// handling.
func (r *Runner) run(ctx context.Context, cfg Config, inv invocation) ([]byte, error) {
	cmdline := "netlab " + strings.Join(inv.args, " ")
	log := cfg.Logger
	if err := ctx.Err(); err != nil {
		return nil, &Error{Args: inv.args, ExitCode: -1, Err: fmt.Errorf("not started: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, inv.timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, cfg.Binary, inv.args...)
	cmd.Dir = inv.dir
	cmd.Env = environ(cfg.Env)
	// cmd.Stdin nil: netlab reads /dev/null, so a prompt fails instead
	// of hanging.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var group groupKiller
	cmd.Cancel = func() error { return group.interrupt(cmd.Process.Pid, cfg.KillGrace) }
	cmd.WaitDelay = cfg.KillGrace

	stdout := &output{log: log, stream: cfg.Stream, name: "stdout", keep: inv.stdout}
	stderr := &output{log: log, stream: cfg.Stream, name: "stderr", keep: true, limit: 64 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	log.Debug("Running: "+cmdline, "cwd", inv.dir)
	start := time.Now()
	err := cmd.Run()
	interrupted := group.finish()
	elapsed := time.Since(start)
	stdout.flush()
	stderr.flush()
	took := fmt.Sprintf("(%.1fs)", elapsed.Seconds())

	if err == nil || (!interrupted && errors.Is(err, exec.ErrWaitDelay)) {
		if err != nil {
			log.Warn(fmt.Sprintf("`%s` left processes behind that hold its output %s", cmdline, took))
		}
		log.Info(fmt.Sprintf("`%s` finished successfully %s", cmdline, took))
		return stdout.buf.Bytes(), nil
	}

	e := &Error{Args: inv.args, ExitCode: -1, Stderr: tail(stderr.buf.Bytes(), stderrTailLines), Elapsed: elapsed, Err: err}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		e.ExitCode = exitErr.ExitCode()
	}
	if interrupted {
		e.Err = ctx.Err()
		log.Error(fmt.Sprintf("`%s` interrupted: %v %s", cmdline, e.Err, took), "stderr", e.Stderr)
		return nil, e
	}
	if e.ExitCode < 0 && exitErr == nil {
		log.Error(fmt.Sprintf("Subprocess for `%s` failed: %v", cmdline, err))
		return nil, e
	}
	if inv.benign != nil && inv.benign(e.Stderr) {
		log.Debug(fmt.Sprintf("`%s` failed with exit code %d %s - expected failure", cmdline, e.ExitCode, took), "stderr", e.Stderr)
		return nil, nil
	}
	log.Error(fmt.Sprintf("`%s` failed with exit code %d %s", cmdline, e.ExitCode, took), "stderr", e.Stderr)
	return nil, e
}

// groupKiller interrupts a process group: SIGINT at once, SIGKILL after
// the grace period.
type groupKiller struct {
	mu     sync.Mutex
	pgid   int
	timer  *time.Timer
	killed chan struct{}
}

// interrupt is the exec.Cmd.Cancel hook.
func (g *groupKiller) interrupt(pgid int, grace time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		return nil
	}
	g.pgid = pgid
	killed := make(chan struct{})
	g.killed = killed
	g.timer = time.AfterFunc(grace, func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		close(killed)
	})
	return syscall.Kill(-pgid, syscall.SIGINT)
}

// finish runs after Wait and reports whether the group was interrupted.
// If it was and anything of the group is still there, it waits out the
// grace period so the SIGKILL has been sent when it returns.
func (g *groupKiller) finish() bool {
	g.mu.Lock()
	timer, killed, pgid := g.timer, g.killed, g.pgid
	g.mu.Unlock()
	if timer == nil {
		return false
	}
	if syscall.Kill(-pgid, 0) != nil && timer.Stop() {
		return true // the whole group is gone already
	}
	<-killed
	return true
}

// output collects one of netlab's streams and, when streaming, logs it
// line by line.
type output struct {
	log    *slog.Logger
	stream bool
	name   string
	keep   bool
	limit  int // keep at most about this many trailing bytes (0 = all)

	buf     bytes.Buffer
	partial []byte // streaming: the unfinished last line
}

func (o *output) Write(p []byte) (int, error) {
	if o.keep {
		o.buf.Write(p)
		if o.limit > 0 && o.buf.Len() > 2*o.limit {
			rest := append([]byte(nil), o.buf.Bytes()[o.buf.Len()-o.limit:]...)
			o.buf.Reset()
			o.buf.Write(rest)
		}
	}
	if o.stream {
		o.partial = append(o.partial, p...)
		for {
			i := bytes.IndexByte(o.partial, '\n')
			if i < 0 {
				break
			}
			o.logLine(o.partial[:i])
			o.partial = o.partial[i+1:]
		}
	}
	return len(p), nil
}

func (o *output) flush() {
	if len(o.partial) > 0 {
		o.logLine(o.partial)
		o.partial = nil
	}
}

func (o *output) logLine(line []byte) {
	s := strings.TrimRight(string(line), " \t\r")
	if s == "" {
		return
	}
	o.log.Debug("[netlab] "+s, "stream", o.name)
}

// tail returns the last n non-empty lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimRight(lines[i], " \t\r"); l != "" {
			keep = append(keep, l)
		}
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	return strings.Join(keep, "\n")
}
