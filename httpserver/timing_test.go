package httpserver_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// These tests run the server over net.Pipe inside a synctest bubble, so
// TTLs and long-polls are measured on the bubble's fake clock.

const activeTTL = 300 * time.Second

func TestLongPollElapses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		wait       string
		maxWait    time.Duration
		waitingTTL time.Duration
		want       time.Duration
	}{
		{wait: "30s", want: 30 * time.Second},
		{wait: "2.5", want: 2500 * time.Millisecond},
		{wait: "1m30s", want: 60 * time.Second}, // capped at the default MaxWait
		{wait: "100", maxWait: 5 * time.Second, want: 5 * time.Second},
		// Half the waiting TTL: the session must not expire while parked.
		{name: "TTL", wait: "30s", waitingTTL: 20 * time.Second, want: 10 * time.Second},
	} {
		t.Run(tc.name+tc.wait, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, overPipe(), withConfig(func(c *httpserver.Config) { c.MaxWait = tc.maxWait }),
					withBroker(func(c *broker.Config) { c.WaitingTTL = tc.waitingTTL }))
				e.createSession()
				w := e.createSession().SessionID
				start := time.Now()
				r := e.get("/session/"+w+"?wait="+tc.wait, w)
				assert.Equal(t, tc.want, time.Since(start))
				require.Equal(t, http.StatusOK, r.code)
				assert.JSONEq(t, `{"status":"waiting","position":1,"epoch":0,"owner":"pipe"}`, string(r.body))
			})
		})
	}
}

func TestLongPollAnswersActiveAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		a := e.createSession().SessionID
		start := time.Now()
		r := e.get("/session/"+a+"?wait=60s", a)
		assert.Zero(t, time.Since(start))
		assert.Contains(t, string(r.body), `"status":"active"`)
	})
}

func TestLongPollWakesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		a := e.createSession().SessionID
		b := e.createSession().SessionID
		c := e.createSession().SessionID
		got := make(chan resp, 1)
		start := time.Now()
		go func() { got <- e.get("/session/"+c+"?wait=60s", c) }()
		synctest.Wait() // the poll is parked
		select {
		case r := <-got:
			t.Fatalf("long-poll answered before any change: %s", r.body)
		default:
		}
		// A waiter ahead leaving moves c up: the poll answers at once.
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+b, b)).code)
		r := <-got
		assert.Zero(t, time.Since(start))
		assert.JSONEq(t, `{"status":"waiting","position":1,"epoch":0,"owner":"pipe"}`, string(r.body))

		go func() { got <- e.get("/session/"+c+"?wait=60s", c) }()
		synctest.Wait()
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, a)).code)
		r = <-got
		assert.Zero(t, time.Since(start))
		var s api.SessionStatus
		r.decode(t, &s)
		assert.Equal(t, api.StatusActive, s.Status)
		assert.Equal(t, 0, s.Position)
	})
}

// TestLongPollNeverOutlastsTheWaitingTTL: waiting does not count as
// activity, so a long-poll answers after at most half the waiting TTL,
// whatever it asked for: a client parked on its session never lets it
// expire.
func TestLongPollNeverOutlastsTheWaitingTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe(), withBroker(func(c *broker.Config) { c.WaitingTTL = 10 * time.Second }))
		a := e.createSession().SessionID
		w := e.createSession().SessionID
		for range 10 { // 50 s of polling, five waiting TTLs
			start := time.Now()
			r := e.get("/session/"+w+"?wait=60s", w)
			require.Equal(t, http.StatusOK, r.code, "%s", r.body)
			assert.Equal(t, 5*time.Second, time.Since(start))
			require.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", a)).code)
		}
		assert.Equal(t, 2, e.b.Len())
	})
}

// TestLongPollsKeepAWaiterAlive: a client that keeps long-polling is never
// reaped, however long it waits.
func TestLongPollsKeepAWaiterAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		a := e.createSession().SessionID
		w := e.createSession().SessionID
		for range 12 { // 12 minutes, more than the 600 s waiting TTL
			require.Equal(t, http.StatusOK, e.get("/session/"+w+"?wait=60s", w).code)
			// Keep the head alive too, without touching w.
			require.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", a)).code)
		}
		assert.Equal(t, 2, e.b.Len())
	})
}

// TestLongPollRefreshesWhenItAnswers: a parked long-poll's client is alive
// until the answer, so the session's idle clock restarts when the poll
// answers, not when it was sent.
func TestLongPollRefreshesWhenItAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe(), withBroker(func(c *broker.Config) { c.WaitingTTL = 90 * time.Second }))
		a := e.createSession().SessionID
		w := e.createSession().SessionID
		require.Equal(t, http.StatusOK, e.get("/session/"+w+"?wait=60s", w).code)
		require.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", a)).code)
		time.Sleep(89 * time.Second)
		synctest.Wait()
		assert.Equal(t, 2, e.b.Len(), "alive 89 s after the poll answered (at half the TTL, 45 s)")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, 1, e.b.Len(), "not expired 91 s after the poll answered")
	})
}

// TestSessionPinnedDuringBlockedUp: a session whose up runs longer than
// the active TTL is not reaped; its idle clock restarts when the up ends.
func TestSessionPinnedDuringBlockedUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		e := newEnv(t, overPipe(), withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}))
		id := e.createSession().SessionID
		done := e.startAcquire(id)
		<-b.entered

		time.Sleep(3 * activeTTL)
		synctest.Wait()
		assert.Equal(t, id, e.head(), "reaped while its up was running")

		close(b.release)
		r := <-done
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)

		time.Sleep(activeTTL)
		synctest.Wait()
		assert.Equal(t, id, e.head(), "reaped before a full TTL after the up")
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Empty(t, e.head(), "not reaped a TTL after the up")
		st := e.mgr.Status()
		assert.Equal(t, lab.StateIdle, st.State)
		assert.Zero(t, st.RefCount)
		assert.Contains(t, e.logs.String(), fmt.Sprintf(`level=WARN msg="Session removed" session=%s outcome=expired reason="expired: no request for 300 s"`, id[:8]))
	})
}

// TestSessionEndedDuringUpload: a session that ends while its POST /lab
// body is still arriving gets 404, and its upload never reaches the lab
// (a start or a teardown with the ended session's context would fail, and
// leave the next holder a dirty lab).
func TestSessionEndedDuringUpload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		id := e.createSession().SessionID
		next := e.createSession().SessionID
		body, ctype := form(topo("lab.yml", topoA), extra("configs/r1.cfg", []byte("hostname r1")))
		pr, pw := io.Pipe()
		hr, err := http.NewRequest(http.MethodPost, e.base+"/lab", pr)
		require.NoError(t, err)
		hr.Header.Set(api.HeaderSessionID, id)
		hr.Header.Set("Content-Type", ctype)
		got := make(chan resp, 1)
		go func() {
			res, err := e.client.Do(hr)
			if err != nil {
				got <- resp{code: -1, body: []byte(err.Error())}
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			got <- resp{code: res.StatusCode, body: b}
		}()
		_, err = pw.Write(body[:len(body)/2])
		require.NoError(t, err)
		synctest.Wait() // the handler waits for the rest of the body

		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+id, id)).code)
		_, err = pw.Write(body[len(body)/2:])
		require.NoError(t, err)
		require.NoError(t, pw.Close())
		r := <-got
		require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
		assert.Equal(t, api.DetailSessionNotFound, r.detail(t))
		assert.Empty(t, e.runner.Calls(), "the ended session's upload reached the runner")
		assert.Equal(t, lab.StateNone, e.mgr.Status().State)
		assert.Equal(t, next, e.head())
	})
}

// TestActiveSessionIsReadOnly: polling /active-session keeps nobody alive
// (the original refreshed the head here).
func TestActiveSessionIsReadOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		id := e.createSession().SessionID
		for range 10 {
			time.Sleep(activeTTL / 10)
			synctest.Wait()
			assert.Equal(t, id, e.head())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Empty(t, e.head())
		assert.Zero(t, e.b.Len())
	})
}

// TestCallsRefreshTheSession: every call that names a session restarts
// its idle clock; an expired head hands over to the next session.
func TestCallsRefreshTheSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(id string) request
	}{
		{"GET /session", func(id string) request { return get("/session/"+id, "") }},
		{"heartbeat", func(id string) request { return post("/session/heartbeat", id) }},
		{"GET /lab", func(id string) request { return get("/lab", id) }},
		{"GET /lab/devices", func(id string) request { return get("/lab/devices", id) }},
		{"POST /lab/release", func(id string) request { return post("/lab/release", id) }},
		{"DELETE /lab", func(id string) request { return del("/lab", id) }},
		{"POST /lab", func(id string) request { return acquireReq(id, topo("lab.yml", topoA)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, overPipe())
				id := e.createSession().SessionID
				next := e.createSession().SessionID
				keep := func() { e.send(post("/session/heartbeat", next)) }
				time.Sleep(activeTTL - time.Second)
				keep()
				r := e.send(tc.req(id))
				require.Less(t, r.code, 500, "%s", r.body)
				time.Sleep(activeTTL - time.Second)
				keep()
				synctest.Wait()
				assert.Equal(t, id, e.head(), "expired although refreshed")
				time.Sleep(2 * time.Second)
				keep()
				synctest.Wait()
				assert.Equal(t, next, e.head(), "the next session was not promoted")
			})
		})
	}
}

// TestDrainEndsLongPolls: Drain answers parked long-polls at once (and
// later requests with 503), so they do not hold up a shutdown.
func TestDrainEndsLongPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		e.createSession()
		w := e.createSession().SessionID
		got := make(chan resp, 1)
		start := time.Now()
		go func() { got <- e.get("/session/"+w+"?wait=60s", w) }()
		synctest.Wait()
		e.srv.Drain()
		r := <-got
		assert.Zero(t, time.Since(start))
		assert.JSONEq(t, `{"status":"waiting","position":1,"epoch":0,"owner":"pipe"}`, string(r.body))
		r = e.get("/session/"+w+"?wait=60s", w)
		assert.Equal(t, http.StatusServiceUnavailable, r.code)
		assert.Zero(t, time.Since(start))
		assert.Equal(t, 2, e.b.Len(), "draining ends no session")
	})
}
