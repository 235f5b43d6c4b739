// Package netlab is the production lab.Runner: it drives the Netlab CLI
// (https://netlab.tools) as a subprocess and is the only code in remotelab
// that executes `netlab`.
//
// Every command runs in the lab's working directory with stdin from
// /dev/null, in its own process group, under a deadline (Config). When the
// deadline passes or the caller's context ends, the whole process group
// gets SIGINT (Netlab then reports "netlab up command was interrupted" and
// exits), and SIGKILL after Config.KillGrace. Standard output is captured
// apart from standard error, so log noise never reaches the JSON parsers;
// with Config.Stream both are also logged line by line at DEBUG.
//
// Through lab.ProgressFrom(ctx) the Runner reports its steps ("up",
// "inspect", "down"), every line netlab prints (except JSON it reads as
// data), and each command's process group while it runs, which the
// lab.Manager records so that a restarted daemon can kill a netlab a
// crash left behind.
//
// The Runner parses only Netlab's JSON output: `netlab inspect -q --format
// json nodes` for the node list, one `netlab inspect -q --node NAME
// --format json` per node (run in parallel) for each device's data, and
// `netlab status --format json` to tell whether a lab still runs.
package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/remotelab-go/remotelab/lab"
)

// Config configures a Runner. The zero value of a field means its default
// (see DefaultConfig).
type Config struct {
	// Binary is the netlab executable, a path or a name looked up in PATH
	// (default "netlab").
	Binary string
	// Env holds extra "KEY=value" environment variables for netlab, on
	// top of the process environment (later entries win). FORCE_COLOR and
	// similar variables that would put escape codes into Netlab's JSON are
	// removed from the inherited environment; NO_COLOR=1 is set.
	Env []string
	// Stream logs every line netlab prints, at DEBUG as "netlab output"
	// with attributes stream (stdout or stderr) and line.
	Stream bool
	// UpTimeout bounds `netlab up` (default 30 min).
	UpTimeout time.Duration
	// DownTimeout bounds `netlab down` (default 5 min).
	DownTimeout time.Duration
	// QueryTimeout bounds each `netlab inspect` and `netlab version`
	// (default 60 s).
	QueryTimeout time.Duration
	// KillGrace is how long an interrupted netlab process group has after
	// SIGINT before it gets SIGKILL (default 10 s).
	KillGrace time.Duration
	// InspectParallelism is how many per-node `netlab inspect` commands
	// run at once (default 8; 1 runs them one by one).
	InspectParallelism int
	// Logger receives command events (default slog.Default()).
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultBinary             = "netlab"
	DefaultUpTimeout          = 30 * time.Minute
	DefaultDownTimeout        = 5 * time.Minute
	DefaultQueryTimeout       = 60 * time.Second
	DefaultKillGrace          = 10 * time.Second
	DefaultInspectParallelism = 8
)

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Binary:             DefaultBinary,
		UpTimeout:          DefaultUpTimeout,
		DownTimeout:        DefaultDownTimeout,
		QueryTimeout:       DefaultQueryTimeout,
		KillGrace:          DefaultKillGrace,
		InspectParallelism: DefaultInspectParallelism,
	}
}

// Validate reports a configuration that cannot work: negative durations
// or parallelism, or an Env entry that is not KEY=value.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"up timeout", c.UpTimeout}, {"down timeout", c.DownTimeout},
		{"query timeout", c.QueryTimeout}, {"kill grace", c.KillGrace},
	} {
		if d.v < 0 {
			return fmt.Errorf("netlab config: %s %v is negative", d.name, d.v)
		}
	}
	if c.InspectParallelism < 0 {
		return fmt.Errorf("netlab config: inspect parallelism %d is negative", c.InspectParallelism)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("netlab config: environment entry %q is not KEY=value", kv)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Binary == "" {
		c.Binary = d.Binary
	}
	if c.UpTimeout == 0 {
		c.UpTimeout = d.UpTimeout
	}
	if c.DownTimeout == 0 {
		c.DownTimeout = d.DownTimeout
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	if c.KillGrace == 0 {
		c.KillGrace = d.KillGrace
	}
	if c.InspectParallelism == 0 {
		c.InspectParallelism = d.InspectParallelism
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Runner runs labs with the netlab CLI. It implements lab.Runner. The zero
// value uses DefaultConfig; a Runner is safe for concurrent use, though
// Netlab itself allows one lab per working directory.
type Runner struct {
	cfg Config
}

// New validates cfg and returns a Runner using it.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg}, nil
}

// Config returns the Runner's configuration with defaults filled in.
func (r *Runner) Config() Config { return r.cfg.withDefaults() }

var _ lab.Runner = (*Runner)(nil)

// Up runs `netlab up <topology>` in spec.Dir, then reads the inventory
// (see Inventory) in the topology's node order. It blocks until both are
// done, Config.UpTimeout passes or ctx ends; the error then wraps
// ctx.Err(). A failed Up can leave a partly started lab: call Down.
func (r *Runner) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	if spec.Bundle == nil {
		return nil, errors.New("netlab up: spec has no bundle")
	}
	cfg := r.Config()
	topo := spec.Bundle.TopologyName()
	if strings.HasPrefix(topo, "-") {
		topo = "./" + topo // not a flag
	}
	progress := lab.ProgressFrom(ctx)
	progress.Step("up")
	if _, err := r.run(ctx, cfg, invocation{
		dir:     spec.Dir,
		timeout: cfg.UpTimeout,
		args:    []string{"up", topo},
	}); err != nil {
		return nil, err
	}
	progress.Step("inspect")
	devs, err := r.inventory(ctx, cfg, spec.Dir, spec.Bundle.Topology().NodeNames())
	if err != nil {
		return nil, fmt.Errorf("read lab inventory: %w", err)
	}
	return devs, nil
}

// Down runs `netlab down --cleanup --force` in dir. A dir that no longer
// exists, or has no netlab.lock (netlab up never got as far as starting
// nodes), has nothing to tear down and netlab does not run; Netlab's
// "snapshot file ... does not exist" answer means the same. It blocks until done,
// Config.DownTimeout passes or ctx ends.
func (r *Runner) Down(ctx context.Context, dir string) error {
	lab.ProgressFrom(ctx).Step("down")
	cfg := r.Config()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		cfg.Logger.Warn("Lab directory is gone, nothing to tear down", "dir", dir)
		return nil
	}
	// netlab up takes netlab.lock before it starts any node and only a
	// successful down removes it, so without it nothing of this directory
	// runs. Skipping down there also avoids netlab's [y/n] prompt (a crash
	// with stdin at EOF) when an up failed because instance "default" runs
	// in another directory: that lab is not ours to touch.
	if _, err := os.Stat(filepath.Join(dir, lockFile)); errors.Is(err, fs.ErrNotExist) {
		cfg.Logger.Info("No netlab.lock: nothing was started here, nothing to tear down", "dir", dir)
		return nil
	}
	_, err := r.run(ctx, cfg, invocation{
		dir:      dir,
		timeout:  cfg.DownTimeout,
		args:     []string{"down", "--cleanup", "--force"},
		expected: noSnapshot,
	})
	if e, ok := errors.AsType[*Error](err); ok && noSnapshot(e) {
		return nil
	}
	return err
}

// noSnapshot recognises netlab down's "snapshot file ... does not exist":
// nothing was started in that directory.
func noSnapshot(e *Error) bool {
	return e.ExitCode > 0 && strings.Contains(e.Stderr, "snapshot file") && strings.Contains(e.Stderr, "does not exist")
}

// Inventory returns the devices of the lab running in dir: the node list
// from `netlab inspect -q --format json nodes`, then each node's data from
// `netlab inspect -q --node NAME --format json` (Device.Raw, compacted),
// at most Config.InspectParallelism at a time. Devices come in the order
// given by order (names netlab does not report are skipped), then any
// other nodes netlab reports, sorted by name. Each command is bounded by
// Config.QueryTimeout; the first failure cancels the others. A dir without
// Netlab's snapshot has no lab: the error wraps fs.ErrNotExist and netlab
// does not run (it would describe the lab of ./topology.yml as if it ran).
func (r *Runner) Inventory(ctx context.Context, dir string, order []string) ([]lab.Device, error) {
	return r.inventory(ctx, r.Config(), dir, order)
}

// lockFile is the directory lock `netlab up` creates before it starts any
// node and a successful `netlab down` removes.
const lockFile = "netlab.lock"

// snapshotFiles are what `netlab up` leaves in the lab directory (the
// pickle since Netlab 25.09, the YAML file before) and `netlab down
// --cleanup` removes. Only their existence is checked.
var snapshotFiles = []string{"netlab.snapshot.pickle", "netlab.snapshot.yml"}

// checkSnapshot fails, wrapping fs.ErrNotExist, when dir has no snapshot.
func checkSnapshot(dir string) error {
	for _, f := range snapshotFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no lab started in %s: %s: %w", dir, snapshotFiles[0], fs.ErrNotExist)
}

func (r *Runner) inventory(ctx context.Context, cfg Config, dir string, order []string) ([]lab.Device, error) {
	if err := checkSnapshot(dir); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := r.run(ctx, cfg, invocation{
		dir:     dir,
		timeout: cfg.QueryTimeout,
		args:    []string{"inspect", "-q", "--format", "json", "nodes"},
		stdout:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var nodes map[string]json.RawMessage
	if err := decodeObject(out, &nodes); err != nil {
		return nil, fmt.Errorf("list nodes: parse netlab inspect output: %w", err)
	}
	names := nodeOrder(nodes, order)

	devs := make([]lab.Device, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.InspectParallelism)
	for i, name := range names {
		g.Go(func() error {
			out, err := r.run(gctx, cfg, invocation{
				dir:     dir,
				timeout: cfg.QueryTimeout,
				args:    []string{"inspect", "-q", "--node", name, "--format", "json"},
				stdout:  true,
			})
			if err != nil {
				return fmt.Errorf("inspect node %s: %w", name, err)
			}
			var obj map[string]json.RawMessage
			if err := decodeObject(out, &obj); err != nil {
				return fmt.Errorf("inspect node %s: parse netlab inspect output: %w", name, err)
			}
			var raw bytes.Buffer
			if err := json.Compact(&raw, jsonPart(out)); err != nil {
				return fmt.Errorf("inspect node %s: %w", name, err)
			}
			devs[i] = lab.Device{Name: name, Raw: raw.Bytes()}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return devs, nil
}

// nodeOrder lists the keys of nodes: first those in order, then the rest
// sorted.
func nodeOrder(nodes map[string]json.RawMessage, order []string) []string {
	names := make([]string, 0, len(nodes))
	seen := make(map[string]bool, len(nodes))
	for _, n := range order {
		if _, ok := nodes[n]; ok && !seen[n] {
			names = append(names, n)
			seen[n] = true
		}
	}
	var rest []string
	for n := range nodes {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// decodeObject decodes a JSON object from netlab's stdout, tolerating text
// around it (a stray warning line).
func decodeObject(out []byte, v any) error {
	part := jsonPart(out)
	if len(part) == 0 {
		return fmt.Errorf("no JSON object in %q", truncate(out, 200))
	}
	if err := json.Unmarshal(part, v); err != nil {
		return fmt.Errorf("%w in %q", err, truncate(out, 200))
	}
	return nil
}

// jsonPart returns out from its first "{" to its last "}".
func jsonPart(out []byte) []byte {
	i, j := bytes.IndexByte(out, '{'), bytes.LastIndexByte(out, '}')
	if i < 0 || j < i {
		return nil
	}
	return out[i : j+1]
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// ErrNoVersion is returned by ParseVersion (and Version) when the output
// does not start with a "netlab version <version>" line.
var ErrNoVersion = errors.New("no netlab version found")

var versionRE = regexp.MustCompile(`^netlab version (\d+\.\d+(?:\.\d+)?(?:[-.]?(?:post|dev|rc|a|b)\d*)*)$`)

// ParseVersion extracts the version from `netlab version` output, whose
// first line is "netlab version <version>" (e.g. "26.03", "25.09-post1",
// "1.9.6"). Later lines are ignored. It fails with ErrNoVersion.
func ParseVersion(out []byte) (string, error) {
	first, _, _ := strings.Cut(strings.TrimLeft(string(out), " \t\r\n"), "\n")
	first = strings.TrimSpace(first)
	m := versionRE.FindStringSubmatch(first)
	if m == nil {
		return "", fmt.Errorf("%w in %q", ErrNoVersion, truncate([]byte(first), 100))
	}
	return m[1], nil
}

// Version runs `netlab version` and returns the version it reports. It
// blocks until done, Config.QueryTimeout passes or ctx ends.
func (r *Runner) Version(ctx context.Context) (string, error) {
	cfg := r.Config()
	out, err := r.run(ctx, cfg, invocation{
		timeout: cfg.QueryTimeout,
		args:    []string{"version"},
		stdout:  true,
	})
	if err != nil {
		return "", err
	}
	v, err := ParseVersion(out)
	if err != nil {
		return "", fmt.Errorf("netlab version: %w", err)
	}
	return v, nil
}

// colorForcing are environment variables that would make Netlab's Rich
// output emit escape codes even into a pipe.
var colorForcing = []string{"FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "PY_COLORS"}

func environ(extra []string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(colorForcing, k)
	})
	env = append(env, "NO_COLOR=1")
	return append(env, extra...)
}
