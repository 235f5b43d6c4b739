package remotelabtest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestNewServer(t *testing.T) {
	runner := &remotelabtest.FakeRunner{}
	logs := &testutil.Buffer{}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner),
		remotelabtest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	assert.True(t, strings.HasPrefix(srv.URL(), "http://127.0.0.1:"), srv.URL())
	assert.Same(t, runner, srv.Runner())

	c := srv.Client()
	assert.Equal(t, srv.URL(), c.URL())
	s, err := c.Open(t.Context())
	require.NoError(t, err)
	devs, _, err := s.Acquire(t.Context(), "testdata/lab.yml")
	require.NoError(t, err)
	assert.Len(t, devs, 2)
	assert.Equal(t, 1, srv.Manager().Status().RefCount)
	require.NoError(t, s.Close(t.Context()))
	assert.Equal(t, 0, srv.Manager().Status().RefCount)
	assert.Len(t, runner.Calls(), 1)
	// Server and client log to the given logger.
	assert.Contains(t, logs.String(), "component=http")
	assert.Contains(t, logs.String(), "component=client")
	assert.Contains(t, logs.String(), "component=lab")

	// Close tears the lab down and stops serving; it is idempotent.
	srv.Close()
	srv.Close()
	calls := runner.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "down", calls[1].Op)
	_, err = c.Open(t.Context())
	var te *client.TransportError
	require.ErrorAs(t, err, &te)
}

func TestNewServerRejectsInvalidClientOptions(t *testing.T) {
	ft := &fatalRecorder{TB: t}
	srv := remotelabtest.NewServer(ft)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Client(client.WithPollInterval(-1))
		ft.msg = "not reached"
	}()
	<-done
	assert.Contains(t, ft.msg, "poll interval must be positive")
}

// WithoutNetwork runs the whole server inside a synctest bubble, where an
// idle lab's TTL takes no real time.
func TestWithoutNetworkIdleTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(), remotelabtest.WithIdleTTL(time.Minute))
		s, err := srv.Client().Open(context.Background())
		require.NoError(t, err)
		defer s.Close(context.Background())
		_, _, err = s.Acquire(context.Background(), "testdata/lab.yml")
		require.NoError(t, err)
		require.NoError(t, s.Release(context.Background()))

		time.Sleep(59 * time.Second)
		synctest.Wait()
		assert.Len(t, srv.Runner().Calls(), 1, "still warm")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		calls := srv.Runner().Calls()
		require.Len(t, calls, 2)
		assert.Equal(t, "down", calls[1].Op)
	})
}

func TestInMemoryTransport(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+" "+r.URL.RequestURI()+" "+string(body))
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	})
	hc := &http.Client{Transport: remotelabtest.InMemoryTransport(h)}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://x.invalid/a?b=c", strings.NewReader("hi"))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusTeapot, resp.StatusCode)
	assert.Equal(t, "short and stout", string(body))
	assert.Equal(t, "POST /a?b=c hi", resp.Header.Get("X-Seen"))
}

// Cancelling a request cancels the handler's context, and the call fails.
func TestInMemoryTransportCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})
		hc := &http.Client{Transport: remotelabtest.InMemoryTransport(h)}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://x.invalid/", nil)
		require.NoError(t, err)
		start := time.Now()
		_, err = hc.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Minute, time.Since(start))
	})
}

// The examples' test functions work as shown.
func TestExampleFunctions(t *testing.T) {
	t.Run("lab failure", testLabFailure)
	t.Run("queue timeout", testQueueTimeout)
}

// A handler that aborts its response fails the request instead of the
// test binary, as it would over a socket.
func TestInMemoryTransportAbort(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	})
	hc := &http.Client{Transport: remotelabtest.InMemoryTransport(h)}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://x.invalid/", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "aborted")
}
