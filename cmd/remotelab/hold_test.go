package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// device is a device as the devices file holds it.
type device struct {
	Name string `json:"name"`
	Raw  struct {
		Mgmt struct {
			IPv4 string `json:"ipv4"`
		} `json:"mgmt"`
	} `json:"raw"`
}

// sessionGone asks the server about the ended session id.
func sessionGone(t *testing.T, srv *remotelabtest.Server, id string) api.SessionGone {
	t.Helper()
	resp, err := http.Get(srv.URL() + "/session/" + id)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	var gone api.SessionGone
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&gone))
	return gone
}

// holderID waits until srv has an active session holding the lab, and
// returns its full id.
func holderID(t *testing.T, srv *remotelabtest.Server) string {
	t.Helper()
	require.Eventually(t, func() bool { return srv.Manager().Status().RefCount == 1 }, processWait, 10*time.Millisecond)
	head, err := srv.Broker().Head()
	require.NoError(t, err)
	return head.ID
}

// hold runs COMMAND with the devices file in its environment and passes
// its exit status through; the session is closed afterwards and the
// temporary devices file is gone.
func TestHoldRunsCommand(t *testing.T) {
	srv, env := server(t)
	code, stdout, stderr := runCLI(t, append(env, "REMOTE_LAB_LABELS=team=net"), "hold", "testdata/lab.yml",
		"--owner", "cli-test", "--label", "suite=ospf", "--",
		"sh", "-c", `cat "$REMOTE_LAB_DEVICES"; echo "file=$REMOTE_LAB_DEVICES" >&2; exit 7`)
	assert.Equal(t, 7, code, stderr)

	var devices []device
	require.NoError(t, jsonDecode(stdout, &devices), "stdout is the command's alone")
	require.Len(t, devices, 2)
	assert.Equal(t, "r1", devices[0].Name)
	assert.Equal(t, "192.168.121.101", devices[0].Raw.Mgmt.IPv4)

	assert.Regexp(t, `\nr1\s+192\.168\.121\.101\s+\S+\s+\S+\n`, stderr, "the devices table goes to stderr")
	assert.Contains(t, stderr, "Lab testdata/lab.yml started in ")
	assert.Contains(t, stderr, "Released the lab and closed session ")
	path := regexpFind(t, `file=(\S+)`, stderr)
	assert.NoFileExists(t, path, "the temporary devices file is removed")

	assert.Equal(t, 0, srv.Broker().Len())
	assert.Equal(t, 0, srv.Manager().Status().RefCount)
	h, err := srv.Client().History(t.Context(), 1)
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.Equal(t, "cli-test", h[0].Owner)
	assert.Equal(t, map[string]string{"team": "net", "suite": "ospf"}, h[0].Labels)
	assert.Equal(t, api.OutcomeClosed, h[0].Outcome)
	require.NotNil(t, h[0].Lab)
	assert.Equal(t, "lab.yml", h[0].Lab.Topology)

	// A command that succeeds, with the lab reused.
	code, _, stderr = runCLI(t, env, "hold", "testdata/lab.yml", "--", "true")
	assert.Equal(t, 0, code)
	assert.Contains(t, stderr, "Lab testdata/lab.yml reused in ")
}

// Without COMMAND the devices go to stdout (--json: as JSON), and
// --devices-file is written and kept.
func TestHoldForAndDevicesFile(t *testing.T) {
	srv, env := server(t)
	path := filepath.Join(t.TempDir(), "devices.json")
	code, stdout, stderr := runCLI(t, env, "hold", "testdata/lab.yml", "--for", "100ms", "--json", "--devices-file", path)
	require.Equal(t, 0, code, stderr)
	var printed []device
	require.NoError(t, jsonDecode(stdout, &printed))
	assert.Len(t, printed, 2)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var written []device
	require.NoError(t, json.Unmarshal(data, &written))
	assert.Equal(t, printed, written)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "devices carry credentials")
	assert.Contains(t, stderr, "Holding the lab for 0s")
	assert.Contains(t, stderr, "Held the lab for 0s.")
	assert.Equal(t, 0, srv.Broker().Len())

	code, stdout, _ = runCLI(t, env, "hold", "testdata/lab.yml", "--for", "0.1")
	require.Equal(t, 0, code)
	assert.Regexp(t, `^NAME\s+MGMT\s+DEVICE\s+USER\nr1\s+192\.168\.121\.101\s`, stdout)
}

// SIGINT or SIGTERM ends a hold without COMMAND: the lab is released, the
// session closed (the server remembers it as closed), exit 0.
func TestHoldInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			srv, env := server(t)
			h := start(t, env, "hold", "testdata/lab.yml", "--for", "10m")
			id := holderID(t, srv)
			h.waitFor(t, h.stderr, `Holding the lab for 10m`)
			require.NoError(t, h.cmd.Process.Signal(sig))
			assert.Equal(t, 0, h.wait(t))
			assert.Contains(t, h.stderr.String(), "releasing the lab and closing the session")
			gone := sessionGone(t, srv, id)
			assert.Equal(t, api.OutcomeClosed, gone.Outcome)
			assert.Equal(t, 0, srv.Manager().Status().RefCount)
		})
	}
}

// A SIGINT sent to remotelab alone reaches COMMAND, whose exit status is
// passed through once the session is closed.
func TestHoldForwardsSignalToCommand(t *testing.T) {
	srv, env := server(t)
	h := start(t, env, "hold", "testdata/lab.yml", "--", "sh", "-c",
		`trap 'echo got-int; exit 5' INT; echo running; while :; do sleep 0.05; done`)
	h.waitFor(t, h.stdout, `running\n`)
	id := holderID(t, srv)
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 5, h.wait(t))
	assert.Contains(t, h.stdout.String(), "got-int")
	assert.Equal(t, api.OutcomeClosed, sessionGone(t, srv, id).Outcome)
}

// While another session holds the lab, hold shows its place (a line per
// change off a terminal) and goes on when the lab is free; interrupted
// while waiting, it exits 130 and leaves no session behind.
func TestHoldWaitsInQueue(t *testing.T) {
	srv, env := server(t)
	first := open(t, srv, client.WithOwner("first"))
	h := start(t, env, "hold", "testdata/lab.yml", "--", "true")
	h.waitFor(t, h.stderr, `Waiting for the lab: position 1 in the queue\n`)
	require.NoError(t, first.Close(t.Context()))
	assert.Equal(t, 0, h.wait(t))
	assert.Regexp(t, `Session active after \d+s in the queue\.\n`, h.stderr.String())
	assert.NotContains(t, h.stderr.String(), "\r", "no line rewriting off a terminal")

	open(t, srv, client.WithOwner("second"))
	h = start(t, env, "hold", "testdata/lab.yml", "--wait-timeout", "10m")
	// The first hold ended: there is an estimate now.
	h.waitFor(t, h.stderr, `Waiting for the lab: position 1 in the queue, (any moment now|about \S+ to go), gives up at \d\d:\d\d:\d\d\n`)
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 130, h.wait(t))
	assert.Contains(t, h.stderr.String(), "while waiting in the queue; the session is deleted")
	assert.Equal(t, 1, srv.Broker().Len(), "only the holder is left")
}

// The server ending the held session (an admin's eviction) ends hold
// with exit 3 and the reason, at once rather than at the next heartbeat
// (an hour here): hold follows the queue's events. A running COMMAND is
// stopped, since the lab may be another session's already.
func TestHoldEvicted(t *testing.T) {
	slowBeats := client.EnvHeartbeatInterval + "=3600"
	t.Run("holding", func(t *testing.T) {
		srv, env := server(t)
		h := start(t, append(env, slowBeats), "hold", "testdata/lab.yml")
		id := holderID(t, srv)
		h.waitFor(t, h.stderr, `Holding the lab until Ctrl-C`)
		require.NoError(t, srv.Client().Admin().Evict(t.Context(), id, "maintenance"))
		assert.Equal(t, 3, h.wait(t))
		assert.Contains(t, h.stderr.String(), "the server ended the session: evicted by local: maintenance")
		assert.Equal(t, 0, srv.Broker().Len())
	})
	t.Run("command", func(t *testing.T) {
		srv, env := server(t)
		h := start(t, append(env, slowBeats), "hold", "testdata/lab.yml", "--", "sh", "-c",
			`trap 'echo got-term; exit 0' TERM; echo running; while :; do sleep 0.05; done`)
		h.waitFor(t, h.stdout, `running\n`)
		id := holderID(t, srv)
		require.NoError(t, srv.Client().Admin().Evict(t.Context(), id, "maintenance"))
		assert.Equal(t, 3, h.wait(t), "COMMAND's exit 0 does not hide the eviction")
		assert.Contains(t, h.stdout.String(), "got-term")
		assert.Contains(t, h.stderr.String(), "the server ended the session while sh runs: evicted by local: maintenance; stopping sh")
		assert.Equal(t, 0, srv.Broker().Len())
	})
}

// Bad input fails before anything queues.
func TestHoldRejects(t *testing.T) {
	srv, env := server(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("nodes: 5\n"), 0o644))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"hold"}, 2, "missing TOPOLOGY"},
		{[]string{"hold", "a.yml", "b.yml"}, 2, "one TOPOLOGY only"},
		{[]string{"hold", "testdata/lab.yml", "--"}, 2, "no COMMAND after --"},
		{[]string{"hold", "testdata/lab.yml", "--for", "soon"}, 2, `invalid value "soon" for flag -for`},
		{[]string{"hold", "testdata/lab.yml", "--label", "nokey"}, 2, `label "nokey": want key=value`},
		{[]string{"hold", "testdata/lab.yml", "--owner", strings.Repeat("o", 200)}, 1, "owner must be at most 128"},
		{[]string{"hold", filepath.Join(dir, "missing.yml")}, 1, "no such file or directory"},
		{[]string{"hold", bad}, 1, "bad.yml:1:8: nodes must be a mapping or a list"},
		{[]string{"hold", "testdata/lab.yml", "--extra-files", filepath.Join(dir, "nope")}, 1, "no such file or directory"},
	} {
		code, _, stderr := runCLI(t, env, tc.args...)
		assert.Equal(t, tc.code, code, "%v", tc.args)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
	}
	code, _, stderr := runCLI(t, append(env, "REMOTE_LAB_LABELS=broken"), "hold", "testdata/lab.yml")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "REMOTE_LAB_LABELS")
	h, err := srv.Client().History(t.Context(), 0)
	require.NoError(t, err)
	assert.Empty(t, h, "nothing queued")

	// A command that is not there: 127, and the session is closed.
	code, _, stderr = runCLI(t, env, "hold", "testdata/lab.yml", "--", "./no-such-command")
	assert.Equal(t, 127, code)
	assert.Contains(t, stderr, "run ./no-such-command")
	assert.Equal(t, 0, srv.Broker().Len())
}

func regexpFind(t *testing.T, re, s string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	require.NotNil(t, m, "%s in %q", re, s)
	return m[1]
}

// A signal that arrives while COMMAND is starting (before it is the
// child signals go to) is passed on to it once it is, not lost: hold
// would otherwise wait for a COMMAND that never learns of the Ctrl-C.
func TestSignalWhileCommandStartsIsForwarded(t *testing.T) {
	intr := newInterrupts(context.Background(), io.Discard)
	defer intr.stop()
	intr.handle(syscall.SIGTERM)
	require.Error(t, intr.ctx.Err(), "the first signal cancels")

	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	intr.setChild(cmd.Process)
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws := ee.Sys().(syscall.WaitStatus)
	assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTERM, "sleep ended with %v", err)
}
