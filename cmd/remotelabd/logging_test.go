package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"DEBUG": slog.LevelDebug, "info": slog.LevelInfo, "Warning": slog.LevelWarn,
		"warn": slog.LevelWarn, "ERROR": slog.LevelError, "critical": slog.LevelError,
	} {
		got, err := parseLevel(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := parseLevel("verbose")
	assert.ErrorContains(t, err, `unknown level "verbose"`)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestLoadLogConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"not yaml", "level: [", "parse log config"},
		{"unknown key", "level: info\nlevle: info\n", "line 2: field levle not found (known keys"},
		{"bad level", "level: loud\n", `level: unknown level "loud"`},
		{"bad format", "format: xml\n", `format: unknown format "xml"`},
		{"unknown component", "components:\n  database: info\n", `unknown component "database"`},
		{"bad component level", "components:\n  netlab: chatty\n", "components.netlab"},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal !!seq into a mapping"},
		{"components not a mapping", "components: all\n", "line 1: cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadLogConfig(writeFile(t, "log.yaml", tc.content))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := loadLogConfig(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorContains(t, err, "read log config")

	f, err := loadLogConfig(writeFile(t, "empty.yaml", ""))
	require.NoError(t, err, "an empty file means all defaults")
	assert.Equal(t, logConfigFile{}, f)
}

func TestResolveLogSettingsPrecedence(t *testing.T) {
	path := writeFile(t, "log.yaml", "level: warning\nformat: json\noutput: stdout\ncomponents:\n  netlab: debug\n")
	cfg := DefaultConfig()
	cfg.LogConfig = path

	s, err := resolveLogSettings(cfg, map[string]bool{})
	require.NoError(t, err)
	assert.Equal(t, slog.LevelWarn, s.level, "file level over the default")
	assert.Equal(t, "json", s.format)
	assert.Equal(t, "stdout", s.output)
	assert.Equal(t, map[string]slog.Level{"netlab": slog.LevelDebug}, s.components)

	cfg.LogLevel, cfg.LogFormat = "error", "text"
	s, err = resolveLogSettings(cfg, map[string]bool{"log-level": true, "log-format": true})
	require.NoError(t, err)
	assert.Equal(t, slog.LevelError, s.level, "explicit flag over the file")
	assert.Equal(t, "text", s.format)

	cfg.Debug = true
	s, err = resolveLogSettings(cfg, map[string]bool{"log-level": true})
	require.NoError(t, err)
	assert.Equal(t, slog.LevelDebug, s.level, "--debug over everything")
	assert.Empty(t, s.components)
}

func TestComponentFilter(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(newComponentFilter(h, slog.LevelInfo, map[string]slog.Level{
		"netlab": slog.LevelDebug,
		"http":   slog.LevelError,
	}))
	netlabLog := log.With(componentKey, "netlab")
	httpLog := log.With(componentKey, "http")
	labLog := log.With(componentKey, "lab")

	netlabLog.Debug("netlab debug")
	httpLog.Warn("http warn")
	httpLog.Error("http error")
	labLog.Debug("lab debug")
	labLog.Info("lab info")
	log.Debug("root debug")
	log.Debug("inline netlab debug", componentKey, "netlab")
	log.Info("inline http info", componentKey, "http")
	httpLog.With(componentKey, "netlab").Debug("rebound to netlab")
	netlabLog.WithGroup("g").With(componentKey, "http").Debug("grouped attr is not a component")

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		got = append(got, rec["msg"].(string))
	}
	assert.Equal(t, []string{
		"netlab debug", "http error", "lab info", "inline netlab debug",
		"rebound to netlab", "grouped attr is not a component",
	}, got)

	assert.True(t, netlabLog.Enabled(t.Context(), slog.LevelDebug))
	assert.False(t, httpLog.Enabled(t.Context(), slog.LevelWarn))
	assert.True(t, log.Enabled(t.Context(), slog.LevelDebug), "unbound: a record may name netlab")
}

func TestSetupLoggingToFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "remotelabd.log")
	cfg := DefaultConfig()
	cfg.LogConfig = writeFile(t, "log.yaml", "format: json\noutput: "+out+"\ncomponents:\n  http: error\n")
	var stdout, stderr bytes.Buffer
	l, err := setupLogging(cfg, nil, &stdout, &stderr)
	require.NoError(t, err)
	assert.True(t, l.toFile())
	assert.Equal(t, "INFO", l.level)
	l.logger.With(componentKey, "http").Info("dropped")
	l.logger.With(componentKey, "server").Info("kept")
	require.NoError(t, l.Close())

	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"msg":"kept"`)
	assert.NotContains(t, string(data), "dropped")
	assert.Empty(t, stdout.String())
	assert.Empty(t, stderr.String())

	cfg.LogConfig = writeFile(t, "log.yaml", "output: "+filepath.Join(t.TempDir(), "no", "such", "dir", "x.log")+"\n")
	_, err = setupLogging(cfg, nil, &stdout, &stderr)
	assert.ErrorContains(t, err, "open log output")
}
