// Command remotelab is the command-line tool of remotelab: it shows a lab
// host's queue (status, queue, history, watch), holds the lab for a
// command or a while (hold), and carries out admin actions (admin, token
// new). It talks to remotelabd through package client only.
//
// Run "remotelab help" for the commands and "remotelab help COMMAND" for
// one of them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/remotelab-go/remotelab/client"
)

// Exit codes shared by every command.
const (
	exitOK    = 0
	exitFail  = 1 // the server could not be reached or refused
	exitUsage = 2 // bad flags or arguments
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app is what every command gets: the standard streams and the global
// settings.
type app struct {
	stdin          *os.File
	stdout, stderr *os.File
	server, token  string
	verbose        bool
}

// command is one command of the tool.
type command struct {
	name    string // as typed, e.g. "admin evict"
	args    string // the synopsis after the name and flags
	summary string // one line for the command list
	help    string // the long help, after the synopsis
	// setup registers the command's flags on fs and returns the
	// command's body, which reads them.
	setup func(fs *flag.FlagSet) runner
}

// runner is the body of a command: args are its positional arguments,
// and command the words after "--" (nil without "--"). It returns the
// exit code.
type runner func(ctx context.Context, a *app, args, command []string) int

// commands lists the commands in the order help shows them.
var commands []*command

func init() {
	commands = []*command{
		statusCmd, queueCmd, historyCmd, watchCmd, holdCmd,
		adminEvictCmd, adminDrainCmd, adminResumeCmd, adminUnquarantineCmd, adminAuditCmd, adminDestroyLabCmd,
		tokenNewCmd,
	}
}

const usageHead = `remotelab: see and use the lab host of a remotelab server.

Usage:
  remotelab [--server URL] [--token TOKEN] COMMAND [flags] [args]

Commands:
`

const usageTail = `
Global flags (accepted before or after the command):
  --server URL    the server's base URL (default $REMOTE_LAB_URL)
  --token TOKEN   bearer token for a server with --auth-file
                  (default $REMOTE_LAB_TOKEN)
  --verbose       log the client's progress to stderr

The environment configures the client as for Go tests: REMOTE_LAB_URL,
REMOTE_LAB_TOKEN, REMOTE_LAB_REQUEST_TIMEOUT, REMOTE_LAB_ACQUISITION_TIMEOUT,
REMOTE_LAB_HEARTBEAT_INTERVAL; sessions opened by hold name an owner and
labels: REMOTE_LAB_OWNER (else user@hostname), REMOTE_LAB_LABELS
("k=v,k=v") plus the CI job when it can tell, REMOTE_LAB_WAIT_TIMEOUT.

Exit codes: 0 success, 1 the server could not be reached or refused,
2 bad usage; status and hold add their own (see their help).

Run "remotelab help COMMAND" (or "remotelab COMMAND -h") for a command.
`

// printUsage writes the overview of all commands.
func printUsage(w io.Writer) {
	fmt.Fprint(w, usageHead)
	t := newTable(w)
	for _, c := range commands {
		t.row("  "+c.name, c.summary)
	}
	t.flush()
	fmt.Fprint(w, usageTail)
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdin, stdout, stderr *os.File) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	global := flag.NewFlagSet("remotelab", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	a.globalFlags(global, os.Getenv(client.EnvURL), os.Getenv(client.EnvToken), false)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "remotelab: %v\nRun 'remotelab help' for usage.\n", err)
		return exitUsage
	}
	rest := global.Args()
	if len(rest) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	if rest[0] == "help" {
		return a.help(rest[1:])
	}
	c, args := lookup(rest)
	if c == nil {
		fmt.Fprintf(stderr, "remotelab: unknown command %q\nRun 'remotelab help' for usage.\n", strings.Join(rest[:min(2, len(rest))], " "))
		return exitUsage
	}
	fs := flag.NewFlagSet("remotelab "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.globalFlags(fs, a.server, a.token, a.verbose)
	body := c.setup(fs)
	positional, after, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(stdout, c)
			return exitOK
		}
		fmt.Fprintf(stderr, "remotelab %s: %v\nRun 'remotelab help %s' for usage.\n", c.name, err, c.name)
		return exitUsage
	}
	return body(ctx, a, positional, after)
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments ("admin evict ID --reason ..."). Words after "--" are
// returned apart, unparsed; after is nil without "--".
func parseInterspersed(fs *flag.FlagSet, args []string) (positional, after []string, err error) {
	for i, arg := range args {
		if arg == "--" {
			args, after = args[:i], append([]string{}, args[i+1:]...)
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, after, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// globalFlags registers the global flags on fs with the given defaults.
func (a *app) globalFlags(fs *flag.FlagSet, server, token string, verbose bool) {
	fs.StringVar(&a.server, "server", server, "the server's base URL")
	fs.StringVar(&a.token, "token", token, "bearer token")
	fs.BoolVar(&a.verbose, "verbose", verbose, "log the client's progress")
}

// lookup finds the command named by the first one or two words of args
// and returns it with the arguments that follow.
func lookup(args []string) (*command, []string) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):]
		}
	}
	return nil, nil
}

// help handles "remotelab help [COMMAND...]".
func (a *app) help(args []string) int {
	if len(args) == 0 {
		printUsage(a.stdout)
		return exitOK
	}
	c, _ := lookup(args)
	if c == nil {
		// "help admin" lists the admin commands.
		var group []*command
		for _, cmd := range commands {
			if strings.HasPrefix(cmd.name, strings.Join(args, " ")+" ") {
				group = append(group, cmd)
			}
		}
		if len(group) == 0 {
			fmt.Fprintf(a.stderr, "remotelab help: unknown command %q\n", strings.Join(args, " "))
			return exitUsage
		}
		for _, cmd := range group {
			printCommandHelp(a.stdout, cmd)
			fmt.Fprintln(a.stdout)
		}
		return exitOK
	}
	printCommandHelp(a.stdout, c)
	return exitOK
}

// printCommandHelp writes a command's synopsis, help and own flags.
func printCommandHelp(w io.Writer, c *command) {
	fs := flag.NewFlagSet("remotelab "+c.name, flag.ContinueOnError)
	c.setup(fs)
	fmt.Fprintf(w, "Usage: remotelab %s [flags]%s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.help))
	var own bool
	fs.VisitAll(func(*flag.Flag) { own = true })
	if own {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprintln(w, "\nGlobal flags --server, --token and --verbose apply too (remotelab help).")
}

// client returns a client of the server named by --server, configured
// from the environment as client.FromEnv does (timeouts, session
// defaults), with the --token given. Its errors are usage errors.
func (a *app) client(opts ...client.Option) (*client.Client, error) {
	if strings.TrimSpace(a.server) == "" {
		return nil, errors.New("no server: pass --server URL or set REMOTE_LAB_URL")
	}
	env, err := client.OptionsFromEnv()
	if err != nil {
		return nil, err
	}
	level := slog.LevelWarn
	if a.verbose {
		level = slog.LevelInfo
	}
	all := append(env,
		client.WithToken(strings.TrimSpace(a.token)),
		client.WithLogger(slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))))
	return client.New(a.server, append(all, opts...)...)
}

// fail reports err of command name and returns exitFail.
func (a *app) fail(name string, err error) int {
	fmt.Fprintf(a.stderr, "remotelab %s: %v\n", name, err)
	return exitFail
}

// usageError reports a usage error of command name and returns exitUsage.
func (a *app) usageError(name, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "remotelab %s: %s\nRun 'remotelab help %s' for usage.\n", name, fmt.Sprintf(format, args...), name)
	return exitUsage
}

// noArgs checks that a command got no positional arguments.
func (a *app) noArgs(name string, args []string) bool {
	if len(args) > 0 {
		a.usageError(name, "unexpected arguments: %s", strings.Join(args, " "))
		return false
	}
	return true
}
