// Package httpserver serves the remotelab HTTP API (wire-compatible with the
// original Python service) over a broker.Broker: it translates requests
// into Broker calls and Broker results and errors into answers. It also
// serves the views of the queue (/queue, /history, the live dashboard at /
// and its /events stream), /metrics, /readyz and the admin routes, and
// enforces authentication and roles when an Authenticator is configured.
//
// There is no global lock: a running `netlab up` or `down` holds only the
// calling session's operation lock, so polls, heartbeats, /healthz and the
// views are answered while it runs.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/metrics"
	"github.com/remotelab-go/remotelab/topology"
)

// Authenticator maps a bearer token to an identity (an *auth.File does).
type Authenticator interface {
	Lookup(token string) (auth.Identity, bool)
}

// AuditLog is the audit log as GET /admin/audit reads it.
type AuditLog interface {
	// Tail returns up to n of the last entries, oldest first.
	Tail(n int) ([]broker.Audit, error)
}

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	// Broker runs the queue and the lab. Required. The Server does not
	// close it.
	Broker *broker.Broker
	// Limits bound uploads (default topology.DefaultLimits()).
	Limits topology.Limits
	// SpoolDir is where uploaded extra files that arrive before the
	// topology part are spooled until the bundle exists (default
	// os.TempDir()); the bundle spools the others itself.
	SpoolDir string
	// MaxWait caps the long-poll ?wait= of GET /session/{id} (default 60 s).
	MaxWait time.Duration
	// UploadTimeout bounds the reading of a POST /lab body (default 5
	// min); a body still incomplete then gets 408.
	UploadTimeout time.Duration
	// Auth, if set, turns authentication on (SPEC §10): every route but
	// /healthz and /readyz needs a token of a sufficient role. Without
	// it anyone may act on any session and the admin routes answer
	// loopback callers only.
	Auth Authenticator
	// Audit, if set, is served by GET /admin/audit.
	Audit AuditLog
	// Metrics collects the metrics served at /metrics; nil makes one
	// (then the Broker's events are not counted: pass the same Metrics
	// to broker.Config.Observer for that).
	Metrics *metrics.Metrics
	// Logger receives request logs (default slog.Default()).
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxWait       = 60 * time.Second
	DefaultUploadTimeout = 5 * time.Minute
)

// Server is the HTTP API. It implements http.Handler. The caller must call
// Close.
type Server struct {
	b             *broker.Broker
	log           *slog.Logger
	limits        topology.Limits
	spoolDir      string
	maxWait       time.Duration
	uploadTimeout time.Duration
	auth          Authenticator
	auditLog      AuditLog
	metrics       *metrics.Metrics

	mux      *http.ServeMux
	unrouted *route // the metrics of requests no route matched
	started  time.Time
	draining atomic.Bool
	// drained ends with Drain: it cuts long-polls and event streams
	// short so a graceful shutdown does not wait for them.
	drained   context.Context
	stopPolls context.CancelFunc
	events    *eventHub
}

// New returns a Server over cfg.Broker.
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil {
		return nil, errors.New("new server: Config.Broker is required")
	}
	if cfg.MaxWait < 0 || cfg.UploadTimeout < 0 {
		return nil, errors.New("new server: negative duration in Config")
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s := &Server{
		b:             cfg.Broker,
		log:           cfg.Logger,
		limits:        cfg.Limits.WithDefaults(),
		spoolDir:      cfg.SpoolDir,
		maxWait:       cfg.MaxWait,
		uploadTimeout: cfg.UploadTimeout,
		auth:          cfg.Auth,
		auditLog:      cfg.Audit,
		metrics:       cfg.Metrics,
		started:       time.Now(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxWait == 0 {
		s.maxWait = DefaultMaxWait
	}
	if s.uploadTimeout == 0 {
		s.uploadTimeout = DefaultUploadTimeout
	}
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	s.metrics.Watch(s.b)
	s.drained, s.stopPolls = context.WithCancel(context.Background())
	s.events = newEventHub(s)
	s.routes()
	return s, nil
}

// access says who may call a route.
type access struct {
	need auth.Role // the least role (with authentication on)
	// admin routes answer only loopback callers when authentication is
	// off.
	admin bool
	// info routes log at INFO (they change something); the rest at
	// DEBUG.
	info bool
	// probe routes (/healthz, /readyz) need no token, answer while the
	// server drains, and log at DEBUG whatever they answer: their 503 is
	// the normal "not ready", asked for every few seconds.
	probe bool
}

// route is what ServeHTTP knows of a route pattern: who may call it and
// its request metrics.
type route struct {
	access
	metrics *metrics.RouteMetrics
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.unrouted = &route{metrics: s.metrics.Route(routeLabel(""))}
	handle := s.handle
	viewer := access{need: auth.Viewer}
	user := access{need: auth.User}
	userInfo := access{need: auth.User, info: true}
	admin := access{need: auth.Admin, admin: true, info: true}
	adminRead := access{need: auth.Admin, admin: true}
	probe := access{probe: true}

	handle("POST /session", userInfo, s.createSession)
	handle("GET /session/{id}", user, s.sessionStatus)
	handle("DELETE /session/{id}", userInfo, s.deleteSession)
	handle("POST /session/heartbeat", user, s.heartbeat)
	handle("GET /active-session", viewer, s.activeSession)
	handle("POST /lab", userInfo, s.acquireLab)
	handle("GET /lab", user, s.labStatus)
	handle("DELETE /lab", userInfo, s.destroyLab)
	handle("GET /lab/devices", user, s.labDevices)
	handle("POST /lab/release", userInfo, s.releaseLab)
	handle("GET /healthz", probe, s.healthz)
	handle("GET /readyz", probe, s.readyz)
	handle("GET /debug/health", viewer, s.debugHealth)
	handle("GET /queue", viewer, s.queueView)
	handle("GET /history", viewer, s.history)
	handle("GET /events", viewer, s.events.serve)
	handle("GET /metrics", viewer, s.metricsHandler)
	handle("GET /{$}", viewer, s.dashboard)
	handle("POST /admin/sessions/{id}/evict", admin, s.evict)
	handle("DELETE /admin/lab", admin, s.adminDestroyLab)
	handle("POST /admin/drain", admin, s.drain)
	handle("POST /admin/resume", admin, s.resume)
	handle("POST /admin/unquarantine", admin, s.unquarantine)
	handle("GET /admin/audit", adminRead, s.audit)
}

// Drain starts a shutdown: from now on every new request but the probes
// (/healthz, /readyz) answers 503 (JSON); requests already running finish. Long-polls answer
// at once with the session's current status and event streams end, so
// they do not hold up a graceful shutdown.
func (s *Server) Drain() {
	if !s.draining.Swap(true) {
		s.log.Info("Draining: new requests are refused")
	}
	s.stopPolls()
}

// Close drains the server and stops its event hub. It does not close the
// Broker.
func (s *Server) Close() {
	s.Drain()
	s.events.close()
}

// metricsHandler serves GET /metrics.
func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) {
	s.metrics.Handler().ServeHTTP(w, r)
}

// healthz handles GET /healthz: the liveness probe.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

// readyz handles GET /readyz: 200 when the host can take lab work, else
// 503 with the reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ok, reason := s.b.Ready()
	if s.draining.Load() {
		ok, reason = false, "shutting down"
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, api.Ready{Ready: ok, Reason: reason})
}
