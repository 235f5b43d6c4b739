package httpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// scrape is one /metrics answer: series (name{k="v",...} with labels
// sorted) → value.
type scrape map[string]float64

// series names a series as scrape keys it: labels as k, v pairs.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// parseMetrics reads the Prometheus text format: comments skipped, each
// sample line "name{labels} value".
func parseMetrics(t *testing.T, body []byte) scrape {
	t.Helper()
	out := scrape{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		require.Positive(t, cut, "line %q", line)
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		require.NoError(t, err, "line %q", line)
		name, rest, hasLabels := strings.Cut(line[:cut], "{")
		var labels []string
		if hasLabels {
			rest = strings.TrimSuffix(rest, "}")
			for rest != "" {
				k, after, ok := strings.Cut(rest, "=")
				require.True(t, ok, "line %q", line)
				val, err := strconv.QuotedPrefix(after)
				require.NoError(t, err, "line %q", line)
				uq, err := strconv.Unquote(val)
				require.NoError(t, err, "line %q", line)
				labels = append(labels, k, uq)
				rest = strings.TrimPrefix(after[len(val):], ",")
			}
		}
		out[series(name, labels...)] = v
	}
	require.NoError(t, sc.Err())
	return out
}

// metrics scrapes GET /metrics through the socket.
func (e *env) scrape(t *testing.T) (scrape, string) {
	t.Helper()
	r := e.get("/metrics", "")
	require.Equal(t, http.StatusOK, r.code)
	assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "text/plain"), r.header.Get("Content-Type"))
	return parseMetrics(t, r.body), string(r.body)
}

// has returns the value of a series, failing the test if it is missing.
func (s scrape) has(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	k := series(name, labels...)
	v, ok := s[k]
	require.True(t, ok, "no series %s", k)
	return v
}

// labStates checks that remotelab_lab_state is 1 for want only.
func (s scrape) labState(t *testing.T, want lab.State) {
	t.Helper()
	for _, st := range []lab.State{lab.StateNone, lab.StateStarting, lab.StateRunning, lab.StateIdle, lab.StateStopping, lab.StateDirty} {
		exp := 0.0
		if st == want {
			exp = 1
		}
		assert.Equal(t, exp, s.has(t, "remotelab_lab_state", "state", string(st)), "remotelab_lab_state{state=%q}", st)
	}
}

// TestMetricsMove: the metrics of SPEC §9 follow what happens: sessions
// joining and ending, holds, lab operations and their failures, acquires,
// the lab's state, quarantine and HTTP requests (by route pattern, never
// by raw path).
func TestMetricsMove(t *testing.T) {
	var failUp atomic.Bool
	runner := &remotelabtest.FakeRunner{UpHook: func(context.Context, lab.Spec) error {
		if failUp.Load() {
			return errors.New("clab deploy exited 1")
		}
		return nil
	}}
	e := newEnv(t, withRunner(runner), withBroker(func(c *broker.Config) { c.QuarantineAfter = 1 }))
	m, _ := e.scrape(t)
	assert.Equal(t, 0.0, m.has(t, "remotelab_sessions", "status", "active"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_sessions", "status", "waiting"))
	m.labState(t, lab.StateNone)
	assert.Equal(t, 0.0, m.has(t, "remotelab_quarantined"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_sessions_ended_total", "outcome", "closed"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_session_hold_seconds_count"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_lab_operations_total", "op", "up", "result", "error"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_lab_acquires_total", "reused", "false"))
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "remotelab_oldest_waiting_seconds", "remotelab_holder_active_seconds", "remotelab_session_wait_seconds_count"} {
		m.has(t, name)
	}

	// A joins and holds, W waits.
	a := e.createSession().SessionID
	w := e.createSession().SessionID
	m, _ = e.scrape(t)
	assert.Equal(t, 1.0, m.has(t, "remotelab_sessions", "status", "active"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_sessions", "status", "waiting"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_session_wait_seconds_count"))

	e.mustAcquire(a)
	m, _ = e.scrape(t)
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_acquires_total", "reused", "false"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_lab_acquires_total", "reused", "true"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_operations_total", "op", "up", "result", "ok"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_operations_total", "op", "inspect", "result", "ok"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_operation_seconds_count", "op", "up"))
	m.labState(t, lab.StateRunning)

	// A's hold ends; W gets the warm lab.
	require.Equal(t, http.StatusNoContent, e.send(del("/session/"+a, "")).code)
	m, _ = e.scrape(t)
	assert.Equal(t, 1.0, m.has(t, "remotelab_sessions_ended_total", "outcome", "closed"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_session_hold_seconds_count"))
	assert.Equal(t, 2.0, m.has(t, "remotelab_session_wait_seconds_count"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_sessions", "status", "active"))
	assert.Equal(t, 0.0, m.has(t, "remotelab_sessions", "status", "waiting"))
	m.labState(t, lab.StateIdle)
	e.mustAcquire(w)
	m, _ = e.scrape(t)
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_acquires_total", "reused", "true"))
	m.labState(t, lab.StateRunning)

	// A failed up (of another topology, after a teardown) quarantines
	// the host (QuarantineAfter 1).
	require.Equal(t, http.StatusNoContent, e.send(post("/lab/release", w)).code)
	failUp.Store(true)
	r := e.acquire(w, topo("lab.yml", topoB))
	require.Equal(t, http.StatusBadGateway, r.code, "%s", r.body)
	m, _ = e.scrape(t)
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_operations_total", "op", "up", "result", "error"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_lab_operations_total", "op", "up", "result", "ok"))
	assert.Equal(t, 2.0, m.has(t, "remotelab_lab_operations_total", "op", "down", "result", "ok"),
		"the old lab's teardown and the failed start's cleanup")
	assert.Equal(t, 1.0, m.has(t, "remotelab_quarantined"))
	m.labState(t, lab.StateNone)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/unquarantine", "")).code)
	m, _ = e.scrape(t)
	assert.Equal(t, 0.0, m.has(t, "remotelab_quarantined"))
}

// TestMetricsRoutes: HTTP requests are counted by route pattern and code;
// no raw path, session id or client input becomes a label. (In a bubble,
// so that every request's handler has finished before the scrape.)
func TestMetricsRoutes(t *testing.T) {
	synctest.Test(t, testMetricsRoutes)
}

func testMetricsRoutes(t *testing.T) {
	e := newEnv(t, overPipe())
	id := e.createSession().SessionID
	random := uuid.NewString()
	for range 3 {
		require.Equal(t, http.StatusNotFound, e.get("/session/"+random, "").code)
	}
	require.Equal(t, http.StatusOK, e.get("/session/"+id, "").code)
	require.Equal(t, http.StatusNotFound, e.get("/no/such/"+random, "").code)
	require.Equal(t, http.StatusMethodNotAllowed, e.send(request{method: http.MethodPut, path: "/session/" + random}).code)
	synctest.Wait() // a request is counted once its handler returned, maybe after its answer arrived

	m, text := e.scrape(t)
	assert.Equal(t, 3.0, m.has(t, "remotelab_http_requests_total", "route", "GET /session/{id}", "code", "404"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_http_requests_total", "route", "GET /session/{id}", "code", "200"))
	assert.Equal(t, 1.0, m.has(t, "remotelab_http_requests_total", "route", "POST /session", "code", "201"))
	assert.Equal(t, 4.0, m.has(t, "remotelab_http_request_seconds_count", "route", "GET /session/{id}"))
	assert.Equal(t, 2.0, m.has(t, "remotelab_http_requests_total", "route", "none", "code", "404")+
		m.has(t, "remotelab_http_requests_total", "route", "none", "code", "405"))
	assert.NotContains(t, text, random)
	assert.NotContains(t, text, id)
	assert.NotContains(t, text, id[:8])
	assert.NotContains(t, text, "/no/such")
	for k := range m {
		if strings.HasPrefix(k, "remotelab_http_requests_total{") {
			route := k[strings.Index(k, `route="`)+len(`route="`):]
			route = route[:strings.IndexByte(route, '"')]
			assert.True(t, route == "none" || strings.Contains(route, " /"), "route label %q is no pattern", route)
		}
	}
}
