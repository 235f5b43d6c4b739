package httpserver_test

import (
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/broker"
)

// queueFull checks a 429 of POST /session: the detail and an integer
// Retry-After, which it returns.
func queueFull(t *testing.T, r resp, detail string) int {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, r.code, "body %s", r.body)
	assert.Equal(t, detail, r.detail(t))
	ra := r.header.Values("Retry-After")
	require.Len(t, ra, 1)
	n, err := strconv.Atoi(ra[0])
	require.NoError(t, err, "Retry-After %q is not a whole number of seconds", ra[0])
	assert.Positive(t, n)
	return n
}

// TestMaxSessions: beyond MaxSessions POST /session is 429 "Queue full"
// with Retry-After and creates nothing; the holder's calls answer as
// usual; a place that frees up can be taken.
func TestMaxSessions(t *testing.T) {
	e := newEnv(t, withBroker(func(c *broker.Config) { c.MaxSessions = 3 }))
	holder := e.createSession().SessionID
	e.mustAcquire(holder)
	e.createSession()
	w := e.createSession().SessionID

	for range 2 {
		r := e.send(post("/session", ""))
		assert.Equal(t, 60, queueFull(t, r, api.DetailQueueFull), "a minute before any hold ended")
		r = e.send(jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: "someone-else"}))
		queueFull(t, r, api.DetailQueueFull)
	}
	assert.Equal(t, 3, e.b.Len())

	for _, c := range []struct {
		req  request
		code int
	}{
		{get("/session/"+holder, ""), http.StatusOK},
		{post("/session/heartbeat", holder), http.StatusNoContent},
		{get("/lab", holder), http.StatusOK},
		{get("/lab/devices", holder), http.StatusOK},
		{post("/lab/release", holder), http.StatusNoContent},
		{acquireReq(holder, topo("lab.yml", topoA)), http.StatusOK},
		{get("/queue", ""), http.StatusOK},
		{get("/active-session", ""), http.StatusOK},
	} {
		r := e.send(c.req)
		assert.Equal(t, c.code, r.code, "%s %s: %s", c.req.method, c.req.path, r.body)
	}

	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+w, "")).code)
	assert.Equal(t, 3, e.createSession().Position+1, "the freed place is taken at the tail")
	queueFull(t, e.send(post("/session", "")), api.DetailQueueFull)
}

// TestRetryAfterFollowsHolds: Retry-After is about one hold (the mean of
// the last holds), at least 5 s and at most 5 min.
func TestRetryAfterFollowsHolds(t *testing.T) {
	for _, tc := range []struct {
		hold time.Duration
		want int
	}{
		{hold: 100 * time.Second, want: 100},
		{hold: time.Second, want: 5},
		{hold: 20 * time.Minute, want: 300},
	} {
		t.Run(tc.hold.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, overPipe(), withBroker(func(c *broker.Config) {
					c.MaxSessions = 1
					c.ActiveTTL = time.Hour
				}))
				id := e.createSession().SessionID
				time.Sleep(tc.hold)
				require.Equal(t, http.StatusNoContent, e.send(del("/session/"+id, "")).code)
				e.createSession()
				assert.Equal(t, tc.want, queueFull(t, e.send(post("/session", "")), api.DetailQueueFull))
			})
		})
	}
}

// TestMaxSessionsPerOwner: without authentication the owner a limit
// counts is the client's address, whatever owner the body names; with
// authentication it is the token's name.
func TestMaxSessionsPerOwner(t *testing.T) {
	const detail = api.DetailQueueFull + ": too many sessions of this owner (limit 2)"
	limit := withBroker(func(c *broker.Config) { c.MaxSessionsPerOwner = 2 })

	t.Run("client address", func(t *testing.T) {
		e := newEnv(t, limit)
		holder := e.open(api.SessionRequest{Owner: "alice"}).SessionID
		e.mustAcquire(holder)
		e.createSession()
		for _, owner := range []string{"", "alice", "bob", "carol"} {
			r := e.send(jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: owner}))
			queueFull(t, r, detail)
		}
		assert.Equal(t, 2, e.b.Len())
		assert.Equal(t, http.StatusOK, e.get("/lab/devices", holder).code, "the holder still works")
	})

	t.Run("token name", func(t *testing.T) {
		e := newEnv(t, limit, withAuth(tokens{
			"rlab_alice": {Name: "alice", Role: auth.User},
			"rlab_bob":   {Name: "bob", Role: auth.User},
		}))
		open := func(token, owner string) resp {
			return e.send(withToken(jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: owner}), token))
		}
		for _, owner := range []string{"", "bob"} {
			r := open("rlab_alice", owner)
			require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
		}
		queueFull(t, open("rlab_alice", "mallory"), detail)
		queueFull(t, open("rlab_alice", ""), detail)
		for range 2 {
			require.Equal(t, http.StatusCreated, open("rlab_bob", "alice").code, "bob's share is his own")
		}
		queueFull(t, open("rlab_bob", ""), detail)
		assert.Equal(t, 4, e.b.Len())
	})
}
