package httpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// startAcquire sends POST /lab in the background; the response arrives on
// the returned channel.
func (e *env) startAcquire(session string, parts ...part) <-chan resp {
	ch := make(chan resp, 1)
	if len(parts) == 0 {
		parts = []part{topo("lab.yml", topoA)}
	}
	req := acquireReq(session, parts...)
	go func() {
		r, err := e.sendCtx(context.Background(), req)
		if err != nil {
			r = resp{code: -1, body: []byte(err.Error())}
		}
		ch <- r
	}()
	return ch
}

// TestLabOperationsOfOneSessionAreSerialised: while a session's up runs,
// its other lab operations are refused with 409, read-only ones answer.
func TestLabOperationsOfOneSessionAreSerialised(t *testing.T) {
	b := newBlocker()
	e := newEnv(t, withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}))
	id := e.createSession().SessionID
	done := e.startAcquire(id)
	<-b.entered

	for _, req := range []request{
		acquireReq(id, topo("lab.yml", topoA)),
		post("/lab/release", id),
		del("/lab", id),
	} {
		r := e.send(req)
		assert.Equal(t, http.StatusConflict, r.code, "%s %s: %s", req.method, req.path, r.body)
		assert.Equal(t, api.DetailOperationRunning, r.detail(t))
	}
	r := e.get("/lab", id)
	require.Equal(t, http.StatusOK, r.code)
	var st api.LabStatus
	r.decode(t, &st)
	assert.Equal(t, string(lab.StateStarting), st.State)
	assert.False(t, st.Running)

	close(b.release)
	r = <-done
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	// The lock is free again.
	assert.Equal(t, http.StatusNoContent, e.send(post("/lab/release", id)).code)
}

// TestOthersAnswerWhileUpBlocked: a running up delays nobody else.
func TestOthersAnswerWhileUpBlocked(t *testing.T) {
	b := newBlocker()
	e := newEnv(t, withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}))
	a := e.createSession().SessionID
	done := e.startAcquire(a)
	<-b.entered

	assert.Equal(t, http.StatusNoContent, e.get("/healthz", "").code)
	assert.Equal(t, http.StatusOK, e.get("/debug/health", "").code)
	assert.Equal(t, api.StatusActive, e.status(a).Status)
	other := e.createSession().SessionID
	st := e.status(other)
	assert.Equal(t, api.StatusWaiting, st.Status)
	assert.Equal(t, 1, st.Position)
	assert.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", other)).code)
	assert.Equal(t, http.StatusLocked, e.acquire(other, topo("lab.yml", topoA)).code)
	assert.Equal(t, a, e.head())
	assert.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", a)).code)

	close(b.release)
	require.Equal(t, http.StatusOK, (<-done).code)
}

// TestOthersAnswerWhileDownBlocked: a running teardown delays nobody
// either.
func TestOthersAnswerWhileDownBlocked(t *testing.T) {
	b := newBlocker()
	e := newEnv(t, withRunner(&remotelabtest.FakeRunner{DownHook: b.downHook}))
	a := e.createSession().SessionID
	e.mustAcquire(a)
	other := e.createSession().SessionID
	done := make(chan resp, 1)
	go func() { done <- e.send(del("/lab", a)) }()
	<-b.entered

	assert.Equal(t, http.StatusNoContent, e.get("/healthz", "").code)
	assert.Equal(t, http.StatusOK, e.get("/debug/health", "").code)
	assert.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", other)).code)
	ost := e.status(other)
	assert.Equal(t, api.StatusWaiting, ost.Status)
	assert.Equal(t, 1, ost.Position)
	r := e.get("/lab", a)
	require.Equal(t, http.StatusOK, r.code)
	var st api.LabStatus
	r.decode(t, &st)
	assert.Equal(t, string(lab.StateStopping), st.State)
	assert.Equal(t, http.StatusNoContent, e.send(post("/session/heartbeat", a)).code)
	assert.Equal(t, a, e.head())

	close(b.release)
	assert.Equal(t, http.StatusAccepted, (<-done).code)
}

// TestSessionDeletedDuringAcquire: deleting the session cancels its up
// and the acquire answers 404, leaving no lab and no reference.
func TestSessionDeletedDuringAcquire(t *testing.T) {
	b := newBlocker()
	e := newEnv(t, withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}))
	id := e.createSession().SessionID
	next := e.createSession().SessionID
	done := e.startAcquire(id)
	<-b.entered

	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+id, id)).code)
	r := <-done
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	assert.Equal(t, api.DetailSessionNotFound, r.detail(t))
	st := e.mgr.Status()
	assert.Equal(t, lab.StateNone, st.State)
	assert.Zero(t, st.RefCount)
	assert.Equal(t, next, e.head())
	assert.Contains(t, e.logs.String(), fmt.Sprintf(`msg="Session removed" session=%s outcome=closed`, id[:8]))
}

// TestLeaseLostWhileUpCompletes: an up that ignores cancellation and
// succeeds after its session ended leaves no reference behind: the lab is
// idle, ready for the next session, and the late caller gets 404.
func TestLeaseLostWhileUpCompletes(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	e := newEnv(t, withRunner(&remotelabtest.FakeRunner{
		UpHook: func(context.Context, lab.Spec) error {
			close(entered)
			<-release // deliberately deaf to ctx
			return nil
		},
	}))
	id := e.createSession().SessionID
	next := e.createSession().SessionID
	done := e.startAcquire(id)
	<-entered
	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+id, "")).code)
	close(release)
	r := <-done
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	st := e.mgr.Status()
	assert.Equal(t, lab.StateIdle, st.State)
	assert.Empty(t, st.Holders)

	// The next session gets the warm lab at once.
	a := e.mustAcquire(next)
	assert.True(t, a.Reused)
}

// TestShutdown: Close (a drain) answers parked long-polls at once and every
// new request but the probes with 503 JSON; a lab operation cut by the
// broker closing answers 503 too; without a store the sessions end with
// outcome shutdown.
func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		e := newEnv(t, overPipe(), withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}))
		a := e.createSession().SessionID
		w := e.createSession().SessionID
		done := e.startAcquire(a)
		<-b.entered
		poll := make(chan resp, 1)
		go func() { poll <- e.get("/session/"+w+"?wait=60s", "") }()
		synctest.Wait() // the long-poll is parked

		start := time.Now()
		e.srv.Close()
		r := <-poll
		assert.Zero(t, time.Since(start), "a parked long-poll answers at once")
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		assert.Contains(t, string(r.body), `"status":"waiting"`)
		for _, req := range []request{post("/session", ""), {method: http.MethodGet, path: "/queue"}, post("/session/heartbeat", w)} {
			r := e.send(req)
			assert.Equal(t, http.StatusServiceUnavailable, r.code, "%s %s", req.method, req.path)
			assert.Equal(t, api.DetailShuttingDown, r.detail(t))
		}
		assert.Equal(t, http.StatusNoContent, e.get("/healthz", "").code)
		r = e.get("/readyz", "")
		assert.Equal(t, http.StatusServiceUnavailable, r.code)
		assert.JSONEq(t, `{"ready":false,"reason":"shutting down"}`, string(r.body))

		require.NoError(t, e.b.Close(t.Context()))
		r = <-done
		assert.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
		assert.Equal(t, api.DetailShuttingDown, r.detail(t))
		assert.Zero(t, e.b.Len())
		hist := e.b.History(10)
		require.Len(t, hist, 2)
		assert.Equal(t, api.OutcomeShutdown, hist[0].Outcome)
	})
}

// TestLongPollWakesOnPromotion (real socket): a waiter's ?wait=60s answers
// "active" once the head leaves. The delete happens after the poll was
// sent; whether it is parked yet or not, the answer must be active.
func TestLongPollWakesOnPromotion(t *testing.T) {
	e := newEnv(t)
	a := e.createSession().SessionID
	w := e.createSession().SessionID
	got := make(chan resp, 1)
	go func() { got <- e.get("/session/"+w+"?wait=60s", w) }()
	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, a)).code)
	r := <-got
	require.Equal(t, http.StatusOK, r.code)
	var s api.SessionStatus
	r.decode(t, &s)
	assert.Equal(t, api.StatusActive, s.Status)
	assert.Equal(t, 0, s.Position)
	assert.NotZero(t, s.Epoch)
}

// TestFIFOUnderLoad: 100 clients join concurrently; each gets a distinct
// position, and they become active strictly in position order.
func TestFIFOUnderLoad(t *testing.T) {
	const n = 100
	e := newEnv(t)
	created := make([]api.CreateSessionResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { created[i] = e.createSession() })
	}
	wg.Wait()
	sort.Slice(created, func(i, j int) bool { return created[i].Position < created[j].Position })
	for i, c := range created {
		require.Equal(t, i, c.Position)
	}

	var mu sync.Mutex
	var order []int
	errs := make(chan error, n)
	for i, c := range created {
		wg.Go(func() {
			last := c.Position
			for {
				r, err := e.sendCtx(context.Background(), get("/session/"+c.SessionID+"?wait=60s", c.SessionID))
				if err != nil || r.code != http.StatusOK {
					errs <- fmt.Errorf("session %d: poll: %v %d %s", i, err, r.code, r.body)
					return
				}
				var s api.SessionStatus
				if err := json.Unmarshal(r.body, &s); err != nil {
					errs <- fmt.Errorf("session %d: poll: %v", i, err)
					return
				}
				if s.Position > last {
					errs <- fmt.Errorf("session %d: position went up from %d to %d", i, last, s.Position)
				}
				last = s.Position
				if s.Status == api.StatusActive {
					break
				}
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			r, err := e.sendCtx(context.Background(), del("/session/"+c.SessionID, c.SessionID))
			if err != nil || r.code != http.StatusNoContent {
				errs <- fmt.Errorf("session %d: delete: %v %d", i, err, r.code)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, order)
	assert.Zero(t, e.b.Len())
}

// TestLogEvents: the queue and lab events are logged under the original's
// names, with 8-character session ids, plus one line per request.
func TestLogEvents(t *testing.T) {
	e := newEnv(t)
	a := e.createSession().SessionID
	w := e.createSession().SessionID
	e.mustAcquire(a)
	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, a)).code)
	e.get("/healthz", "")
	logs := e.logs.String()
	for _, want := range []string{
		fmt.Sprintf(`msg="Created session" session=%s position=0 owner=127.0.0.1 client=127.0.0.1:`, a[:8]),
		fmt.Sprintf(`msg="Session promoted to ACTIVE" session=%s epoch=1`, a[:8]),
		fmt.Sprintf(`msg="Created session" session=%s position=1`, w[:8]),
		fmt.Sprintf(`msg="Starting lab acquisition" session=%s topology=lab.yml reuse=true`, a[:8]),
		fmt.Sprintf(`msg="Session removed" session=%s outcome=closed`, a[:8]),
		fmt.Sprintf(`msg="Session promoted to ACTIVE" session=%s epoch=2`, w[:8]),
		"level=INFO msg=request method=POST path=/lab status=200",
		"level=DEBUG msg=request method=GET path=/healthz status=204",
	} {
		assert.Contains(t, logs, want)
	}
	assert.NotContains(t, logs, a, "full session ids are never logged")
}

// TestDestroyOutlivesItsClient: a client that goes away during DELETE /lab
// does not cut the teardown short (that would leave the lab dirty).
func TestDestroyOutlivesItsClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		e := newEnv(t, overPipe(), withRunner(&remotelabtest.FakeRunner{DownHook: b.downHook}))
		a := e.createSession().SessionID
		e.mustAcquire(a)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := e.sendCtx(ctx, del("/lab", a))
			done <- err
		}()
		<-b.entered
		cancel()
		require.Error(t, <-done, "the client gave up")
		synctest.Wait()
		assert.Equal(t, lab.StateStopping, e.mgr.Status().State, "the teardown goes on")
		close(b.release)
		synctest.Wait()
		assert.Equal(t, lab.StateNone, e.mgr.Status().State, "and ends clean, not dirty")
	})
}

// TestClientGoneDuringUp: a client that disconnects while its lab starts
// is logged as having given up, not as a failed netlab start (which an
// operator would take for a host fault); the start is cleaned up.
func TestClientGoneDuringUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBlocker()
		e := newEnv(t, withRunner(&remotelabtest.FakeRunner{UpHook: b.upHook}), overPipeFrom(loopbackClient))
		a := e.createSession().SessionID
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := e.sendCtx(ctx, acquireReq(a, topo("lab.yml", topoA)))
			errc <- err
		}()
		<-b.entered
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		synctest.Wait()
		logs := e.logs.String()
		assert.Contains(t, logs, `msg="Lab operation abandoned by its client"`)
		assert.Contains(t, logs, `msg="Lab start cancelled: its caller gave up"`)
		assert.NotContains(t, logs, "Lab operation failed")
		assert.NotContains(t, logs, "Lab start failed")
		assert.Equal(t, lab.StateNone, e.mgr.Status().State)
	})
}

// TestLabBusyLogsWhy: a 423 Lab currently busy keeps the original's words
// for the client, and the log says what stands in the way.
func TestLabBusyLogsWhy(t *testing.T) {
	e := newEnv(t)
	_, err := e.mgr.TryAcquire(context.Background(), "other-holder", bundle(t, topoB), true)
	require.NoError(t, err)
	a := e.createSession().SessionID
	r := e.acquire(a, topo("lab.yml", topoA))
	require.Equal(t, http.StatusLocked, r.code)
	assert.Equal(t, api.DetailLabBusy, r.detail(t))
	assert.Contains(t, e.logs.String(), `msg="Lab busy" op="acquire lab" session=`+a[:8]+
		` why="acquire lab: lab busy: 1 reference(s) held by other holders"`)
}
