package httpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// row is one line of the conformance table: a request against a fresh
// server and what must come back.
type row struct {
	name   string
	opts   []envOpt
	req    func(t *testing.T, e *env) request
	code   int
	detail string   // the exact {"detail": "..."} when set
	match  string   // a regexp the detail must match when set
	loc    []string // 422 list shape: the loc of the first issue when set
	check  func(t *testing.T, e *env, r resp)
}

// active opens a session on an empty server: it is the head.
func active(t *testing.T, e *env) string {
	c := e.createSession()
	require.Equal(t, api.StatusActive, c.Status)
	return c.SessionID
}

// waiting opens two sessions and returns the second, waiting one.
func waiting(t *testing.T, e *env) string {
	active(t, e)
	c := e.createSession()
	require.Equal(t, api.StatusWaiting, c.Status)
	return c.SessionID
}

const unknownID = "3f2c8a61-0000-4000-8000-000000000000"

func post(path, session string) request {
	return request{method: http.MethodPost, path: path, session: session}
}

func get(path, session string) request {
	return request{method: http.MethodGet, path: path, session: session}
}

func del(path, session string) request {
	return request{method: http.MethodDelete, path: path, session: session}
}

func labEndpoints() []request {
	body, ctype := form(topo("lab.yml", topoA))
	return []request{
		{method: http.MethodPost, path: "/lab", body: body, ctype: ctype},
		get("/lab", ""),
		get("/lab/devices", ""),
		post("/lab/release", ""),
		del("/lab?force=true", ""),
	}
}

func conformanceRows() []row {
	rows := []row{
		// POST /session
		{
			name: "POST /session on empty queue is active",
			req:  func(t *testing.T, e *env) request { return post("/session", "") },
			code: http.StatusCreated,
			check: func(t *testing.T, e *env, r resp) {
				var c api.CreateSessionResponse
				r.decode(t, &c)
				assert.Len(t, c.SessionID, 36)
				assert.Equal(t, 0, c.Position)
				assert.Equal(t, api.StatusActive, c.Status)
				assert.NotZero(t, c.Epoch)
				assert.Equal(t, 1, e.b.Len())
			},
		},
		{
			name: "POST /session behind another waits",
			req: func(t *testing.T, e *env) request {
				active(t, e)
				return post("/session", "")
			},
			code: http.StatusCreated,
			check: func(t *testing.T, e *env, r resp) {
				var c api.CreateSessionResponse
				r.decode(t, &c)
				assert.Equal(t, 1, c.Position)
				assert.Equal(t, api.StatusWaiting, c.Status)
				assert.Zero(t, c.Epoch)
			},
		},
		{
			name: "POST /session while draining",
			req: func(t *testing.T, e *env) request {
				e.srv.Drain()
				return post("/session", "")
			},
			code:   http.StatusServiceUnavailable,
			detail: api.DetailShuttingDown,
			check:  func(t *testing.T, e *env, r resp) { assert.Zero(t, e.b.Len()) },
		},
		// GET /session/{id}
		{
			name: "GET /session active",
			req:  func(t *testing.T, e *env) request { return get("/session/"+active(t, e), "") },
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var s api.SessionStatus
				r.decode(t, &s)
				assert.Equal(t, api.StatusActive, s.Status)
				assert.Equal(t, 0, s.Position)
				assert.NotZero(t, s.Epoch)
			},
		},
		{
			name: "GET /session waiting",
			req:  func(t *testing.T, e *env) request { return get("/session/"+waiting(t, e), "") },
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				assert.JSONEq(t, `{"status":"waiting","position":1,"epoch":0,"owner":"127.0.0.1"}`, string(r.body))
			},
		},
		{
			name:   "GET /session unknown",
			req:    func(t *testing.T, e *env) request { return get("/session/"+unknownID, "") },
			code:   http.StatusNotFound,
			detail: api.DetailSessionNotFound,
		},
		{
			name:   "GET /session/heartbeat is an unknown session",
			req:    func(t *testing.T, e *env) request { return get("/session/heartbeat", "") },
			code:   http.StatusNotFound,
			detail: api.DetailSessionNotFound,
		},
		{
			name: "GET /session wait=0 answers at once",
			req:  func(t *testing.T, e *env) request { return get("/session/"+waiting(t, e)+"?wait=0", "") },
			code: http.StatusOK,
		},
		{
			name: "GET /session bad wait",
			req:  func(t *testing.T, e *env) request { return get("/session/"+active(t, e)+"?wait=soon", "") },
			code: http.StatusUnprocessableEntity,
			loc:  []string{"query", "wait"},
			check: func(t *testing.T, e *env, r resp) {
				is := r.issues(t)
				assert.Equal(t, api.IssueDurationParsing, is[0].Type)
				assert.Equal(t, "soon", is[0].Input)
			},
		},
		{
			name: "GET /session negative wait",
			req:  func(t *testing.T, e *env) request { return get("/session/"+active(t, e)+"?wait=-1s", "") },
			code: http.StatusUnprocessableEntity,
			loc:  []string{"query", "wait"},
		},
		{
			name:   "GET /session unknown with wait",
			req:    func(t *testing.T, e *env) request { return get("/session/"+unknownID+"?wait=30s", "") },
			code:   http.StatusNotFound,
			detail: api.DetailSessionNotFound,
		},
		// DELETE /session/{id}
		{
			name: "DELETE /session without header",
			req:  func(t *testing.T, e *env) request { return del("/session/"+active(t, e), "") },
			code: http.StatusNoContent,
			check: func(t *testing.T, e *env, r resp) {
				assert.Empty(t, r.body)
				assert.Zero(t, e.b.Len())
			},
		},
		{
			name: "DELETE /session with own header promotes the next",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.createSession()
				return del("/session/"+id, id)
			},
			code: http.StatusNoContent,
			check: func(t *testing.T, e *env, r resp) {
				require.Equal(t, 1, e.b.Len())
				assert.NotEmpty(t, e.head())
			},
		},
		{
			name: "DELETE /session drops the session's lab references",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return del("/session/"+id, id)
			},
			code: http.StatusNoContent,
			check: func(t *testing.T, e *env, r resp) {
				st := e.mgr.Status()
				assert.Equal(t, lab.StateIdle, st.State)
				assert.Zero(t, st.RefCount)
			},
		},
		{
			name:   "DELETE /session unknown",
			req:    func(t *testing.T, e *env) request { return del("/session/"+unknownID, "") },
			code:   http.StatusNotFound,
			detail: api.DetailSessionNotFound,
		},
		{
			name: "DELETE /session of another session",
			req: func(t *testing.T, e *env) request {
				a := active(t, e)
				b := e.createSession().SessionID
				return del("/session/"+a, b)
			},
			code:   http.StatusForbidden,
			detail: api.DetailWrongSession,
			check:  func(t *testing.T, e *env, r resp) { assert.Equal(t, 2, e.b.Len()) },
		},
		// POST /session/heartbeat
		{
			name: "POST /session/heartbeat",
			req:  func(t *testing.T, e *env) request { return post("/session/heartbeat", waiting(t, e)) },
			code: http.StatusNoContent,
		},
		{
			name: "POST /session/heartbeat without header",
			req:  func(t *testing.T, e *env) request { return post("/session/heartbeat", "") },
			code: http.StatusUnprocessableEntity,
			check: func(t *testing.T, e *env, r resp) {
				assert.JSONEq(t, `{"detail":[{"type":"missing","loc":["header","X-Session-ID"],"msg":"Field required","input":null}]}`,
					string(r.body))
			},
		},
		{
			name:   "POST /session/heartbeat unknown",
			req:    func(t *testing.T, e *env) request { return post("/session/heartbeat", unknownID) },
			code:   http.StatusNotFound,
			detail: api.DetailSessionNotFound,
		},
		// GET /active-session
		{
			name: "GET /active-session",
			req: func(t *testing.T, e *env) request {
				waiting(t, e)
				return get("/active-session", "")
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				id := e.head()
				assert.Equal(t, `{"status":"active","position":0,"session_id":"`+id+`"}`, string(r.body))
			},
		},
		{
			name:   "GET /active-session empty",
			req:    func(t *testing.T, e *env) request { return get("/active-session", "") },
			code:   http.StatusNotFound,
			detail: api.DetailNoActiveSession,
		},
		// POST /lab
		{
			name: "POST /lab starts the lab",
			req:  func(t *testing.T, e *env) request { return acquireReq(active(t, e), topo("lab.yml", topoA)) },
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var a api.AcquireResponse
				r.decode(t, &a)
				assert.False(t, a.Reused)
				require.Len(t, a.Devices, 2)
				assert.Equal(t, "r1", a.Devices[0].Name)
				assert.Equal(t, "r2", a.Devices[1].Name)
				var raw map[string]any
				require.NoError(t, json.Unmarshal(a.Devices[0].Raw, &raw))
				assert.NotEmpty(t, raw)
				assert.Len(t, e.runner.Calls(), 1)
			},
		},
		{
			name: "POST /lab again attaches",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return acquireReq(id, topo("other-name.yaml", topoA), field(api.PartReuse, "yes"))
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var a api.AcquireResponse
				r.decode(t, &a)
				assert.True(t, a.Reused)
				assert.Len(t, a.Devices, 2)
				assert.Len(t, e.runner.Calls(), 1, "no second up")
				assert.Equal(t, 2, e.mgr.Status().RefCount)
			},
		},
		{
			name: "POST /lab with extra files writes them into the lab dir",
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), extra("configs/r1.cfg", []byte("hostname r1")),
					topo("lab.yml", topoA), extra("configs/r2.cfg", []byte("hostname r2")))
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				dir := e.mgr.Status().Dir
				for _, n := range []string{"lab.yml", "configs/r1.cfg", "configs/r2.cfg"} {
					assert.FileExists(t, filepath.Join(dir, n))
				}
			},
		},
		{
			name:   "POST /lab topology not yaml",
			req:    func(t *testing.T, e *env) request { return acquireReq(active(t, e), topo("lab.txt", topoA)) },
			code:   http.StatusBadRequest,
			detail: api.DetailBadTopologyName,
		},
		{
			name:   "POST /lab topology in a directory",
			req:    func(t *testing.T, e *env) request { return acquireReq(active(t, e), topo("dir/lab.yml", topoA)) },
			code:   http.StatusBadRequest,
			detail: api.DetailBadTopologyName,
		},
		{
			name: "POST /lab unsafe extra path",
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", topoA), extra("../x", []byte("x")))
			},
			code:   http.StatusBadRequest,
			detail: `extra_files "../x": '..' segment`,
			check:  func(t *testing.T, e *env, r resp) { assert.Empty(t, e.runner.Calls()) },
		},
		{
			name: "POST /lab conflict: the session holds another lab",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return acquireReq(id, topo("lab.yml", topoB))
			},
			code:   http.StatusConflict,
			detail: api.DetailLabConflict,
			check: func(t *testing.T, e *env, r resp) {
				assert.Contains(t, r.detail(t), "POST /lab/release")
			},
		},
		{
			name: "POST /lab conflict: reuse=false while holding the lab",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return acquireReq(id, topo("lab.yml", topoA), field(api.PartReuse, "false"))
			},
			code:   http.StatusConflict,
			detail: api.DetailLabConflict,
		},
		{
			name: "POST /lab reuse=false after release restarts",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				require.Equal(t, http.StatusNoContent, e.send(post("/lab/release", id)).code)
				return acquireReq(id, field(api.PartReuse, "0"), topo("lab.yml", topoA))
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var a api.AcquireResponse
				r.decode(t, &a)
				assert.False(t, a.Reused)
				ops := []string{}
				for _, c := range e.runner.Calls() {
					ops = append(ops, c.Op)
				}
				assert.Equal(t, []string{"up", "down", "up"}, ops)
			},
		},
		{
			name: "POST /lab topology too large",
			opts: []envOpt{withConfig(func(c *httpserver.Config) { c.Limits.MaxTopologyBytes = 64 })},
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", topoA+"# "+strings.Repeat("x", 100)+"\n"))
			},
			code:   http.StatusRequestEntityTooLarge,
			detail: `topology "lab.yml" is larger than the limit of 64 bytes`,
		},
		{
			name: "POST /lab extra file too large",
			opts: []envOpt{withConfig(func(c *httpserver.Config) { c.Limits.MaxFileBytes = 10 })},
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", topoA), extra("big.bin", make([]byte, 11)))
			},
			code:   http.StatusRequestEntityTooLarge,
			detail: `extra_files "big.bin" is larger than the limit of 10 bytes`,
		},
		{
			name: "POST /lab too many extra files",
			opts: []envOpt{withConfig(func(c *httpserver.Config) { c.Limits.MaxFiles = 2 })},
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", topoA),
					extra("a", nil), extra("b", nil), extra("c", nil))
			},
			code:   http.StatusRequestEntityTooLarge,
			detail: "Too many extra_files (limit 2)",
		},
		{
			name: "POST /lab invalid topology",
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", "name: x\nnodes: 7\n"))
			},
			code:  http.StatusUnprocessableEntity,
			match: `^lab\.yml:2:\d+: \S`,
		},
		{
			name: "POST /lab not YAML at all",
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", "nodes: [r1\n  - :"))
			},
			code:  http.StatusUnprocessableEntity,
			match: `^lab\.yml:\d+(:\d+)?: \S`,
		},
		{
			name: "POST /lab without topology part",
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), field(api.PartReuse, "true"))
			},
			code: http.StatusUnprocessableEntity,
			loc:  []string{"body", "topology"},
			check: func(t *testing.T, e *env, r resp) {
				assert.Equal(t, api.IssueMissing, r.issues(t)[0].Type)
			},
		},
		{
			name: "POST /lab not a form",
			req: func(t *testing.T, e *env) request {
				return request{method: http.MethodPost, path: "/lab", session: active(t, e),
					ctype: "application/json", body: []byte(`{}`)}
			},
			code: http.StatusUnprocessableEntity,
			loc:  []string{"body", "topology"},
		},
		{
			name: "POST /lab bad reuse",
			req: func(t *testing.T, e *env) request {
				return acquireReq(active(t, e), topo("lab.yml", topoA), field(api.PartReuse, "maybe"))
			},
			code: http.StatusUnprocessableEntity,
			loc:  []string{"body", "reuse"},
			check: func(t *testing.T, e *env, r resp) {
				is := r.issues(t)
				require.Len(t, is, 1)
				assert.Equal(t, api.IssueBoolParsing, is[0].Type)
				assert.Equal(t, "maybe", is[0].Input)
				assert.Empty(t, e.runner.Calls())
			},
		},
		{
			name: "POST /lab unknown session beats a broken body",
			req: func(t *testing.T, e *env) request {
				return request{method: http.MethodPost, path: "/lab", session: unknownID, ctype: "text/plain", body: []byte("x")}
			},
			code:   http.StatusNotFound,
			detail: api.DetailSessionNotFound,
		},
		{
			name: "POST /lab waiting session beats a broken body",
			req: func(t *testing.T, e *env) request {
				return acquireReq(waiting(t, e), field(api.PartReuse, "maybe"))
			},
			code:   http.StatusLocked,
			detail: api.DetailSessionNotActive,
		},
		{
			name: "POST /lab lab busy: another holder uses a different lab",
			req: func(t *testing.T, e *env) request {
				_, err := e.mgr.TryAcquire(context.Background(), "other-holder", bundle(t, topoB), true)
				require.NoError(t, err)
				return acquireReq(active(t, e), topo("lab.yml", topoA))
			},
			code:   http.StatusLocked,
			detail: api.DetailLabBusy,
		},
		{
			name: "POST /lab netlab fails",
			opts: []envOpt{withRunner(&remotelabtest.FakeRunner{
				UpHook: func(context.Context, lab.Spec) error {
					return errors.New("netlab up: Error: device frr needs Docker\nexit status 1")
				},
			})},
			req:   func(t *testing.T, e *env) request { return acquireReq(active(t, e), topo("lab.yml", topoA)) },
			code:  http.StatusBadGateway,
			match: `device frr needs Docker`,
			check: func(t *testing.T, e *env, r resp) {
				assert.Equal(t, lab.StateNone, e.mgr.Status().State)
			},
		},
		{
			name: "POST /lab netlab times out",
			opts: []envOpt{withRunner(&remotelabtest.FakeRunner{
				UpHook: func(context.Context, lab.Spec) error {
					return fmt.Errorf("netlab up: %w", context.DeadlineExceeded)
				},
			})},
			req:   func(t *testing.T, e *env) request { return acquireReq(active(t, e), topo("lab.yml", topoA)) },
			code:  http.StatusGatewayTimeout,
			match: `deadline exceeded`,
		},
		{
			name: "POST /lab after the manager closed",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				require.NoError(t, e.mgr.Close(context.Background()))
				return acquireReq(id, topo("lab.yml", topoA))
			},
			code:   http.StatusServiceUnavailable,
			detail: api.DetailShuttingDown,
		},
		// GET /lab
		{
			name: "GET /lab without a lab",
			req:  func(t *testing.T, e *env) request { return get("/lab", active(t, e)) },
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				assert.JSONEq(t, `{"running":false,"topology":null,"ref_count":0,"devices":[],"netlab_status":null,"state":"none"}`,
					string(r.body))
			},
		},
		{
			name: "GET /lab with a lab",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return get("/lab", id)
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var st api.LabStatus
				r.decode(t, &st)
				assert.True(t, st.Running)
				require.NotNil(t, st.Topology)
				assert.Equal(t, "lab.yml", filepath.Base(*st.Topology))
				assert.True(t, strings.HasPrefix(*st.Topology, e.work), "%s under %s", *st.Topology, e.work)
				assert.Equal(t, 1, st.RefCount)
				assert.Len(t, st.Devices, 2)
				assert.Nil(t, st.NetlabStatus)
				assert.Regexp(t, `^[0-9a-f]{64}$`, st.Fingerprint)
				assert.Equal(t, string(lab.StateRunning), st.State)
				assert.Contains(t, string(r.body), `"netlab_status":null`)
			},
		},
		// GET /lab/devices
		{
			name: "GET /lab/devices",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return get("/lab/devices", id)
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var ds []api.Device
				r.decode(t, &ds)
				require.Len(t, ds, 2)
				assert.Equal(t, "r1", ds[0].Name)
			},
		},
		{
			name:   "GET /lab/devices without a lab",
			req:    func(t *testing.T, e *env) request { return get("/lab/devices", active(t, e)) },
			code:   http.StatusNotFound,
			detail: api.DetailNoLab,
		},
		// POST /lab/release
		{
			name: "POST /lab/release",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return post("/lab/release", id)
			},
			code: http.StatusNoContent,
			check: func(t *testing.T, e *env, r resp) {
				st := e.mgr.Status()
				assert.Equal(t, lab.StateIdle, st.State)
				assert.Zero(t, st.RefCount)
			},
		},
		{
			name:   "POST /lab/release without a lab",
			req:    func(t *testing.T, e *env) request { return post("/lab/release", active(t, e)) },
			code:   http.StatusNotFound,
			detail: api.DetailNoLab,
		},
		{
			name: "POST /lab/release releases only the caller's references",
			req: func(t *testing.T, e *env) request {
				_, err := e.mgr.TryAcquire(context.Background(), "other-holder", bundle(t, topoA), true)
				require.NoError(t, err)
				return post("/lab/release", active(t, e))
			},
			code: http.StatusNoContent,
			check: func(t *testing.T, e *env, r resp) {
				assert.Equal(t, map[string]int{"other-holder": 1}, e.mgr.Status().Holders)
			},
		},
		// DELETE /lab
		{
			name: "DELETE /lab without a lab",
			req:  func(t *testing.T, e *env) request { return del("/lab?force=true", active(t, e)) },
			code: http.StatusNoContent,
		},
		{
			name: "DELETE /lab tears down (force defaults to true)",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return del("/lab", id)
			},
			code: http.StatusAccepted,
			check: func(t *testing.T, e *env, r resp) {
				assert.Empty(t, r.body)
				assert.Equal(t, lab.StateNone, e.mgr.Status().State)
				calls := e.runner.Calls()
				assert.Equal(t, "down", calls[len(calls)-1].Op)
			},
		},
		{
			name: "DELETE /lab force=false while in use",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return del("/lab?force=false", id)
			},
			code:   http.StatusConflict,
			detail: api.DetailLabInUse,
			check:  func(t *testing.T, e *env, r resp) { assert.Equal(t, lab.StateRunning, e.mgr.Status().State) },
		},
		{
			name: "DELETE /lab force=off when idle",
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				require.Equal(t, http.StatusNoContent, e.send(post("/lab/release", id)).code)
				return del("/lab?force=OFF", id)
			},
			code: http.StatusAccepted,
		},
		{
			name: "DELETE /lab bad force",
			req:  func(t *testing.T, e *env) request { return del("/lab?force=sure", active(t, e)) },
			code: http.StatusUnprocessableEntity,
			loc:  []string{"query", "force"},
		},
		{
			name: "DELETE /lab teardown fails",
			opts: []envOpt{withRunner(&remotelabtest.FakeRunner{
				DownHook: func(context.Context, string) error { return errors.New("netlab down: containers stuck") },
			})},
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return del("/lab", id)
			},
			code:  http.StatusBadGateway,
			match: `containers stuck`,
			check: func(t *testing.T, e *env, r resp) { assert.Equal(t, lab.StateDirty, e.mgr.Status().State) },
		},
		{
			name: "DELETE /lab teardown times out",
			opts: []envOpt{withRunner(&remotelabtest.FakeRunner{
				DownHook: func(context.Context, string) error {
					return fmt.Errorf("netlab down: %w", context.DeadlineExceeded)
				},
			})},
			req: func(t *testing.T, e *env) request {
				id := active(t, e)
				e.mustAcquire(id)
				return del("/lab", id)
			},
			code: http.StatusGatewayTimeout,
		},
		// health
		{
			name: "GET /healthz",
			req:  func(t *testing.T, e *env) request { return get("/healthz", "") },
			code: http.StatusNoContent,
			check: func(t *testing.T, e *env, r resp) {
				assert.Empty(t, r.body)
			},
		},
		{
			name: "GET /debug/health",
			req: func(t *testing.T, e *env) request {
				waiting(t, e)
				return get("/debug/health", "")
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var h api.Health
				r.decode(t, &h)
				assert.Equal(t, "ok", h.Status)
				assert.Equal(t, 2, h.Sessions)
				assert.Equal(t, 2, h.QueueLength)
				assert.GreaterOrEqual(t, h.Uptime, 0.0)
				now := float64(time.Now().UnixNano()) / 1e9
				assert.InDelta(t, now, h.Timestamp, 60)
				require.NotNil(t, h.Active)
				assert.Len(t, h.Active.Session, 8)
				assert.Equal(t, uint64(1), h.Active.Epoch)
				assert.Equal(t, 1, h.Waiting)
				assert.Equal(t, "none", h.Lab.State)
			},
		},
		{
			name: "GET /debug/health says who holds the lab",
			req: func(t *testing.T, e *env) request {
				id := e.createSession().SessionID
				r := e.acquire(id, topo("lab.yml", topoA))
				require.Equal(t, http.StatusOK, r.code, r.body)
				return get("/debug/health", "")
			},
			code: http.StatusOK,
			check: func(t *testing.T, e *env, r resp) {
				var h api.Health
				r.decode(t, &h)
				require.NotNil(t, h.Active)
				assert.Equal(t, "running", h.Lab.State)
				assert.Equal(t, "lab.yml", h.Lab.Topology)
				assert.Equal(t, map[string]int{h.Active.Session: 1}, h.Lab.Holders)
				assert.Equal(t, 0, h.Waiting)
			},
		},
		// routing
		{
			name:   "unknown route",
			req:    func(t *testing.T, e *env) request { return get("/nope", "") },
			code:   http.StatusNotFound,
			detail: api.DetailNotFound,
		},
		{
			name:   "wrong method",
			req:    func(t *testing.T, e *env) request { return request{method: http.MethodPut, path: "/session/x"} },
			code:   http.StatusMethodNotAllowed,
			detail: api.DetailMethodNotAllowed,
			check: func(t *testing.T, e *env, r resp) {
				assert.Contains(t, r.header.Get("Allow"), "DELETE")
			},
		},
	}
	// The session gate of every /lab* call.
	for _, ep := range labEndpoints() {
		ep := ep
		name := ep.method + " " + ep.path
		rows = append(rows,
			row{
				name: name + " without header",
				req:  func(t *testing.T, e *env) request { active(t, e); return ep },
				code: http.StatusUnprocessableEntity,
				check: func(t *testing.T, e *env, r resp) {
					assert.JSONEq(t, `{"detail":[{"type":"missing","loc":["header","X-Session-ID"],"msg":"Field required","input":null}]}`,
						string(r.body))
				},
			},
			row{
				name: name + " unknown session",
				req: func(t *testing.T, e *env) request {
					active(t, e)
					r := ep
					r.session = unknownID
					return r
				},
				code:   http.StatusNotFound,
				detail: api.DetailSessionNotFound,
			},
			row{
				name: name + " waiting session",
				req: func(t *testing.T, e *env) request {
					r := ep
					r.session = waiting(t, e)
					return r
				},
				code:   http.StatusLocked,
				detail: api.DetailSessionNotActive,
				check:  func(t *testing.T, e *env, r resp) { assert.Empty(t, e.runner.Calls()) },
			},
		)
	}
	return rows
}

// TestConformance checks every row of SPEC §4: status codes, detail
// strings and the 422 list shape.
func TestConformance(t *testing.T) {
	for _, tc := range conformanceRows() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts...)
			r := e.send(tc.req(t, e))
			require.Equal(t, tc.code, r.code, "body: %s", r.body)
			if r.code >= 400 {
				assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			}
			switch {
			case tc.detail != "":
				assert.Equal(t, tc.detail, r.detail(t))
			case tc.match != "":
				assert.Regexp(t, regexp.MustCompile(tc.match), r.detail(t))
			case tc.loc != nil:
				is := r.issues(t)
				require.NotEmpty(t, is)
				assert.Equal(t, tc.loc, is[0].Loc)
			}
			if tc.check != nil {
				tc.check(t, e, r)
			}
		})
	}
}

// TestMissingTopologyAndBadReuse reports both validation issues at once,
// as FastAPI did.
func TestMissingTopologyAndBadReuse(t *testing.T) {
	e := newEnv(t)
	id := e.createSession().SessionID
	r := e.acquire(id, field(api.PartReuse, "perhaps"))
	require.Equal(t, http.StatusUnprocessableEntity, r.code)
	is := r.issues(t)
	require.Len(t, is, 2)
	assert.Equal(t, []string{"body", "topology"}, is[0].Loc)
	assert.Equal(t, []string{"body", "reuse"}, is[1].Loc)
}

// TestBoolSpellings accepts every boolean spelling of SPEC §4 for reuse
// and force, and nothing else.
func TestBoolSpellings(t *testing.T) {
	e := newEnv(t)
	id := e.createSession().SessionID
	for _, v := range []string{"true", "True", "1", "yes", "ON"} {
		r := e.acquire(id, topo("lab.yml", topoA), field(api.PartReuse, v))
		require.Equal(t, http.StatusOK, r.code, "reuse=%s: %s", v, r.body)
	}
	for _, v := range []string{"false", "0", "No", "off"} {
		r := e.send(del("/lab?force="+v, id))
		require.Equal(t, http.StatusConflict, r.code, "force=%s: %s", v, r.body)
	}
	for _, v := range []string{"t", "n", "2"} {
		r := e.send(del("/lab?force="+v, id))
		require.Equal(t, http.StatusUnprocessableEntity, r.code, "force=%s: %s", v, r.body)
	}
	for _, v := range []string{"t", "Y", "maybe"} {
		r := e.acquire(id, topo("lab.yml", topoA), field(api.PartReuse, v))
		require.Equal(t, http.StatusUnprocessableEntity, r.code, "reuse=%s: %s", v, r.body)
	}
}
