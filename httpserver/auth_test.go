package httpserver_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
)

// The tokens of the auth file the tests write.
const (
	viewerToken = "rlab_wall_0123456789"
	aliceToken  = "rlab_alice_0123456789"
	bobToken    = "rlab_bob_0123456789"
	adminToken  = "rlab_root_0123456789"
)

// tokenEntries are the auth file's entries: token → identity.
var tokenEntries = map[string]auth.Identity{
	viewerToken: {Name: "wall", Role: auth.Viewer},
	aliceToken:  {Name: "alice", Role: auth.User},
	bobToken:    {Name: "bob", Role: auth.User},
	adminToken:  {Name: "root", Role: auth.Admin},
}

// writeAuthFile writes an auth file holding the given tokens (by their
// SHA-256, as SPEC §10 wants) to path.
func writeAuthFile(t testing.TB, path string, tokens ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("tokens:\n")
	for _, tok := range tokens {
		id := tokenEntries[tok]
		fmt.Fprintf(&b, "  - name: %s\n    role: %s\n    sha256: %s\n", id.Name, id.Role, auth.Hash(tok))
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
}

// authFile loads an auth file with all four tokens.
func authFile(t testing.TB) *auth.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.yaml")
	writeAuthFile(t, path, viewerToken, aliceToken, bobToken, adminToken)
	f, err := auth.Load(path)
	require.NoError(t, err)
	return f
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// caller is one way of presenting credentials.
type caller struct {
	name    string
	authz   string        // the Authorization header ("" for none)
	id      auth.Identity // who the server should take it for (zero: nobody)
	unknown bool          // a token is sent, but not one the server knows
}

func callers() []caller {
	cs := []caller{
		{name: "no token"},
		{name: "unknown token", authz: "Bearer rlab_nobody", unknown: true},
		{name: "unknown Basic password", authz: basic("alice", "rlab_nobody"), unknown: true},
		{name: "Basic with empty password", authz: basic("alice", "")},
		{name: "Basic with the token as user name", authz: basic(aliceToken, "")},
		{name: "empty Bearer", authz: "Bearer "},
		{name: "malformed Basic", authz: "Basic !!!"},
		{name: "unknown scheme", authz: "Token " + aliceToken},
	}
	for _, tok := range []string{viewerToken, aliceToken, bobToken, adminToken} {
		id := tokenEntries[tok]
		cs = append(cs,
			caller{name: id.Name + " Bearer", authz: "Bearer " + tok, id: id},
			caller{name: id.Name + " Basic", authz: basic("anyone", tok), id: id})
	}
	cs[len(cs)-1].authz = basic("", adminToken)  // an empty user name works too
	cs[len(cs)-2].authz = "bearer " + adminToken // and the scheme in any case
	return cs
}

// world is a server with authentication where alice holds the lab
// (session a) and bob waits (session b).
type world struct {
	*env
	alice, bob string // the sessions
}

func newWorld(t *testing.T, opts ...envOpt) *world {
	e := newEnv(t, append([]envOpt{withAuth(authFile(t))}, opts...)...)
	w := &world{env: e}
	w.alice = w.openAs(aliceToken)
	r := e.send(withToken(acquireReq(w.alice, topo("lab.yml", topoA)), aliceToken))
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	w.bob = w.openAs(bobToken)
	return w
}

// openAs creates a session with token and returns its id.
func (w *world) openAs(token string) string {
	w.t.Helper()
	r := w.send(withToken(post("/session", ""), token))
	require.Equal(w.t, http.StatusCreated, r.code, "%s", r.body)
	var c api.CreateSessionResponse
	r.decode(w.t, &c)
	return c.SessionID
}

// peek sends req and reads the answer, except an event stream's body.
func (w *world) peek(t *testing.T, req request) resp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hr, err := w.httpRequest(ctx, req)
	require.NoError(t, err)
	res, err := w.client.Do(hr)
	require.NoError(t, err)
	defer res.Body.Close()
	r := resp{code: res.StatusCode, header: res.Header}
	if res.Header.Get("Content-Type") != "text/event-stream" {
		r.body, err = io.ReadAll(res.Body)
		require.NoError(t, err)
	}
	return r
}

// route is one route of the API with what it answers a caller allowed
// to call it.
type route struct {
	name string
	need auth.Role // zero: open to all
	// req builds the request; target is the session it names, if any.
	req func(target string) request
	// names says the route names a session; ok is then the normal answer
	// for the active (alice's) and the waiting (bob's) session.
	names       bool
	ok, waiting int
}

func routes() []route {
	evict := func(id string) request {
		return jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", api.EvictRequest{Reason: "test"})
	}
	return []route{
		{name: "POST /session", need: auth.User, req: func(string) request { return post("/session", "") }, ok: http.StatusCreated},
		{name: "GET /session/{id}", need: auth.User, names: true, req: func(id string) request { return get("/session/"+id, "") }, ok: 200, waiting: 200},
		{name: "DELETE /session/{id}", need: auth.User, names: true, req: func(id string) request { return del("/session/"+id, "") }, ok: 204, waiting: 204},
		{name: "POST /session/heartbeat", need: auth.User, names: true, req: func(id string) request { return post("/session/heartbeat", id) }, ok: 204, waiting: 204},
		{name: "GET /active-session", need: auth.Viewer, req: func(string) request { return get("/active-session", "") }, ok: 200},
		{name: "POST /lab", need: auth.User, names: true, req: func(id string) request { return acquireReq(id, topo("lab.yml", topoA)) }, ok: 200, waiting: 423},
		{name: "GET /lab", need: auth.User, names: true, req: func(id string) request { return get("/lab", id) }, ok: 200, waiting: 423},
		{name: "DELETE /lab", need: auth.User, names: true, req: func(id string) request { return del("/lab?force=true", id) }, ok: 202, waiting: 423},
		{name: "GET /lab/devices", need: auth.User, names: true, req: func(id string) request { return get("/lab/devices", id) }, ok: 200, waiting: 423},
		{name: "POST /lab/release", need: auth.User, names: true, req: func(id string) request { return post("/lab/release", id) }, ok: 204, waiting: 423},
		{name: "GET /healthz", req: func(string) request { return get("/healthz", "") }, ok: 204},
		{name: "GET /readyz", req: func(string) request { return get("/readyz", "") }, ok: 200},
		{name: "GET /debug/health", need: auth.Viewer, req: func(string) request { return get("/debug/health", "") }, ok: 200},
		{name: "GET /queue", need: auth.Viewer, req: func(string) request { return get("/queue", "") }, ok: 200},
		{name: "GET /history", need: auth.Viewer, req: func(string) request { return get("/history", "") }, ok: 200},
		{name: "GET /events", need: auth.Viewer, req: func(string) request { return get("/events", "") }, ok: 200},
		{name: "GET /metrics", need: auth.Viewer, req: func(string) request { return get("/metrics", "") }, ok: 200},
		{name: "GET /", need: auth.Viewer, req: func(string) request { return get("/", "") }, ok: 200},
		{name: "POST /admin/sessions/{id}/evict", need: auth.Admin, names: true, req: evict, ok: 204, waiting: 204},
		{name: "DELETE /admin/lab", need: auth.Admin, req: func(string) request { return del("/admin/lab", "") }, ok: 202},
		{name: "POST /admin/drain", need: auth.Admin, req: func(string) request { return post("/admin/drain", "") }, ok: 204},
		{name: "POST /admin/resume", need: auth.Admin, req: func(string) request { return post("/admin/resume", "") }, ok: 204},
		{name: "POST /admin/unquarantine", need: auth.Admin, req: func(string) request { return post("/admin/unquarantine", "") }, ok: 200},
		{name: "GET /admin/audit", need: auth.Admin, req: func(string) request { return get("/admin/audit", "") }, ok: 200},
	}
}

// TestAuthMatrix: every route × every way of presenting credentials ×
// (for routes naming a session) the caller's own session and another's.
func TestAuthMatrix(t *testing.T) {
	owners := map[string]string{"active": "alice", "waiting": "bob"}
	for _, rt := range routes() {
		targets := []string{""}
		if rt.names {
			targets = []string{"active", "waiting"}
		}
		for _, target := range targets {
			for _, c := range callers() {
				name := rt.name + "/" + c.name
				if target != "" {
					name = rt.name + "/" + target + "/" + c.name
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					w := newWorld(t)
					id := map[string]string{"active": w.alice, "waiting": w.bob}[target]
					req := rt.req(id)
					if c.authz != "" {
						req = withHeader(req, "Authorization", c.authz)
					}
					r := w.peek(t, req)

					code, detail := rt.ok, ""
					if target == "waiting" {
						code = rt.waiting
					}
					switch {
					case rt.need == 0:
					case c.unknown:
						code, detail = http.StatusUnauthorized, api.DetailUnknownToken
					case c.id.Role == 0:
						code, detail = http.StatusUnauthorized, api.DetailUnauthorized
					case !c.id.Role.Allows(rt.need):
						code, detail = http.StatusForbidden, fmt.Sprintf(api.DetailRoleTooLow, c.id.Role, rt.need)
					case target != "" && c.id.Role != auth.Admin && owners[target] != c.id.Name:
						code, detail = http.StatusForbidden, api.DetailWrongOwner
					}
					require.Equal(t, code, r.code, "body %s", r.body)
					if detail != "" {
						assert.Equal(t, detail, r.detail(t))
					}
					if code == http.StatusUnauthorized {
						assert.Equal(t, []string{`Basic realm="remotelab"`, `Bearer realm="remotelab"`},
							r.header.Values("WWW-Authenticate"))
					} else {
						assert.Empty(t, r.header.Values("WWW-Authenticate"))
					}
					if code == http.StatusUnauthorized || code == http.StatusForbidden {
						// A refused call changes nothing.
						assert.Equal(t, 2, w.b.Len())
						assert.Len(t, w.runner.Calls(), 1, "only alice's up")
						head, err := w.b.Head()
						require.NoError(t, err)
						assert.Equal(t, w.alice, head.ID)
					}
				})
			}
		}
	}
}

// TestAuthOwnerIsTokenName: with authentication a session's owner is its
// token's name, whatever the body says, and admins act on any session.
func TestAuthOwnerIsTokenName(t *testing.T) {
	w := newWorld(t)
	r := w.send(withToken(jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: "mallory", Labels: map[string]string{"job": "1"}}), bobToken))
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	var c api.CreateSessionResponse
	r.decode(t, &c)
	assert.Equal(t, "bob", c.Owner)

	r = w.send(withToken(get("/queue", ""), viewerToken))
	require.Equal(t, http.StatusOK, r.code)
	var q api.Queue
	r.decode(t, &q)
	require.NotNil(t, q.Holder)
	assert.Equal(t, "alice", q.Holder.Owner)
	require.Len(t, q.Waiting, 2)
	assert.Equal(t, "bob", q.Waiting[1].Owner)
	assert.Equal(t, map[string]string{"job": "1"}, q.Waiting[1].Labels, "labels are kept")
	assert.NotContains(t, string(r.body), "mallory")

	// The admin ends alice's session; her next call learns who did it.
	r = w.send(withToken(jsonReq(http.MethodPost, "/admin/sessions/"+w.alice[:8]+"/evict", api.EvictRequest{Reason: "over time"}), adminToken))
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	g := goneBody(t, w.send(withToken(get("/session/"+w.alice, ""), aliceToken)))
	assert.Equal(t, "evicted by root: over time", g.Reason)
}

// TestAuthRevocation: a token removed from the file and reloaded is
// refused at once; a broken file keeps the previous tokens.
func TestAuthRevocation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	writeAuthFile(t, path, viewerToken, aliceToken, bobToken, adminToken)
	f, err := auth.Load(path)
	require.NoError(t, err)
	e := newEnv(t, withAuth(f))
	r := e.send(withToken(post("/session", ""), aliceToken))
	require.Equal(t, http.StatusCreated, r.code)
	var c api.CreateSessionResponse
	r.decode(t, &c)

	require.NoError(t, os.WriteFile(path, []byte("tokens: [broken\n"), 0o600))
	require.Error(t, f.Reload())
	assert.Equal(t, http.StatusNoContent, e.send(withToken(post("/session/heartbeat", c.SessionID), aliceToken)).code,
		"a broken file keeps the previous tokens")

	writeAuthFile(t, path, viewerToken, bobToken, adminToken)
	require.NoError(t, f.Reload())
	for _, req := range []request{post("/session/heartbeat", c.SessionID), get("/session/"+c.SessionID, ""), get("/queue", "")} {
		r := e.send(withHeader(req, "Authorization", basic("alice", aliceToken)))
		assert.Equal(t, http.StatusUnauthorized, r.code, "%s %s", req.method, req.path)
	}
	assert.Equal(t, http.StatusOK, e.send(withToken(get("/session/"+c.SessionID, ""), adminToken)).code)
	assert.Equal(t, http.StatusNoContent, e.get("/healthz", "").code, "the probes need nothing")
	assert.Equal(t, http.StatusOK, e.get("/readyz", "").code)
}
