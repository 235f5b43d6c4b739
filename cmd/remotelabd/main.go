// Command remotelabd is the remotelab server: it gives test suites fair,
// exclusive, queued access to the one Netlab lab of this host over HTTP
// (wire-compatible with the original Python neops-remote-lab server).
//
// Run it with --runner sim to try the API without Netlab, and see
// docs/operations.md for flags, systemd, health checks and recovery.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/remotelab-go/remotelab/auth"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: it parses args, serves until SIGTERM/SIGINT
// or until ctx ends, and returns the exit code: 0 after a clean stop (and
// for --help and --version), 1 on a runtime failure, 2 for bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, opts, err := parseArgs(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "remotelabd: %v\nRun 'remotelabd --help' to list the flags.\n", err)
		return 2
	case opts.version:
		fmt.Fprintf(stdout, "remotelabd %s\n", version())
		return 0
	}
	logs, err := setupLogging(cfg, opts.set, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "remotelabd: %v\n", err)
		return 2
	}
	defer logs.Close()
	var authFile *auth.File
	if cfg.AuthFile != "" {
		if authFile, err = auth.Load(cfg.AuthFile); err != nil {
			fmt.Fprintf(stderr, "remotelabd: invalid --auth-file: %v\n", err)
			logs.logger.Error("Not starting: invalid --auth-file", componentKey, "server", "err", err)
			return 2
		}
	}
	argv := append([]string{os.Args[0]}, args...)
	return newDaemon(cfg, logs, authFile, stderr).run(ctx, argv)
}
