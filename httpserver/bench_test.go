package httpserver_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkSessionStatus measures GET /session/{id} through a real socket
// (httptest), the call every waiting client makes.
func BenchmarkSessionStatus(b *testing.B) {
	e := newEnv(b)
	id := e.createSession().SessionID
	url := e.base + "/session/" + id
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkSessionStatusHandler measures the handler alone, without the
// network.
func BenchmarkSessionStatusHandler(b *testing.B) {
	e := newEnv(b)
	id := e.createSession().SessionID
	req, err := http.NewRequest(http.MethodGet, "/session/"+id, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		e.srv.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
