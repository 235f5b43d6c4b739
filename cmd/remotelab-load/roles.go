package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/internal/metrics"
	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/internal/store"
	"github.com/remotelab-go/remotelab/lab"
)

// The harness re-executes itself for processes it needs besides
// remotelabd; the environment selects the role (so it works from a test
// binary too).
const (
	roleEnv    = "REMOTELAB_LOAD_ROLE" // "serve", "baseline" or "hold"
	urlEnv     = "REMOTELAB_LOAD_URL"  // hold: the server
	ttlEnv     = "REMOTELAB_LOAD_ACTIVE_TTL"
	profileEnv = "REMOTELAB_LOAD_CPUPROFILE" // serve: write a CPU profile here
	stateEnv   = "REMOTELAB_LOAD_STATE_DIR"  // serve: keep state.db here (default: no store)
	roleServ   = "serve"
	roleBase   = "baseline"
	roleHold   = "hold"

	goroutinesPath = "/debug/goroutines"
	holdingPrefix  = "holding "
)

// holdHeartbeat is how often the kill -9 scenario's holder heartbeats.
// The server's active TTL in that scenario must be at least
// killTTLMargin heartbeats, so that a holder slowed down by a loaded
// machine still never expires while it is alive.
const (
	holdHeartbeat = 250 * time.Millisecond
	killTTLMargin = 8
)

// runRole runs a child role and returns its exit code.
func runRole(role string) int {
	var err error
	switch role {
	case roleServ:
		err = serve()
	case roleBase:
		err = serveBaseline()
	case roleHold:
		err = hold()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "remotelab-load", role+":", err)
		return 1
	}
	return 0
}

// serveStack is httpserver over a broker with the simulated runner (no
// delays), wired as remotelabd wires it: one Metrics for the broker and
// the HTTP layer, logs at INFO, and state.db in stateDir if it is set
// (else in memory only). Close stops it.
type serveStack struct {
	b   *broker.Broker
	srv *httpserver.Server
	st  *store.Store // nil without a state directory
}

func newServeStack(stateDir string, activeTTL time.Duration, logs io.Writer) (*serveStack, error) {
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := metrics.New()
	bcfg := broker.Config{
		Lab:       lab.Config{Runner: &sim.Runner{}, LockPath: "-", Logger: logger},
		ActiveTTL: activeTTL,
		Observer:  m,
		Logger:    logger,
	}
	s := &serveStack{}
	if stateDir != "" {
		st, state, err := store.Open(filepath.Join(stateDir, "state.db"), logger)
		if err != nil {
			return nil, err
		}
		s.st = st
		bcfg.Store, bcfg.Restore = st, state
		bcfg.Lab.Records = st.LabRecords()
		bcfg.Lab.WorkRoot = filepath.Join(stateDir, "labs")
	}
	b, err := broker.New(bcfg)
	if err == nil {
		s.b = b
		_, err = b.Start(context.Background())
	}
	if err == nil {
		s.srv, err = httpserver.New(httpserver.Config{Broker: b, Metrics: m, Logger: logger})
	}
	if err != nil {
		s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

// Close drains the HTTP layer (parked long-polls answer now) and closes
// the broker and the store.
func (s *serveStack) Close(ctx context.Context) error {
	if s.srv != nil {
		s.srv.Close()
	}
	var err error
	if s.b != nil {
		err = s.b.Close(ctx)
	}
	if s.st != nil {
		err = errors.Join(err, s.st.Close())
	}
	return err
}

// serve runs a serveStack in this process (state.db in
// REMOTELAB_LOAD_STATE_DIR if set) and adds GET /debug/goroutines
// (runtime.NumGoroutine) so the harness can count the server's
// goroutines. With REMOTELAB_LOAD_CPUPROFILE it writes a CPU profile of
// its whole run there. It stops on SIGTERM or SIGINT.
func serve() (err error) {
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
	}
	ttl, _ := time.ParseDuration(os.Getenv(ttlEnv))
	stack, err := newServeStack(os.Getenv(stateEnv), ttl, os.Stderr)
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == goroutinesPath {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "{\"goroutines\":%d}\n", runtime.NumGoroutine())
			return
		}
		stack.srv.ServeHTTP(w, r)
	})
	err = serveUntilSignal(h, stack.srv.Close) // the drain answers parked long-polls now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, stack.Close(ctx))
}

// serveUntilSignal serves h on a free loopback port, prints "listening on
// ADDR" (what the harness waits for), and on SIGTERM or SIGINT calls drain
// (if set) and shuts the server down. It returns serving's error, or nil
// after a signal.
func serveUntilSignal(h http.Handler, drain func()) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Printf("listening on %s\n", ln.Addr())

	ctx, stop := signalContext()
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	if drain != nil {
		drain()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// hold opens a session on the server in REMOTELAB_LOAD_URL (the queue must
// be empty so it is active at once), acquires a small lab, prints
// "holding <session id>" and then heartbeats every holdHeartbeat until it
// is killed, or for at most 2 minutes.
func hold() error {
	c := newAPIClient(os.Getenv(urlEnv), 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := c.create(ctx)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	if _, err := c.waitActive(ctx, s, 30*time.Second); err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if _, err := c.acquire(ctx, s.SessionID, upload{Topo: topologyYAML(2, "kill9")}); err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	fmt.Printf("%s%s\n", holdingPrefix, s.SessionID)
	t := time.NewTicker(holdHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.heartbeat(ctx, s.SessionID); err != nil {
				return fmt.Errorf("heartbeat: %w", err)
			}
		}
	}
}

// signalContext is a context cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
