package remotelabtest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/internal/metrics"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/topology"
)

// ServerOption configures NewServer.
type ServerOption func(*serverConfig)

type serverConfig struct {
	runner                *FakeRunner
	activeTTL, waitingTTL time.Duration
	idleTTL               time.Duration
	limits                topology.Limits
	logger                *slog.Logger
	noNetwork             bool
	auth                  httpserver.Authenticator
	broker                []func(*broker.Config)
}

// WithRunner makes the server run labs with r (default: a zero
// FakeRunner), so the test can set delays, hooks and failures and inspect
// its calls.
func WithRunner(r *FakeRunner) ServerOption { return func(c *serverConfig) { c.runner = r } }

// WithTTLs sets how long an active and a waiting session may stay idle
// before the server ends it (defaults 300 s and 600 s).
func WithTTLs(active, waiting time.Duration) ServerOption {
	return func(c *serverConfig) { c.activeTTL, c.waitingTTL = active, waiting }
}

// WithIdleTTL sets how long an unreferenced lab stays up (default 10 min).
func WithIdleTTL(d time.Duration) ServerOption { return func(c *serverConfig) { c.idleTTL = d } }

// WithLimits sets the upload limits (default topology.DefaultLimits()).
func WithLimits(l topology.Limits) ServerOption { return func(c *serverConfig) { c.limits = l } }

// WithLogger sends the server's logs, and those of the clients made by
// Client, to l (default: the test's log, at level Info).
func WithLogger(l *slog.Logger) ServerOption { return func(c *serverConfig) { c.logger = l } }

// WithoutNetwork serves the API without a socket: Client and HTTPClient
// reach the server through an in-memory transport (see
// InMemoryTransport), so the server and its clients can run inside a
// testing/synctest bubble. URL is then a placeholder that only those
// clients can reach.
func WithoutNetwork() ServerOption { return func(c *serverConfig) { c.noNetwork = true } }

// WithAuth turns authentication on with a (for example an *auth.File):
// every route but /healthz and /readyz then needs a token.
func WithAuth(a httpserver.Authenticator) ServerOption { return func(c *serverConfig) { c.auth = a } }

// WithBroker lets f adjust the session broker's configuration (limits,
// quarantine, a Store) before the server starts. Options apply in order.
func WithBroker(f func(*broker.Config)) ServerOption {
	return func(c *serverConfig) { c.broker = append(c.broker, f) }
}

// Server is an in-process remotelabd for tests: the real HTTP API over a
// real lab.Manager whose labs are run by a FakeRunner.
type Server struct {
	t      testing.TB
	url    string
	hc     *http.Client
	ts     *httptest.Server // nil WithoutNetwork
	api    *httpserver.Server
	b      *broker.Broker
	runner *FakeRunner
	logger *slog.Logger

	closeOnce sync.Once
}

// NewServer starts a Server for the test; t.Cleanup closes it. Working and
// spool directories are the test's temporary directories, and the
// cross-process lab lock is off, so tests may run servers in parallel.
func NewServer(t testing.TB, opts ...ServerOption) *Server {
	t.Helper()
	cfg := serverConfig{runner: &FakeRunner{}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = testLogger(t)
	}
	s := &Server{t: t, runner: cfg.runner, logger: cfg.logger}
	t.Cleanup(s.Close)

	m := metrics.New()
	bcfg := broker.Config{
		Lab: lab.Config{
			Runner:   cfg.runner,
			WorkRoot: t.TempDir(),
			LockPath: "-",
			IdleTTL:  cfg.idleTTL,
			Logger:   cfg.logger.With("component", "lab"),
		},
		ActiveTTL:  cfg.activeTTL,
		WaitingTTL: cfg.waitingTTL,
		Observer:   m,
		Logger:     cfg.logger.With("component", "broker"),
	}
	for _, f := range cfg.broker {
		f(&bcfg)
	}
	var err error
	if s.b, err = broker.New(bcfg); err != nil {
		t.Fatalf("remotelabtest: new server: %v", err)
	}
	if _, err := s.b.Start(context.Background()); err != nil {
		t.Fatalf("remotelabtest: new server: %v", err)
	}
	s.api, err = httpserver.New(httpserver.Config{
		Broker:   s.b,
		Limits:   cfg.limits,
		SpoolDir: t.TempDir(),
		Auth:     cfg.auth,
		Metrics:  m,
		Logger:   cfg.logger.With("component", "http"),
	})
	if err != nil {
		t.Fatalf("remotelabtest: new server: %v", err)
	}
	if cfg.noNetwork {
		s.url = "http://remotelab.invalid"
		s.hc = &http.Client{Transport: InMemoryTransport(s.api)}
	} else {
		s.ts = httptest.NewServer(s.api)
		s.url = s.ts.URL
		s.hc = s.ts.Client()
	}
	return s
}

// URL returns the server's base URL, e.g. "http://127.0.0.1:40001".
func (s *Server) URL() string { return s.url }

// HTTPClient returns an http.Client that reaches the server.
func (s *Server) HTTPClient() *http.Client { return s.hc }

// Client returns a new client of the server, logging where the server
// does; opts are applied after that. Invalid options fail the test.
func (s *Server) Client(opts ...client.Option) *client.Client {
	s.t.Helper()
	all := append([]client.Option{client.WithHTTPClient(s.hc), client.WithLogger(s.logger.With("component", "client"))}, opts...)
	c, err := client.New(s.url, all...)
	if err != nil {
		s.t.Fatalf("remotelabtest: %v", err)
	}
	return c
}

// Runner returns the server's FakeRunner.
func (s *Server) Runner() *FakeRunner { return s.runner }

// Manager returns the server's lab manager, e.g. to check its Status.
func (s *Server) Manager() *lab.Manager { return s.b.Manager() }

// Broker returns the server's session broker, e.g. to evict a session.
func (s *Server) Broker() *broker.Broker { return s.b }

// API returns the server's HTTP API, e.g. to Drain it or count Sessions.
func (s *Server) API() *httpserver.Server { return s.api }

// Close ends every session, stops serving and tears the lab down. Later
// requests fail like requests to a stopped server. It is called by
// t.Cleanup and safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.api != nil {
			s.api.Close() // ends waiting long-polls, so the listener can close
		}
		if s.ts != nil {
			s.ts.CloseClientConnections()
			s.ts.Close()
		}
		if s.b != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.b.Close(ctx); err != nil {
				s.t.Errorf("remotelabtest: close server: %v", err)
			}
		}
	})
}

// testLogger logs to t's output until the test's cleanups have run, and
// drops lines after that (a client a test forgot to close may still log).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.stop) // registered first, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu      sync.Mutex
	w       io.Writer
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}
