package httpserver_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// These tests run without authentication: httptest's clients are
// loopback callers, which may use the admin routes.

func evictReq(id, reason string) request {
	return jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", api.EvictRequest{Reason: reason})
}

// TestEvict: an admin evicts by full id or by the 8-character id every
// listing shows; the evicted client's next call says who and why, and the
// next session gets the lab.
func TestEvict(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   func(full string) string
	}{
		{"full id", func(full string) string { return full }},
		{"8-character prefix", func(full string) string { return full[:8] }},
		{"longer prefix", func(full string) string { return full[:13] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			victim := e.createSession().SessionID
			e.mustAcquire(victim)
			next := e.createSession().SessionID
			r := e.send(evictReq(tc.id(victim), "stuck for hours"))
			require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
			assert.Empty(t, r.body)

			g := goneBody(t, e.send(post("/session/heartbeat", victim)))
			assert.Equal(t, api.OutcomeEvicted, g.Outcome)
			assert.Equal(t, "evicted by local: stuck for hours", g.Reason)
			assert.Equal(t, next, e.head())
			assert.Empty(t, e.mgr.Status().Holders, "the evicted session's references are dropped")
			assert.True(t, e.mustAcquire(next).Reused, "the lab stays warm for the next one")
			assert.Contains(t, e.logs.String(), `msg="Session removed" session=`+victim[:8]+` outcome=evicted reason="evicted by local: stuck for hours"`)
		})
	}
}

// TestEvictRefused: an unknown or too short id is 404, a request without
// a reason 422, and none of them ends anything.
func TestEvictRefused(t *testing.T) {
	e := newEnv(t)
	id := e.createSession().SessionID
	for _, tc := range []struct {
		name string
		req  request
		code int
	}{
		{"unknown id", evictReq(unknownID, "x"), http.StatusNotFound},
		{"unknown prefix", evictReq("00000000", "x"), http.StatusNotFound},
		{"prefix of 7", evictReq(id[:7], "x"), http.StatusNotFound},
		{"no body", post("/admin/sessions/"+id+"/evict", ""), http.StatusUnprocessableEntity},
		{"empty object", jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", "{}"), http.StatusUnprocessableEntity},
		{"empty reason", evictReq(id, ""), http.StatusUnprocessableEntity},
		{"blank reason", evictReq(id, " \t "), http.StatusUnprocessableEntity},
		{"reason not a string", jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", `{"reason":1}`), http.StatusUnprocessableEntity},
		{"unknown field", jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", `{"reason":"x","why":"y"}`), http.StatusUnprocessableEntity},
		{"bad JSON", jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", `{"reason":`), http.StatusUnprocessableEntity},
		{"reason with a newline", evictReq(id, "a\nb"), http.StatusUnprocessableEntity},
		{"reason of 257 characters", evictReq(id, strings.Repeat("é", 257)), http.StatusUnprocessableEntity},
		{"body over 16 KiB", evictReq(id, strings.Repeat("x", 16<<10)), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.send(tc.req)
			require.Equal(t, tc.code, r.code, "%s", r.body)
			switch tc.code {
			case http.StatusNotFound:
				plainNotFound(t, r)
			case http.StatusUnprocessableEntity:
				is := r.issues(t)
				require.Len(t, is, 1)
				assert.Equal(t, "reason", is[0].Loc[len(is[0].Loc)-1])
			}
			assert.Equal(t, id, e.head(), "a refused eviction ended the session")
		})
	}
	assert.Empty(t, e.b.History(10))
}

// TestEvictDuringUp: evicting a session whose netlab up runs cancels the
// up; its acquire answers 404 with the eviction's reason, and the next
// session gets a clean host.
func TestEvictDuringUp(t *testing.T) {
	b := newBlocker()
	e := newEnv(t, withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}))
	id := e.createSession().SessionID
	next := e.createSession().SessionID
	done := e.startAcquire(id)
	<-b.entered

	r := e.send(evictReq(id[:8], "wrong topology"))
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	r = <-done
	g := goneBody(t, r)
	assert.Equal(t, api.OutcomeEvicted, g.Outcome)
	assert.Equal(t, "evicted by local: wrong topology", g.Reason)

	calls := e.runner.Calls()
	require.NotEmpty(t, calls)
	assert.Equal(t, "up", calls[0].Op)
	assert.ErrorIs(t, calls[0].Err, context.Canceled, "the up was interrupted")
	st := e.mgr.Status()
	assert.Equal(t, lab.StateNone, st.State, "no half-started lab is left")
	assert.Empty(t, st.Holders)
	assert.Equal(t, next, e.head())
	close(b.release)
	assert.False(t, e.mustAcquire(next).Reused)
}

// TestAdminDestroyLab: DELETE /admin/lab tears the lab down whoever holds
// it (202), then finds none (204); the holder keeps its session.
func TestAdminDestroyLab(t *testing.T) {
	e := newEnv(t)
	id := e.createSession().SessionID
	e.mustAcquire(id)
	r := e.send(del("/admin/lab", ""))
	require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
	assert.Equal(t, lab.StateNone, e.mgr.Status().State)
	assert.Equal(t, "down", e.runner.Calls()[1].Op)
	r = e.send(del("/admin/lab", ""))
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	assert.Len(t, e.runner.Calls(), 2)

	assert.Equal(t, id, e.head(), "the holder keeps its session")
	var st api.LabStatus
	r = e.get("/lab", id)
	r.decode(t, &st)
	assert.False(t, st.Running)
	assert.Zero(t, st.RefCount)
	r = e.send(post("/lab/release", id))
	assert.Equal(t, http.StatusNotFound, r.code, "nothing left to release")
	assert.Equal(t, api.DetailNoLab, r.detail(t))
	assert.False(t, e.mustAcquire(id).Reused, "a new acquire starts the lab again")
}

// TestDrainAndResume: while draining nobody is promoted (the holder may
// finish), sessions still queue, /readyz says so; resume promotes.
func TestDrainAndResume(t *testing.T) {
	e := newEnv(t)
	a := e.createSession().SessionID
	w := e.createSession().SessionID
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/drain", "")).code)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/drain", "")).code, "draining twice is fine")

	r := e.get("/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	var ready api.Ready
	r.decode(t, &ready)
	assert.False(t, ready.Ready)
	assert.True(t, strings.HasPrefix(ready.Reason, "draining"), "reason %q", ready.Reason)

	e.mustAcquire(a) // the holder may go on
	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, "")).code)
	c := e.createSession()
	assert.Equal(t, api.StatusWaiting, c.Status, "sessions still queue")
	st := e.status(w)
	assert.Equal(t, api.StatusWaiting, st.Status, "promoted while draining")
	assert.Equal(t, http.StatusLocked, e.acquire(w, topo("lab.yml", topoA)).code)
	assert.Empty(t, e.head())
	q, _ := e.queueDoc()
	assert.True(t, q.Draining)
	assert.Nil(t, q.Holder)

	require.Equal(t, http.StatusNoContent, e.send(post("/admin/resume", "")).code)
	assert.Equal(t, api.StatusActive, e.status(w).Status)
	assert.Equal(t, http.StatusOK, e.get("/readyz", "").code)
	assert.True(t, e.mustAcquire(w).Reused)
	q, _ = e.queueDoc()
	assert.False(t, q.Draining)
}

// TestUnquarantine: a failed teardown (QuarantineAfter 1) quarantines the
// host: POST /lab is 503 with the reason, /readyz 503; an admin lifts it.
func TestUnquarantine(t *testing.T) {
	var failDown atomic.Bool
	failDown.Store(true)
	runner := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if failDown.Load() {
			return errors.New("clab destroy exited 1")
		}
		return nil
	}}
	e := newEnv(t, withRunner(runner), withBroker(func(c *broker.Config) { c.QuarantineAfter = 1 }))
	id := e.createSession().SessionID
	e.mustAcquire(id)
	r := e.send(del("/lab?force=true", id))
	require.Equal(t, http.StatusBadGateway, r.code, "%s", r.body)

	r = e.acquire(id, topo("lab.yml", topoB))
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	assert.True(t, strings.HasPrefix(r.detail(t), api.DetailQuarantined+": "), "detail %q", r.detail(t))
	assert.Contains(t, r.detail(t), "clab destroy exited 1")
	r = e.get("/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	assert.Contains(t, string(r.body), `"reason":"quarantined: `)
	q, _ := e.queueDoc()
	require.NotNil(t, q.Quarantine)
	assert.Contains(t, q.Quarantine.Reason, "clab destroy exited 1")
	assert.Equal(t, id, e.head(), "the queue keeps moving: nobody is ended")

	failDown.Store(false)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/unquarantine", "")).code)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/unquarantine", "")).code, "lifting twice is fine")
	assert.Equal(t, http.StatusOK, e.get("/readyz", "").code)
	q, _ = e.queueDoc()
	assert.Nil(t, q.Quarantine)
	r = e.acquire(id, topo("lab.yml", topoB))
	assert.Equal(t, http.StatusOK, r.code, "%s", r.body)
}

// TestAdminAudit: GET /admin/audit lists the admin actions and abnormal
// ends in order, with actor, short session id, owner and reason.
func TestAdminAudit(t *testing.T) {
	e := newEnv(t, withAudit())
	r := e.get("/admin/audit", "")
	require.Equal(t, http.StatusOK, r.code)
	assert.JSONEq(t, `[]`, string(r.body))

	a := e.open(api.SessionRequest{Owner: "alice"}).SessionID
	e.mustAcquire(a)
	w := e.open(api.SessionRequest{Owner: "bob"}).SessionID
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/drain", "")).code)
	require.Equal(t, http.StatusNoContent, e.send(evictReq(w[:8], "duplicate run")).code)
	require.Equal(t, http.StatusAccepted, e.send(del("/admin/lab", "")).code)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/resume", "")).code)
	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, "")).code) // a plain close: not audited

	r = e.get("/admin/audit", "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var got []api.AuditEntry
	strictDecode(t, r.body, &got)
	type line struct{ actor, action, session, owner, reason string }
	var lines []line
	for i, g := range got {
		lines = append(lines, line{g.Actor, g.Action, g.Session, g.Owner, g.Reason})
		assert.False(t, g.Time.IsZero())
		if i > 0 {
			assert.False(t, g.Time.Before(got[i-1].Time), "entries out of order")
		}
	}
	assert.Equal(t, []line{
		{"local", "drain", "", "", ""},
		{"local", api.OutcomeEvicted, w[:8], "bob", "evicted by local: duplicate run"},
		{"local", "destroy_lab", "", "", "lab running (lab.yml)"},
		{"local", "resume", "", "", ""},
	}, lines)
	noFullIDs(t, r.body, a, w)

	r = e.get("/admin/audit?limit=2", "")
	require.Equal(t, http.StatusOK, r.code)
	strictDecode(t, r.body, &got)
	require.Len(t, got, 2)
	assert.Equal(t, "destroy_lab", got[0].Action)
	assert.Equal(t, "resume", got[1].Action)
	for _, bad := range []string{"0", "x", "10001"} {
		assert.Equal(t, http.StatusUnprocessableEntity, e.get("/admin/audit?limit="+bad, "").code, "limit=%s", bad)
	}
}

// TestAdminNeedsLoopbackWithoutAuth: without authentication an admin
// route answers only loopback callers; anyone else gets 403 and changes
// nothing. (A recorder is the only way to pose as another address.)
func TestAdminNeedsLoopbackWithoutAuth(t *testing.T) {
	e := newEnv(t)
	id := e.createSession().SessionID
	e.mustAcquire(id)
	reqs := []struct{ method, path, body string }{
		{http.MethodPost, "/admin/sessions/" + id + "/evict", `{"reason":"x"}`},
		{http.MethodDelete, "/admin/lab", ""},
		{http.MethodPost, "/admin/drain", ""},
		{http.MethodPost, "/admin/resume", ""},
		{http.MethodPost, "/admin/unquarantine", ""},
		{http.MethodGet, "/admin/audit", ""},
	}
	for _, remote := range []string{"192.0.2.7:1234", "[2001:db8::7]:1234", "10.0.0.1:80", "localhost:1"} {
		for _, rq := range reqs {
			hr := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
			hr.Header.Set("Content-Type", "application/json")
			hr.RemoteAddr = remote
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, hr)
			require.Equal(t, http.StatusForbidden, rec.Code, "%s %s from %s: %s", rq.method, rq.path, remote, rec.Body)
			assert.JSONEq(t, `{"detail":"`+api.DetailAdminLoopbackOnly+`"}`, rec.Body.String())
		}
	}
	assert.Equal(t, id, e.head())
	assert.Equal(t, lab.StateRunning, e.mgr.Status().State)
	q, _ := e.queueDoc()
	assert.False(t, q.Draining)

	// Every loopback spelling is a loopback caller.
	for _, remote := range []string{"127.0.0.1:5", "127.8.9.10:5", "[::1]:5", "[::ffff:127.0.0.1]:5"} {
		hr := httptest.NewRequest(http.MethodGet, "/admin/audit", nil)
		hr.RemoteAddr = remote
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, hr)
		assert.Equal(t, http.StatusOK, rec.Code, "from %s: %s", remote, rec.Body)
	}
}
