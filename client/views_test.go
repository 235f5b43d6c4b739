package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/testutil"
)

// socketClient serves h on a real socket and returns a client of it and
// the journal of its requests.
func socketClient(t *testing.T, h http.HandlerFunc, opts ...client.Option) (*client.Client, *journal) {
	t.Helper()
	j := &journal{}
	srv := httptest.NewServer(j.wrap(h))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, append([]client.Option{client.WithLogger(newLogger(&testutil.Buffer{}))}, opts...)...)
	require.NoError(t, err)
	return c, j
}

// sampleQueue is a /queue document with n waiters.
func sampleQueue(n int) api.Queue {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	topo := "lab.yml"
	q := api.Queue{
		ServerTime: now,
		Holder: &api.QueueSession{ID: "aaaaaaaa", Owner: "alice@ci", Labels: map[string]string{"job": "https://ci/1"},
			Status: "active", CreatedAt: now.Add(-time.Hour), ActiveSeconds: ptr(300.0), Epoch: ptr(uint64(7))},
		Waiting: []api.QueueSession{},
		Lab:     api.QueueLab{State: "running", Topology: &topo, Holders: 1},
		Stats:   api.QueueStats{HoldSecondsAvg: ptr(600.0), SessionsServed: 12},
	}
	for i := range n {
		labels := map[string]string{}
		for k := range 4 {
			labels[fmt.Sprintf("label%d", k)] = strings.Repeat("v", 200)
		}
		q.Waiting = append(q.Waiting, api.QueueSession{ID: fmt.Sprintf("%08d", i), Owner: fmt.Sprintf("user%d@host", i),
			Labels: labels, Status: "waiting", Position: i + 1, CreatedAt: now, EstimatedWaitSeconds: ptr(float64(300 + 600*i))})
	}
	return q
}

func TestQueue(t *testing.T) {
	want := sampleQueue(2)
	c, j := socketClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, want) }, client.WithToken("tok"))
	got, err := c.Queue(t.Context())
	require.NoError(t, err)
	assert.Equal(t, want, got)
	reqs := j.of("GET /queue")
	require.Len(t, reqs, 1)
	assert.Equal(t, "Bearer tok", reqs[0].Header.Get("Authorization"))
}

func TestHistory(t *testing.T) {
	want := []api.HistoryEntry{{ID: "bbbbbbbb", Owner: "bob", Labels: map[string]string{}, Outcome: "evicted",
		Reason: "evicted by local: stuck", CreatedAt: time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC),
		EndedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), WaitedSeconds: 10}}
	c, j := socketClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, want) })
	got, err := c.History(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, err = c.History(t.Context(), 5)
	require.NoError(t, err)
	reqs := j.of("GET /history")
	require.Len(t, reqs, 2)
	assert.Empty(t, reqs[0].Query, "0 asks for the server's default")
	assert.Equal(t, "limit=5", reqs[1].Query)

	_, err = c.History(t.Context(), -1)
	require.ErrorIs(t, err, client.ErrBadRequest)
	assert.Len(t, j.all(), 2)
}

func TestReady(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		body   string
		ready  bool
		reason string
		err    error // nil: none
	}{
		{"ready", 200, `{"ready":true}`, true, "", nil},
		{"draining", 503, `{"ready":false,"reason":"draining: promotions are held by an admin"}`, false, "draining: promotions are held by an admin", nil},
		{"no readyz", 404, `{"detail":"Not Found"}`, false, "", client.ErrNotFound},
		{"proxy 502", 502, `<html>`, false, "", client.ErrNetlabFailed},
		{"unauthorized", 401, `{"detail":"Not authenticated"}`, false, "", client.ErrUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.code)
				_, _ = io.WriteString(w, tc.body)
			})
			ready, reason, err := c.Ready(t.Context())
			assert.Equal(t, tc.ready, ready)
			assert.Equal(t, tc.reason, reason)
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c, err := client.New(srv.URL)
		require.NoError(t, err)
		_, _, err = c.Ready(t.Context())
		var te *client.TransportError
		require.ErrorAs(t, err, &te)
	})
}

// The admin calls send what the server's routes take.
func TestAdmin(t *testing.T) {
	var mu sync.Mutex
	codes := map[string]int{"DELETE /admin/lab": http.StatusAccepted}
	audit := []api.AuditEntry{{Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Actor: "local", Action: "drain"}}
	c, j := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
		route := r.Method + " " + r.URL.Path
		if route == "GET /admin/audit" {
			writeJSON(w, http.StatusOK, audit)
			return
		}
		mu.Lock()
		code, ok := codes[route]
		mu.Unlock()
		if !ok {
			code = http.StatusNoContent
		}
		w.WriteHeader(code)
	})
	a := c.Admin()
	ctx := t.Context()
	require.NoError(t, a.Evict(ctx, " 0123abcd ", " stuck since Monday "))
	torn, err := a.DestroyLab(ctx)
	require.NoError(t, err)
	assert.True(t, torn)
	mu.Lock()
	codes["DELETE /admin/lab"] = http.StatusNoContent
	mu.Unlock()
	torn, err = a.DestroyLab(ctx)
	require.NoError(t, err)
	assert.False(t, torn)
	require.NoError(t, a.Drain(ctx))
	require.NoError(t, a.Resume(ctx))
	require.NoError(t, a.Unquarantine(ctx))
	got, err := a.Audit(ctx, 20)
	require.NoError(t, err)
	assert.Equal(t, audit, got)

	var routes []string
	for _, r := range j.all() {
		routes = append(routes, r.Method+" "+r.Path+" "+r.Query+" "+r.Body)
	}
	assert.Equal(t, []string{
		`POST /admin/sessions/0123abcd/evict  {"reason":"stuck since Monday"}`,
		"DELETE /admin/lab  ", "DELETE /admin/lab  ",
		"POST /admin/drain  ", "POST /admin/resume  ", "POST /admin/unquarantine  ",
		"GET /admin/audit limit=20 ",
	}, routes)
	assert.Equal(t, "application/json", j.all()[0].Header.Get("Content-Type"))
}

func TestAdminErrors(t *testing.T) {
	c, j := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/admin/sessions/abc/evict":
			writeJSON(w, http.StatusConflict, api.Error{Detail: `session prefix "abc" names 2 sessions`})
		case "/admin/sessions/zzz/evict":
			writeJSON(w, http.StatusNotFound, api.Error{Detail: api.DetailSessionNotFound})
		default:
			writeJSON(w, http.StatusForbidden, api.Error{Detail: api.DetailAdminLoopbackOnly})
		}
	})
	a := c.Admin()
	err := a.Evict(t.Context(), "abc", "x")
	require.ErrorIs(t, err, client.ErrConflict)
	assert.Contains(t, err.Error(), "evict abc: POST /admin/sessions/abc/evict: 409 Conflict")
	require.ErrorIs(t, a.Evict(t.Context(), "zzz", "x"), client.ErrNotFound)
	require.ErrorIs(t, a.Drain(t.Context()), client.ErrForbidden)
	n := len(j.all())
	require.ErrorIs(t, a.Evict(t.Context(), "", "x"), client.ErrBadRequest)
	err = a.Evict(t.Context(), "abc", "  ")
	require.ErrorIs(t, err, client.ErrBadRequest)
	assert.Contains(t, err.Error(), "a reason is required")
	assert.Len(t, j.all(), n, "bad input sends nothing")
}

// eventServer serves /events: each connection gets the documents that
// next returns, then the connection ends (or stays open while next
// blocks).
type eventServer struct {
	journal
	mu    sync.Mutex
	conns int
	serve func(conn int, w http.ResponseWriter, r *http.Request)
}

func (e *eventServer) handler() http.Handler {
	return e.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.conns++
		n := e.conns
		e.mu.Unlock()
		e.serve(n, w, r)
	}))
}

// sendEvent writes one queue event.
func sendEvent(w io.Writer, q api.Queue) {
	data, err := json.Marshal(q)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(w, "event: queue\ndata: %s\n\n", data)
	w.(http.Flusher).Flush()
}

func startEvents(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
}

// Watch delivers each event; a dropped stream is reopened with backoff,
// and the backoff starts over after a stream that delivered.
func TestWatchReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		es := &eventServer{}
		es.serve = func(conn int, w http.ResponseWriter, r *http.Request) {
			switch conn {
			case 1: // two events, then the server goes away
				startEvents(w)
				sendEvent(w, api.Queue{Stats: api.QueueStats{SessionsServed: 1}})
				_, _ = io.WriteString(w, ": keep-alive\n\n")
				sendEvent(w, api.Queue{Stats: api.QueueStats{SessionsServed: 2}})
			case 2, 3: // restarting
				writeJSON(w, http.StatusServiceUnavailable, api.Error{Detail: api.DetailShuttingDown})
			case 4:
				panic(http.ErrAbortHandler)
			case 5: // back, briefly
				startEvents(w)
				sendEvent(w, api.Queue{Stats: api.QueueStats{SessionsServed: 15}})
			default: // back: the current document, then the stream stays open
				startEvents(w)
				sendEvent(w, api.Queue{Stats: api.QueueStats{SessionsServed: 10 + conn}})
				<-r.Context().Done()
			}
		}
		logs := &testutil.Buffer{}
		c := pipeClient(t, es.handler(), logs)
		ctx, cancel := context.WithCancel(context.Background())
		var got []int
		var at []time.Duration
		err := c.Watch(ctx, func(q api.Queue) error {
			got = append(got, q.Stats.SessionsServed)
			at = append(at, time.Since(start))
			if len(got) == 4 {
				time.AfterFunc(time.Hour, cancel)
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, []int{1, 2, 15, 16}, got)
		// Reconnects after 1, 2, 4 and 8 s (each up to a tenth more);
		// after the stream that delivered, after 1 s again.
		require.Len(t, at, 4)
		assert.Zero(t, at[1])
		assert.GreaterOrEqual(t, at[2], 15*time.Second)
		assert.LessOrEqual(t, at[2], 15*time.Second+1500*time.Millisecond)
		assert.GreaterOrEqual(t, at[3]-at[2], time.Second)
		assert.LessOrEqual(t, at[3]-at[2], 1100*time.Millisecond)
		assert.Equal(t, 6, len(es.of("GET /events")))
		assert.Equal(t, "text/event-stream", es.of("GET /events")[0].Header.Get("Accept"))
		assert.Contains(t, logs.String(), "Event stream ended; reconnecting")
	})
}

// Watch returns the callback's error as is, and ends the stream.
func TestWatchCallbackError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		es := &eventServer{serve: func(conn int, w http.ResponseWriter, r *http.Request) {
			startEvents(w)
			for i := 0; r.Context().Err() == nil; i++ {
				sendEvent(w, api.Queue{Stats: api.QueueStats{SessionsServed: i}})
			}
		}}
		stop := errors.New("seen enough")
		n := 0
		err := pipeClient(t, es.handler(), nil).Watch(context.Background(), func(q api.Queue) error {
			n++
			if q.Stats.SessionsServed == 3 {
				return stop
			}
			return nil
		})
		assert.Same(t, stop, err)
		assert.Equal(t, 4, n)
	})
}

// Answers that waiting does not cure end Watch at once.
func TestWatchFatalAnswers(t *testing.T) {
	for _, tc := range []struct {
		code int
		is   error
	}{{401, client.ErrUnauthorized}, {403, client.ErrForbidden}, {404, client.ErrNotFound}} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			c, j := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, tc.code, api.Error{Detail: "no"})
			})
			err := c.Watch(t.Context(), func(api.Queue) error { t.Error("called"); return nil })
			require.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), "watch: GET /events")
			assert.Len(t, j.all(), 1)
		})
	}
	t.Run("undecodable event", func(t *testing.T) {
		c, j := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
			startEvents(w)
			_, _ = io.WriteString(w, "event: queue\ndata: {not json\n\n")
		})
		err := c.Watch(t.Context(), func(api.Queue) error { return nil })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "decode queue event")
		assert.Len(t, j.all(), 1)
	})
}

// A queue of a thousand waiters (about 1 MB in one event line) comes
// through in one piece, over a real socket.
func TestWatchLargeEvent(t *testing.T) {
	big := sampleQueue(1000)
	data, err := json.Marshal(big)
	require.NoError(t, err)
	require.Greater(t, len(data), 1<<20)
	c, _ := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
		startEvents(w)
		sendEvent(w, big)
		sendEvent(w, sampleQueue(3))
		<-r.Context().Done()
	})
	var got []api.Queue
	stop := errors.New("done")
	err = c.Watch(t.Context(), func(q api.Queue) error {
		got = append(got, q)
		if len(got) == 2 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Len(t, got, 2)
	assert.Equal(t, big, got[0])
	assert.Len(t, got[1].Waiting, 3)
}

// The parts of the event stream format the server may use, and some it
// does not: CRLF line ends, multi-line data, other event kinds, fields
// without a space, comments.
func TestWatchEventFormat(t *testing.T) {
	q1, _ := json.Marshal(api.Queue{Stats: api.QueueStats{SessionsServed: 1}})
	c, _ := socketClient(t, func(w http.ResponseWriter, r *http.Request) {
		startEvents(w)
		_, _ = io.WriteString(w, "retry: 2000\r\n: hello\r\nevent: ping\r\ndata: x\r\n\r\n")
		_, _ = io.WriteString(w, "event:queue\r\ndata:"+string(q1)+"\r\n\r\n")
		_, _ = io.WriteString(w, "id: 7\nevent: queue\ndata: {\"stats\":\ndata: {\"sessions_served\": 2}}\n\n")
		_, _ = io.WriteString(w, "data: {}\n\n") // a "message" event: not for this client
		_, _ = io.WriteString(w, "event: queue\ndata: {\"stats\":{\"sessions_served\":3}}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	var got []int
	done := errors.New("done")
	err := c.Watch(t.Context(), func(q api.Queue) error {
		got = append(got, q.Stats.SessionsServed)
		if len(got) == 3 {
			return done
		}
		return nil
	})
	require.ErrorIs(t, err, done)
	assert.Equal(t, []int{1, 2, 3}, got)
}
