// Package httpserver serves the remotelab HTTP API (wire-compatible with the
// original Python service) over a queue.Queue of sessions and a
// lab.Manager. It is a translation layer: sessions are queue entries, lab
// calls go to the Manager, and errors become status codes.
package httpserver

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/remotelab-go/remotelab/lab"
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
	// SpoolDir is where uploaded extra files are spooled (default
	// os.TempDir()).
	SpoolDir string
	// MaxWait caps the long-poll ?wait= of GET /session/{id} (default 60 s).
	MaxWait time.Duration
	// Logger receives request and session logs (default slog.Default()).
	Logger *slog.Logger
}

// Server is the HTTP API. It implements http.Handler. The caller must call
// Close.
type Server struct {
	// implementation defined
}

// New returns a Server with an empty session queue.
func New(cfg Config) (*Server, error) { panic("unimplemented") }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { panic("unimplemented") }

// Drain starts a shutdown: from now on POST /session answers 503; every
// other call is still served so in-flight work can finish.
func (s *Server) Drain() { panic("unimplemented") }

// Close ends every session (dropping its lab references and cancelling
// its running lab operations) and stops the queue. It does not tear the
// lab down: the caller closes the Manager.
func (s *Server) Close() { panic("unimplemented") }

// Sessions returns the number of sessions in the queue.
func (s *Server) Sessions() int { panic("unimplemented") }

var _ = context.Background
