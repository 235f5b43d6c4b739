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
	"slices"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
)

// forcedExitWait is how long a second signal lets the cancelled work
// (netlab process groups being interrupted) wind down before exiting.
const forcedExitWait = time.Second

// daemon is one run of the server.
type daemon struct {
	cfg    Config
	logs   *logging
	log    *slog.Logger // component "server"
	stderr io.Writer
}

func newDaemon(cfg Config, logs *logging, stderr io.Writer) *daemon {
	return &daemon{cfg: cfg, logs: logs, log: logs.logger.With(componentKey, "server"), stderr: stderr}
}

// component returns the logger of a component.
func (d *daemon) component(name string) *slog.Logger {
	return d.logs.logger.With(componentKey, name)
}

// fatal logs a startup failure and, when logs go to a file, echoes it to
// stderr so an operator starting the server by hand sees why it stopped.
func (d *daemon) fatal(msg string, args ...any) {
	d.log.Error(msg, args...)
	if d.logs.toFile() {
		fmt.Fprintf(d.stderr, "remotelabd: %s (details in %s)\n", msg, d.logs.file.Name())
	}
}

// run takes the single-instance lock, then serves (startup, serving and
// shutdown run in serve) while it watches for signals: the first one
// stops the server gracefully, a second one exits at once with 1.
func (d *daemon) run(ctx context.Context, argv []string) int {
	d.log.Info("Remote Lab Manager starting up...", "version", version(), "pid", os.Getpid(), "runner", d.cfg.Runner)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	inst, err := lockInstance(os.TempDir(), d.log)
	if errors.Is(err, errAnotherInstance) {
		d.fatal("Not starting: one Remote Lab Manager per host (stop the running one first)")
		return 1
	}
	if err != nil {
		d.fatal("Cannot take the single-instance lock", "err", err)
		return 1
	}
	defer func() {
		if err := inst.release(); err != nil {
			d.log.Warn("Failed to clean up the single-instance lock", "err", err)
		}
	}()
	if err := inst.writeMeta(newInstanceMeta(d.cfg, d.logs.level, argv)); err != nil {
		d.log.Warn("Failed to write instance metadata", "err", err)
	}

	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	forceCtx, force := context.WithCancel(context.Background())
	defer force()
	done := make(chan int, 1)
	go func() { done <- d.serve(stopCtx, forceCtx, inst) }()

	signalled := false
	for {
		select {
		case code := <-done:
			return code
		case s := <-sigs:
			if !signalled {
				signalled = true
				d.log.Info(fmt.Sprintf("Received signal %d, shutting down gracefully...", signalNumber(s)), "signal", s.String())
				stop()
				continue
			}
			d.log.Error(fmt.Sprintf("Received signal %d again, exiting immediately", signalNumber(s)),
				"hint", "a lab left running is torn down at the next start")
			force()
			select {
			case <-done:
			case <-time.After(forcedExitWait):
			}
			return 1
		}
	}
}

func signalNumber(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return 0
}

// serve runs the startup steps after the lock, serves until stopCtx ends,
// and shuts down. forceCtx ends on a second signal and cuts every wait.
func (d *daemon) serve(stopCtx, forceCtx context.Context, inst *instance) int {
	cfg, log := d.cfg, d.log
	log.Info("Starting Remote Lab Manager on " + cfg.Addr())

	runner, err := d.newRunner(stopCtx)
	if err != nil {
		if stopCtx.Err() != nil {
			log.Info("Startup interrupted during the netlab pre-flight check")
			return 0
		}
		return 1
	}

	runDir := filepath.Join(cfg.StateDir, cfg.Runner)
	workRoot := filepath.Join(runDir, "labs")
	if err := os.MkdirAll(workRoot, 0o750); err != nil {
		d.fatal("Cannot create the state directory", "err", err, "hint", "create it for this user or pass --state-dir")
		return 1
	}
	mgr, err := lab.NewManager(lab.Config{
		// Hide lab.Prober: until the queue survives a restart, a
		// recorded lab is torn down at startup rather than adopted.
		Runner:      struct{ lab.Runner }{runner},
		WorkRoot:    workRoot,
		StateDir:    runDir,
		IdleTTL:     cfg.LabIdleTTL,
		DownTimeout: cfg.DownTimeout,
		Logger:      d.component("lab"),
	})
	if err != nil {
		d.fatal("Cannot create the lab manager", "err", err)
		return 1
	}
	closeManager := func() {
		ctx, cancel := forcedContext(forceCtx, cfg.DownTimeout)
		defer cancel()
		if err := mgr.Close(ctx); err != nil {
			log.Error("Lab teardown at shutdown failed", "err", err,
				"hint", "the lab stays recorded in "+runDir+" and is torn down at the next start")
		}
	}

	log.Info("Performing startup cleanup of stale netlab instances...", "state_dir", runDir)
	// A signal does not cut the teardown short (only a second one does).
	rctx, cancel := forcedContext(forceCtx, cfg.DownTimeout)
	recovered, err := mgr.Recover(rctx)
	cancel()
	switch {
	case stopCtx.Err() != nil:
		if err != nil {
			log.Error(fmt.Sprintf("Startup cleanup encountered an error (%v)", err))
		}
		log.Info("Startup interrupted after the startup cleanup")
		closeManager()
		return 0
	case err != nil:
		log.Error(fmt.Sprintf("Startup cleanup encountered an error (%v)", err),
			"hint", "if a lab still runs, tear it down by hand: netlab down --cleanup in its directory, or netlab down --cleanup -i default")
	case recovered != lab.RecoveredNothing:
		log.Warn("Startup cleanup completed successfully: tore down the lab a previous run left behind")
	default:
		log.Info("Startup cleanup completed successfully")
	}

	rest, err := httpserver.New(httpserver.Config{
		Manager:    mgr,
		ActiveTTL:  cfg.ActiveTTL,
		WaitingTTL: cfg.WaitingTTL,
		Limits:     cfg.Limits(),
		MaxWait:    cfg.MaxWait,
		Logger:     d.component("http"),
	})
	if err != nil {
		d.fatal("Cannot create the HTTP API", "err", err)
		closeManager()
		return 1
	}

	ln, err := net.Listen(cfg.network(), cfg.Addr())
	if err != nil {
		d.fatal(fmt.Sprintf("Cannot listen on %s: %v", cfg.Addr(), err), "hint", listenHint(err, cfg.Port))
		rest.Close()
		closeManager()
		return 1
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.Port != cfg.Port {
		if err := inst.updatePort(tcp.Port); err != nil {
			log.Warn("Failed to write instance metadata", "err", err)
		}
	}

	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	httpLog := d.component("http")
	var handler http.Handler = rest
	if testHookHandler != nil {
		handler = testHookHandler(handler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(httpLog.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening on "+ln.Addr().String(), "addr", ln.Addr().String())
	log.Info("Remote Lab Manager startup complete")

	code := 0
	select {
	case <-stopCtx.Done():
	case err := <-serveErr:
		log.Error("HTTP server failed", "err", err)
		serveErr <- err
		code = 1
	}

	log.Info("Remote Lab Manager shutting down...")
	// Draining refuses new sessions and answers parked long-polls at once,
	// so they do not hold the shutdown grace for up to --max-wait.
	rest.Drain()
	st := mgr.Status()
	holders := make([]string, 0, len(st.Holders))
	for h := range st.Holders {
		holders = append(holders, api.ShortID(h))
	}
	slices.Sort(holders)
	log.Info("Active sessions at shutdown", "sessions", rest.Sessions(),
		"lab", st.State, "topology", st.TopologyName, "holders", holders)
	gctx, cancel := context.WithTimeout(forceCtx, cfg.ShutdownGrace)
	err = srv.Shutdown(gctx)
	cancel()
	switch {
	case forceCtx.Err() != nil:
		log.Warn("Cancelling running requests (second signal)")
	case err != nil:
		log.Warn(fmt.Sprintf("Requests still running after the %v shutdown grace; cancelling them", cfg.ShutdownGrace))
	}
	cancelRequests()
	closeManager()
	rest.Close()
	srv.Close()
	<-serveErr
	log.Info("Remote Lab Manager shutdown complete")
	return code
}

// forcedContext returns a context that ends after d, or shortly after
// force ends: long enough for interrupted netlab process groups to get
// their SIGINT (and usually to exit) before a forced exit.
func forcedContext(force context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	stop := context.AfterFunc(force, func() { time.AfterFunc(forcedExitWait/2, cancel) })
	return ctx, func() {
		stop()
		cancel()
	}
}

// testHookHandler, if set (by tests, before the server starts), wraps the
// HTTP API's handler, so a test can tell when a request reached it.
var testHookHandler func(http.Handler) http.Handler

// listenHint says how to fix a failed listen.
func listenHint(err error, port int) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("another program listens on port %d: stop it (find it with: ss -ltnp 'sport = :%d') or pass another --port", port, port)
	case errors.Is(err, syscall.EACCES):
		return "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher --port"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "the --host address is not configured on this machine"
	}
	return "check --host and --port"
}
