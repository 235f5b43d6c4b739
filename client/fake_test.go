package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/testutil"
)

// pipeTransport is an http.RoundTripper that serves each request by
// running a handler in a goroutine of its own and streaming its answer
// through a pipe: the response comes back as soon as the handler writes
// its header, so an endless answer (an event stream) can be read while it
// is written. It needs no socket, so it works inside a testing/synctest
// bubble. Cancelling the request, or closing the response body, cancels
// the handler's context; a handler that panics with http.ErrAbortHandler
// breaks the connection, as over a socket. Requests come from a loopback
// address, as admin routes want.
type pipeTransport struct{ h http.Handler }

var errConnReset = errors.New("connection reset by peer")

func (t pipeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	r := req.Clone(ctx)
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = req.URL.Host
	if r.Body == nil {
		r.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: make(http.Header), pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			v := recover()
			if req.Body != nil {
				_ = req.Body.Close()
			}
			switch {
			case v == http.ErrAbortHandler:
				w.finish(errConnReset)
			case v != nil:
				w.finish(fmt.Errorf("handler panicked: %v", v))
				panic(v)
			default:
				w.finish(nil)
			}
		}()
		t.h.ServeHTTP(w, r)
	}()
	<-w.ready
	if w.err != nil {
		cancel()
		return nil, w.err
	}
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)),
		StatusCode: w.code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.sent,
		Body:          pipeBody{pr, cancel},
		ContentLength: -1,
		Request:       req,
	}, nil
}

type pipeBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b pipeBody) Close() error {
	b.cancel()
	return b.PipeReader.CloseWithError(errors.New("body closed"))
}

// pipeWriter is the handler's http.ResponseWriter.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter

	mu    sync.Mutex
	code  int
	sent  http.Header // header as sent
	ready chan struct{}
	err   error // failure before the header was sent
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent != nil {
		return
	}
	w.code, w.sent = code, w.header.Clone()
	close(w.ready)
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush is a no-op: every Write reaches the reader before it returns.
func (w *pipeWriter) Flush() {}

// finish ends the answer when the handler returns: cleanly, or broken
// by err (then a request whose header was not sent yet fails).
func (w *pipeWriter) finish(err error) {
	w.mu.Lock()
	if w.sent == nil {
		w.err = err
		w.code, w.sent = http.StatusOK, w.header.Clone()
		close(w.ready)
	}
	w.mu.Unlock()
	_ = w.pw.CloseWithError(err) // nil: a clean EOF
}

// pipeClient returns a client of h through a pipeTransport, logging to
// logs (nil: discarded).
func pipeClient(t testing.TB, h http.Handler, logs *testutil.Buffer, opts ...client.Option) *client.Client {
	t.Helper()
	if logs == nil {
		logs = &testutil.Buffer{}
	}
	all := append([]client.Option{
		client.WithHTTPClient(&http.Client{Transport: pipeTransport{h}}),
		client.WithLogger(newLogger(logs)),
	}, opts...)
	c, err := client.New("http://lab.invalid", all...)
	require.NoError(t, err)
	return c
}

// seen is one request a fake server got.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
	At                  time.Time
}

// journal records the requests of a fake server.
type journal struct {
	mu   sync.Mutex
	reqs []seen
}

// wrap records each request (its body read in full) before h serves it.
func (j *journal) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		j.mu.Lock()
		j.reqs = append(j.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body), time.Now()})
		j.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (j *journal) all() []seen {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]seen(nil), j.reqs...)
}

// of returns the requests to "METHOD /path".
func (j *journal) of(route string) []seen {
	var out []seen
	for _, r := range j.all() {
		if r.Method+" "+r.Path == route {
			out = append(out, r)
		}
	}
	return out
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Outage modes of a fakeSessions server.
const (
	up          = ""
	unavailable = "503" // every request gets 503 "Server shutting down"
	gateway     = "502" // every request gets 502 from a proxy
	dropped     = "drop"
)

// fakeSessions is a remotelabd stand-in for one session "sess-0001…":
// create, long-poll status (promoted when promote is called), heartbeat,
// delete, GET /lab, with outages and a server-side end on demand.
type fakeSessions struct {
	journal

	mu       sync.Mutex
	position int           // of the session; 0 = active
	estimate *float64      // estimated_wait_seconds while waiting
	changed  chan struct{} // closed and replaced on every change
	outage   string
	gone     *api.SessionGone // set: the session ended
}

const fakeID = "sess-0001-aaaa-bbbb"

func newFakeSessions(position int) *fakeSessions {
	return &fakeSessions{position: position, changed: make(chan struct{})}
}

// set moves the session to position (0: active) with an estimate.
func (f *fakeSessions) set(position int, estimate *float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.position, f.estimate = position, estimate
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeSessions) setOutage(mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = mode
}

// end ends the session on the server's side.
func (f *fakeSessions) end(outcome, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone = &api.SessionGone{Detail: api.DetailSessionNotFound, Outcome: outcome, Reason: reason,
		EndedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeSessions) handler() http.Handler { return f.wrap(http.HandlerFunc(f.serve)) }

func (f *fakeSessions) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	outage, gone := f.outage, f.gone
	f.mu.Unlock()
	switch outage {
	case unavailable:
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Detail: api.DetailShuttingDown})
		return
	case gateway:
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
		return
	case dropped:
		panic(http.ErrAbortHandler)
	}
	route := r.Method + " " + r.URL.Path
	if gone != nil && route != "POST /session" {
		writeJSON(w, http.StatusNotFound, gone)
		return
	}
	switch route {
	case "POST /session":
		st := f.status()
		writeJSON(w, http.StatusCreated, api.CreateSessionResponse{SessionID: fakeID, Position: st.Position,
			Status: st.Status, SessionDetails: st.SessionDetails})
	case "GET /session/" + fakeID:
		f.longPoll(w, r)
	case "POST /session/heartbeat", "DELETE /session/" + fakeID, "POST /lab/release":
		w.WriteHeader(http.StatusNoContent)
	case "GET /lab":
		writeJSON(w, http.StatusOK, api.LabStatus{State: "none", Devices: []api.Device{}})
	default:
		writeJSON(w, http.StatusNotFound, api.Error{Detail: api.DetailNotFound})
	}
}

func (f *fakeSessions) status() api.SessionStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := api.SessionStatus{Status: api.StatusWaiting, Position: f.position}
	if f.position == 0 {
		st.Status, st.Epoch = api.StatusActive, 1
	} else {
		st.EstimatedWaitSeconds = f.estimate
	}
	return st
}

// longPoll answers GET /session/{id}?wait=D as remotelabd does.
func (f *fakeSessions) longPoll(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	changed := f.changed
	f.mu.Unlock()
	if st := f.status(); st.Status == api.StatusWaiting && r.URL.Query().Get("wait") != "" {
		wait, err := api.ParseDuration(r.URL.Query().Get("wait"))
		if err == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-changed:
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
	}
	f.mu.Lock()
	gone := f.gone
	f.mu.Unlock()
	if gone != nil {
		writeJSON(w, http.StatusNotFound, gone)
		return
	}
	writeJSON(w, http.StatusOK, f.status())
}

// requestBody decodes the JSON body of the first POST /session.
func (f *fakeSessions) requestBody(t testing.TB) (api.SessionRequest, http.Header) {
	t.Helper()
	creates := f.of("POST /session")
	require.NotEmpty(t, creates)
	var req api.SessionRequest
	dec := json.NewDecoder(strings.NewReader(creates[0].Body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&req), "body %q", creates[0].Body)
	return req, creates[0].Header
}
