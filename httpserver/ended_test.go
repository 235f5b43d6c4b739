package httpserver_test

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
)

// loopbackClient is the address the pipe env's clients appear from when a
// test needs the admin routes without authentication.
const loopbackClient = "127.0.0.1:40000"

// namingCalls are the calls that name a session, by id in the path or in
// X-Session-ID.
func namingCalls(id string) []request {
	return []request{
		get("/session/"+id, ""),
		get("/session/"+id+"?wait=10s", ""),
		del("/session/"+id, ""),
		post("/session/heartbeat", id),
		acquireReq(id, topo("lab.yml", topoA)),
		get("/lab", id),
		get("/lab/devices", id),
		post("/lab/release", id),
		del("/lab?force=true", id),
		jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", `{"reason":"again"}`),
	}
}

// TestEndedSessionSaysWhy: after each way a session can end, every call
// naming it gets the original's 404 plus outcome, reason and ended_at; an
// id never seen gets the plain 404; an hour later the end is forgotten.
func TestEndedSessionSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		outcome string
		reason  string
		// end ends the session and returns when it ended.
		end func(t *testing.T, e *env) (id string, at time.Time)
	}{
		{
			outcome: api.OutcomeClosed,
			reason:  "closed by its client",
			end: func(t *testing.T, e *env) (string, time.Time) {
				id := e.createSession().SessionID
				time.Sleep(7 * time.Second)
				require.Equal(t, http.StatusNoContent, e.send(del("/session/"+id, "")).code)
				return id, time.Now()
			},
		},
		{
			outcome: api.OutcomeExpired,
			reason:  "expired: no request for 300 s",
			end: func(t *testing.T, e *env) (string, time.Time) {
				id := e.createSession().SessionID
				start := time.Now()
				time.Sleep(activeTTL + time.Second)
				synctest.Wait()
				return id, start.Add(activeTTL)
			},
		},
		{
			outcome: api.OutcomeEvicted,
			reason:  "evicted by local: rack maintenance",
			end: func(t *testing.T, e *env) (string, time.Time) {
				id := e.createSession().SessionID
				time.Sleep(3 * time.Second)
				r := e.send(jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", api.EvictRequest{Reason: "rack maintenance"}))
				require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
				return id, time.Now()
			},
		},
		{
			outcome: api.OutcomeWaitTimeout,
			reason:  "wait_timeout: still waiting after 30 s",
			end: func(t *testing.T, e *env) (string, time.Time) {
				e.createSession()
				id := e.open(api.SessionRequest{WaitTimeout: seconds(30)}).SessionID
				start := time.Now()
				time.Sleep(31 * time.Second)
				synctest.Wait()
				return id, start.Add(30 * time.Second)
			},
		},
		{
			outcome: api.OutcomeMaxHold,
			reason:  "max_hold: held the lab for 60 s",
			end: func(t *testing.T, e *env) (string, time.Time) {
				id := e.open(api.SessionRequest{MaxHold: seconds(60)}).SessionID
				start := time.Now()
				e.mustAcquire(id)
				time.Sleep(30 * time.Second)
				require.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", id)).code)
				time.Sleep(31 * time.Second)
				synctest.Wait()
				return id, start.Add(60 * time.Second)
			},
		},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, overPipeFrom(loopbackClient))
				id, at := tc.end(t, e)
				at = at.UTC()
				for _, req := range namingCalls(id) {
					g := goneBody(t, e.send(req))
					assert.Equal(t, tc.outcome, g.Outcome, "%s %s", req.method, req.path)
					assert.Equal(t, tc.reason, g.Reason, "%s %s", req.method, req.path)
					assert.Equal(t, at, g.EndedAt, "%s %s", req.method, req.path)
				}
				for _, req := range namingCalls(unknownID) {
					plainNotFound(t, e.send(req))
				}
				h, _ := e.historyDoc(0)
				require.NotEmpty(t, h)
				assert.Equal(t, api.ShortID(id), h[0].ID)
				assert.Equal(t, tc.outcome, h[0].Outcome)
				assert.Equal(t, tc.reason, h[0].Reason)
				assert.Equal(t, at, h[0].EndedAt)

				// An hour later the server has forgotten why.
				time.Sleep(broker.EndedMemoryAge - time.Since(at) + time.Second)
				for _, req := range namingCalls(id) {
					plainNotFound(t, e.send(req))
				}
			})
		})
	}
}

// TestEndedWaiterLeavesHolderAlone: a waiter evicted while another
// session holds the lab learns its end, and the holder's calls are
// untouched.
func TestEndedWaiterLeavesHolderAlone(t *testing.T) {
	e := newEnv(t)
	holder := e.createSession().SessionID
	e.mustAcquire(holder)
	w := e.createSession().SessionID
	r := e.send(jsonReq(http.MethodPost, "/admin/sessions/"+w+"/evict", api.EvictRequest{Reason: "wrong queue"}))
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	g := goneBody(t, e.get("/session/"+w, ""))
	assert.Equal(t, api.OutcomeEvicted, g.Outcome)
	assert.Equal(t, "evicted by local: wrong queue", g.Reason)
	assert.Equal(t, http.StatusOK, e.get("/lab/devices", holder).code)
	assert.Equal(t, http.StatusOK, e.get("/session/"+holder, "").code)
}
