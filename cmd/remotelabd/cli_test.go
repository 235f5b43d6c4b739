package main

// Command-line behaviour: flags, exit codes, startup failures and where
// their reasons go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVersionFlag(t *testing.T) {
	code, stdout, stderr := runToExit(t, newEnv(t), "--version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^remotelabd \S+\n$`, stdout)
	assert.Empty(t, stderr)
}

func TestHelpListsEveryFlag(t *testing.T) {
	code, stdout, _ := runToExit(t, newEnv(t), "--help")
	assert.Equal(t, 0, code)
	for _, f := range []string{
		"host", "port", "log-level", "log-format", "log-config", "debug", "version", "runner",
		"state-dir", "active-ttl", "waiting-ttl", "lab-idle-ttl", "up-timeout", "down-timeout",
		"query-timeout", "max-topology-size", "max-file-size", "max-total-size", "max-files",
		"sim-up-delay", "sim-down-delay", "shutdown-grace", "max-wait",
		"upload-timeout", "max-connections", "auth-file", "max-hold", "max-sessions",
		"max-sessions-per-owner", "quarantine-after", "quarantine-backoff", "probe-interval",
		"teardown-on-exit",
	} {
		assert.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(f)+`(\s|$)`, stdout, "--help lists --%s", f)
	}
	for _, d := range []string{`(default "0.0.0.0")`, "(default 8000)", "(default 5m0s)", "(default 10m0s)",
		"(default 30m0s)", "(default 1MiB)", "(default 32MiB)", "(default 128MiB)", "(default 512)", "(default 100ms)",
		"(default 20ms)", "(default 16384)", "(default 10000)"} {
		assert.Contains(t, stdout, d)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	e := newEnv(t)
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(badYAML, []byte("level: [\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "chatty"}, `invalid --log-level: unknown level "chatty"`},
		{[]string{"--port", "70000"}, "invalid --port 70000"},
		{[]string{"--port", "eighty"}, "invalid value"},
		{[]string{"--active-ttl", "-5s"}, "invalid --active-ttl"},
		{[]string{"--upload-timeout", "1ms"}, "invalid --upload-timeout"},
		{[]string{"--max-connections", "3"}, "invalid --max-connections 3: must be at least 16"},
		{[]string{"--runner", "docker"}, `invalid --runner "docker"`},
		{[]string{"--log-format", "xml"}, "invalid --log-format"},
		{[]string{"--max-file-size", "lots"}, "invalid size"},
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"serve"}, `unexpected argument "serve"`},
		{[]string{"--log-config", filepath.Join(t.TempDir(), "missing.yaml")}, "read log config"},
		{[]string{"--log-config", badYAML}, "parse log config"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runToExit(t, e, append([]string{"--state-dir", e.stateDir, "--runner", "sim"}, tc.args...)...)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, tc.want)
			assert.Empty(t, stdout)
			assert.NoFileExists(t, e.metaPath())
		})
	}
}

// TestAuthFileErrorsExit2: a missing or invalid --auth-file is a
// configuration error (exit 2, systemd does not restart) with a message
// naming the file and the problem; nothing starts.
func TestAuthFileErrorsExit2(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yml")
	broken := filepath.Join(dir, "broken.yml")
	require.NoError(t, os.WriteFile(broken, []byte("tokens:\n  - name: alice\n    role: overlord\n    sha256: abc\n"), 0o600))
	notYAML := filepath.Join(dir, "notyaml.yml")
	require.NoError(t, os.WriteFile(notYAML, []byte("tokens: [\n"), 0o600))
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"missing", missing, []string{"invalid --auth-file", missing, "no such file or directory"}},
		{"bad entry", broken, []string{"invalid --auth-file", broken, "line 3"}},
		{"not yaml", notYAML, []string{"invalid --auth-file", notYAML, "invalid YAML"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim",
				"--host", "127.0.0.1", "--port", "0", "--auth-file", tc.path)
			assert.Equal(t, 2, code)
			assert.Empty(t, stdout)
			for _, w := range tc.want {
				assert.Contains(t, stderr, w)
			}
			assert.NotContains(t, stderr, "listening on")
			assert.NoFileExists(t, e.metaPath())
			assert.NoDirExists(t, e.stateDir, "nothing touched the state directory")
		})
	}
}

// TestBadHostExits2: an address this host can never listen on is a
// configuration error (exit 2: systemd must not restart it in a loop),
// with a hint; a port in use (next test) may free up and exits 1.
func TestBadHostExits2(t *testing.T) {
	for _, tc := range []struct{ host, hint string }{
		{"192.0.2.1", "the --host address is not configured on this machine"},
		{"no-such-host.invalid", "the --host name does not resolve"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			e := newEnv(t)
			code, stdout, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--host", tc.host, "--port", "0")
			assert.Equal(t, 2, code, "%s", stderr)
			assert.Empty(t, stdout)
			assert.Regexp(t, logRE("Cannot listen", "addr="+tc.host+":0"), stderr)
			assert.Contains(t, stderr, tc.hint)
			assert.NotContains(t, stderr, "listening on")
			assert.NoFileExists(t, e.metaPath(), "no metadata left behind")
		})
	}
}

func TestAddressInUseExits1(t *testing.T) {
	e := newEnv(t)
	first := start(t, newEnv(t), "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	m := first.waitFor(`listening on" .*addr=127\.0\.0\.1:([0-9]+)`)

	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--host", "127.0.0.1", "--port", m[1])
	assert.Equal(t, 1, code)
	assert.Regexp(t, logRE("Cannot listen", "addr=127.0.0.1:"+m[1], "address already in use",
		"another program listens on port "+m[1]), stderr)
	assert.NoFileExists(t, e.metaPath(), "no metadata left behind")
}

func TestMissingNetlabExits1WithHint(t *testing.T) {
	e := newEnv(t)
	e.path = t.TempDir() // no netlab here
	code, stdout, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--port", "0")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	for _, line := range []string{
		"'netlab' CLI not found in PATH. The Remote Lab Manager requires Netlab to orchestrate labs.",
		"Install Netlab: https://netlab.tools/install/ubuntu/",
		"After installation, ensure your shell can find 'netlab' (relogin or reload your shell).",
	} {
		assert.Contains(t, stderr, line)
	}
	assert.NoFileExists(t, e.metaPath(), "no metadata left behind")
}

func TestBrokenNetlabExits1(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "netlab"),
		[]byte("#!/bin/sh\necho 'Cannot import netsim Python module, netlab installation is broken' >&2\nexit 1\n"), 0o755))
	e.path = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--port", "0")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "Failed to execute 'netlab version'")
	assert.Contains(t, stderr, "installation is broken")
	assert.NoFileExists(t, e.metaPath())
}

// TestFatalErrorEchoedWhenLoggingToFile: with logs in a file, the reason a
// start failed still reaches stderr (systemctl status, a terminal).
func TestFatalErrorEchoedWhenLoggingToFile(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	holder, err := lockInstance(e.tmp, lockFileName, metaFileName, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer holder.release()
	meta := newInstanceMeta(Config{Host: "0.0.0.0", Port: 8000}, "INFO", []string{"remotelabd"})
	require.NoError(t, holder.writeMeta(meta)) // our pid: alive for the daemon

	logPath := filepath.Join(t.TempDir(), "remotelabd.log")
	cfgPath := filepath.Join(t.TempDir(), "logging.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("output: "+logPath+"\n"), 0o644))
	code, _, stderr := runToExit(t, e, "--state-dir", e.stateDir, "--runner", "sim", "--log-config", cfgPath)
	assert.Equal(t, 1, code)
	assert.Equal(t, "remotelabd: Not starting: one Remote Lab Manager per host (stop the running one first) (details in "+logPath+")\n", stderr)
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(data), fmt.Sprintf("Running instance details\" component=server pid=%d", os.Getpid()))
}

func TestLogConfigFileOutput(t *testing.T) {
	e := newEnv(t)
	logPath := filepath.Join(t.TempDir(), "remotelabd.log")
	cfgPath := filepath.Join(t.TempDir(), "logging.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("format: json\noutput: "+logPath+"\ncomponents:\n  lab: warning\n"), 0o644))
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--log-config", cfgPath)

	// The log goes to the file, not stderr.
	waitFile(t, logPath, `"msg":"listening on"`)
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit())
	assert.Empty(t, p.out.String())
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "JSON line %q", line)
		if rec["component"] == "lab" {
			assert.NotEqual(t, "INFO", rec["level"], "lab is at WARNING: %s", line)
		}
	}
	assert.Contains(t, string(data), "Remote Lab Manager shutdown complete")
	assert.Contains(t, string(data), `"component":"server"`)
}
