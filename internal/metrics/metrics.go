// Package metrics exposes remotelabd's Prometheus metrics (SPEC §9): the
// queue and the lab as gauges read at scrape time from a broker.Broker,
// session ends, waits, holds and lab operations as counters and histograms
// fed by the Broker's Observer hooks, and per-route HTTP counts and
// durations. Labels have bounded cardinality: route patterns, never raw
// paths or session ids.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
)

// Metrics holds remotelabd's metrics in a registry of its own. It
// implements broker.Observer. Create it with New, pass it to
// broker.Config.Observer and httpserver.Config.Metrics.
type Metrics struct {
	reg *prometheus.Registry
	h   http.Handler

	ended        *prometheus.CounterVec
	wait         prometheus.Histogram
	hold         prometheus.Histogram
	ops          *prometheus.CounterVec
	opSeconds    *prometheus.HistogramVec
	acquires     *prometheus.CounterVec
	requests     *prometheus.CounterVec
	requestTimes *prometheus.HistogramVec

	routesMu sync.Mutex
	routes   map[string]*RouteMetrics

	broker atomic.Pointer[broker.Broker]
}

var _ broker.Observer = (*Metrics)(nil)

// Label values known in advance, so their series exist from the start.
var (
	outcomes  = []string{api.OutcomeClosed, api.OutcomeExpired, api.OutcomeEvicted, api.OutcomeWaitTimeout, api.OutcomeMaxHold, api.OutcomeShutdown}
	labOps    = []string{"up", "inspect", "down"}
	results   = []string{"ok", "error", "timeout"}
	labStates = []lab.State{lab.StateNone, lab.StateStarting, lab.StateRunning, lab.StateIdle, lab.StateStopping, lab.StateDirty}
)

// New returns Metrics with the Go and process collectors registered.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg:    reg,
		routes: make(map[string]*RouteMetrics),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remotelab_sessions_ended_total",
			Help: "Sessions that ended, by outcome.",
		}, []string{"outcome"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "remotelab_session_wait_seconds",
			Help:    "How long sessions waited from joining the queue to becoming active.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 s .. 4.5 h
		}),
		hold: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "remotelab_session_hold_seconds",
			Help:    "How long sessions held the lab, from becoming active to ending.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15),
		}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remotelab_lab_operations_total",
			Help: "Lab runner steps that finished, by step (up, inspect, down) and result (ok, error, timeout).",
		}, []string{"op", "result"}),
		opSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "remotelab_lab_operation_seconds",
			Help:    "How long lab runner steps took.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 17), // 0.1 s .. 1.8 h
		}, []string{"op"}),
		acquires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remotelab_lab_acquires_total",
			Help: "Successful lab acquisitions, by whether a running lab was reused.",
		}, []string{"reused"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remotelab_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		requestTimes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "remotelab_http_request_seconds",
			Help:    "How long HTTP requests took, by route pattern (long-polls and uploads included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route"}),
	}
	for _, o := range outcomes {
		m.ended.WithLabelValues(o)
	}
	for _, op := range labOps {
		m.opSeconds.WithLabelValues(op)
		for _, r := range results {
			m.ops.WithLabelValues(op, r)
		}
	}
	m.acquires.WithLabelValues("true")
	m.acquires.WithLabelValues("false")
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ended, m.wait, m.hold, m.ops, m.opSeconds, m.acquires, m.requests, m.requestTimes,
		viewCollector{m},
	)
	m.h = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return m
}

// Watch makes the gauges describe b (the last Broker watched).
func (m *Metrics) Watch(b *broker.Broker) { m.broker.Store(b) }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return m.h }

// Route returns the request metrics of one route pattern, made on first
// use and the same afterwards. A server keeps the handle of each of its
// routes and counts every request through it.
func (m *Metrics) Route(route string) *RouteMetrics {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	r := m.routes[route]
	if r == nil {
		r = &RouteMetrics{m: m, route: route, seconds: m.requestTimes.WithLabelValues(route)}
		r.codes.Store(&[]codeCounter{})
		m.routes[route] = r
	}
	return r
}

// RouteMetrics counts the requests of one route. Observe finds the
// route's series without hashing label values (per request, that lookup
// cost as much as the rest of the metrics). It is safe for concurrent use.
type RouteMetrics struct {
	m       *Metrics
	route   string
	seconds prometheus.Observer
	// codes are the counters of the status codes seen so far: a short
	// list (a route answers a handful of codes), read without a lock and
	// replaced by a longer copy when a new code appears.
	codes   atomic.Pointer[[]codeCounter]
	codesMu sync.Mutex // serialises the replacements
}

type codeCounter struct {
	code int
	c    prometheus.Counter
}

// Observe counts one request that was answered code after d.
func (r *RouteMetrics) Observe(code int, d time.Duration) {
	r.counter(code).Inc()
	r.seconds.Observe(d.Seconds())
}

func (r *RouteMetrics) counter(code int) prometheus.Counter {
	for _, cc := range *r.codes.Load() {
		if cc.code == code {
			return cc.c
		}
	}
	r.codesMu.Lock()
	defer r.codesMu.Unlock()
	old := *r.codes.Load()
	for _, cc := range old {
		if cc.code == code {
			return cc.c
		}
	}
	c := r.m.requests.WithLabelValues(r.route, strconv.Itoa(code))
	codes := append(old[:len(old):len(old)], codeCounter{code, c})
	r.codes.Store(&codes)
	return c
}

// SessionPromoted implements broker.Observer.
func (m *Metrics) SessionPromoted(waited time.Duration) { m.wait.Observe(waited.Seconds()) }

// SessionEnded implements broker.Observer.
func (m *Metrics) SessionEnded(e broker.Ended) {
	m.ended.WithLabelValues(e.Outcome).Inc()
	if held, ok := e.Held(); ok {
		m.hold.Observe(held.Seconds())
	}
}

// LabEvent implements broker.Observer.
func (m *Metrics) LabEvent(ev lab.Event) {
	switch ev.Kind {
	case lab.EventStep:
		result := "ok"
		switch {
		case errors.Is(ev.Err, context.DeadlineExceeded):
			result = "timeout"
		case ev.Err != nil:
			result = "error"
		}
		m.ops.WithLabelValues(ev.Op, result).Inc()
		m.opSeconds.WithLabelValues(ev.Op).Observe(ev.Duration.Seconds())
	case lab.EventAcquired:
		m.acquires.WithLabelValues(strconv.FormatBool(ev.Reused)).Inc()
	}
}

// viewCollector reads the gauges from the Broker's View at scrape time.
type viewCollector struct{ m *Metrics }

var (
	sessionsDesc = prometheus.NewDesc("remotelab_sessions",
		"Sessions in the queue, by status (active, waiting).", []string{"status"}, nil)
	oldestDesc = prometheus.NewDesc("remotelab_oldest_waiting_seconds",
		"How long the longest-waiting session has waited (0 when none waits).", nil, nil)
	holderDesc = prometheus.NewDesc("remotelab_holder_active_seconds",
		"How long the active session has held the lab (0 when none).", nil, nil)
	labStateDesc = prometheus.NewDesc("remotelab_lab_state",
		"The lab's state: 1 for the current one, 0 for the others.", []string{"state"}, nil)
	quarantinedDesc = prometheus.NewDesc("remotelab_quarantined",
		"1 while the lab host is quarantined, else 0.", nil, nil)
	drainingDesc = prometheus.NewDesc("remotelab_draining",
		"1 while promotions are paused by an admin, else 0.", nil, nil)
)

func (c viewCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sessionsDesc, oldestDesc, holderDesc, labStateDesc, quarantinedDesc, drainingDesc} {
		ch <- d
	}
}

func (c viewCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.m.broker.Load()
	if b == nil {
		return
	}
	v := b.Queue()
	active, oldest, holder := 0.0, 0.0, 0.0
	if v.Holder != nil && v.Holder.Status == queue.Active {
		active = 1
		holder = v.Now.Sub(v.Holder.Promoted).Seconds()
	}
	for _, w := range v.Waiting {
		oldest = max(oldest, v.Now.Sub(w.Created).Seconds())
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(sessionsDesc, active, "active")
	gauge(sessionsDesc, float64(len(v.Waiting)), "waiting")
	gauge(oldestDesc, oldest)
	gauge(holderDesc, holder)
	for _, st := range labStates {
		gauge(labStateDesc, boolValue(v.Lab.State == st), string(st))
	}
	gauge(quarantinedDesc, boolValue(v.Quarantine != nil))
	gauge(drainingDesc, boolValue(v.Draining))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
