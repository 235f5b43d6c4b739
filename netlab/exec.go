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

	"github.com/remotelab-go/remotelab/lab"
)

// Error is a failed netlab command.
type Error struct {
	// Args are the command's arguments after "netlab".
	Args []string
	// ExitCode is netlab's exit status, or -1 when it did not exit
	// normally (killed, never started).
	ExitCode int
	// Stderr is the tail of netlab's standard error (its last lines),
	// which is where Netlab usually explains what went wrong.
	Stderr string
	// Stdout is the tail of netlab's standard output: some fatal errors
	// ("... aborting") give their reason only there.
	Stdout string
	// Elapsed is how long the command ran (after its deadline, including
	// the grace between SIGINT and SIGKILL).
	Elapsed time.Duration
	// Timeout is the command's own deadline when that is what interrupted
	// it (Config.UpTimeout, DownTimeout or QueryTimeout), else 0.
	Timeout time.Duration
	// Err is the cause: ctx.Err() when the command was interrupted by
	// its deadline or a cancelled context, else the *exec.ExitError or
	// the error starting the command.
	Err error
}

// Error says which command failed and how, then the tail of its stderr,
// then (on a line starting "stdout: ") the tail of its stdout.
func (e *Error) Error() string {
	step := "netlab"
	if len(e.Args) > 0 {
		step += " " + e.Args[0]
	}
	var b strings.Builder
	b.WriteString(step)
	b.WriteString(": ")
	switch {
	case e.Timeout > 0:
		fmt.Fprintf(&b, "interrupted after %.1fs (its deadline is %v): ", e.Elapsed.Seconds(), e.Timeout)
	case e.Err == context.DeadlineExceeded || e.Err == context.Canceled:
		fmt.Fprintf(&b, "interrupted after %.1fs: ", e.Elapsed.Seconds())
	}
	b.WriteString(e.Err.Error())
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	if e.Stdout != "" {
		if e.Stderr != "" {
			b.WriteString("\nstdout: ")
		} else {
			b.WriteString(": stdout: ")
		}
		b.WriteString(e.Stdout)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// How many trailing lines of each stream an Error keeps, and about how
// many bytes of a stream nobody reads in full are kept to find them.
const (
	stderrTailLines = 20
	stdoutTailLines = 10
	tailBytes       = 64 << 10
)

// invocation is one netlab command.
type invocation struct {
	dir     string // working directory ("" = ours)
	timeout time.Duration
	args    []string
	stdout  bool // the caller reads stdout: keep all of it
	// expected, if set, recognises a failure that is an answer rather
	// than a problem (such as "nothing to tear down"): it is logged at
	// DEBUG instead of ERROR. run still returns the *Error.
	expected func(e *Error) bool
}

// run runs `netlab <args>` (the one place that does) and returns its
// stdout (when inv.stdout is set, also along with an error). It reports
// the command's process group and output lines through
// lab.ProgressFrom(ctx). See the package comment for the process handling.
func (r *Runner) run(ctx context.Context, cfg Config, inv invocation) ([]byte, error) {
	cmdline := "netlab " + strings.Join(inv.args, " ")
	log := cfg.Logger
	if err := ctx.Err(); err != nil {
		return nil, &Error{Args: inv.args, ExitCode: -1, Err: fmt.Errorf("not started: %w", err)}
	}
	progress := lab.ProgressFrom(ctx)
	parent := ctx
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

	stdout := &output{log: log, progress: progress, stream: cfg.Stream, name: "stdout"}
	if inv.stdout {
		// Data (JSON) for the caller, not news of progress.
		stdout.progress = nil
	} else {
		stdout.limit = tailBytes
	}
	stderr := &output{log: log, progress: progress, stream: cfg.Stream, name: "stderr", limit: tailBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	log.Debug("netlab command started", "cmd", cmdline, "cwd", inv.dir)
	start := time.Now()
	err := cmd.Start()
	var proc lab.Process
	if err == nil {
		proc = lab.ProcessOf(cmd.Process.Pid) // Setpgid: it leads its own group
		progress.Process(proc, true)
		err = cmd.Wait()
	}
	interrupted := group.finish()
	if proc.PGID != 0 {
		progress.Process(proc, false)
	}
	elapsed := time.Since(start)
	took := elapsed.Round(time.Millisecond)
	stdout.flush()
	stderr.flush()

	if err == nil || (!interrupted && errors.Is(err, exec.ErrWaitDelay)) {
		if err != nil {
			log.Warn("netlab command left processes behind that hold its output", "cmd", cmdline, "duration", took)
		}
		log.Info("netlab command finished successfully", "cmd", cmdline, "duration", took)
		return stdout.buf.Bytes(), nil
	}

	e := &Error{
		Args:     inv.args,
		ExitCode: -1,
		Stderr:   tail(stderr.buf.Bytes(), stderrTailLines),
		Stdout:   tail(stdout.buf.Bytes(), stdoutTailLines),
		Elapsed:  elapsed,
		Err:      err,
	}
	var out []byte
	if inv.stdout {
		out = stdout.buf.Bytes()
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		e.ExitCode = exitErr.ExitCode()
	}
	switch {
	case interrupted && parent.Err() == nil && ctx.Err() == context.DeadlineExceeded:
		e.Err, e.Timeout = ctx.Err(), inv.timeout
		log.Error("netlab command timed out", "cmd", cmdline, "timeout", inv.timeout, "duration", took,
			"stderr", e.Stderr, "stdout", e.Stdout)
	case interrupted && errors.Is(ctx.Err(), context.Canceled):
		e.Err = ctx.Err()
		log.Warn("netlab command cancelled: its caller gave up", "cmd", cmdline, "duration", took)
	case interrupted:
		e.Err = ctx.Err()
		log.Error("netlab command interrupted", "cmd", cmdline, "err", e.Err, "duration", took,
			"stderr", e.Stderr, "stdout", e.Stdout)
	case e.ExitCode < 0 && exitErr == nil:
		log.Error("netlab command could not run", "cmd", cmdline, "err", err)
	case inv.expected != nil && inv.expected(e):
		log.Debug("netlab command failed as expected", "cmd", cmdline, "exit_code", e.ExitCode, "duration", took,
			"stderr", e.Stderr)
	default:
		log.Error("netlab command failed", "cmd", cmdline, "exit_code", e.ExitCode, "duration", took,
			"stderr", e.Stderr, "stdout", e.Stdout)
	}
	return out, e
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

// output collects one of netlab's streams (all of it, or about its last
// limit bytes), and reports each line through Progress.Output and, when
// streaming, to the log at DEBUG.
type output struct {
	log      *slog.Logger
	progress lab.Progress // nil: the stream is data, not progress
	stream   bool
	name     string
	limit    int // keep at most about this many trailing bytes (0 = all)

	buf     bytes.Buffer
	partial []byte // the unfinished last line
}

func (o *output) Write(p []byte) (int, error) {
	o.buf.Write(p)
	if o.limit > 0 && o.buf.Len() > 2*o.limit {
		rest := append([]byte(nil), o.buf.Bytes()[o.buf.Len()-o.limit:]...)
		o.buf.Reset()
		o.buf.Write(rest)
	}
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(o.partial[:i])
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > tailBytes { // a line without end: report what there is
		o.flush()
	}
	return len(p), nil
}

func (o *output) flush() {
	if len(o.partial) > 0 {
		o.line(o.partial)
		o.partial = nil
	}
}

func (o *output) line(b []byte) {
	s := strings.TrimRight(string(b), " \t\r")
	if s == "" {
		return
	}
	if o.progress != nil {
		o.progress.Output(s)
	}
	if o.stream {
		o.log.Debug("netlab output", "stream", o.name, "line", s)
	}
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
