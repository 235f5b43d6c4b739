package main

// The tests build the remotelab binary and run it against an in-process
// server (remotelabtest.NewServer) on a loopback socket.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/gobuild"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

var (
	cliBin   string
	buildCLI = sync.OnceValue(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*processWait)
		defer cancel()
		return gobuild.Build(ctx, cliBin, "cmd/remotelab", raceEnabled)
	})
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "remotelab-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cliBin = filepath.Join(dir, "remotelab")
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

// processWait bounds every wait for the binary: generous for -race on a
// busy 2-core machine. A passing test never waits it out.
const processWait = 2 * time.Minute

// cli is one run of the binary.
type cli struct {
	cmd            *exec.Cmd
	stdout, stderr *testutil.Buffer
	done           chan struct{}
	code           int
}

// start starts the binary with args and a clean environment (no
// REMOTE_LAB_ or CI variables) plus env.
func start(t *testing.T, env []string, args ...string) *cli {
	t.Helper()
	require.NoError(t, buildCLI())
	cmd := exec.Command(cliBin, args...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "REMOTE_LAB_") && !slices.Contains(ciVars, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Eviction and other server-side ends are learned within a second.
	cmd.Env = append(cmd.Env, client.EnvHeartbeatInterval+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	c := &cli{cmd: cmd, stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	// Its own process group, so that the clean-up of a run that hangs
	// also ends the COMMAND it runs (which holds the output pipes).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second
	require.NoError(t, cmd.Start())
	go func() {
		defer close(c.done)
		_ = cmd.Wait()
		c.code = cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
		if t.Failed() {
			t.Logf("remotelab %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), c.stdout, c.stderr)
		}
	})
	return c
}

var ciVars = []string{"GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "CI_JOB_URL", "BUILD_URL"}

// wait waits for the run to end and returns its exit code.
func (c *cli) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
		return c.code
	case <-time.After(processWait):
		t.Fatalf("remotelab did not exit within %v", processWait)
		return -1
	}
}

// waitFor waits until stream's content matches re.
func (c *cli) waitFor(t *testing.T, stream *testutil.Buffer, re string) []string {
	t.Helper()
	m, err := stream.WaitFor(regexp.MustCompile(re), 1, processWait, c.done)
	require.NoError(t, err)
	return m
}

// runCLI runs the binary to its end.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	c := start(t, env, args...)
	code = c.wait(t)
	return code, c.stdout.String(), c.stderr.String()
}

// server starts an in-process server and returns it with the environment
// that points the binary at it.
func server(t *testing.T, opts ...remotelabtest.ServerOption) (*remotelabtest.Server, []string) {
	t.Helper()
	srv := remotelabtest.NewServer(t, opts...)
	return srv, []string{client.EnvURL + "=" + srv.URL()}
}

// open opens a session on srv for the test.
func open(t *testing.T, srv *remotelabtest.Server, opts ...client.OpenOption) *client.Session {
	t.Helper()
	s, err := srv.Client().Open(t.Context(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, stdout, _ := runCLI(t, nil, args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Contains(t, stdout, "Usage:\n  remotelab [--server URL] [--token TOKEN] COMMAND")
		for _, c := range commands {
			assert.Contains(t, stdout, "  "+c.name+" ", "%v lists %s", args, c.name)
		}
	}
	for _, args := range [][]string{{"help", "hold"}, {"hold", "-h"}, {"hold", "testdata/lab.yml", "--help"}} {
		code, stdout, _ := runCLI(t, nil, args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Contains(t, stdout, "Usage: remotelab hold [flags] TOPOLOGY [-- COMMAND [ARG...]]")
		assert.Contains(t, stdout, "Exit status:")
		assert.Contains(t, stdout, "-devices-file PATH")
	}
	code, stdout, _ := runCLI(t, nil, "help", "admin")
	assert.Equal(t, 0, code)
	for _, sub := range []string{"evict", "drain", "resume", "unquarantine", "audit", "destroy-lab"} {
		assert.Contains(t, stdout, "Usage: remotelab admin "+sub)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Commands:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"admin", "frobnicate"}, `unknown command "admin frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"queue", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"queue", "extra"}, "unexpected arguments: extra"},
		{[]string{"status"}, "no server: pass --server URL or set REMOTE_LAB_URL"},
	} {
		code, _, stderr := runCLI(t, nil, tc.args...)
		assert.Equal(t, 2, code, "%v", tc.args)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
	}
}

// status: exit 0 ready, 2 reachable but not ready (drained through the
// admin route), 1 unreachable.
func TestStatus(t *testing.T) {
	srv, env := server(t)
	s := open(t, srv, client.WithOwner("alice@ci-3"), client.WithLabels(map[string]string{"job": "https://ci/7"}))
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml")
	require.NoError(t, err)

	code, stdout, stderr := runCLI(t, env, "status")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "Server    "+srv.URL()+" (ready)\n")
	assert.Regexp(t, `Holder    alice@ci-3 \(`+s.ID()[:8]+`\), held for \d+s, idle for \d+s\n`, stdout)
	assert.Contains(t, stdout, "          labels job=https://ci/7\n")
	assert.Regexp(t, `Lab       running lab.yml, 1 holder, since (just now|\d+s ago)\n`, stdout)
	assert.Contains(t, stdout, "Queue     0 waiting\n")
	assert.Contains(t, stdout, "Served    0 sessions\n")

	code, stdout, _ = runCLI(t, env, "status", "--json")
	require.Equal(t, 0, code)
	var doc statusDoc
	require.NoError(t, jsonDecode(stdout, &doc))
	assert.True(t, doc.Ready)
	require.NotNil(t, doc.Queue.Holder)
	assert.Equal(t, "alice@ci-3", doc.Queue.Holder.Owner)

	require.NoError(t, srv.Client().Admin().Drain(t.Context()))
	code, stdout, _ = runCLI(t, env, "status")
	assert.Equal(t, 2, code)
	assert.Regexp(t, `\(NOT READY: .*drain.*\)\n`, stdout)
	assert.Contains(t, stdout, "Draining  no session is promoted")
	code, stdout, _ = runCLI(t, env, "status", "--json")
	assert.Equal(t, 2, code)
	require.NoError(t, jsonDecode(stdout, &doc))
	assert.False(t, doc.Ready)
	assert.Contains(t, doc.Reason, "drain")

	// --server overrides the environment; a closed server is unreachable.
	srv.Close()
	code, stdout, stderr = runCLI(t, nil, "status", "--server", srv.URL())
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "remotelab status: ready: GET /readyz: ")
}

// The queue as a table and as the server's document; the history the
// same way.
func TestQueueAndHistory(t *testing.T) {
	srv, env := server(t)
	code, stdout, _ := runCLI(t, env, "queue")
	require.Equal(t, 0, code)
	assert.Equal(t, "The queue is empty.\n", stdout)
	code, stdout, _ = runCLI(t, env, "history")
	require.Equal(t, 0, code)
	assert.Equal(t, "No finished sessions.\n", stdout)

	holder := open(t, srv, client.WithOwner("alice"), client.WithLabels(map[string]string{"suite": "ospf", "job": "j1"}))
	waiter := make(chan *client.Session, 1)
	go func() {
		s, err := srv.Client().Open(context.Background(), client.WithOwner("bob"))
		assert.NoError(t, err)
		waiter <- s
	}()
	require.Eventually(t, func() bool { return srv.Broker().Len() == 2 }, processWait, 10*time.Millisecond)

	code, stdout, _ = runCLI(t, env, "queue")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 3, stdout)
	assert.Regexp(t, `^POS\s+ID\s+OWNER\s+STATUS\s+WAITED\s+ESTIMATE\s+LABELS$`, lines[0])
	assert.Regexp(t, `^0\s+`+holder.ID()[:8]+`\s+alice\s+active \d+s\s+\d+s\s+-\s+job=j1,suite=ospf$`, lines[1])
	assert.Regexp(t, `^1\s+\w{8}\s+bob\s+waiting\s+\d+s\s+-\s+-$`, lines[2])

	code, stdout, _ = runCLI(t, env, "--server", srv.URL(), "queue", "--json")
	require.Equal(t, 0, code)
	var q struct {
		Holder  struct{ Owner string }
		Waiting []struct {
			Owner    string
			Position int
		}
	}
	require.NoError(t, jsonDecode(stdout, &q))
	assert.Equal(t, "alice", q.Holder.Owner)
	require.Len(t, q.Waiting, 1)
	assert.Equal(t, "bob", q.Waiting[0].Owner)

	require.NoError(t, holder.Close(t.Context()))
	second := <-waiter
	require.NoError(t, second.Close(t.Context()))

	code, stdout, _ = runCLI(t, env, "history", "--limit", "1")
	require.Equal(t, 0, code)
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 2, stdout)
	assert.Regexp(t, `^ENDED\s+ID\s+OWNER\s+OUTCOME\s+WAITED\s+HELD\s+REASON$`, lines[0])
	assert.Regexp(t, `^(just now|\d+s ago)\s+\w{8}\s+bob\s+closed\s+\d+s\s+\d+s\s+closed by its client$`, lines[1])

	code, stdout, _ = runCLI(t, env, "history", "--json")
	require.Equal(t, 0, code)
	var h []struct{ Owner, Outcome string }
	require.NoError(t, jsonDecode(stdout, &h))
	assert.Equal(t, []struct{ Owner, Outcome string }{{"bob", "closed"}, {"alice", "closed"}}, h)
}

// The admin commands, against a loopback server without authentication.
func TestAdmin(t *testing.T) {
	srv, env := server(t)
	s := open(t, srv)
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml")
	require.NoError(t, err)

	code, stdout, _ := runCLI(t, env, "admin", "drain")
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "Draining")
	ready, _, err := srv.Client().Ready(t.Context())
	require.NoError(t, err)
	assert.False(t, ready)
	code, _, _ = runCLI(t, env, "admin", "resume")
	require.Equal(t, 0, code)
	ready, _, err = srv.Client().Ready(t.Context())
	require.NoError(t, err)
	assert.True(t, ready)

	code, stdout, _ = runCLI(t, env, "admin", "destroy-lab")
	require.Equal(t, 0, code)
	assert.Equal(t, "Lab torn down.\n", stdout)
	assert.Equal(t, 0, srv.Manager().Status().RefCount)
	code, stdout, _ = runCLI(t, env, "admin", "destroy-lab")
	require.Equal(t, 0, code)
	assert.Equal(t, "No lab was running.\n", stdout)

	code, _, _ = runCLI(t, env, "admin", "unquarantine")
	assert.Equal(t, 0, code)
	code, stdout, _ = runCLI(t, env, "admin", "audit", "--limit", "5")
	assert.Equal(t, 0, code)
	assert.Equal(t, "The audit log is empty.\n", stdout, "the test server keeps none")

	code, _, stderr := runCLI(t, env, "admin", "evict", s.ID()[:8])
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--reason is required")
	code, stdout, stderr = runCLI(t, env, "admin", "evict", s.ID()[:8], "--reason", "stuck for hours")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "Evicted session "+s.ID()[:8]+".\n", stdout)
	_, err = s.Status(t.Context())
	require.ErrorIs(t, err, client.ErrEvicted)
	assert.Contains(t, err.Error(), "evicted by local: stuck for hours")
	code, _, stderr = runCLI(t, env, "admin", "evict", "--reason", "again", s.ID()[:8])
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "404 Not Found")
}

func TestTokenNew(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "token", "new", "--name", "alice", "--role", "user")
	require.Equal(t, 0, code, stderr)
	token := regexp.MustCompile(`\n  (rlab_[A-Za-z0-9_-]{43})\n`).FindStringSubmatch(stdout)
	require.NotNil(t, token, stdout)
	entry := regexp.MustCompile(`(?s)below "tokens:", then reload it \(SIGHUP\):\n\n(.*?)\n\n`).FindStringSubmatch(stdout)
	require.NotNil(t, entry, stdout)
	assert.Contains(t, stdout, "Only the hash goes in the file")
	assert.NotContains(t, entry[1], token[1], "the entry holds only the hash")
	table := parseAuth(t, "tokens:\n"+entry[1]+"\n")
	id, ok := table.Lookup(token[1])
	require.True(t, ok)
	assert.Equal(t, "alice", id.Name)
	assert.Equal(t, "user", id.Role.String())

	for _, args := range [][]string{
		{"token", "new", "--name", "alice", "--role", "root"},
		{"token", "new", "--role", "user"},
		{"token", "new", "--name", "a\tb", "--role", "user"},
	} {
		code, stdout, stderr := runCLI(t, nil, args...)
		assert.Equal(t, 2, code, "%v", args)
		assert.Empty(t, stdout)
		assert.Contains(t, stderr, "remotelab token new: --")
	}
}

// watch prints one block per change when its output is not a terminal,
// and exits 0 on SIGINT.
func TestWatch(t *testing.T) {
	srv, env := server(t)
	w := start(t, env, "watch")
	w.waitFor(t, w.stdout, `The queue is empty\.`)
	open(t, srv, client.WithOwner("watched-owner"))
	w.waitFor(t, w.stdout, `(?s)Holder    watched-owner .*\n0\s+\w{8}\s+watched-owner\s+active`)
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 0, w.wait(t))
	assert.NotContains(t, w.stdout.String(), "\033[2J", "no screen clearing off a terminal")
}

// jsonDecode decodes the one JSON document s.
func jsonDecode(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON document in %q", s)
	}
	return nil
}

// parseAuth parses an auth file.
func parseAuth(t *testing.T, text string) *auth.Table {
	t.Helper()
	table, err := auth.Parse([]byte(text))
	require.NoError(t, err, text)
	return table
}
