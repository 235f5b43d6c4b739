package main

// Shutdown while netlab up runs: requests get JSON answers, netlab is
// interrupted and its lab torn down, a second signal exits at once.

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type labResult struct {
	code int
	body []byte
	err  error
}

// startSlowUp starts POST /lab against a fake netlab whose up hangs, and
// returns once netlab up is running (its output is streamed with --debug).
func startSlowUp(t *testing.T, p *daemonProc) <-chan labResult {
	t.Helper()
	base := p.baseURL()
	id := openSession(t, base)
	res := make(chan labResult, 1)
	go func() {
		code, body, err := doLab(base, id, testTopology)
		res <- labResult{code, body, err}
	}()
	m := p.waitFor(`INFO Creating lab directory|path=/lab status=(\d+)`)
	require.Empty(t, m[1], "POST /lab ended before netlab up got going")
	return res
}

// TestSIGTERMDuringSlowUpAnswers503 (issue 11, finding 7): SIGTERM while
// netlab up runs. During the shutdown grace a new connection is still
// accepted and answered 503 JSON (not refused); at the end of the grace
// netlab up is interrupted and the acquiring client gets 503 JSON "Server
// shutting down" (not an empty reply); the failed start's lab is torn
// down, the metadata removed, exit 0.
func TestSIGTERMDuringSlowUpAnswers503(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	e, calls := netlabEnv(t, "FAKE_NETLAB_UP_DELAY=10m", "FAKE_NETLAB_PIDFILE="+pidFile)
	killLeftovers(t, pidFile)
	p := start(t, e, "--debug", "--host", "127.0.0.1", "--port", "0", "--shutdown-grace", "2s")
	addr := p.addr()
	res := startSlowUp(t, p)
	p.signal(syscall.SIGTERM)
	p.waitFor(logRE("Active sessions at shutdown", "sessions=1", "lab=starting"))

	// Within the grace (netlab up still runs): a new connection.
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/session", nil)
	require.NoError(t, err)
	r := rawRequest(t, addr, req)
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.JSONEq(t, `{"detail":"Server shutting down"}`, string(r.body))
	assert.NotContains(t, p.out.String(), "shutdown grace; cancelling them", "answered within the grace")

	select {
	case r := <-res:
		require.NoError(t, r.err, "the acquiring client gets an answer")
		assert.Equal(t, http.StatusServiceUnavailable, r.code)
		assert.JSONEq(t, `{"detail":"Server shutting down"}`, string(r.body))
	case <-time.After(waitTimeout):
		t.Fatal("POST /lab never returned")
	}
	assert.Equal(t, 0, p.waitExit())
	out := p.out.String()
	assert.Regexp(t, logRE("Received signal, shutting down gracefully...", "signal=terminated signo=15"), out)
	assert.Regexp(t, logRE("Requests still running after the shutdown grace; cancelling them", "grace=2s"), out)
	assert.Contains(t, out, "netlab up command was interrupted")
	assert.Regexp(t, logRE("Lab torn down", "reason=start-failed"), out)
	assert.Contains(t, out, "Remote Lab Manager shutdown complete")

	upDirs := callsOf(netlabCalls(t, calls), "up lab.yml")
	require.Len(t, upDirs, 1, "netlab up ran")
	assert.True(t, hasCall(netlabCalls(t, calls), upDirs[0], "down --cleanup --force"), "the lab was torn down: %v", netlabCalls(t, calls))
	assert.NotContains(t, netlabStatus(t, e), "default")
	assert.NoDirExists(t, upDirs[0])
	assert.NoFileExists(t, e.metaPath())
}

// TestSecondSignalExitsAtOnce: a second SIGTERM does not wait for the
// shutdown grace (10m here); netlab up still gets its SIGINT, and the next
// start leaves no lab behind.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	e, _ := netlabEnv(t, "FAKE_NETLAB_UP_DELAY=10m", "FAKE_NETLAB_PIDFILE="+pidFile)
	killLeftovers(t, pidFile)
	p := start(t, e, "--debug", "--host", "127.0.0.1", "--port", "0", "--shutdown-grace", "10m")
	res := startSlowUp(t, p)
	p.signal(syscall.SIGTERM)
	p.waitFor("shutting down gracefully")
	p.waitFor("Active sessions at shutdown")
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 1, p.waitExit())
	assert.Regexp(t, logRE("Received signal again, exiting immediately", "signal=terminated signo=15"), p.out.String())
	assert.NoFileExists(t, e.metaPath())
	select {
	case <-res:
	case <-time.After(waitTimeout):
		t.Fatal("POST /lab never returned")
	}

	again := start(t, e, "--host", "127.0.0.1", "--port", "0")
	again.waitFor(`msg="Startup cleanup completed successfully" .*lab=none`)
	assert.NotContains(t, netlabStatus(t, e), "default")
	labs, err := os.ReadDir(filepath.Join(e.stateDir, "netlab", "labs"))
	require.NoError(t, err)
	assert.Empty(t, labs, "no lab directory left")
	again.signal(syscall.SIGTERM)
	assert.Equal(t, 0, again.waitExit())
}
