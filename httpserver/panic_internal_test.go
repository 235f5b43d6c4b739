package httpserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
)

// nopRunner is a lab.Runner that does nothing (remotelabtest imports this
// package, so its FakeRunner cannot be used here).
type nopRunner struct{}

func (nopRunner) Up(context.Context, lab.Spec) ([]lab.Device, error) { return nil, nil }
func (nopRunner) Down(context.Context, string) error                 { return nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPanicIsA500: a panicking handler answers a JSON 500, is logged at
// ERROR with its stack, and the server keeps serving on the same client.
func TestPanicIsA500(t *testing.T) {
	mgr, err := lab.NewManager(lab.Config{Runner: nopRunner{}, WorkRoot: t.TempDir(), LockPath: "-"})
	require.NoError(t, err)
	defer mgr.Close(context.Background())
	logs := &syncBuffer{}
	s, err := New(Config{Manager: mgr, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	defer s.Close()
	s.mux.HandleFunc("GET /test/panic", func(http.ResponseWriter, *http.Request) {
		panic("handler bug")
	})
	ts := httptest.NewServer(s)
	defer ts.Close()

	for range 3 {
		res, err := ts.Client().Get(ts.URL + "/test/panic")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"detail":"Internal Server Error"}`, string(body))

		res, err = ts.Client().Get(ts.URL + "/healthz")
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusNoContent, res.StatusCode)
	}
	out := logs.String()
	assert.Contains(t, out, "level=ERROR msg=\"panic serving request\"")
	assert.Contains(t, out, "panic=\"handler bug\"")
	assert.Contains(t, out, "panic_internal_test.go", "the stack is logged")
	assert.Contains(t, out, "path=/test/panic status=500")
}
