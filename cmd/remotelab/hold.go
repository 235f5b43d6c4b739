package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
)

// Exit codes of hold, beyond 0, 1 and 2.
const (
	exitEnded      = 3   // the server ended the session while it held the lab
	exitCannotRun  = 126 // COMMAND could not be started
	exitNoCommand  = 127 // COMMAND was not found
	cleanupTimeout = 30 * time.Second
)

// EnvDevices names the devices file in COMMAND's environment.
const EnvDevices = "REMOTE_LAB_DEVICES"

var holdCmd = &command{
	name:    "hold",
	args:    " TOPOLOGY [-- COMMAND [ARG...]]",
	summary: "wait for the lab, start TOPOLOGY, run COMMAND or hold the lab",
	help: `Opens a session and waits for its turn in the queue (one updating line
on a terminal, a line per change otherwise: position and estimated wait),
acquires the lab of the Netlab topology file TOPOLOGY (plus --extra-files),
prints its devices (name, management address, device type, user; --json:
the devices as JSON), and writes them as JSON, a list of {name, raw}, to
a file (--devices-file, else a temporary file removed at the end).

With COMMAND, it runs COMMAND with REMOTE_LAB_DEVICES=<that file> in its
environment, its standard input, output and error passed through, and
exits with COMMAND's exit status. The devices are then printed to stderr,
so that stdout is COMMAND's. A Ctrl-C reaches COMMAND (remotelab waits for
it to end); SIGINT or SIGTERM sent to remotelab alone is passed on to it.
If the server ends the session while COMMAND runs (an admin evicted it,
--max-hold passed), remotelab says so on stderr at once (it follows the
queue's event stream), sends COMMAND SIGTERM, since the lab may already
be another session's, and exits 3 once COMMAND has ended.

Without COMMAND, it holds the lab until Ctrl-C (or SIGTERM), or for
--for DURATION, or until the server ends the session.

Either way it always releases the lab and closes the session at the end,
also on Ctrl-C, SIGTERM and errors; a second Ctrl-C during that clean-up
quits at once (the server then ends the session after its active TTL).
Before waiting in the queue it checks TOPOLOGY and --extra-files locally.
Owner and labels default to REMOTE_LAB_OWNER (else user@hostname),
REMOTE_LAB_LABELS and the CI job; the flags override them.

Durations are Go durations (90s, 10m, 1h30m) or plain seconds.

Exit status:
  0    held for --for, or until Ctrl-C/SIGTERM; with COMMAND: COMMAND's status
  1    the lab could not be had: server unreachable or refusing, invalid
       topology, netlab failed
  2    bad flags or arguments
  3    the server ended the session while it held the lab (the reason is
       printed), also while COMMAND ran, whatever COMMAND's status
  126  COMMAND could not be started; 127: COMMAND was not found
  128+N  interrupted by signal N (130 for SIGINT) before the lab was held;
       with COMMAND: COMMAND was killed by signal N`,
	setup: func(fs *flag.FlagSet) runner {
		o := &holdOptions{reuse: true}
		fs.StringVar(&o.extraFiles, "extra-files", "", "upload every file under `DIR` as extra files, at its path relative to DIR")
		fs.BoolVar(&o.reuse, "reuse", true, "attach to a running lab with the same content; --reuse=false starts it afresh")
		durationVar(fs, &o.hold, "for", "hold the lab for `DURATION`, then release it (default: until Ctrl-C)")
		fs.StringVar(&o.owner, "owner", "", "who the session is for: `NAME` (default $REMOTE_LAB_OWNER, else user@hostname)")
		fs.Func("label", "add a label `k=v` to the session (repeatable)", func(v string) error {
			labels, err := client.ParseLabels(v)
			if err != nil {
				return err
			}
			if o.labels == nil {
				o.labels = map[string]string{}
			}
			for k, val := range labels {
				o.labels[k] = val
			}
			return nil
		})
		durationVar(fs, &o.maxHold, "max-hold", "ask the server to end the session after holding the lab for `DURATION`")
		durationVar(fs, &o.waitTimeout, "wait-timeout", "ask the server to end the session if still waiting after `DURATION` (default $REMOTE_LAB_WAIT_TIMEOUT)")
		fs.BoolVar(&o.json, "json", false, "print the devices as JSON")
		fs.StringVar(&o.devicesFile, "devices-file", "", "write the devices to `PATH` and keep it (default: a temporary file, removed at the end)")
		return func(ctx context.Context, a *app, args, command []string) int {
			switch {
			case len(args) == 0:
				return a.usageError("hold", "missing TOPOLOGY")
			case len(args) > 1:
				return a.usageError("hold", "one TOPOLOGY only, got %d arguments (put COMMAND after --)", len(args))
			case command != nil && len(command) == 0:
				return a.usageError("hold", "no COMMAND after --")
			}
			o.topology, o.command = args[0], command
			return a.hold(ctx, o)
		}
	},
}

// holdOptions are the flags and arguments of hold.
type holdOptions struct {
	topology    string
	command     []string // nil: hold without a command
	extraFiles  string
	reuse       bool
	hold        *time.Duration
	owner       string
	labels      map[string]string
	maxHold     *time.Duration
	waitTimeout *time.Duration
	json        bool
	devicesFile string
}

// durationVar registers a duration flag read by api.ParseDuration; *p
// stays nil unless the flag is given.
func durationVar(fs *flag.FlagSet, p **time.Duration, name, usage string) {
	fs.Func(name, usage, func(v string) error {
		d, err := api.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = &d
		return nil
	})
}

func (o *holdOptions) openOptions(progress func(client.Progress)) []client.OpenOption {
	opts := []client.OpenOption{client.OnProgress(progress)}
	if o.owner != "" {
		opts = append(opts, client.WithOwner(o.owner))
	}
	if len(o.labels) > 0 {
		opts = append(opts, client.WithLabels(o.labels))
	}
	if o.maxHold != nil {
		opts = append(opts, client.WithMaxHold(*o.maxHold))
	}
	if o.waitTimeout != nil {
		opts = append(opts, client.WithWaitTimeout(*o.waitTimeout))
	}
	return opts
}

func (o *holdOptions) acquireOptions() []client.AcquireOption {
	opts := []client.AcquireOption{client.Reuse(o.reuse)}
	if o.extraFiles != "" {
		opts = append(opts, client.ExtraFiles(o.extraFiles))
	}
	return opts
}

func (a *app) hold(ctx context.Context, o *holdOptions) int {
	// The wait in the queue is bounded by Ctrl-C and --wait-timeout, not
	// by the client's session timeout.
	c, err := a.client(client.WithSessionTimeout(0))
	if err != nil {
		return a.usageError("hold", "%v", err)
	}
	if err := client.CheckAcquire(o.topology, o.acquireOptions()...); err != nil {
		return a.fail("hold", err)
	}
	intr := newInterrupts(ctx, a.stderr)
	defer intr.stop()
	ctx = intr.ctx

	line := &progressLine{w: a.stderr, tty: isTerminal(a.stderr), started: time.Now()}
	s, err := c.Open(ctx, o.openOptions(line.update)...)
	line.end()
	if err != nil {
		if sig := intr.signalled(); sig != nil {
			fmt.Fprintf(a.stderr, "remotelab hold: %v while waiting in the queue; the session is deleted\n", sig)
			return signalExit(sig)
		}
		return a.fail("hold", err)
	}
	held := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if s.Err() != nil {
			// The server ended the session (already reported): nothing is
			// left to release; Close only stops the heartbeats.
			_ = s.Close(cctx)
			return
		}
		if held {
			if err := s.Release(cctx); err != nil {
				fmt.Fprintf(a.stderr, "remotelab hold: %v\n", err)
			}
		}
		if err := s.Close(cctx); err != nil {
			fmt.Fprintf(a.stderr, "remotelab hold: %v (the server ends the session after its active TTL)\n", err)
			return
		}
		fmt.Fprintf(a.stderr, "Released the lab and closed session %s.\n", api.ShortID(s.ID()))
	}()

	fmt.Fprintf(a.stderr, "Acquiring lab %s (a lab start may take minutes)...\n", o.topology)
	start := time.Now()
	devices, reused, err := s.Acquire(ctx, o.topology, o.acquireOptions()...)
	if err != nil {
		if sig := intr.signalled(); sig != nil {
			fmt.Fprintf(a.stderr, "remotelab hold: %v while acquiring the lab\n", sig)
			return signalExit(sig)
		}
		if end := s.Err(); end != nil {
			return a.ended(end)
		}
		return a.fail("hold", err)
	}
	held = true
	// Registered after the release above, so it runs before it: the
	// watch ends before the session does.
	stopWatch := watchEnd(ctx, c, s)
	defer stopWatch()
	how := "started"
	if reused {
		how = "reused"
	}
	fmt.Fprintf(a.stderr, "Lab %s %s in %s: %d device%s.\n", o.topology, how, human(time.Since(start)), len(devices), plural(len(devices)))

	path, remove, err := writeDevices(o.devicesFile, devices)
	if err != nil {
		return a.fail("hold", err)
	}
	if remove != nil {
		intr.onExit(remove)
		defer remove()
	}
	out := a.stdout
	if o.command != nil {
		out = a.stderr // stdout is COMMAND's
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(devices)
	} else {
		writeDevicesTable(out, devices)
	}
	if o.command != nil {
		return a.runCommand(intr, s, o.command, path)
	}
	return a.holdLab(ctx, s, o.hold)
}

// holdLab holds the lab until ctx ends (a signal), d passes (nil: no
// bound), or the server ends the session.
func (a *app) holdLab(ctx context.Context, s *client.Session, d *time.Duration) int {
	var timeUp <-chan time.Time
	if d != nil && *d > 0 {
		t := time.NewTimer(*d)
		defer t.Stop()
		timeUp = t.C
		fmt.Fprintf(a.stderr, "Holding the lab for %s (until %s); Ctrl-C releases it sooner.\n",
			human(*d), time.Now().Add(*d).Format(time.TimeOnly))
	} else {
		fmt.Fprintln(a.stderr, "Holding the lab until Ctrl-C.")
	}
	select {
	case <-ctx.Done():
		return exitOK
	case <-timeUp:
		fmt.Fprintf(a.stderr, "Held the lab for %s.\n", human(*d))
		return exitOK
	case <-s.Done():
		return a.ended(s.Err())
	}
}

// errSeenEnded stops watchEnd's queue watch.
var errSeenEnded = errors.New("the session ended")

// watchEnd makes s learn at once, not at its next heartbeat, that the
// server ended it: when the queue's event stream shows another holder or
// none, a status call fetches the server's answer, and a 404 ends s (its
// Done closes, Err has the reason). Where the stream is not available the
// heartbeats remain the way s learns it. stop ends the watch and waits
// for it.
func watchEnd(ctx context.Context, c *client.Client, s *client.Session) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	short := api.ShortID(s.ID())
	go func() {
		defer close(done)
		_ = c.Watch(ctx, func(q api.Queue) error {
			if q.Holder != nil && q.Holder.ID == short {
				return nil
			}
			if _, err := s.Status(ctx); err != nil && s.Err() != nil {
				return errSeenEnded
			}
			return nil
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// ended reports that the server ended the session, with its reason.
func (a *app) ended(err error) int {
	fmt.Fprintf(a.stderr, "remotelab hold: %s\n", endText(err, ""))
	return exitEnded
}

// endText says how the session ended (err, its Err), with the server's
// reason when it gave one; while names the command that was running.
func endText(err error, while string) string {
	if while != "" {
		while = " while " + while + " runs"
	}
	var se *client.Error
	if errors.As(err, &se) && se.Reason != "" {
		return "the server ended the session" + while + ": " + se.Reason
	}
	return fmt.Sprintf("the session ended%s: %v", while, err)
}

// runCommand runs command with the devices file in its environment and
// returns its exit status.
func (a *app) runCommand(intr *interrupts, s *client.Session, command []string, devicesPath string) int {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
	cmd.Env = append(os.Environ(), EnvDevices+"="+devicesPath)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(a.stderr, "remotelab hold: run %s: %v\n", command[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return exitNoCommand
		}
		return exitCannotRun
	}
	intr.setChild(cmd.Process)
	done := make(chan struct{})
	ended := make(chan bool, 1)
	go func() {
		select {
		case <-s.Done():
			// The lab is no longer this session's: another one may be
			// using it already. COMMAND must stop touching it.
			fmt.Fprintf(a.stderr, "remotelab hold: %s; stopping %s\n", endText(s.Err(), command[0]), command[0])
			_ = cmd.Process.Signal(syscall.SIGTERM)
			ended <- true
		case <-done:
			ended <- false
		}
	}()
	err := cmd.Wait()
	intr.setChild(nil)
	close(done)
	if <-ended {
		return exitEnded
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return signalExit(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(a.stderr, "remotelab hold: %s: %v\n", command[0], err)
	return exitFail
}

// writeDevices writes devices as JSON to path, or to a new temporary
// file when path is ""; remove is then the function that deletes it.
func writeDevices(path string, devices []client.Device) (written string, remove func(), err error) {
	data, err := json.MarshalIndent(devices, "", "  ")
	if err != nil {
		return "", nil, fmt.Errorf("encode devices: %w", err)
	}
	data = append(data, '\n')
	if path != "" {
		// The devices carry credentials (ansible_ssh_pass): owner only.
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", nil, fmt.Errorf("write devices file: %w", err)
		}
		return path, nil, nil
	}
	f, err := os.CreateTemp("", "remotelab-devices-*.json")
	if err != nil {
		return "", nil, fmt.Errorf("write devices file: %w", err)
	}
	remove = func() { _ = os.Remove(f.Name()) }
	if _, err := f.Write(data); err != nil {
		f.Close()
		remove()
		return "", nil, fmt.Errorf("write devices file: %w", err)
	}
	if err := f.Close(); err != nil {
		remove()
		return "", nil, fmt.Errorf("write devices file: %w", err)
	}
	return f.Name(), remove, nil
}

// writeDevicesTable writes one row per device: name, management address,
// device type and user, from Netlab's data.
func writeDevicesTable(w io.Writer, devices []client.Device) {
	t := newTable(w, "NAME", "MGMT", "DEVICE", "USER")
	for _, d := range devices {
		t.row(d.Name, first(d.Text("mgmt.ipv4"), d.Text("ansible_host")),
			first(d.Text("device"), d.Text("ansible_network_os")), first(d.Text("ansible_user")))
	}
	t.flush()
}

// first returns the first non-empty value, or "-".
func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return "-"
}

// progressLine shows the wait in the queue: one line rewritten in place
// on a terminal, a line per change otherwise.
type progressLine struct {
	w       io.Writer
	tty     bool
	started time.Time
	waited  bool // a waiting status was shown
	open    bool // the terminal line is not ended yet
}

func (p *progressLine) update(pr client.Progress) {
	if pr.Status == api.StatusActive {
		p.end()
		if p.waited {
			fmt.Fprintf(p.w, "Session active after %s in the queue.\n", human(time.Since(p.started)))
		}
		return
	}
	text := fmt.Sprintf("Waiting for the lab: position %d in the queue", pr.Position)
	switch {
	case pr.HasEstimate && pr.EstimatedWait < time.Second:
		text += ", any moment now" // the holder is past the average hold
	case pr.HasEstimate:
		text += ", about " + human(pr.EstimatedWait) + " to go"
	}
	if !pr.WaitDeadline.IsZero() {
		text += ", gives up at " + pr.WaitDeadline.Local().Format(time.TimeOnly)
	}
	p.waited = true
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+text)
		p.open = true
		return
	}
	fmt.Fprintln(p.w, text)
}

// end ends an open terminal line.
func (p *progressLine) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}
