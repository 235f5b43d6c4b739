package client_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Topologies used throughout.
const (
	topoA = "name: a\nnodes: [r1, r2]\n"
	topoB = "name: b\nnodes: [r1, r2, r3]\n"
)

// newLogger returns a debug-level logger writing to b.
func newLogger(b *testutil.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// open opens a session and closes it when the test ends.
func open(t testing.TB, c *client.Client) *client.Session {
	t.Helper()
	s, err := c.Open(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
	return s
}

// recorded is one request seen by a recorder.
type recorded struct {
	Method, Path, Query string
	Header              http.Header
	At                  time.Time
}

// recorder is an http.RoundTripper that records requests before passing
// them on.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), time.Now()})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// count returns how many recorded requests match method and path prefix.
func (r *recorder) count(method, pathPrefix string) int {
	n := 0
	for _, q := range r.requests() {
		if q.Method == method && strings.HasPrefix(q.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// recordingClient returns a client of srv whose requests are recorded.
func recordingClient(srv *remotelabtest.Server, opts ...client.Option) (*client.Client, *recorder) {
	rec := &recorder{next: srv.HTTPClient().Transport}
	if rec.next == nil {
		rec.next = http.DefaultTransport
	}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Transport: rec})}, opts...)
	return srv.Client(opts...), rec
}
