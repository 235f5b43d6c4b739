// Command fakenetlab is a stand-in for the `netlab` CLI (Netlab 26.03 with
// the containerlab provider) for tests: it behaves like netlab does when
// run without a terminal, without Docker, containerlab or sudo. Build it
// as an executable named `netlab` and put it first on PATH.
//
// Commands: version; up [flags] [topology]; create [flags] [topology];
// down [--cleanup] [--force] [-i ID]; status [--all] [--log] [--format
// json|yaml|text] [-i ID]; inspect [-q] [-i ID] [--node N] [--format
// json|yaml] [expr]. Their output, files, exit codes and status file
// ($HOME/.netlab/status.yaml) follow netlab; node data comes from package
// internal/sim. `netlab.snapshot.pickle` is the fake's own opaque format.
// Unknown commands fail with exit status 1, unknown flags with 2.
//
// Test knobs (environment variables):
//
//	FAKE_NETLAB_FAIL            comma-separated failures to inject:
//	                            create     up/create fail in the create step (nothing written)
//	                            deploy     up fails at `containerlab deploy` (lock + status
//	                                       "starting provider clab" stay, like netlab)
//	                            initial    up fails at `netlab initial` (lock + status
//	                                       "deploying initial configuration" stay)
//	                            down       `containerlab destroy` fails (down exits 1
//	                                       unless --force)
//	                            inspect    inspect fails
//	                            statuslock every status-file access fails with
//	                                       "Cannot lock lab status file"
//	FAKE_NETLAB_FAIL_FILE=path  if the file exists, its content replaces FAKE_NETLAB_FAIL,
//	                            read at each invocation (so a test can make down fail
//	                            and later succeed without restarting the daemon)
//	FAKE_NETLAB_UP_DELAY        Go duration `containerlab deploy` takes during up
//	FAKE_NETLAB_DOWN_DELAY      Go duration `containerlab destroy` takes during down
//	FAKE_NETLAB_INSPECT_DELAY   Go duration every inspect takes
//	FAKE_NETLAB_SPAWN_CHILD=1   up starts a child process in its process group
//	                            that ignores SIGINT, keeps stdout/stderr open and
//	                            lives 10 min (tests that the caller kills the group);
//	                            up then prints "fake netlab: spawned child <pid>"
//	FAKE_NETLAB_PIDFILE=path    up writes "<pid> [<child pid>]" there when it starts
//	FAKE_NETLAB_VERSION=v       version `netlab version` reports (default 26.03); before
//	                            26.02 `status` has no --format option (exit 2), as in netlab
//	FAKE_NETLAB_CALLS=path      append one line per invocation: "<cwd>\t<args...>"
//	FAKE_NETLAB_STDERR_NOISE=1  every command first prints a warning line to stderr
//
// SIGINT is handled like netlab: up prints "netlab up command was
// interrupted" to stderr, logs it in the status file and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/internal/clock"
	"github.com/remotelab-go/remotelab/internal/sim"
)

// version is what `netlab version` reports.
func version() string {
	if v := os.Getenv("FAKE_NETLAB_VERSION"); v != "" {
		return v
	}
	return sim.NetlabVersion
}

// versionBefore reports whether version() is older than major.minor (a
// version that does not parse counts as new).
func versionBefore(major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version(), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

func main() {
	if os.Getenv("FAKE_NETLAB_CHILD") == "1" {
		childMain()
		return
	}
	os.Exit(run(os.Args[1:]))
}

// childMain is the long-running child of FAKE_NETLAB_SPAWN_CHILD.
func childMain() {
	signal.Ignore(os.Interrupt)
	os.NewFile(3, "ready").Close() // tell the parent
	time.Sleep(10 * time.Minute)
}

// exitError carries an exit status; its message was already printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// errInterrupted: SIGINT arrived.
var errInterrupted = errors.New("interrupted")

// fatal prints netlab's non-TTY fatal error line and hints, exit 1.
func fatal(module, text string, hints ...string) error {
	fmt.Fprintf(os.Stderr, "Fatal error in %s: %s\n", module, text)
	for _, h := range hints {
		fmt.Fprintf(os.Stderr, "... %s\n", h)
	}
	return &exitError{1}
}

// fatalError prints the "FatalError in <module>" variant (error_and_exit).
func fatalError(module, text string, hints ...string) error {
	fmt.Fprintf(os.Stderr, "FatalError in %s: %s\n", module, text)
	for _, h := range hints {
		fmt.Fprintf(os.Stderr, "... %s\n", h)
	}
	return &exitError{1}
}

// injected reports whether failure what is asked for (FAKE_NETLAB_FAIL,
// or the content of FAKE_NETLAB_FAIL_FILE when that file exists).
func injected(what string) bool {
	list := os.Getenv("FAKE_NETLAB_FAIL")
	if path := os.Getenv("FAKE_NETLAB_FAIL_FILE"); path != "" {
		if data, err := os.ReadFile(path); err == nil {
			list = string(data)
		}
	}
	for _, f := range strings.Split(list, ",") {
		if strings.TrimSpace(f) == what {
			return true
		}
	}
	return false
}

// delay sleeps for the duration in env var name (none if unset), until
// ctx ends; an ended ctx is errInterrupted, also without a delay.
func delay(ctx context.Context, name string) error {
	var d time.Duration
	if v := os.Getenv(name); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return fatal("netlab", fmt.Sprintf("invalid %s %q: %v", name, v, err))
		}
	}
	if err := clock.Sleep(ctx, d); err != nil {
		return fmt.Errorf("%w: %w", errInterrupted, err)
	}
	return nil
}

func recordCall(args []string) {
	path := os.Getenv("FAKE_NETLAB_CALLS")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	cwd, _ := os.Getwd()
	_, _ = f.WriteString(cwd + "\t" + strings.Join(args, " ") + "\n")
}

const topUsage = `usage: netlab <command> [options]

Lab management commands:
  up        Create configuration files, start a lab, and configure it
  down      Destroy the virtual lab
  status    Display the status of running labs
  create    Create provider- and automation configuration files
  inspect   Inspect the data structures of the transformed topology
  version   Display netlab version

Use 'netlab <command> -h' to get command-specific help (fake netlab)`

var commands = map[string]func(ctx context.Context, args []string) error{
	"up":      cmdUp,
	"create":  cmdCreate,
	"down":    cmdDown,
	"status":  cmdStatus,
	"inspect": cmdInspect,
	"version": cmdVersion,
}

// notImplemented are real netlab commands the fake does not do.
var notImplemented = []string{"initial", "connect", "collect", "config", "report", "graph", "validate",
	"restart", "exec", "capture", "clab", "libvirt", "install", "test", "show", "defaults", "api", "tc", "usage", "alias"}

func run(args []string) int {
	recordCall(args)
	if os.Getenv("FAKE_NETLAB_STDERR_NOISE") == "1" {
		fmt.Fprintln(os.Stderr, "UserWarning: fake netlab noise on stderr {\"not\": \"json\"}")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if len(args) == 0 {
		fmt.Println(topUsage)
		return 0
	}
	cmd := args[0]
	if cmd == "help" {
		fmt.Println(topUsage)
		return 0
	}
	fn, ok := commands[cmd]
	if !ok {
		for _, n := range notImplemented {
			if n == cmd {
				fmt.Fprintf(os.Stderr, "Fatal error in netlab: the fake netlab does not implement '%s'\n", cmd)
				return 1
			}
		}
		_ = fatalError("netlab", "Unknown command "+cmd, "Use 'netlab help' to get the list of valid commands")
		return 1
	}
	err := fn(ctx, args[1:])
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errInterrupted):
		fmt.Fprintf(os.Stderr, "netlab %s command was interrupted\n", cmd)
		return 1
	default:
		fmt.Fprintf(os.Stderr, "Fatal error in netlab: %v\n", err)
		return 1
	}
}

func cmdVersion(_ context.Context, args []string) error {
	p := &argParser{prog: "netlab version"}
	p.parse(args)
	exe, _ := os.Executable()
	fmt.Printf("netlab version %s\n", version())
	fmt.Printf("  executable location: %s\n", exe)
	fmt.Printf("  package location: ['%s']\n", filepath.Dir(exe))
	fmt.Println("  user defaults: []")
	fmt.Println("Required packages:")
	for _, p := range []string{"python-box: 7.3.2", "Jinja2: 3.1.6", "PyYAML: 6.0.2", "netaddr: 1.3.0",
		"requests: 2.32.3", "filelock: 3.18.0", "rich: 14.0.0"} {
		fmt.Println("  " + p)
	}
	fmt.Println("Optional packages:")
	fmt.Println("  ruamel.yaml: not installed")
	fmt.Println("Ansible components:")
	fmt.Println("  ansible: not installed")
	return nil
}

// printJSON prints v like netlab's Rich JSON printer: indent 2.
func printJSON(v any) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
}

// ordered is a JSON object that keeps its keys in order.
type ordered []kv

type kv struct {
	key string
	val any
}

func (o ordered) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.key)
		v, err := json.Marshal(e.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
