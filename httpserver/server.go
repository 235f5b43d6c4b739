// Package httpserver serves the remotelab HTTP API (wire-compatible with the
// original Python service) over a queue.Queue of sessions and a
// lab.Manager. It is a translation layer: sessions are queue entries, lab
// calls go to the Manager, and errors become status codes.
//
// There is no global lock: a running `netlab up` or `down` holds only the
// calling session's operation lock, so polls, heartbeats, /healthz and other
// sessions' calls are answered while it runs.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
	"github.com/remotelab-go/remotelab/topology"
)

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	// Manager runs the host's lab. Required. The Server does not close it.
	Manager *lab.Manager
	// ActiveTTL and WaitingTTL are the session inactivity limits
	// (defaults 300 s and 600 s).
	ActiveTTL, WaitingTTL time.Duration
	// Limits bound uploads (default topology.DefaultLimits()).
	Limits topology.Limits
	// SpoolDir is where uploaded extra files that arrive before the
	// topology part are spooled until the bundle exists (default
	// os.TempDir()); the bundle spools the others itself.
	SpoolDir string
	// MaxWait caps the long-poll ?wait= of GET /session/{id} (default 60 s).
	MaxWait time.Duration
	// Logger receives request and session logs (default slog.Default()).
	Logger *slog.Logger
}

// DefaultMaxWait is the default cap of a long-poll.
const DefaultMaxWait = 60 * time.Second

// Server is the HTTP API. It implements http.Handler. The caller must call
// Close.
type Server struct {
	mgr      *lab.Manager
	log      *slog.Logger
	limits   topology.Limits
	spoolDir string
	maxWait  time.Duration

	q        *queue.Queue[*session]
	mux      *http.ServeMux
	started  time.Time
	draining atomic.Bool
	// drained ends with Drain: it cuts long-polls short so a graceful
	// shutdown does not wait for them.
	drained   context.Context
	stopPolls context.CancelFunc
}

// session is the payload of a queue entry.
type session struct {
	// ctx is cancelled when the session leaves the queue, which interrupts
	// its running lab operation.
	ctx    context.Context
	cancel context.CancelFunc
	// op serialises the session's lab operations: a second one while one
	// runs is refused (409) rather than queued behind it.
	op sync.Mutex
}

// New returns a Server with an empty session queue.
func New(cfg Config) (*Server, error) {
	if cfg.Manager == nil {
		return nil, errors.New("new server: Config.Manager is required")
	}
	if cfg.ActiveTTL < 0 || cfg.WaitingTTL < 0 || cfg.MaxWait < 0 {
		return nil, errors.New("new server: negative duration in Config")
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	limits := cfg.Limits.WithDefaults()
	s := &Server{
		mgr:      cfg.Manager,
		log:      cfg.Logger,
		limits:   limits,
		spoolDir: cfg.SpoolDir,
		maxWait:  cfg.MaxWait,
		started:  time.Now(),
	}
	s.drained, s.stopPolls = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxWait == 0 {
		s.maxWait = DefaultMaxWait
	}
	s.q = queue.New(queue.Config[*session]{
		ActiveTTL:  cfg.ActiveTTL,
		WaitingTTL: cfg.WaitingTTL,
		OnRemove:   s.onRemove,
		OnPromote: func(info queue.Info[*session]) {
			s.log.Info(fmt.Sprintf("Session %s promoted to ACTIVE", api.ShortID(info.ID)),
				"epoch", info.Epoch)
		},
	})
	s.routes()
	return s, nil
}

// onRemove runs once for every session that leaves the queue: it drops the
// session's lab references and interrupts its running lab operation.
func (s *Server) onRemove(rm queue.Removal[*session]) {
	id := rm.Info.ID
	reason := "client-end"
	switch rm.Reason {
	case queue.Expired:
		reason = "stale"
		s.log.Warn(fmt.Sprintf("Removing stale session %s due to inactivity", api.ShortID(id)))
	case queue.Closed:
		reason = "server-shutdown"
	}
	if p := rm.Info.Payload; p != nil {
		p.cancel()
	}
	s.mgr.ReleaseAll(id)
	s.log.Info(fmt.Sprintf("Session %s removed (%s)", api.ShortID(id), reason))
	if rm.Info.Status == queue.Active {
		s.log.Info(fmt.Sprintf("Active session %s ended, its lab references were dropped", api.ShortID(id)))
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /session", s.createSession)
	m.HandleFunc("GET /session/{id}", s.sessionStatus)
	m.HandleFunc("DELETE /session/{id}", s.deleteSession)
	m.HandleFunc("POST /session/heartbeat", s.heartbeat)
	m.HandleFunc("GET /active-session", s.activeSession)
	m.HandleFunc("POST /lab", s.acquireLab)
	m.HandleFunc("GET /lab", s.labStatus)
	m.HandleFunc("DELETE /lab", s.destroyLab)
	m.HandleFunc("GET /lab/devices", s.labDevices)
	m.HandleFunc("POST /lab/release", s.releaseLab)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /debug/health", s.debugHealth)
	s.mux = m
}

// Drain starts a shutdown: from now on POST /session answers 503; every
// other call is still served so in-flight work can finish. Long-polls
// answer at once with the session's current status, so they do not hold
// up a graceful shutdown.
func (s *Server) Drain() {
	if !s.draining.Swap(true) {
		s.log.Info("Draining: new sessions are refused")
	}
	s.stopPolls()
}

// Close ends every session (dropping its lab references and cancelling
// its running lab operations) and stops the queue. It does not tear the
// lab down: the caller closes the Manager.
func (s *Server) Close() {
	s.draining.Store(true)
	s.stopPolls()
	if n := s.q.Len(); n > 0 {
		s.log.Info(fmt.Sprintf("Cleaning up %d remaining sessions...", n))
	}
	s.q.Close()
}

// Sessions returns the number of sessions in the queue.
func (s *Server) Sessions() int { return s.q.Len() }
