package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Components name the parts of the server in the "component" attribute of
// every log line; a log config can give each its own level.
var components = []string{"server", "http", "broker", "lab", "netlab", "store"}

// componentKey is the attribute that names a component.
const componentKey = "component"

// parseLevel accepts the original's level names in any case. WARN is
// accepted for WARNING; CRITICAL logs as ERROR (slog has no higher level).
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR", "CRITICAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want DEBUG, INFO, WARNING, ERROR or CRITICAL)", s)
}

func checkFormat(s string) error {
	if s != "text" && s != "json" {
		return fmt.Errorf("unknown format %q (want text or json)", s)
	}
	return nil
}

// logConfigFile is the YAML file of --log-config:
//
//	level: info                # default level
//	format: json               # text or json
//	output: /var/log/remotelab/remotelabd.log   # or stderr (default), stdout
//	components:                # optional per-component levels
//	  netlab: debug
//	  http: warning
type logConfigFile struct {
	Level      string            `yaml:"level"`
	Format     string            `yaml:"format"`
	Output     string            `yaml:"output"`
	Components map[string]string `yaml:"components"`
}

// logSettings is the resolved logging configuration.
type logSettings struct {
	level      slog.Level
	format     string
	output     string // "" or "stderr", "stdout", or a file path
	components map[string]slog.Level
}

// loadLogConfig reads and checks a --log-config file.
func loadLogConfig(path string) (logConfigFile, error) {
	var f logConfigFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read log config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// "line 2: field levle not found in type main.logConfigFile"
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				m, _, _ = strings.Cut(m, " in type ")
				msgs[i] = strings.ReplaceAll(m, "into main.logConfigFile", "into a mapping")
			}
			return f, fmt.Errorf("parse log config %s: %s (known keys: level, format, output, components)", path, strings.Join(msgs, "; "))
		}
		return f, fmt.Errorf("parse log config %s: %w", path, err)
	}
	if f.Level != "" {
		if _, err := parseLevel(f.Level); err != nil {
			return f, fmt.Errorf("log config %s: level: %w", path, err)
		}
	}
	if f.Format != "" {
		if err := checkFormat(f.Format); err != nil {
			return f, fmt.Errorf("log config %s: format: %w", path, err)
		}
	}
	names := make([]string, 0, len(f.Components))
	for name := range f.Components {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.Contains(components, name) {
			return f, fmt.Errorf("log config %s: unknown component %q (known: %s)", path, name, strings.Join(components, ", "))
		}
		if _, err := parseLevel(f.Components[name]); err != nil {
			return f, fmt.Errorf("log config %s: components.%s: %w", path, name, err)
		}
	}
	return f, nil
}

// resolveLogSettings merges, lowest first: the defaults, the --log-config
// file, the flags given explicitly on the command line, and --debug
// (DEBUG everywhere, component levels included).
func resolveLogSettings(cfg Config, set map[string]bool) (logSettings, error) {
	s := logSettings{format: cfg.LogFormat, components: map[string]slog.Level{}}
	level := cfg.LogLevel
	if cfg.LogConfig != "" {
		f, err := loadLogConfig(cfg.LogConfig)
		if err != nil {
			return s, err
		}
		if f.Level != "" && !set["log-level"] {
			level = f.Level
		}
		if f.Format != "" && !set["log-format"] {
			s.format = f.Format
		}
		s.output = f.Output
		for name, l := range f.Components {
			s.components[name], _ = parseLevel(l) // checked by loadLogConfig
		}
	}
	var err error
	if s.level, err = parseLevel(level); err != nil {
		return s, err
	}
	if cfg.Debug {
		s.level = slog.LevelDebug
		clear(s.components)
	}
	return s, nil
}

// logging is the process's logger and what it writes to.
type logging struct {
	logger *slog.Logger
	// file is the log file of a log config's output, or nil.
	file *os.File
	// level is the default level as a name, for the instance metadata.
	level string
}

// setupLogging builds the logger. Logs go to stderr unless a log config
// names another output.
func setupLogging(cfg Config, set map[string]bool, stdout, stderr io.Writer) (*logging, error) {
	s, err := resolveLogSettings(cfg, set)
	if err != nil {
		return nil, err
	}
	l := &logging{level: levelName(s.level)}
	var w io.Writer
	switch s.output {
	case "", "stderr":
		w = stderr
	case "stdout":
		w = stdout
	default:
		f, err := os.OpenFile(s.output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open log output: %w", err)
		}
		l.file, w = f, f
	}
	lowest := s.level
	for _, lv := range s.components {
		lowest = min(lowest, lv)
	}
	opts := &slog.HandlerOptions{Level: lowest}
	var h slog.Handler
	if s.format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if len(s.components) > 0 {
		h = newComponentFilter(h, s.level, s.components)
	}
	l.logger = slog.New(h)
	return l, nil
}

// toFile reports whether logs go to a file (so fatal startup errors are
// echoed to stderr too).
func (l *logging) toFile() bool { return l.file != nil }

// Close closes the log file, if any.
func (l *logging) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

func levelName(l slog.Level) string {
	if l == slog.LevelWarn {
		return "WARNING"
	}
	return l.String()
}

// componentFilter is a slog.Handler that applies a per-component minimum
// level. The component is the "component" attribute, set with
// logger.With("component", name) (or on a single record); components
// without their own level use the default level.
type componentFilter struct {
	next   slog.Handler
	def    slog.Level
	levels map[string]slog.Level
	lowest slog.Level // lowest of def and levels
	comp   string     // component bound by WithAttrs, "" if none
	group  bool       // attributes now go into a group: not a component
}

func newComponentFilter(next slog.Handler, def slog.Level, levels map[string]slog.Level) *componentFilter {
	lowest := def
	for _, l := range levels {
		lowest = min(lowest, l)
	}
	return &componentFilter{next: next, def: def, levels: levels, lowest: lowest}
}

func (f *componentFilter) levelOf(comp string) slog.Level {
	if l, ok := f.levels[comp]; ok {
		return l
	}
	return f.def
}

// Enabled implements slog.Handler. Without a bound component a record may
// still name one itself, so only the lowest level can be ruled out here.
func (f *componentFilter) Enabled(ctx context.Context, l slog.Level) bool {
	if f.comp == "" {
		return l >= f.lowest && f.next.Enabled(ctx, l)
	}
	return l >= f.levelOf(f.comp) && f.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (f *componentFilter) Handle(ctx context.Context, r slog.Record) error {
	comp := f.comp
	if comp == "" && !f.group {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == componentKey {
				comp = a.Value.String()
				return false
			}
			return true
		})
	}
	if r.Level < f.levelOf(comp) {
		return nil
	}
	return f.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (f *componentFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	g := *f
	if !f.group {
		for _, a := range attrs {
			if a.Key == componentKey {
				g.comp = a.Value.String()
			}
		}
	}
	g.next = f.next.WithAttrs(attrs)
	return &g
}

// WithGroup implements slog.Handler.
func (f *componentFilter) WithGroup(name string) slog.Handler {
	if name == "" {
		return f
	}
	g := *f
	g.group = true
	g.next = f.next.WithGroup(name)
	return &g
}
