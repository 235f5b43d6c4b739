// Command remotelab-load is remotelab's load, fault and performance
// harness. It builds remotelabd (go build, into a temporary directory),
// starts it on loopback with the simulated runner, runs scenarios against
// it and prints a results table:
//
//   - promotion latency (holder leaves → next waiter knows it is active)
//     with long-poll, with the Go client, and with 5 s polling;
//   - control-plane throughput (status polls and heartbeats per second
//     with 1 000 waiting sessions);
//   - scale (10 000 sessions on long-poll: RSS, goroutines, fan-out);
//   - lab overhead (acquire round trip, cold and warm, with extra files);
//   - churn (FIFO order, lost or duplicated promotions, goroutines);
//   - kill -9 of the client holding the lab;
//   - SIGTERM of the server in the middle of churn (lab kept, and with
//     --teardown-on-exit);
//   - hostile uploads at a steady rate;
//   - remotelabd against a bare net/http server (baseline), against the
//     build before issues 12 and 13 and with authentication (overhead),
//     phases alternating, with the server's CPU per call;
//   - /events fan-out and lost updates, GET /queue (events);
//   - a flood of POST /session at --max-sessions (flood);
//   - the cost of durable state, restart with 10 000 queued sessions, and
//     kill -9 in the middle of churn (persist, restart, kill9churn).
//
// It exits 1 if any scenario saw a violation. Each server it starts runs
// in a private TMPDIR and is stopped at the end of its scenario.
//
// Usage:
//
//	go run ./cmd/remotelab-load -short   # every scenario, small sizes, about 2 min
//	go run ./cmd/remotelab-load          # the full measurements
//	go run ./cmd/remotelab-load -run churn,kill9 -md
//	go run ./cmd/remotelab-load -run overhead -old-bin /tmp/remotelabd-cebaff4
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/remotelab-go/remotelab/internal/gobuild"
)

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(run(os.Args[1:]))
}

// run parses flags, runs the suite and returns the exit code.
func run(args []string) int {
	cfg, err := parseConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // the flag set printed why
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "remotelab-load:", err)
		return 2
	}
	// Child processes get absolute paths whatever their directory.
	for _, p := range []*string{&cfg.Bin, &cfg.CPUProfile, &cfg.OldBin} {
		if *p != "" {
			if abs, err := filepath.Abs(*p); err == nil {
				*p = abs
			}
		}
	}
	cfg.Out = os.Stdout
	ctx, stop := signalContext()
	defer stop()
	rep, err := runSuite(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "remotelab-load:", err)
		return 1
	}
	rep.print(cfg.Out, cfg.Markdown)
	if len(rep.violations) > 0 {
		fmt.Fprintf(cfg.Out, "\nFAIL: %d violation(s)\n", len(rep.violations))
		return 1
	}
	fmt.Fprintln(cfg.Out, "\nPASS: no violations")
	return 0
}

// runSuite builds or finds remotelabd and runs the selected scenarios.
func runSuite(ctx context.Context, cfg config) (*report, error) {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	raiseFDLimit()
	want := map[string]bool{}
	for _, n := range strings.Split(cfg.Run, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for n := range want {
		if !isScenario(n) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(scenarioNames(), ", "))
		}
	}
	e := &env{cfg: cfg}
	if cfg.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
		e.cfg.Self = self
	}
	rep := &report{}
	rep.machine = machineInfo()
	fmt.Fprintln(cfg.Out, rep.machine)
	if cfg.Bin == "" {
		dir, err := os.MkdirTemp("", "remotelab-load-bin-*")
		if err != nil {
			return nil, fmt.Errorf("create build directory: %w", err)
		}
		defer os.RemoveAll(dir)
		t0 := time.Now()
		bin, err := buildRemotelabd(ctx, dir)
		if err != nil {
			return nil, err
		}
		e.cfg.Bin = bin
		fmt.Fprintf(cfg.Out, "built remotelabd in %s\n", fmtDur(time.Since(t0)))
	}
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		t0 := time.Now()
		fmt.Fprintf(cfg.Out, "== %s\n", s.name)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err := s.run(sctx, e, rep.scenario(s.name))
		cancel()
		if err != nil {
			rep.scenario(s.name).violate("scenario failed: %v", err)
		}
		fmt.Fprintf(cfg.Out, "   done in %s\n", fmtDur(time.Since(t0)))
	}
	return rep, nil
}

// buildRemotelabd builds cmd/remotelabd into dir (without -race, whatever
// this binary was built with) and returns the binary's path.
func buildRemotelabd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "remotelabd")
	if err := gobuild.Build(ctx, bin, "cmd/remotelabd", false); err != nil {
		return "", fmt.Errorf("build remotelabd: %w", err)
	}
	return bin, nil
}

// raiseFDLimit raises RLIMIT_NOFILE to its hard limit: the scale test
// holds one connection per waiting session. Child processes inherit it.
func raiseFDLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// fdLimit returns the current RLIMIT_NOFILE.
func fdLimit() uint64 {
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// machineInfo describes the machine the figures come from.
func machineInfo() string {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("machine: %d CPU (%s), %s %s/%s, RLIMIT_NOFILE %d", runtime.NumCPU(), model,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, fdLimit())
}

// report collects the results of every scenario.
type report struct {
	machine    string
	rows       []row
	violations []string
}

type row struct{ scenario, metric, value string }

// scenarioReport is the part of a report one scenario writes to.
type scenarioReport struct {
	r    *report
	name string
}

func (r *report) scenario(name string) *scenarioReport { return &scenarioReport{r: r, name: name} }

// add records a figure.
func (s *scenarioReport) add(metric, format string, args ...any) {
	s.r.rows = append(s.r.rows, row{s.name, metric, fmt.Sprintf(format, args...)})
}

// violate records a violation (the run fails).
func (s *scenarioReport) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.r.violations = append(s.r.violations, s.name+": "+msg)
	s.r.rows = append(s.r.rows, row{s.name, "VIOLATION", msg})
}

// print writes the results table.
func (r *report) print(w io.Writer, markdown bool) {
	fmt.Fprintln(w)
	if markdown {
		fmt.Fprintln(w, "| scenario | metric | value |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, x := range r.rows {
			fmt.Fprintf(w, "| %s | %s | %s |\n", x.scenario, x.metric, strings.ReplaceAll(x.value, "|", "\\|"))
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE")
	for _, x := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.scenario, x.metric, x.value)
	}
	tw.Flush()
}

// parseConfig parses the command line into a config. -short sets the
// short sizes, and explicit flags still win: the same arguments are then
// parsed again over the short defaults.
func parseConfig(args []string) (config, error) {
	cfg := fullConfig()
	fs, short := flags(&cfg)
	if err := fs.Parse(args); err != nil || !*short {
		return cfg, err
	}
	cfg = shortConfig()
	fs, _ = flags(&cfg)
	fs.SetOutput(io.Discard)
	return cfg, fs.Parse(args)
}

// flags returns the flag set that parses into cfg, with cfg's values as
// the defaults, and the -short flag.
func flags(cfg *config) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("remotelab-load", flag.ContinueOnError)
	short := fs.Bool("short", false, "small sizes: every scenario in about 2 minutes")
	fs.StringVar(&cfg.Bin, "bin", "", "remotelabd binary (default: go build it into a temporary directory)")
	fs.StringVar(&cfg.Run, "run", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames(), ","))
	fs.IntVar(&cfg.Handovers, "handovers", cfg.Handovers, "hand-overs measured with long-poll")
	fs.IntVar(&cfg.PollHandovers, "poll-handovers", cfg.PollHandovers, "hand-overs measured with interval polling")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", cfg.PollInterval, "interval of the polling client (the original: 5s)")
	fs.DurationVar(&cfg.Hold, "hold", cfg.Hold, "how long each holder keeps the head before leaving")
	fs.DurationVar(&cfg.LongPoll, "long-poll", cfg.LongPoll, "?wait= of the harness's own long-polls (package client uses its own)")
	fs.IntVar(&cfg.Waiters, "waiters", cfg.Waiters, "waiting sessions during the throughput test")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "concurrent requesters in the throughput test")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each throughput phase")
	fs.IntVar(&cfg.Scale, "scale", cfg.Scale, "sessions waiting on long-poll at once")
	fs.IntVar(&cfg.ScaleRounds, "scale-rounds", cfg.ScaleRounds, "fan-outs measured in the scale test")
	fs.IntVar(&cfg.Sources, "sources", cfg.Sources, "loopback source addresses 127.0.0.1..N for client connections")
	fs.IntVar(&cfg.LabIters, "lab-iters", cfg.LabIters, "lab overhead iterations")
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "nodes of the lab overhead topology")
	fs.IntVar(&cfg.ExtraBytes, "extra-bytes", cfg.ExtraBytes, "bytes of extra files in the lab overhead upload")
	fs.IntVar(&cfg.ChurnClients, "churn-clients", cfg.ChurnClients, "concurrent clients in the churn tests")
	fs.DurationVar(&cfg.ChurnDuration, "churn-duration", cfg.ChurnDuration, "length of the churn test")
	fs.DurationVar(&cfg.KillTTL, "kill-ttl", cfg.KillTTL, fmt.Sprintf(
		"--active-ttl of the server in the kill -9 test (at least %d heartbeats of the holder: %s)", killTTLMargin, killTTLMargin*holdHeartbeat))
	fs.DurationVar(&cfg.HostileDuration, "hostile-duration", cfg.HostileDuration, "length of each phase of the hostile-input test")
	fs.Float64Var(&cfg.HostileRate, "hostile-rate", cfg.HostileRate, "hostile requests per second")
	fs.Int64Var(&cfg.RSSBound, "rss-bound", cfg.RSSBound, "MiB the server's RSS may grow under hostile input")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "alternating rounds of the comparisons (baseline, overhead, persist)")
	fs.DurationVar(&cfg.Phase, "phase", cfg.Phase, "length of one variant's phase in a comparison round")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "baseline: also profile httpserver (child process, same wiring) under the same load into this file")
	fs.StringVar(&cfg.OldBin, "old-bin", "", "overhead: remotelabd built from commit "+overheadOldCommit+" (the comparison is skipped without it)")
	fs.StringVar(&cfg.OldName, "old-name", overheadOldCommit, "overhead: what -old-bin was built from, for the report")
	fs.IntVar(&cfg.EventWaiters, "event-waiters", cfg.EventWaiters, "events: waiting sessions")
	fs.IntVar(&cfg.Viewers, "viewers", cfg.Viewers, "events: GET /events viewers")
	fs.IntVar(&cfg.EventChanges, "event-changes", cfg.EventChanges, "events: changes measured (spaced over 250 ms)")
	fs.IntVar(&cfg.EventBursts, "event-bursts", cfg.EventBursts, "events: pairs of back-to-back joins checked for lost updates")
	fs.IntVar(&cfg.QueueGets, "queue-gets", cfg.QueueGets, "events: GET /queue requests measured")
	fs.DurationVar(&cfg.FloodDuration, "flood-duration", cfg.FloodDuration, "flood: how long the creators flood each server")
	fs.IntVar(&cfg.FloodWorkers, "flood-workers", cfg.FloodWorkers, "flood: concurrent creators")
	fs.IntVar(&cfg.FloodCap, "flood-cap", cfg.FloodCap, "flood: --max-sessions of the bounded server")
	fs.IntVar(&cfg.PersistWorkers, "persist-workers", cfg.PersistWorkers, "persist: concurrent create/delete workers")
	fs.IntVar(&cfg.RestartSessions, "restart-sessions", cfg.RestartSessions, "restart: queued sessions")
	fs.IntVar(&cfg.KillRounds, "kill-rounds", cfg.KillRounds, "kill9churn: kill -9 rounds")
	fs.IntVar(&cfg.KillClients, "kill-clients", cfg.KillClients, "kill9churn: churning clients (as many again only wait)")
	fs.BoolVar(&cfg.Markdown, "md", false, "print the results as a Markdown table")
	fs.BoolVar(&cfg.Verbose, "v", false, "log progress details")
	return fs, short
}
