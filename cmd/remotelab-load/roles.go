package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/lab"
)

// The harness re-executes itself for processes it needs besides
// remotelabd; the environment selects the role (so it works from a test
// binary too).
const (
	roleEnv  = "REMOTELAB_LOAD_ROLE" // "serve" or "hold"
	urlEnv   = "REMOTELAB_LOAD_URL"  // hold: the server
	ttlEnv   = "REMOTELAB_LOAD_ACTIVE_TTL"
	roleServ = "serve"
	roleHold = "hold"

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

// serve runs httpserver with the simulated runner (no delays) in this
// process, as remotelabd would, and adds GET /debug/goroutines
// (runtime.NumGoroutine) so the harness can count the server's
// goroutines. It stops on SIGTERM or SIGINT.
func serve() error {
	ttl, _ := time.ParseDuration(os.Getenv(ttlEnv))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := broker.New(broker.Config{
		Lab:       lab.Config{Runner: &sim.Runner{}, LockPath: "-", Logger: logger},
		ActiveTTL: ttl,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	if _, err := b.Start(context.Background()); err != nil {
		return err
	}
	srv, err := httpserver.New(httpserver.Config{Broker: b, Logger: logger})
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == goroutinesPath {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "{\"goroutines\":%d}\n", runtime.NumGoroutine())
			return
		}
		srv.ServeHTTP(w, r)
	})
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
	srv.Close() // parked long-polls answer now
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return b.Close(sctx)
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
