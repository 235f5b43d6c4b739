package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
	"github.com/remotelab-go/remotelab/queue"
	"github.com/remotelab-go/remotelab/topology"
)

// Config holds every setting of remotelabd. DefaultConfig returns the
// defaults; the command line overrides them; Validate rejects nonsense
// before anything starts.
type Config struct {
	// Host and Port are the listen address. Port 0 picks a free port; the
	// address actually used is logged as `msg="listening on" addr=HOST:PORT`.
	Host string
	Port int

	// LogLevel is DEBUG, INFO, WARNING (or WARN), ERROR or CRITICAL, in
	// any case. LogFormat is "text" or "json". LogConfig, if set, names a
	// YAML file with level, format, output and per-component levels (see
	// docs/operations.md); flags given explicitly on the command line win
	// over it.
	LogLevel  string
	LogFormat string
	LogConfig string
	// Debug forces DEBUG everywhere and streams netlab's output to the log.
	Debug bool
	// StreamOutput streams netlab's output to the log (set by Debug and by
	// NEOPS_NETLAB_STREAM_OUTPUT=1).
	StreamOutput bool

	// Runner is "netlab" (the real CLI) or "sim" (an in-process simulated
	// lab for trying the API without Netlab).
	Runner string
	// StateDir holds the record of the running lab (so a restart after a
	// crash tears it down) and the labs' working directories, one
	// subdirectory per runner.
	StateDir string

	// ActiveTTL and WaitingTTL are how long an active or waiting session
	// may stay silent before it is removed.
	ActiveTTL, WaitingTTL time.Duration
	// LabIdleTTL is how long an unreferenced lab is kept up for the next
	// session that wants the same topology.
	LabIdleTTL time.Duration
	// UpTimeout, DownTimeout and QueryTimeout bound `netlab up`, `netlab
	// down` and the short netlab queries (inspect, version; the startup
	// check of `netlab version` waits at most 10 s whatever QueryTimeout).
	UpTimeout, DownTimeout, QueryTimeout time.Duration

	// Upload limits: the topology file, one extra file, all files
	// together, and the number of extra files.
	MaxTopologySize, MaxFileSize, MaxTotalSize int64
	MaxFiles                                   int

	// SimUpDelay and SimDownDelay are how long the sim runner's up and
	// down take.
	SimUpDelay, SimDownDelay time.Duration

	// ShutdownGrace is how long in-flight requests may run after SIGTERM
	// before they are cancelled.
	ShutdownGrace time.Duration
	// TeardownOnExit tears the lab down at exit (the original's
	// behaviour); by default it is kept for the next start to adopt.
	TeardownOnExit bool
	// MaxWait caps the long-poll wait of GET /session/{id}?wait=.
	MaxWait time.Duration
	// UploadTimeout bounds the reading of a POST /lab body.
	UploadTimeout time.Duration
	// MaxConnections caps the open client connections.
	MaxConnections int

	// AuthFile, if set, turns authentication on (tokens and roles).
	AuthFile string
	// MaxHold caps how long a session may hold the lab (0: no cap).
	MaxHold time.Duration
	// MaxSessions bounds the queue; MaxSessionsPerOwner one owner's
	// share of it (0: no bound).
	MaxSessions, MaxSessionsPerOwner int
	// QuarantineAfter is how many failed teardowns (or failed starts of
	// different topologies) in a row quarantine the host;
	// QuarantineBackoff is the first wait before a cleanup retry.
	QuarantineAfter   int
	QuarantineBackoff time.Duration
	// ProbeInterval is how often the runner (netlab version) and the lab
	// lock file are checked for /readyz.
	ProbeInterval time.Duration
}

// Runner names.
const (
	runnerNetlab = "netlab"
	runnerSim    = "sim"
)

// DefaultConfig returns the defaults of SPEC §5, taken from the packages
// that own them.
func DefaultConfig() Config {
	limits := topology.DefaultLimits()
	dir, _ := defaultStateDir() // "" when unknown; Validate then asks for --state-dir
	return Config{
		Host:              "0.0.0.0",
		Port:              8000,
		LogLevel:          "INFO",
		LogFormat:         "text",
		Runner:            runnerNetlab,
		StateDir:          dir,
		ActiveTTL:         queue.DefaultActiveTTL,
		WaitingTTL:        queue.DefaultWaitingTTL,
		LabIdleTTL:        lab.DefaultIdleTTL,
		UpTimeout:         netlab.DefaultUpTimeout,
		DownTimeout:       netlab.DefaultDownTimeout,
		QueryTimeout:      netlab.DefaultQueryTimeout,
		MaxTopologySize:   limits.MaxTopologyBytes,
		MaxFileSize:       limits.MaxFileBytes,
		MaxTotalSize:      limits.MaxTotalBytes,
		MaxFiles:          limits.MaxFiles,
		SimUpDelay:        100 * time.Millisecond,
		SimDownDelay:      20 * time.Millisecond,
		ShutdownGrace:     30 * time.Second,
		MaxWait:           httpserver.DefaultMaxWait,
		UploadTimeout:     httpserver.DefaultUploadTimeout,
		MaxConnections:    16384,
		MaxSessions:       broker.DefaultMaxSessions,
		QuarantineAfter:   broker.DefaultQuarantineAfter,
		QuarantineBackoff: broker.DefaultQuarantineBackoff,
		ProbeInterval:     broker.DefaultProbeInterval,
	}
}

// defaultStateDir is /var/lib/remotelab for root (the systemd
// StateDirectory convention) and the user's cache directory otherwise
// ($XDG_CACHE_HOME/remotelab, usually ~/.cache/remotelab), so an
// unprivileged trial run needs no setup.
func defaultStateDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/remotelab", nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("choose state directory: %w", err)
	}
	return filepath.Join(dir, "remotelab"), nil
}

// Limits returns the upload limits as topology.Limits.
func (c Config) Limits() topology.Limits {
	return topology.Limits{
		MaxTopologyBytes: c.MaxTopologySize,
		MaxFileBytes:     c.MaxFileSize,
		MaxTotalBytes:    c.MaxTotalSize,
		MaxFiles:         c.MaxFiles,
	}
}

// network is the net.Listen network for Host: "tcp4" for an IPv4
// address, so that --host 0.0.0.0 listens on IPv4 only (as written, and as
// the original did) and the "listening on" line shows 0.0.0.0, not [::];
// "tcp" for anything else.
func (c Config) network() string {
	if ip, err := netip.ParseAddr(c.Host); err == nil && ip.Is4() {
		return "tcp4"
	}
	return "tcp"
}

// Addr returns host:port as given (port 0 not yet resolved).
func (c Config) Addr() string {
	return joinHostPort(c.Host, c.Port)
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// minTimeout is the smallest TTL or timeout Validate accepts: anything
// shorter cannot be honoured by a netlab process or an HTTP client and is
// a typo (1ms for 1m).
const minTimeout = time.Second

// Validate reports the first setting that makes no sense, naming its flag.
func (c Config) Validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("invalid --port %d: must be between 0 and 65535 (0 picks a free port)", c.Port)
	}
	if strings.ContainsAny(c.Host, " /[]") {
		return fmt.Errorf("invalid --host %q: want an IP address or host name", c.Host)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("invalid --log-level: %w", err)
	}
	if err := checkFormat(c.LogFormat); err != nil {
		return fmt.Errorf("invalid --log-format: %w", err)
	}
	if c.Runner != runnerNetlab && c.Runner != runnerSim {
		return fmt.Errorf("invalid --runner %q: want %q or %q", c.Runner, runnerNetlab, runnerSim)
	}
	if c.StateDir == "" {
		return errors.New("no state directory: set --state-dir (no home or cache directory to default to)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"active-ttl", c.ActiveTTL},
		{"waiting-ttl", c.WaitingTTL},
		{"lab-idle-ttl", c.LabIdleTTL},
		{"up-timeout", c.UpTimeout},
		{"down-timeout", c.DownTimeout},
		{"query-timeout", c.QueryTimeout},
		{"max-wait", c.MaxWait},
		{"upload-timeout", c.UploadTimeout},
		{"quarantine-backoff", c.QuarantineBackoff},
		{"probe-interval", c.ProbeInterval},
	} {
		if d.v < minTimeout {
			return fmt.Errorf("invalid --%s %v: must be at least %v", d.name, d.v, minTimeout)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"sim-up-delay", c.SimUpDelay},
		{"sim-down-delay", c.SimDownDelay},
		{"shutdown-grace", c.ShutdownGrace},
	} {
		if d.v < 0 {
			return fmt.Errorf("invalid --%s %v: must not be negative", d.name, d.v)
		}
	}
	for _, s := range []struct {
		name string
		v    int64
	}{
		{"max-topology-size", c.MaxTopologySize},
		{"max-file-size", c.MaxFileSize},
		{"max-total-size", c.MaxTotalSize},
		{"max-files", int64(c.MaxFiles)},
	} {
		if s.v <= 0 {
			return fmt.Errorf("invalid --%s %d: must be positive", s.name, s.v)
		}
	}
	if c.MaxHold != 0 && c.MaxHold < minTimeout {
		return fmt.Errorf("invalid --max-hold %v: 0 (no cap) or at least %v", c.MaxHold, minTimeout)
	}
	for _, n := range []struct {
		name string
		v    int
		min  int
	}{
		{"max-connections", c.MaxConnections, 16},
		{"max-sessions", c.MaxSessions, 1},
		{"max-sessions-per-owner", c.MaxSessionsPerOwner, 0},
		{"quarantine-after", c.QuarantineAfter, 1},
	} {
		if n.v < n.min {
			return fmt.Errorf("invalid --%s %d: must be at least %d", n.name, n.v, n.min)
		}
	}
	if c.MaxTotalSize < c.MaxTopologySize {
		return fmt.Errorf("invalid --max-total-size %s: smaller than --max-topology-size %s",
			byteSize(c.MaxTotalSize), byteSize(c.MaxTopologySize))
	}
	return nil
}

// cliOptions are the command-line settings that are not configuration.
type cliOptions struct {
	version bool
	// set names the flags given explicitly (they override --log-config).
	set map[string]bool
}

// newFlagSet binds the flags to cfg (whose values are the defaults shown
// by --help).
func newFlagSet(cfg *Config, opts *cliOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("remotelabd", flag.ContinueOnError)
	fs.StringVar(&cfg.Host, "host", cfg.Host, "`address` to listen on")
	fs.IntVar(&cfg.Port, "port", cfg.Port, "TCP `port` to listen on (0 picks a free one; see the \"listening on\" log line)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log `level`: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log `format`: text or json")
	fs.StringVar(&cfg.LogConfig, "log-config", cfg.LogConfig, "YAML `file` with level, format, output and per-component levels")
	fs.BoolVar(&cfg.Debug, "debug", cfg.Debug, "log at DEBUG everywhere and stream netlab's output to the log")
	fs.BoolVar(&opts.version, "version", false, "print the version and exit")
	fs.StringVar(&cfg.Runner, "runner", cfg.Runner, "lab `runner`: netlab (the real CLI) or sim (simulated labs, no Netlab needed)")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "`directory` for the running lab's record and working directories\n(as root /var/lib/remotelab, else $XDG_CACHE_HOME/remotelab, usually ~/.cache/remotelab)")
	fs.DurationVar(&cfg.ActiveTTL, "active-ttl", cfg.ActiveTTL, "remove an active session silent this long")
	fs.DurationVar(&cfg.WaitingTTL, "waiting-ttl", cfg.WaitingTTL, "remove a waiting session silent this long")
	fs.DurationVar(&cfg.LabIdleTTL, "lab-idle-ttl", cfg.LabIdleTTL, "keep an unreferenced lab up this long for reuse")
	fs.DurationVar(&cfg.UpTimeout, "up-timeout", cfg.UpTimeout, "deadline of netlab up")
	fs.DurationVar(&cfg.DownTimeout, "down-timeout", cfg.DownTimeout, "deadline of netlab down, also of the teardown at shutdown")
	fs.DurationVar(&cfg.QueryTimeout, "query-timeout", cfg.QueryTimeout, "deadline of each netlab inspect and netlab version (the startup check waits at most 10s)")
	fs.Var((*byteSizeFlag)(&cfg.MaxTopologySize), "max-topology-size", "largest topology file, a `size` in bytes or with KiB, MiB, GiB")
	fs.Var((*byteSizeFlag)(&cfg.MaxFileSize), "max-file-size", "largest extra file, a `size`")
	fs.Var((*byteSizeFlag)(&cfg.MaxTotalSize), "max-total-size", "largest upload (topology and extra files together), a `size`")
	fs.IntVar(&cfg.MaxFiles, "max-files", cfg.MaxFiles, "most extra files in one upload")
	fs.DurationVar(&cfg.SimUpDelay, "sim-up-delay", cfg.SimUpDelay, "how long a simulated lab takes to come up (--runner sim)")
	fs.DurationVar(&cfg.SimDownDelay, "sim-down-delay", cfg.SimDownDelay, "how long a simulated lab takes to go down (--runner sim)")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", cfg.ShutdownGrace, "on SIGTERM, let in-flight requests run this long before cancelling them")
	fs.BoolVar(&cfg.TeardownOnExit, "teardown-on-exit", cfg.TeardownOnExit, "tear the lab down at exit (default: keep it for the next start; the queue is kept either way)")
	fs.DurationVar(&cfg.MaxWait, "max-wait", cfg.MaxWait, "cap of the long-poll GET /session/{id}?wait=")
	fs.DurationVar(&cfg.UploadTimeout, "upload-timeout", cfg.UploadTimeout, "a POST /lab body must arrive within this (else 408)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "most client connections open at once (lowered to fit the descriptor limit)")
	fs.StringVar(&cfg.AuthFile, "auth-file", cfg.AuthFile, "YAML `file` of token hashes and roles; turns authentication on (SIGHUP reloads it)")
	fs.DurationVar(&cfg.MaxHold, "max-hold", cfg.MaxHold, "cap of how long a session may hold the lab; sessions asking nothing get it (0: no cap)")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", cfg.MaxSessions, "most sessions in the queue (more: 429)")
	fs.IntVar(&cfg.MaxSessionsPerOwner, "max-sessions-per-owner", cfg.MaxSessionsPerOwner, "most sessions of one owner (token name, or client address without auth; 0: no limit)")
	fs.IntVar(&cfg.QuarantineAfter, "quarantine-after", cfg.QuarantineAfter, "quarantine the host after this many failed teardowns (or failed starts of different topologies) in a row")
	fs.DurationVar(&cfg.QuarantineBackoff, "quarantine-backoff", cfg.QuarantineBackoff, "first wait before a quarantined host's cleanup is retried (doubles up to 30m)")
	fs.DurationVar(&cfg.ProbeInterval, "probe-interval", cfg.ProbeInterval, "how often /readyz's runner probe (netlab version) and lock file check run")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses args over DefaultConfig. It returns flag.ErrHelp for
// -h/--help, and an error (already phrased for the user) for bad usage.
func parseArgs(args []string) (Config, cliOptions, error) {
	cfg := DefaultConfig()
	opts := cliOptions{set: map[string]bool{}}
	fs := newFlagSet(&cfg, &opts)
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("unexpected argument %q (remotelabd takes flags only)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { opts.set[f.Name] = true })
	if opts.version {
		return cfg, opts, nil
	}
	if cfg.Debug || os.Getenv("NEOPS_NETLAB_STREAM_OUTPUT") == "1" {
		cfg.StreamOutput = true
	}
	if err := cfg.Validate(); err != nil {
		return cfg, opts, err
	}
	return cfg, opts, nil
}

// printUsage writes --help.
func printUsage(w io.Writer) {
	cfg := DefaultConfig()
	fs := newFlagSet(&cfg, &cliOptions{})
	fmt.Fprintf(w, `Usage: remotelabd [flags]

remotelabd gives test suites fair, exclusive, queued access to this host's
Netlab lab over HTTP. Durations are Go durations (90s, 10m). Exit codes:
0 stopped by SIGTERM/SIGINT (or --help, --version), 1 runtime failure,
2 bad flags or log configuration.

Environment: NEOPS_NETLAB_STREAM_OUTPUT=1 streams netlab's output to the
log; TMPDIR moves the single-instance lock and its metadata.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// byteSizeFlag is a flag.Value of a byte count written as a plain number or
// with a binary suffix: 512KiB, 32MiB, 1GiB (K, M, G accepted too).
type byteSizeFlag int64

func (b *byteSizeFlag) String() string { return byteSize(int64(*b)).String() }

func (b *byteSizeFlag) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSizeFlag(n)
	return nil
}

type byteSize int64

func (b byteSize) String() string {
	n := int64(b)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	shift := uint(0)
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"kib", 10}, {"mib", 20}, {"gib", 30}, {"k", 10}, {"m", 20}, {"g", 30}, {"b", 0}} {
		if strings.HasSuffix(lower, u.suffix) {
			t, shift = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want bytes, or a number with KiB, MiB or GiB", s)
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n << shift, nil
}
