package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestOpenAndClose(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c, rec := recordingClient(srv)

	s, err := c.Open(t.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, s.ID())
	assert.Equal(t, "session "+s.ID()[:8], s.String())
	assert.Equal(t, 1, srv.Broker().Len())

	require.NoError(t, s.Close(t.Context()))
	assert.Equal(t, 0, srv.Broker().Len())
	// Idempotent: a second Close sends nothing.
	require.NoError(t, s.Close(t.Context()))
	assert.Equal(t, 1, rec.count(http.MethodDelete, "/session/"))

	_, err = s.Status(t.Context())
	require.ErrorIs(t, err, client.ErrClosed)
	_, _, err = s.Acquire(t.Context(), "testdata/lab.yml")
	require.ErrorIs(t, err, client.ErrClosed)
	require.ErrorIs(t, s.Release(t.Context()), client.ErrClosed)
	assert.Zero(t, rec.count(http.MethodPost, "/lab"))
}

func TestConcurrentClose(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c, rec := recordingClient(srv)
	s, err := c.Open(t.Context())
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { assert.NoError(t, s.Close(context.Background())) })
	}
	wg.Wait()
	assert.Equal(t, 1, rec.count(http.MethodDelete, "/session/"))
	assert.Equal(t, 0, srv.Broker().Len())
}

// Every call names the client, and every call after creation the session.
func TestRequestHeaders(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c, rec := recordingClient(srv)
	ctx := t.Context()

	s, err := c.Open(ctx)
	require.NoError(t, err)
	_, _, err = s.Acquire(ctx, "testdata/lab.yml")
	require.NoError(t, err)
	_, err = s.Status(ctx)
	require.NoError(t, err)
	_, err = s.Devices(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx))
	require.NoError(t, s.Destroy(ctx, true))
	require.NoError(t, s.Close(ctx))

	reqs := rec.requests()
	require.Len(t, reqs, 7)
	for i, r := range reqs {
		assert.True(t, strings.HasPrefix(r.Header.Get("User-Agent"), "remotelab-go/"), r.Header.Get("User-Agent"))
		if i == 0 {
			assert.Equal(t, "POST /session", r.Method+" "+r.Path)
			assert.Empty(t, r.Header.Get(api.HeaderSessionID))
			continue
		}
		assert.Equal(t, s.ID(), r.Header.Get(api.HeaderSessionID), r.Method+" "+r.Path)
	}
	assert.Equal(t, "DELETE /session/"+s.ID(), reqs[6].Method+" "+reqs[6].Path)
	assert.Equal(t, "force=true", reqs[5].Query)
}

// A waiting session becomes active as soon as the one before it closes:
// the long-poll answers at once, with no polling delay.
func TestLongPollPromotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &testutil.Buffer{}
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(), remotelabtest.WithLogger(newLogger(logs)))
		c, rec := recordingClient(srv)
		s1 := open(t, c)

		type opened struct {
			s   *client.Session
			err error
			at  time.Time
		}
		second := make(chan opened, 1)
		go func() {
			s, err := c.Open(context.Background())
			second <- opened{s, err, time.Now()}
		}()
		time.Sleep(2 * time.Minute) // bubble time: the second session waits
		synctest.Wait()
		require.Empty(t, second)
		require.Equal(t, 2, srv.Broker().Len())
		// Long-polls of 30 s, not 5 s polls.
		polls := rec.count(http.MethodGet, "/session/")
		assert.GreaterOrEqual(t, polls, 4)
		assert.LessOrEqual(t, polls, 5)

		closedAt := time.Now()
		require.NoError(t, s1.Close(context.Background()))
		got := <-second
		require.NoError(t, got.err)
		t.Cleanup(func() { require.NoError(t, got.s.Close(context.Background())) })
		assert.Equal(t, closedAt, got.at, "promotion must not wait for a poll")

		assert.Regexp(t, `msg=Queued .*session=`+got.s.ID()[:8]+` position=1\n`, logs.String())
		assert.Regexp(t, `msg="Session active" .*session=`+got.s.ID()[:8]+` waited=2m0s\n`, logs.String())
		for _, r := range rec.requests() {
			if r.Method == http.MethodGet {
				assert.Equal(t, "wait=30s", r.Query)
			}
		}
	})
}

// originalServer imitates the original Python server's session calls: no
// status or epoch in the create answer, and status answers that come at
// once whatever ?wait= says.
type originalServer struct {
	waitingPolls int // answers "waiting" this many times

	mu         sync.Mutex
	polls      []time.Time
	headers    []string
	deletes    int
	heartbeats int
}

func (o *originalServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/session":
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"session_id":"0b3c9f1e-orig","position":1}`))
	case r.Method == http.MethodGet && r.URL.Path == "/session/0b3c9f1e-orig":
		o.polls = append(o.polls, time.Now())
		o.headers = append(o.headers, r.Header.Get(api.HeaderSessionID))
		if len(o.polls) <= o.waitingPolls {
			_, _ = w.Write([]byte(`{"status":"waiting","position":1}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"active","position":0}`))
	case r.Method == http.MethodPost && r.URL.Path == "/session/heartbeat":
		o.heartbeats++
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete && r.URL.Path == "/session/0b3c9f1e-orig":
		o.deletes++
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
	}
}

func fakeClient(t testing.TB, h http.Handler, opts ...client.Option) *client.Client {
	t.Helper()
	all := append([]client.Option{
		client.WithHTTPClient(&http.Client{Transport: remotelabtest.InMemoryTransport(h)}),
		client.WithLogger(newLogger(&testutil.Buffer{})),
	}, opts...)
	c, err := client.New("http://lab.invalid", all...)
	require.NoError(t, err)
	return c
}

// Against a server without long-poll the client polls every poll
// interval, as the original client did.
func TestPollFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		orig := &originalServer{waitingPolls: 3}
		c := fakeClient(t, orig, client.WithPollInterval(5*time.Second))
		start := time.Now()
		s := open(t, c)
		assert.Equal(t, "0b3c9f1e-orig", s.ID())
		orig.mu.Lock()
		defer orig.mu.Unlock()
		require.Len(t, orig.polls, 4)
		for i, at := range orig.polls {
			assert.Equal(t, time.Duration(i)*5*time.Second, at.Sub(start), "poll %d", i)
			assert.Equal(t, s.ID(), orig.headers[i])
		}
	})
}

// Heartbeats keep an active session alive far past the server's active
// TTL, with no other calls.
func TestHeartbeatsKeepActiveSessionAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(),
			remotelabtest.WithTTLs(10*time.Second, 20*time.Second))
		c := srv.Client(client.WithHeartbeatInterval(3 * time.Second))
		s := open(t, c)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		assert.Equal(t, 1, srv.Broker().Len())
		_, err := s.Status(context.Background())
		require.NoError(t, err)
	})
}

// Without heartbeats the server expires the session; the client then sees
// ErrNotFound, and Close still succeeds.
func TestSessionExpiresWithoutHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(),
			remotelabtest.WithTTLs(10*time.Second, 20*time.Second))
		c, rec := recordingClient(srv, client.WithHeartbeatInterval(time.Hour))
		s, err := c.Open(context.Background())
		require.NoError(t, err)
		time.Sleep(11 * time.Second)
		synctest.Wait()
		assert.Equal(t, 0, srv.Broker().Len())

		_, err = s.Status(context.Background())
		require.ErrorIs(t, err, client.ErrNotFound)
		require.ErrorIs(t, err, client.ErrExpired)
		var se *client.Error
		require.ErrorAs(t, err, &se)
		assert.Equal(t, client.Error{StatusCode: 404, Detail: api.DetailSessionNotFound, Method: "GET", Path: "/lab",
			Outcome: api.OutcomeExpired, Reason: "expired: no request for 10 s", EndedAt: se.EndedAt}, *se)
		assert.False(t, se.EndedAt.IsZero())
		assert.Equal(t, "lab status: GET /lab: 404 Not Found: Session not found (expired: no request for 10 s)", err.Error())
		require.ErrorIs(t, s.Err(), client.ErrExpired)

		// Release counts a vanished session as released; Close has
		// nothing left to delete.
		require.NoError(t, s.Release(context.Background()))
		require.NoError(t, s.Close(context.Background()))
		require.NoError(t, s.Close(context.Background()))
		assert.Zero(t, rec.count(http.MethodDelete, "/session/"))
		assert.Equal(t, 1, rec.count(http.MethodGet, "/lab"), "calls after the end send nothing")
	})
}

// Heartbeats start when the session is created, so a long wait in the
// queue does not expire it, however short the waiting TTL.
func TestHeartbeatsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(),
			remotelabtest.WithTTLs(10*time.Second, 20*time.Second))
		c := srv.Client(client.WithHeartbeatInterval(3 * time.Second))
		s1 := open(t, c)
		errc := make(chan error, 1)
		var s2 *client.Session
		go func() {
			var err error
			s2, err = c.Open(context.Background())
			errc <- err
		}()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.Equal(t, 2, srv.Broker().Len())
		require.NoError(t, s1.Close(context.Background()))
		require.NoError(t, <-errc)
		require.NoError(t, s2.Close(context.Background()))
	})
}

// A waiting session that the server drops (here: an admin evicts it
// in the middle of a long-poll) ends Open with ErrNotFound at once,
// carrying the server's reason, instead of the original's minutes of
// retries.
func TestOpenFailsWhenWaitingSessionEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(),
			remotelabtest.WithTTLs(10*time.Second, 20*time.Second))
		open(t, srv.Client(client.WithHeartbeatInterval(3*time.Second)))
		c, rec := recordingClient(srv, client.WithHeartbeatInterval(time.Hour))
		errc := make(chan error, 1)
		go func() {
			_, err := c.Open(context.Background())
			errc <- err
		}()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		waiting := srv.Broker().Queue().Waiting
		require.Len(t, waiting, 1)
		start := time.Now()
		_, err := srv.Broker().Evict(waiting[0].ID, "alice", "maintenance")
		require.NoError(t, err)
		err = <-errc
		require.ErrorIs(t, err, client.ErrNotFound)
		require.ErrorIs(t, err, client.ErrEvicted)
		assert.Contains(t, err.Error(), "evicted by alice: maintenance")
		assert.Zero(t, time.Since(start), "Open ends as soon as the server answers")
		assert.Equal(t, 1, rec.count(http.MethodGet, "/session/"), "one long-poll, no retries")
		assert.Equal(t, 1, srv.Broker().Len())
	})
}

// The server answers a long-poll within half the waiting TTL, so a
// client whose heartbeats are slower than that TTL still keeps its place
// while it waits: its polls are its heartbeats.
func TestLongPollKeepsWaitingSessionAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(),
			remotelabtest.WithTTLs(10*time.Second, 20*time.Second))
		holder := open(t, srv.Client(client.WithHeartbeatInterval(3*time.Second)))
		c := srv.Client(client.WithHeartbeatInterval(time.Hour))
		errc := make(chan error, 1)
		var s *client.Session
		go func() {
			var err error
			s, err = c.Open(context.Background())
			errc <- err
		}()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.Equal(t, 2, srv.Broker().Len())
		require.NoError(t, holder.Close(context.Background()))
		require.NoError(t, <-errc)
		require.NoError(t, s.Close(context.Background()))
	})
}

// When the session timeout passes, Open deletes its session: no slot is
// left behind in the queue.
func TestOpenSessionTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		open(t, srv.Client())
		c := srv.Client(client.WithSessionTimeout(time.Minute))
		// A longer bound of its own, so that a client that ignored its
		// session timeout fails the test instead of hanging it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		s, err := c.Open(ctx)
		require.Error(t, err)
		assert.Nil(t, s)
		assert.Equal(t, time.Minute, time.Since(start))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "still queued at position 1 after 1m0s")
		assert.Equal(t, 1, srv.Broker().Len())
	})
}

func TestOpenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		open(t, srv.Client())
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Second, cancel)
		_, err := srv.Client().Open(ctx)
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "still queued at position 1: context canceled")
		assert.Equal(t, 1, srv.Broker().Len())
	})
}

// scriptedStatus answers GET /session with the given status codes first,
// then "active".
type scriptedStatus struct {
	codes []int

	mu    sync.Mutex
	polls []time.Time
}

func (s *scriptedStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/session":
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(api.CreateSessionResponse{SessionID: "sess-1", Position: 1, Status: "waiting"})
	case r.Method == http.MethodGet:
		s.polls = append(s.polls, time.Now())
		if n := len(s.polls); n <= len(s.codes) {
			http.Error(w, http.StatusText(s.codes[n-1]), s.codes[n-1])
			return
		}
		_ = json.NewEncoder(w).Encode(api.SessionStatus{Status: "active", SessionDetails: api.SessionDetails{Epoch: 1}})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// Gateway errors and 503 while waiting are retried with backoff: 1 s,
// doubling (each up to a tenth longer).
func TestOpenRetriesServerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &scriptedStatus{codes: []int{502, 503, 504}}
		start := time.Now()
		open(t, fakeClient(t, h))
		h.mu.Lock()
		defer h.mu.Unlock()
		require.Len(t, h.polls, 4)
		assert.Zero(t, h.polls[0].Sub(start))
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			gap := h.polls[i+1].Sub(h.polls[i])
			assert.True(t, gap >= want && gap <= want+want/10, "retry %d after %v, want %v", i+1, gap, want)
		}
	})
}

// Client errors and server bugs while waiting are not retried.
func TestOpenDoesNotRetryClientErrors(t *testing.T) {
	for _, code := range []int{403, 500} {
		synctest.Test(t, func(t *testing.T) {
			h := &scriptedStatus{codes: []int{code}}
			_, err := fakeClient(t, h).Open(context.Background())
			var se *client.Error
			require.ErrorAs(t, err, &se)
			assert.Equal(t, code, se.StatusCode)
			assert.Len(t, h.polls, 1)
		})
	}
}

func TestOpenWithoutSessionID(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"position":0}`))
	})
	_, err := fakeClient(t, h).Open(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no session_id")
}

func TestOpenWhileDraining(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	srv.API().Drain()
	_, err := srv.Client().Open(t.Context())
	require.ErrorIs(t, err, client.ErrUnavailable)
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.StatusCode)
	assert.Equal(t, api.DetailShuttingDown, se.Detail)
}

func TestTransportError(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c := srv.Client()
	s, err := c.Open(t.Context())
	require.NoError(t, err)
	srv.Close()

	_, err = s.Status(t.Context())
	var te *client.TransportError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "GET", te.Method)
	assert.Equal(t, "/lab", te.Path)
	for _, sentinel := range []error{client.ErrNotFound, client.ErrUnavailable, client.ErrBusy, client.ErrClosed} {
		assert.NotErrorIs(t, err, sentinel)
	}
	var se *client.Error
	assert.False(t, errors.As(err, &se))

	_, err = c.Open(t.Context())
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "/session", te.Path)

	// Close cannot reach the server: it says so (and stops heartbeats).
	err = s.Close(t.Context())
	require.ErrorAs(t, err, &te)
	assert.Contains(t, err.Error(), "close session")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A session promoted between its creation and its first long-poll gets
// its answer at once, not after the poll's 30 s.
func TestPromotionBeforeFirstPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		s1, err := srv.Client().Open(context.Background())
		require.NoError(t, err)

		gate := make(chan struct{})
		var once sync.Once
		next := srv.HTTPClient().Transport
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet {
				once.Do(func() { <-gate })
			}
			return next.RoundTrip(r)
		})}
		errc := make(chan error, 1)
		var s2 *client.Session
		go func() {
			var err error
			s2, err = srv.Client(client.WithHTTPClient(hc)).Open(context.Background())
			errc <- err
		}()
		synctest.Wait() // the second session is queued; its first poll is held
		require.Equal(t, 2, srv.Broker().Len())
		require.NoError(t, s1.Close(context.Background()))
		start := time.Now()
		close(gate)
		require.NoError(t, <-errc)
		assert.Equal(t, start, time.Now())
		require.NoError(t, s2.Close(context.Background()))
	})
}

// Every Close returns only after the heartbeats stopped, also a Close that
// runs while another is still waiting for a heartbeat in flight.
func TestCloseWaitsForHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		gate := make(chan struct{})
		var inFlight sync.WaitGroup // heartbeat requests not yet answered
		next := srv.HTTPClient().Transport
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == "/session/heartbeat" {
				inFlight.Add(1)
				defer inFlight.Done()
				<-gate // a slow network that ignores the request's context
			}
			return next.RoundTrip(r)
		})}
		s, err := srv.Client(client.WithHTTPClient(hc), client.WithHeartbeatInterval(time.Second)).Open(context.Background())
		require.NoError(t, err)
		time.Sleep(time.Second)
		synctest.Wait() // a heartbeat is in flight

		first, second := make(chan error, 1), make(chan error, 1)
		go func() { first <- s.Close(context.Background()) }()
		synctest.Wait()
		go func() { second <- s.Close(context.Background()) }()
		synctest.Wait()
		assert.Empty(t, first, "Close returned while a heartbeat was in flight")
		assert.Empty(t, second, "Close returned while a heartbeat was in flight")

		close(gate)
		require.NoError(t, <-first)
		require.NoError(t, <-second)
		inFlight.Wait()
		assert.Equal(t, 0, srv.Broker().Len())
	})
}

// A status long-poll may take longer than the per-request timeout by the
// time it asks the server to wait.
func TestLongPollOutlastsRequestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &testutil.Buffer{}
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		s1 := open(t, srv.Client())
		c, rec := recordingClient(srv, client.WithRequestTimeout(10*time.Second), client.WithLogger(newLogger(logs)))
		time.AfterFunc(2*time.Minute, func() { _ = s1.Close(context.Background()) })
		start := time.Now()
		open(t, c)
		assert.Equal(t, 2*time.Minute, time.Since(start))
		assert.LessOrEqual(t, rec.count(http.MethodGet, "/session/"), 5)
		assert.NotContains(t, logs.String(), "retrying")
	})
}

// Heartbeats stop once the server no longer knows the session: nobody
// revives it, and the client does not knock forever.
func TestHeartbeatsStopWhenSessionGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		c, rec := recordingClient(srv, client.WithHeartbeatInterval(3*time.Second))
		s := open(t, c)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Equal(t, 3, rec.count(http.MethodPost, "/session/heartbeat"))

		// The session ends behind the client's back (an operator, a
		// server-side expiry).
		req, err := http.NewRequest(http.MethodDelete, srv.URL()+"/session/"+s.ID(), nil)
		require.NoError(t, err)
		resp, err := srv.HTTPClient().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)

		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Equal(t, 4, rec.count(http.MethodPost, "/session/heartbeat"), "one heartbeat learns the session is gone")
	})
}
