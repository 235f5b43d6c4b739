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
//   - SIGTERM of the server in the middle of churn;
//   - hostile uploads at a steady rate.
//
// It exits 1 if any scenario saw a violation. Each server it starts runs
// in a private TMPDIR and is stopped at the end of its scenario.
//
// Usage:
//
//	go run ./cmd/remotelab-load -short   # every scenario, small sizes, < 2 min
//	go run ./cmd/remotelab-load          # the full measurements
//	go run ./cmd/remotelab-load -run churn,kill9 -md
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

// config holds the sizes and durations of a run.
type config struct {
	Bin  string // remotelabd binary; "" builds it
	Run  string // comma-separated scenario names; "" runs all
	Self string // executable for child roles; "" is os.Executable()

	Handovers     int           // long-poll hand-overs
	PollHandovers int           // hand-overs with interval polling
	PollInterval  time.Duration // the polling client's interval
	Hold          time.Duration // how long a holder keeps the head before leaving
	LongPoll      time.Duration // the harness's own long-poll ?wait=

	Waiters  int           // waiting sessions during the throughput test
	Workers  int           // concurrent requesters in the throughput test
	Duration time.Duration // length of each throughput phase

	Scale       int // sessions on long-poll at once
	ScaleRounds int // fan-outs measured
	Sources     int // loopback source addresses

	LabIters   int // lab overhead iterations
	Nodes      int // nodes of the lab overhead topology
	ExtraBytes int // extra files in the lab overhead upload

	ChurnClients  int
	ChurnDuration time.Duration

	KillTTL time.Duration // --active-ttl of the kill -9 scenario (at least killTTLMargin × holdHeartbeat)

	HostileDuration time.Duration // each phase (baseline, hostile)
	HostileRate     float64       // hostile requests per second
	RSSBound        int64         // MiB the server may grow under hostile input

	Rounds     int           // alternating rounds of the comparisons (baseline, overhead, persist)
	Phase      time.Duration // one variant's phase in a round
	CPUProfile string        // baseline: also profile httpserver in a child process, into this file
	OldBin     string        // overhead: remotelabd built from commit cebaff4 ("" skips it)
	OldName    string        // overhead: what -old-bin was built from

	EventWaiters int // events: waiting sessions
	Viewers      int // events: GET /events streams
	EventChanges int // events: changes measured
	EventBursts  int // events: back-to-back pairs of joins checked for lost updates
	QueueGets    int // events: GET /queue requests measured

	FloodDuration time.Duration // flood: how long the creators flood
	FloodWorkers  int           // flood: concurrent creators
	FloodCap      int           // flood: --max-sessions of the bounded server

	PersistWorkers  int // persist: concurrent create/delete workers
	RestartSessions int // restart: queued sessions
	KillRounds      int // kill9churn: kill -9 rounds
	KillClients     int // kill9churn: churning clients (as many again just wait)

	Markdown bool
	Verbose  bool
	Out      io.Writer // progress and results (default os.Stdout)
}

// fullConfig is the published measurement.
func fullConfig() config {
	return config{
		Handovers: 1000, PollHandovers: 40, PollInterval: 5 * time.Second, Hold: 10 * time.Millisecond,
		LongPoll: 30 * time.Second,
		Waiters:  1000, Workers: 16, Duration: 5 * time.Second,
		Scale: 10000, ScaleRounds: 3, Sources: 4,
		LabIters: 50, Nodes: 10, ExtraBytes: 1 << 20,
		ChurnClients: 50, ChurnDuration: 30 * time.Second,
		KillTTL:         2 * time.Second,
		HostileDuration: 10 * time.Second, HostileRate: 40, RSSBound: 128,
		Rounds: 5, Phase: 2 * time.Second,
		EventWaiters: 1000, Viewers: 100, EventChanges: 40, EventBursts: 20, QueueGets: 200,
		FloodDuration: 20 * time.Second, FloodWorkers: 32, FloodCap: 10000,
		PersistWorkers: 64, RestartSessions: 10000,
		KillRounds: 50, KillClients: 8,
		OldName: overheadOldCommit,
	}
}

// shortConfig runs every scenario with small sizes (under 2 minutes).
func shortConfig() config {
	c := fullConfig()
	c.Handovers, c.PollHandovers, c.PollInterval = 200, 10, 500*time.Millisecond
	c.LongPoll = 10 * time.Second
	c.Waiters, c.Duration = 1000, 2*time.Second
	c.Scale, c.ScaleRounds = 1000, 1
	c.LabIters = 10
	c.ChurnClients, c.ChurnDuration = 20, 5*time.Second
	c.HostileDuration, c.HostileRate = 3*time.Second, 20
	c.Rounds, c.Phase = 4, time.Second
	c.EventChanges = 24
	c.FloodDuration = 5 * time.Second
	c.KillRounds = 10
	return c
}

// tinyConfig is the short suite made small enough for go test (-race).
func tinyConfig() config {
	c := shortConfig()
	c.Handovers, c.PollHandovers, c.PollInterval = 50, 4, 200*time.Millisecond
	// The long-poll stays at the short suite's 10 s: a passing run never
	// waits one out (every change wakes the waiter), and a hand-over
	// counts as a lost wake-up only after half of it, 5 s, far above
	// hand-overs of a few milliseconds even on a loaded machine.
	c.Waiters, c.Workers, c.Duration = 200, 4, time.Second
	c.Scale, c.Sources = 200, 2
	c.LabIters = 3
	c.ChurnClients, c.ChurnDuration = 8, 2*time.Second
	// 12 heartbeats of the holder per TTL: under go test -race on a
	// loaded 2-core machine the holder may stall for 2.75 s and still
	// never expire while it lives.
	c.KillTTL = 3 * time.Second
	c.HostileDuration, c.HostileRate = 1500*time.Millisecond, 10
	c.Rounds, c.Phase = 2, 250*time.Millisecond
	c.EventWaiters, c.Viewers, c.EventChanges, c.EventBursts, c.QueueGets = 200, 10, 6, 3, 20
	c.FloodDuration, c.FloodWorkers, c.FloodCap = time.Second, 4, 300
	c.PersistWorkers, c.RestartSessions = 16, 500
	c.KillRounds, c.KillClients = 5, 4
	return c
}

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(run(os.Args[1:]))
}

// run parses flags, runs the suite and returns the exit code.
func run(args []string) int {
	cfg := fullConfig()
	fs := flag.NewFlagSet("remotelab-load", flag.ContinueOnError)
	short := fs.Bool("short", false, "small sizes: every scenario in under 2 minutes")
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *short {
		// -short sets the short sizes; explicit flags still win.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		s := shortConfig()
		s.Bin, s.Run, s.Markdown, s.Verbose = cfg.Bin, cfg.Run, cfg.Markdown, cfg.Verbose
		s.CPUProfile, s.OldBin, s.OldName = cfg.CPUProfile, cfg.OldBin, cfg.OldName
		cfg = mergeExplicit(s, cfg, set)
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

// validate rejects sizes and durations the scenarios cannot run with
// (they would divide by zero, index an empty slice or never finish).
func (c config) validate() error {
	for _, v := range []struct {
		flag string
		n    int
	}{
		{"handovers", c.Handovers}, {"poll-handovers", c.PollHandovers},
		{"waiters", c.Waiters}, {"workers", c.Workers},
		{"scale", c.Scale}, {"scale-rounds", c.ScaleRounds},
		{"lab-iters", c.LabIters}, {"nodes", c.Nodes},
		{"churn-clients", c.ChurnClients},
		{"rounds", c.Rounds}, {"event-waiters", c.EventWaiters}, {"viewers", c.Viewers},
		{"event-changes", c.EventChanges}, {"queue-gets", c.QueueGets},
		{"flood-workers", c.FloodWorkers}, {"flood-cap", c.FloodCap},
		{"persist-workers", c.PersistWorkers}, {"restart-sessions", c.RestartSessions},
		{"kill-rounds", c.KillRounds}, {"kill-clients", c.KillClients},
	} {
		if v.n < 1 {
			return fmt.Errorf("invalid -%s %d: must be at least 1", v.flag, v.n)
		}
	}
	for _, v := range []struct {
		flag string
		d    time.Duration
	}{
		{"poll-interval", c.PollInterval}, {"long-poll", c.LongPoll},
		{"duration", c.Duration}, {"churn-duration", c.ChurnDuration},
		{"kill-ttl", c.KillTTL}, {"hostile-duration", c.HostileDuration},
		{"phase", c.Phase}, {"flood-duration", c.FloodDuration},
	} {
		if v.d <= 0 {
			return fmt.Errorf("invalid -%s %s: must be positive", v.flag, v.d)
		}
	}
	switch {
	case c.KillTTL < killTTLMargin*holdHeartbeat:
		return fmt.Errorf("invalid -kill-ttl %s: must be at least %s (%d heartbeats of the holder, every %s)",
			c.KillTTL, killTTLMargin*holdHeartbeat, killTTLMargin, holdHeartbeat)
	case c.Hold < 0:
		return fmt.Errorf("invalid -hold %s: must not be negative", c.Hold)
	case c.Sources < 1 || c.Sources > 254:
		return fmt.Errorf("invalid -sources %d: must be between 1 and 254 (127.0.0.1..127.0.0.254)", c.Sources)
	case c.ExtraBytes < 0:
		return fmt.Errorf("invalid -extra-bytes %d: must not be negative", c.ExtraBytes)
	case !(c.HostileRate > 0) || c.HostileRate > 1e6:
		return fmt.Errorf("invalid -hostile-rate %v: must be above 0 and at most 1e6", c.HostileRate)
	case c.RSSBound < 1:
		return fmt.Errorf("invalid -rss-bound %d: must be at least 1", c.RSSBound)
	}
	return nil
}

// mergeExplicit returns short with the fields whose flags were set
// explicitly taken from cfg.
func mergeExplicit(short, cfg config, set map[string]bool) config {
	pick := func(name string, dst, src any) {
		if !set[name] {
			return
		}
		switch d := dst.(type) {
		case *int:
			*d = *src.(*int)
		case *int64:
			*d = *src.(*int64)
		case *float64:
			*d = *src.(*float64)
		case *time.Duration:
			*d = *src.(*time.Duration)
		}
	}
	pick("handovers", &short.Handovers, &cfg.Handovers)
	pick("poll-handovers", &short.PollHandovers, &cfg.PollHandovers)
	pick("poll-interval", &short.PollInterval, &cfg.PollInterval)
	pick("hold", &short.Hold, &cfg.Hold)
	pick("long-poll", &short.LongPoll, &cfg.LongPoll)
	pick("waiters", &short.Waiters, &cfg.Waiters)
	pick("workers", &short.Workers, &cfg.Workers)
	pick("duration", &short.Duration, &cfg.Duration)
	pick("scale", &short.Scale, &cfg.Scale)
	pick("scale-rounds", &short.ScaleRounds, &cfg.ScaleRounds)
	pick("sources", &short.Sources, &cfg.Sources)
	pick("lab-iters", &short.LabIters, &cfg.LabIters)
	pick("nodes", &short.Nodes, &cfg.Nodes)
	pick("extra-bytes", &short.ExtraBytes, &cfg.ExtraBytes)
	pick("churn-clients", &short.ChurnClients, &cfg.ChurnClients)
	pick("churn-duration", &short.ChurnDuration, &cfg.ChurnDuration)
	pick("kill-ttl", &short.KillTTL, &cfg.KillTTL)
	pick("hostile-duration", &short.HostileDuration, &cfg.HostileDuration)
	pick("hostile-rate", &short.HostileRate, &cfg.HostileRate)
	pick("rss-bound", &short.RSSBound, &cfg.RSSBound)
	pick("rounds", &short.Rounds, &cfg.Rounds)
	pick("phase", &short.Phase, &cfg.Phase)
	pick("event-waiters", &short.EventWaiters, &cfg.EventWaiters)
	pick("viewers", &short.Viewers, &cfg.Viewers)
	pick("event-changes", &short.EventChanges, &cfg.EventChanges)
	pick("event-bursts", &short.EventBursts, &cfg.EventBursts)
	pick("queue-gets", &short.QueueGets, &cfg.QueueGets)
	pick("flood-duration", &short.FloodDuration, &cfg.FloodDuration)
	pick("flood-workers", &short.FloodWorkers, &cfg.FloodWorkers)
	pick("flood-cap", &short.FloodCap, &cfg.FloodCap)
	pick("persist-workers", &short.PersistWorkers, &cfg.PersistWorkers)
	pick("restart-sessions", &short.RestartSessions, &cfg.RestartSessions)
	pick("kill-rounds", &short.KillRounds, &cfg.KillRounds)
	pick("kill-clients", &short.KillClients, &cfg.KillClients)
	return short
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
