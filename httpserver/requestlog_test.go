package httpserver_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// logAttr matches one key=value of slog's text format.
var logAttr = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// parseLogLine returns the attributes of one text log line.
func parseLogLine(t *testing.T, line string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range logAttr.FindAllStringSubmatch(line, -1) {
		v := m[2]
		if strings.HasPrefix(v, `"`) {
			uq, err := strconv.Unquote(v)
			require.NoError(t, err, "line %q", line)
			v = uq
		}
		out[m[1]] = v
	}
	return out
}

// requestLines returns the request log lines in logs[from:].
func requestLines(t *testing.T, logs string, from int) []map[string]string {
	t.Helper()
	var out []map[string]string
	for line := range strings.Lines(logs[from:]) {
		if a := parseLogLine(t, line); a["msg"] == "request" {
			out = append(out, a)
		}
	}
	return out
}

// sendLogged sends req and returns the request log lines it caused. It
// runs in a synctest bubble: a response may be complete before its
// handler has returned and logged, synctest.Wait waits for that.
func (e *env) sendLogged(t *testing.T, req request) (resp, []map[string]string) {
	t.Helper()
	from := len(e.logs.String())
	r := e.send(req)
	synctest.Wait()
	return r, requestLines(t, e.logs.String(), from)
}

// TestRequestLogs: every request logs one line with its client address:
// DEBUG for reads, polls and heartbeats, INFO for what changes something
// (session create and delete, lab calls, admin actions), WARN for server
// errors (but a probe's 503); session ids shortened, in paths too.
func TestRequestLogs(t *testing.T) {
	synctest.Test(t, testRequestLogs)
}

func testRequestLogs(t *testing.T) {
	var failUp bool
	runner := &remotelabtest.FakeRunner{UpHook: func(context.Context, lab.Spec) error {
		if failUp {
			return errors.New("clab deploy exited 1")
		}
		return nil
	}}
	e := newEnv(t, withRunner(runner), overPipeFrom(loopbackClient))
	a := e.createSession().SessionID
	e.mustAcquire(a)
	w := e.createSession().SessionID
	for _, tc := range []struct {
		req     request
		level   string
		status  int
		session string // the session attribute
		created bool   // the session attribute is the session created
		path    string // the path attribute, when not the request's
		prepare func()
	}{
		{req: get("/session/"+a, ""), level: "DEBUG", status: 200, session: a, path: "/session/" + a[:8]},
		{req: get("/session/"+w+"?wait=0s", ""), level: "DEBUG", status: 200, session: w, path: "/session/" + w[:8]},
		{req: post("/session/heartbeat", a), level: "DEBUG", status: 204, session: a},
		{req: get("/session/"+unknownID, ""), level: "DEBUG", status: 404, session: unknownID, path: "/session/" + unknownID[:8]},
		{req: get("/lab", a), level: "DEBUG", status: 200, session: a},
		{req: get("/lab/devices", a), level: "DEBUG", status: 200, session: a},
		{req: get("/active-session", ""), level: "DEBUG", status: 200},
		{req: get("/queue", ""), level: "DEBUG", status: 200},
		{req: get("/history", ""), level: "DEBUG", status: 200},
		{req: get("/metrics", ""), level: "DEBUG", status: 200},
		{req: get("/debug/health", ""), level: "DEBUG", status: 200},
		{req: get("/healthz", ""), level: "DEBUG", status: 204},
		{req: get("/readyz", ""), level: "DEBUG", status: 200},
		{req: get("/", ""), level: "DEBUG", status: 200},
		{req: get("/admin/audit", ""), level: "DEBUG", status: 200},
		{req: get("/nowhere", ""), level: "DEBUG", status: 404},
		{req: post("/session", ""), level: "INFO", status: 201, created: true},
		{req: jsonReq(http.MethodPost, "/session", `{"owner":`), level: "INFO", status: 422},
		{req: acquireReq(a, topo("lab.yml", topoA)), level: "INFO", status: 200, session: a},
		{req: post("/lab/release", a), level: "INFO", status: 204, session: a},
		{req: post("/lab/release", a), level: "INFO", status: 204, session: a},
		{req: acquireReq(w, topo("lab.yml", topoA)), level: "INFO", status: 423, session: w},
		{req: post("/admin/drain", ""), level: "INFO", status: 204},
		{req: get("/readyz", ""), level: "DEBUG", status: 503}, // a probe's "not ready" is no server error
		{req: post("/admin/resume", ""), level: "INFO", status: 204},
		{req: acquireReq(a, topo("lab.yml", topoB)), level: "WARN", status: 502, session: a, prepare: func() { failUp = true }},
		{req: del("/lab?force=true", a), level: "INFO", status: 204, session: a},
		{req: del("/session/"+w, ""), level: "INFO", status: 204, session: w, path: "/session/" + w[:8]},
	} {
		name := tc.req.method + " " + tc.req.path
		if tc.prepare != nil {
			tc.prepare()
		}
		r, lines := e.sendLogged(t, tc.req)
		require.Equal(t, tc.status, r.code, "%s: %s", name, r.body)
		require.Len(t, lines, 1, "%s: one request line", name)
		l := lines[0]
		assert.Equal(t, tc.level, l["level"], name)
		assert.Equal(t, tc.req.method, l["method"], name)
		path := tc.path
		if path == "" {
			path, _, _ = strings.Cut(tc.req.path, "?")
		}
		assert.Equal(t, path, l["path"], name)
		assert.Equal(t, strconv.Itoa(tc.status), l["status"], name)
		assert.Equal(t, loopbackClient, l["client"], name)
		assert.NotEmpty(t, l["duration"], name)
		if tc.created {
			var c api.CreateSessionResponse
			r.decode(t, &c)
			tc.session = c.SessionID
		}
		if tc.session != "" {
			assert.Equal(t, tc.session[:8], l["session"], name)
		} else {
			assert.NotContains(t, l, "session", name)
		}
		assert.NotContains(t, l, "caller", "%s: no caller without authentication", name)
	}
	for _, id := range []string{a, w, unknownID} {
		assert.NotContains(t, e.logs.String(), id, "a full session id is logged")
	}
}

// TestRequestLogsCaller: with authentication the request line names the
// caller (the token's name); a refused caller is named by nobody.
func TestRequestLogsCaller(t *testing.T) {
	synctest.Test(t, testRequestLogsCaller)
}

func testRequestLogsCaller(t *testing.T) {
	e := newEnv(t, withAuth(authFile(t)), overPipe())
	for _, tc := range []struct {
		req    request
		status int
		caller string
	}{
		{withToken(post("/session", ""), aliceToken), 201, "alice"},
		{withToken(get("/queue", ""), viewerToken), 200, "wall"},
		{withHeader(get("/history", ""), "Authorization", basic("x", adminToken)), 200, "root"},
		{withToken(post("/admin/drain", ""), bobToken), 403, "bob"},
		{withToken(get("/queue", ""), "rlab_nobody"), 401, ""},
		{get("/queue", ""), 401, ""},
		{get("/healthz", ""), 204, ""},
	} {
		name := tc.req.method + " " + tc.req.path
		r, lines := e.sendLogged(t, tc.req)
		require.Equal(t, tc.status, r.code, "%s: %s", name, r.body)
		require.Len(t, lines, 1, name)
		assert.Equal(t, "pipe", lines[0]["client"], name)
		if tc.caller == "" {
			assert.NotContains(t, lines[0], "caller", name)
		} else {
			assert.Equal(t, tc.caller, lines[0]["caller"], name)
		}
	}
	for tok := range tokenEntries {
		assert.NotContains(t, e.logs.String(), tok, "a token is logged")
	}
	assert.NotContains(t, e.logs.String(), api.HeaderSessionID)
}
