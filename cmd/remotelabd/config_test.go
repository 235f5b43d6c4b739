package main

import (
	"errors"
	"flag"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = t.TempDir() // independent of the test user's home
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "0.0.0.0:8000", cfg.Addr())
	assert.Equal(t, 300*time.Second, cfg.ActiveTTL)
	assert.Equal(t, 600*time.Second, cfg.WaitingTTL)
	assert.Equal(t, int64(1<<20), cfg.Limits().MaxTopologyBytes)
}

func TestListenNetwork(t *testing.T) {
	for host, want := range map[string]string{
		"0.0.0.0":   "tcp4", // IPv4 only, as written (not a dual-stack [::])
		"127.0.0.1": "tcp4",
		"::":        "tcp",
		"::1":       "tcp",
		"localhost": "tcp",
	} {
		cfg := DefaultConfig()
		cfg.Host = host
		assert.Equal(t, want, cfg.network(), "host %q", host)
	}
}

func TestValidateRejectsNonsense(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"port too high", func(c *Config) { c.Port = 65536 }, "--port 65536"},
		{"port negative", func(c *Config) { c.Port = -1 }, "--port -1"},
		{"bad level", func(c *Config) { c.LogLevel = "loud" }, `unknown level "loud"`},
		{"bad format", func(c *Config) { c.LogFormat = "xml" }, `--log-format`},
		{"bad runner", func(c *Config) { c.Runner = "docker" }, `--runner "docker"`},
		{"negative ttl", func(c *Config) { c.ActiveTTL = -time.Second }, "--active-ttl"},
		{"zero waiting ttl", func(c *Config) { c.WaitingTTL = 0 }, "--waiting-ttl"},
		{"millisecond idle ttl", func(c *Config) { c.LabIdleTTL = time.Millisecond }, "--lab-idle-ttl 1ms: must be at least 1s"},
		{"zero up timeout", func(c *Config) { c.UpTimeout = 0 }, "--up-timeout"},
		{"zero max wait", func(c *Config) { c.MaxWait = 0 }, "--max-wait"},
		{"negative grace", func(c *Config) { c.ShutdownGrace = -1 }, "--shutdown-grace"},
		{"negative sim delay", func(c *Config) { c.SimUpDelay = -1 }, "--sim-up-delay"},
		{"zero files", func(c *Config) { c.MaxFiles = 0 }, "--max-files 0"},
		{"zero file size", func(c *Config) { c.MaxFileSize = 0 }, "--max-file-size"},
		{"total below topology", func(c *Config) { c.MaxTotalSize = 1024 }, "smaller than --max-topology-size"},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "--state-dir"},
		{"host with slash", func(c *Config) { c.Host = "10.0.0.0/8" }, "--host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.StateDir = t.TempDir()
			tc.change(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseArgs(t *testing.T) {
	t.Setenv("NEOPS_NETLAB_STREAM_OUTPUT", "")
	dir := t.TempDir()
	cfg, opts, err := parseArgs([]string{
		"--host", "127.0.0.1", "--port", "0", "--log-level", "debug", "--runner", "sim",
		"--state-dir", dir, "--active-ttl", "90s", "--max-file-size", "2MiB", "--max-wait", "30s",
	})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:0", cfg.Addr())
	assert.Equal(t, "debug", cfg.LogLevel)
	assert.Equal(t, runnerSim, cfg.Runner)
	assert.Equal(t, 90*time.Second, cfg.ActiveTTL)
	assert.Equal(t, int64(2<<20), cfg.MaxFileSize)
	assert.Equal(t, 30*time.Second, cfg.MaxWait)
	assert.False(t, cfg.StreamOutput)
	assert.True(t, opts.set["log-level"])
	assert.False(t, opts.set["log-format"])

	_, _, err = parseArgs([]string{"--help"})
	assert.True(t, errors.Is(err, flag.ErrHelp))

	_, _, err = parseArgs([]string{"--state-dir", dir, "serve"})
	assert.ErrorContains(t, err, `unexpected argument "serve"`)

	_, _, err = parseArgs([]string{"--port", "http"})
	assert.ErrorContains(t, err, "-port")

	_, opts, err = parseArgs([]string{"--version", "--port", "99999"})
	require.NoError(t, err, "--version skips validation")
	assert.True(t, opts.version)
}

func TestStreamOutput(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NEOPS_NETLAB_STREAM_OUTPUT", "1")
	cfg, _, err := parseArgs([]string{"--state-dir", dir})
	require.NoError(t, err)
	assert.True(t, cfg.StreamOutput, "NEOPS_NETLAB_STREAM_OUTPUT=1")
	assert.False(t, cfg.Debug)

	t.Setenv("NEOPS_NETLAB_STREAM_OUTPUT", "true") // the original wants exactly "1"
	cfg, _, err = parseArgs([]string{"--state-dir", dir})
	require.NoError(t, err)
	assert.False(t, cfg.StreamOutput)

	cfg, _, err = parseArgs([]string{"--state-dir", dir, "--debug"})
	require.NoError(t, err)
	assert.True(t, cfg.StreamOutput, "--debug")
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, "1KiB": 1024, "32MiB": 32 << 20, "1GiB": 1 << 30, "2m": 2 << 20, "512 kib": 512 << 10, "7B": 7,
	} {
		got, err := parseByteSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1TiB", "99999999999GiB"} {
		_, err := parseByteSize(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, "128MiB", byteSize(128<<20).String())
	assert.Equal(t, "1000", byteSize(1000).String())
	assert.Equal(t, "0", byteSize(0).String())
}

func TestUsageListsEveryFlag(t *testing.T) {
	var b strings.Builder
	printUsage(&b)
	cfg := DefaultConfig()
	fs := newFlagSet(&cfg, &cliOptions{})
	fs.VisitAll(func(f *flag.Flag) {
		assert.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(f.Name)+`(\s|$)`, b.String(), "flag %s", f.Name)
	})
}
