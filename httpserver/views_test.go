package httpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// stamp formats t as the API does (RFC 3339, UTC).
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// noFullIDs checks that no full session id appears in body.
func noFullIDs(t *testing.T, body []byte, ids ...string) {
	t.Helper()
	for _, id := range ids {
		assert.NotContains(t, string(body), id, "a full session id is listed")
		assert.Len(t, id, 36)
	}
}

// TestQueueEmpty: the whole /queue document of an empty server.
func TestQueueEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		_, body := e.queueDoc()
		assert.JSONEq(t, fmt.Sprintf(`{
			"server_time": %q, "holder": null, "waiting": [],
			"lab": {"state": "none", "topology": null, "fingerprint": null, "holders": 0, "since": null, "operation": null},
			"stats": {"hold_seconds_avg": null, "sessions_served": 0},
			"draining": false, "quarantine": null}`, stamp(time.Now())), string(body))
	})
}

// TestQueueAndHistoryDocuments: after two holds of known length (100 s
// and 200 s), the whole /queue and /history documents: every field of
// SPEC §9, short ids only, positions, the wait estimates of two waiters
// (max(0, avg − held) + (position − 1) × avg), the stats, and the lab of
// each ended session.
func TestQueueAndHistoryDocuments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipeFrom(loopbackClient))
		t0 := time.Now()
		at := func(s int) string { return stamp(t0.Add(time.Duration(s) * time.Second)) }

		a := e.createSession().SessionID
		require.False(t, e.mustAcquire(a).Reused)
		fp := e.mgr.Status().Fingerprint
		time.Sleep(100 * time.Second)
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, "")).code)

		b := e.createSession().SessionID
		require.True(t, e.mustAcquire(b).Reused)
		time.Sleep(200 * time.Second)
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+b, "")).code)

		c := e.createSession().SessionID // t0+300
		require.True(t, e.mustAcquire(c).Reused)
		labSince := e.mgr.Status().Since
		time.Sleep(10 * time.Second)
		w1 := e.open(api.SessionRequest{Owner: "w1", Labels: map[string]string{"job": "https://ci/7"}}).SessionID
		time.Sleep(10 * time.Second)
		w2 := e.open(api.SessionRequest{Owner: "w2"}).SessionID // t0+320
		time.Sleep(5 * time.Second)
		w3 := e.open(api.SessionRequest{Owner: "w3"}).SessionID // t0+325
		time.Sleep(5 * time.Second)
		require.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", w1)).code) // t0+330
		time.Sleep(5 * time.Second)
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+w3, "")).code) // t0+335
		time.Sleep(5 * time.Second)                                                  // t0+340

		_, body := e.queueDoc()
		assert.JSONEq(t, fmt.Sprintf(`{
			"server_time": %[1]q,
			"holder": {"id": %[2]q, "owner": "127.0.0.1", "labels": {}, "status": "active", "position": 0,
				"epoch": 3, "created_at": %[3]q, "waiting_seconds": 0, "active_seconds": 40,
				"idle_seconds": 40, "estimated_wait_seconds": null, "wait_deadline": null, "hold_deadline": null},
			"waiting": [
				{"id": %[4]q, "owner": "w1", "labels": {"job": "https://ci/7"}, "status": "waiting", "position": 1,
					"epoch": null, "created_at": %[5]q, "waiting_seconds": 30, "active_seconds": null,
					"idle_seconds": 10, "estimated_wait_seconds": 110, "wait_deadline": null, "hold_deadline": null},
				{"id": %[6]q, "owner": "w2", "labels": {}, "status": "waiting", "position": 2,
					"epoch": null, "created_at": %[7]q, "waiting_seconds": 20, "active_seconds": null,
					"idle_seconds": 20, "estimated_wait_seconds": 260, "wait_deadline": null, "hold_deadline": null}
			],
			"lab": {"state": "running", "topology": "lab.yml", "fingerprint": %[8]q, "holders": 1,
				"since": %[9]q, "operation": null},
			"stats": {"hold_seconds_avg": 150, "sessions_served": 2},
			"draining": false, "quarantine": null}`,
			at(340), c[:8], at(300), w1[:8], at(310), w2[:8], at(320), fp, stamp(labSince)), string(body))
		noFullIDs(t, body, a, b, c, w1, w2, w3)

		// The session's own status carries the same estimate.
		assert.Equal(t, 260.0, *e.status(w2).EstimatedWaitSeconds)
		assert.Equal(t, 110.0, *e.status(w1).EstimatedWaitSeconds)
		assert.Nil(t, e.status(c).EstimatedWaitSeconds, "the holder waits for nothing")

		_, body = e.historyDoc(0)
		assert.JSONEq(t, fmt.Sprintf(`[
			{"id": %[1]q, "owner": "w3", "labels": {}, "created_at": %[2]q, "ended_at": %[3]q,
				"waited_seconds": 10, "held_seconds": null, "outcome": "closed", "reason": "closed by its client", "lab": null},
			{"id": %[4]q, "owner": "127.0.0.1", "labels": {}, "created_at": %[5]q, "ended_at": %[6]q,
				"waited_seconds": 0, "held_seconds": 200, "outcome": "closed", "reason": "closed by its client",
				"lab": {"topology": "lab.yml", "fingerprint": %[7]q, "reused": true}},
			{"id": %[8]q, "owner": "127.0.0.1", "labels": {}, "created_at": %[9]q, "ended_at": %[5]q,
				"waited_seconds": 0, "held_seconds": 100, "outcome": "closed", "reason": "closed by its client",
				"lab": {"topology": "lab.yml", "fingerprint": %[7]q, "reused": false}}
		]`, w3[:8], at(325), at(335), b[:8], at(100), at(300), fp, a[:8], at(0)), string(body))
		noFullIDs(t, body, a, b, c, w1, w2, w3)
	})
}

// TestQueueShowsRunningOperation: while netlab up runs, /queue shows the
// step, how long it has run and the last line it printed.
func TestQueueShowsRunningOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const line = "Waiting for r1 to accept SSH connections (attempt 3 of 60)"
		printed := make(chan struct{})
		release := make(chan struct{})
		runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
			time.Sleep(2 * time.Second)
			lab.ProgressFrom(ctx).Output("Creating containers")
			lab.ProgressFrom(ctx).Output(line)
			close(printed)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		e := newEnv(t, overPipe(), withRunner(runner))
		t0 := time.Now()
		id := e.createSession().SessionID
		done := e.startAcquire(id)
		<-printed
		time.Sleep(10 * time.Second)

		q, body := e.queueDoc()
		require.NotNil(t, q.Lab.Fingerprint)
		assert.JSONEq(t, fmt.Sprintf(`{"state": "starting", "topology": "lab.yml", "fingerprint": %q, "holders": 0,
			"since": %q, "operation": {"kind": "up", "running_seconds": 12, "last_output": %q}}`,
			*q.Lab.Fingerprint, stamp(t0), line), string(mustField(t, body, "lab")))

		close(release)
		r := <-done
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		q, _ = e.queueDoc()
		assert.Equal(t, "running", q.Lab.State)
		assert.Nil(t, q.Lab.Operation, "no operation once the lab is up")
	})
}

// TestHistoryLimit: 50 entries by default, newest first, at most 1000,
// anything else 422.
func TestHistoryLimit(t *testing.T) {
	e := newEnv(t)
	const n = broker.HistoryLen + 5
	for i := range n {
		s, err := e.b.Join(broker.Meta{Owner: fmt.Sprintf("o%d", i)})
		require.NoError(t, err)
		require.NoError(t, e.b.Leave(s.ID))
	}
	owners := func(h []api.HistoryEntry) []string {
		out := make([]string, len(h))
		for i, x := range h {
			out[i] = x.Owner
		}
		return out
	}
	newest := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("o%d", n-1-i)
		}
		return out
	}
	h, _ := e.historyDoc(0)
	assert.Equal(t, newest(50), owners(h))
	h, _ = e.historyDoc(7)
	assert.Equal(t, newest(7), owners(h))
	h, _ = e.historyDoc(1000)
	assert.Equal(t, newest(1000), owners(h))
	h, _ = e.historyDoc(1)
	assert.Equal(t, newest(1), owners(h))

	for _, bad := range []string{"0", "-1", "1001", "abc", "", "1.5", "50%20", "1e3", strings.Repeat("9", 40)} {
		r := e.get("/history?limit="+bad, "")
		require.Equal(t, http.StatusUnprocessableEntity, r.code, "limit=%s: %s", bad, r.body)
		is := r.issues(t)
		require.Len(t, is, 1)
		assert.Equal(t, []string{"query", "limit"}, is[0].Loc)
	}
}

// TestNoEstimateWhileDraining: while an admin drains the host nobody is
// promoted, so a waiter gets no estimate (broker.Session: "HasEstimate is
// false ... while draining"); resuming brings it back.
func TestNoEstimateWhileDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipeFrom(loopbackClient))
		first := e.createSession().SessionID
		time.Sleep(100 * time.Second)
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+first, "")).code)
		holder := e.createSession().SessionID
		w := e.createSession().SessionID
		time.Sleep(30 * time.Second)
		require.Equal(t, 70.0, *e.status(w).EstimatedWaitSeconds)

		require.Equal(t, http.StatusNoContent, e.send(post("/admin/drain", "")).code)
		assert.Nil(t, e.status(w).EstimatedWaitSeconds, "an estimate while nobody is promoted")
		q, _ := e.queueDoc()
		require.NotNil(t, q.Holder)
		assert.Equal(t, holder[:8], q.Holder.ID)
		require.Len(t, q.Waiting, 1)
		assert.Nil(t, q.Waiting[0].EstimatedWaitSeconds, "an estimate while nobody is promoted")

		require.Equal(t, http.StatusNoContent, e.send(post("/admin/resume", "")).code)
		assert.Equal(t, 70.0, *e.status(w).EstimatedWaitSeconds)
		q, _ = e.queueDoc()
		assert.Equal(t, 70.0, *q.Waiting[0].EstimatedWaitSeconds)
	})
}
