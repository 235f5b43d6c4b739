package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
)

// benchStack is the serve role's stack (remotelabd's wiring, logs at
// INFO, no store) with a holder and 1 000 waiters, for benchmarks of the
// request path without the network. One earlier holder has left, so the
// answers carry wait estimates, as on a server that has served anyone.
func benchStack(b *testing.B) (*serveStack, []string) {
	b.Helper()
	s, err := newServeStack("", 0, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	ids := make([]string, 1002)
	for i := range ids {
		sess, err := s.b.Join(broker.Meta{Owner: "127.0.0.1", Client: "127.0.0.1:40000"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = sess.ID
	}
	if err := s.b.Leave(ids[0]); err != nil {
		b.Fatal(err)
	}
	if sess, err := s.b.Session(ids[2]); err != nil || !sess.HasEstimate {
		b.Fatalf("a waiter has no wait estimate (%v)", err)
	}
	return s, ids[2:]
}

// discardWriter is a ResponseWriter that keeps only the status code.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// benchRequests serves one prepared request per waiter in turn and checks
// the status of each answer.
func benchRequests(b *testing.B, s *serveStack, reqs []*http.Request, want int) {
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		clear(w.h)
		w.code = 0
		s.srv.ServeHTTP(w, reqs[i%len(reqs)])
		if w.code != want {
			b.Fatalf("status %d, want %d", w.code, want)
		}
		i++
	}
}

// BenchmarkServePoll measures GET /session/{id} of a waiter through
// httpserver's whole handler (routing, auth check, broker, JSON, metrics,
// request log at INFO), without the network.
func BenchmarkServePoll(b *testing.B) {
	s, ids := benchStack(b)
	reqs := make([]*http.Request, len(ids))
	for i, id := range ids {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/session/"+id, nil)
		reqs[i].Header.Set(api.HeaderSessionID, id)
	}
	benchRequests(b, s, reqs, http.StatusOK)
}

// BenchmarkServeHeartbeat measures POST /session/heartbeat the same way.
func BenchmarkServeHeartbeat(b *testing.B) {
	s, ids := benchStack(b)
	reqs := make([]*http.Request, len(ids))
	for i, id := range ids {
		reqs[i] = httptest.NewRequest(http.MethodPost, "/session/heartbeat", nil)
		reqs[i].Header.Set(api.HeaderSessionID, id)
	}
	benchRequests(b, s, reqs, http.StatusNoContent)
}

// BenchmarkServeHealthz measures GET /healthz, the floor of the handler.
func BenchmarkServeHealthz(b *testing.B) {
	s, _ := benchStack(b)
	benchRequests(b, s, []*http.Request{httptest.NewRequest(http.MethodGet, "/healthz", nil)}, http.StatusNoContent)
}
