package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/internal/audit"
	"github.com/remotelab-go/remotelab/internal/metrics"
	"github.com/remotelab-go/remotelab/internal/store"
	"github.com/remotelab-go/remotelab/lab"
)

// forcedExitWait is how long a second signal lets the cancelled work
// (netlab process groups being interrupted) wind down before exiting.
const forcedExitWait = time.Second

// errLockReadOnly is lock's error for a lock file that cannot be created
// (a read-only directory); for the host's lock in TMPDIR it is fatal.
var errLockReadOnly = errors.New("the lock file cannot be created")

// cancelledRequestsWait bounds how long requests cancelled at the end of
// the shutdown grace get to write their answer (a netlab up they ran is
// interrupted: SIGINT, then SIGKILL after its kill grace).
const cancelledRequestsWait = 15 * time.Second

// State directory entries.
const (
	stateLockName = "remotelabd.lock"
	stateMetaName = "remotelabd.meta.json"
	stateDBName   = "state.db"
)

// daemon is one run of the server.
type daemon struct {
	cfg    Config
	logs   *logging
	log    *slog.Logger // component "server"
	stderr io.Writer
	auth   *auth.File // nil without --auth-file
}

func newDaemon(cfg Config, logs *logging, authFile *auth.File, stderr io.Writer) *daemon {
	return &daemon{cfg: cfg, logs: logs, log: logs.logger.With(componentKey, "server"), stderr: stderr, auth: authFile}
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

// run takes the single-instance locks (the host's, in the temp directory,
// and the state directory's), then serves (startup, serving and shutdown
// run in serve) while it watches for signals: the first SIGTERM/SIGINT
// stops the server gracefully, a second one exits at once with 1; SIGHUP
// reloads the auth file.
func (d *daemon) run(ctx context.Context, argv []string) int {
	d.log.Info("Remote Lab Manager starting up...", "version", version(), "pid", os.Getpid(), "runner", d.cfg.Runner)
	if d.auth == nil {
		d.log.Warn("Authentication is off: anyone who can reach the port can act as any session; start with --auth-file to require tokens",
			"addr", d.cfg.Addr())
	} else {
		d.log.Info("Authentication is on", "auth_file", d.auth.Path(), "tokens", d.auth.Table().Len())
		if d.auth.Table().Len() == 0 {
			d.log.Warn("The auth file has no tokens: every request but /healthz and /readyz is refused until one is added (SIGHUP reloads)",
				"auth_file", d.auth.Path())
		}
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	meta := newInstanceMeta(d.cfg, d.logs.level, argv)
	inst, err := d.lock(os.TempDir(), lockFileName, metaFileName, meta,
		"Not starting: one Remote Lab Manager per host (stop the running one first)")
	if err != nil {
		return 1
	}
	defer d.unlock(inst)
	// The state directory is locked before anything in it is touched: a
	// second instance sharing it (under another TMPDIR) must not recover,
	// tear down or rewrite what the first one runs.
	if err := os.MkdirAll(d.cfg.StateDir, 0o750); err != nil {
		d.fatal("Cannot create the state directory", "dir", d.cfg.StateDir, "err", err,
			"hint", "create it for this user or pass --state-dir")
		return 2 // a configuration error: systemd must not retry it
	}
	stateInst, err := d.lock(d.cfg.StateDir, stateLockName, stateMetaName, meta,
		"Not starting: another Remote Lab Manager uses this state directory (stop it first, or pass another --state-dir)")
	switch {
	case err == nil:
		defer d.unlock(stateInst)
	case errors.Is(err, errLockReadOnly):
		// Nothing can be saved or changed in it either: serve, unsaved
		// and not ready (/readyz says why), rather than not at all.
		d.log.Error("The state directory cannot be written; serving without saving state until it can",
			"dir", d.cfg.StateDir)
	default:
		return 1
	}

	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	forceCtx, force := context.WithCancel(context.Background())
	defer force()
	done := make(chan int, 1)
	go func() { done <- d.serve(stopCtx, forceCtx, inst, stateInst) }()

	signalled := false
	for {
		select {
		case code := <-done:
			return code
		case <-hup:
			d.reloadAuth()
		case s := <-sigs:
			if !signalled {
				signalled = true
				d.log.Info("Received signal, shutting down gracefully...", "signal", s.String(), "signo", signalNumber(s))
				stop()
				continue
			}
			d.log.Error("Received signal again, exiting immediately", "signal", s.String(), "signo", signalNumber(s),
				"hint", "a lab left running is adopted or torn down at the next start")
			force()
			select {
			case <-done:
			case <-time.After(forcedExitWait):
			}
			return 1
		}
	}
}

// lock takes a single-instance lock in dir and writes its metadata. On
// failure it logs why and returns the error: errLockReadOnly when the
// lock file cannot be created.
func (d *daemon) lock(dir, lockName, metaName string, meta instanceMeta, refused string) (*instance, error) {
	inst, err := lockInstance(dir, lockName, metaName, d.log)
	switch {
	case errors.Is(err, errAnotherInstance):
		d.fatal(refused, "lock", filepath.Join(dir, lockName))
		return nil, err
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		d.log.Error("Cannot create the single-instance lock", "lock", filepath.Join(dir, lockName), "err", err)
		return nil, fmt.Errorf("%w: %w", errLockReadOnly, err)
	case err != nil:
		d.fatal("Cannot take the single-instance lock", "err", err)
		return nil, err
	}
	if err := inst.writeMeta(meta); err != nil {
		d.log.Warn("Failed to write instance metadata", "err", err)
	}
	return inst, nil
}

func (d *daemon) unlock(inst *instance) {
	if err := inst.release(); err != nil {
		d.log.Warn("Failed to clean up the single-instance lock", "err", err)
	}
}

// reloadAuth re-reads the auth file (SIGHUP); a broken file keeps the
// previous tokens.
func (d *daemon) reloadAuth() {
	if d.auth == nil {
		d.log.Info("SIGHUP ignored: no --auth-file to reload")
		return
	}
	if err := d.auth.Reload(); err != nil {
		d.log.Error("Auth file not reloaded; the previous tokens stay in force", "auth_file", d.auth.Path(), "err", err)
		return
	}
	d.log.Info("Auth file reloaded", "auth_file", d.auth.Path(), "tokens", d.auth.Table().Len())
}

func signalNumber(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return 0
}

// serve runs the startup steps after the locks, serves until stopCtx ends,
// and shuts down. forceCtx ends on a second signal and cuts every wait.
func (d *daemon) serve(stopCtx, forceCtx context.Context, inst, stateInst *instance) int {
	cfg, log := d.cfg, d.log
	log.Info("Starting Remote Lab Manager", "addr", cfg.Addr())

	runner, probe, err := d.newRunner(stopCtx)
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
		log.Error("Cannot create the labs directory; lab work will fail until it can be created", "dir", workRoot, "err", err)
	}
	st, state := d.openStore()
	d.importLegacyRecord(st, runDir)
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("Cannot close the state store", "err", err)
		}
	}()
	auditLog, err := audit.Open(filepath.Join(cfg.StateDir, audit.FileName))
	if err != nil {
		log.Error("Cannot open the audit log; each entry tries again", "err", err)
	}
	defer auditLog.Close()

	m := metrics.New()
	b, err := broker.New(broker.Config{
		Lab: lab.Config{
			Runner:      runner,
			WorkRoot:    workRoot,
			Records:     st.LabRecords(),
			IdleTTL:     cfg.LabIdleTTL,
			DownTimeout: cfg.DownTimeout,
			KeepOnClose: !cfg.TeardownOnExit,
			Logger:      d.component("lab"),
		},
		ActiveTTL:           cfg.ActiveTTL,
		WaitingTTL:          cfg.WaitingTTL,
		MaxHold:             cfg.MaxHold,
		MaxSessions:         cfg.MaxSessions,
		MaxSessionsPerOwner: cfg.MaxSessionsPerOwner,
		QuarantineAfter:     cfg.QuarantineAfter,
		QuarantineBackoff:   cfg.QuarantineBackoff,
		Probe:               probe,
		ProbeInterval:       cfg.ProbeInterval,
		Store:               st,
		Restore:             state,
		Audit:               auditLog,
		Observer:            m,
		Logger:              d.component("broker"),
	})
	if err != nil {
		d.fatal("Cannot create the session broker", "err", err)
		return 1
	}
	closeBroker := func() {
		ctx, cancel := forcedContext(forceCtx, cfg.DownTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			log.Error("Lab shutdown failed", "err", err,
				"hint", "the lab stays recorded in the state directory and is adopted or torn down at the next start")
		}
	}

	log.Info("Performing startup cleanup of stale netlab instances...", "state_dir", cfg.StateDir)
	// A signal does not cut the recovery short (only a second one does).
	rctx, cancel := forcedContext(forceCtx, cfg.DownTimeout)
	rec, err := b.Start(rctx)
	if err == nil {
		// Labs no record names (a state file moved aside lost it) must
		// not run on unseen beside the next start.
		if n, serr := b.Manager().CleanStrays(rctx); serr != nil {
			log.Error("Cannot tear down every lab no record names", "err", serr, "removed", n)
		} else if n > 0 {
			log.Warn("Tore down labs no record named", "removed", n)
		}
	}
	cancel()
	switch {
	case stopCtx.Err() != nil:
		log.Info("Startup interrupted after the startup cleanup", "recovery", rec.String())
		closeBroker()
		return 0
	case err != nil:
		log.Error("Startup cleanup encountered an error", "err", err,
			"hint", "if a lab still runs, tear it down by hand: netlab down --cleanup in its directory")
	case rec == lab.RecoveredDirty:
		// The broker logged why; the lab stays recorded as dirty.
		log.Warn("Startup cleanup failed; the lab is kept as dirty and its teardown is retried before the next start",
			"recovery", rec.String(), "lab", b.Manager().Status().State)
	default:
		log.Info("Startup cleanup completed successfully", "recovery", rec.String(), "lab", b.Manager().Status().State)
	}

	var authn httpserver.Authenticator
	if d.auth != nil {
		authn = d.auth
	}
	rest, err := httpserver.New(httpserver.Config{
		Broker:        b,
		Limits:        cfg.Limits(),
		MaxWait:       cfg.MaxWait,
		UploadTimeout: cfg.UploadTimeout,
		Auth:          authn,
		Audit:         auditLog,
		Metrics:       m,
		Logger:        d.component("http"),
	})
	if err != nil {
		d.fatal("Cannot create the HTTP API", "err", err)
		closeBroker()
		return 1
	}
	defer rest.Close()

	ln, err := net.Listen(cfg.network(), cfg.Addr())
	if err != nil {
		d.fatal("Cannot listen", "addr", cfg.Addr(), "err", err, "hint", listenHint(err, cfg.Port))
		closeBroker()
		return listenExitCode(err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.Port != cfg.Port {
		for _, in := range []*instance{inst, stateInst} {
			if in == nil {
				continue // a read-only state directory has no lock
			}
			if err := in.updatePort(tcp.Port); err != nil {
				log.Warn("Failed to write instance metadata", "err", err)
			}
		}
	}
	maxConns := connectionCap(cfg.MaxConnections, log)
	ln = newLimitListener(ln, maxConns)

	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	inflight := &inflight{}
	var handler http.Handler = inflight.wrap(rest)
	if testHookHandler != nil {
		handler = testHookHandler(handler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(d.component("http").Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening on", "addr", ln.Addr().String(), "max_connections", maxConns)
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
	// Draining answers every new request 503 (the listener stays open
	// until the running requests finished) and parked long-polls at once,
	// so they do not hold the shutdown grace for up to --max-wait.
	rest.Drain()
	st0 := b.Manager().Status()
	holders := make([]string, 0, len(st0.Holders))
	for h := range st0.Holders {
		holders = append(holders, api.ShortID(h))
	}
	slices.Sort(holders)
	log.Info("Active sessions at shutdown", "sessions", b.Len(),
		"lab", st0.State, "topology", st0.TopologyName, "holders", holders)
	gctx, cancel := context.WithTimeout(forceCtx, cfg.ShutdownGrace)
	finished := inflight.wait(gctx)
	cancel()
	switch {
	case forceCtx.Err() != nil:
		log.Warn("Cancelling running requests (second signal)")
	case !finished:
		log.Warn("Requests still running after the shutdown grace; cancelling them", "grace", cfg.ShutdownGrace)
	}
	// Cancelled requests (a netlab up interrupted) still answer 503.
	cancelRequests()
	wctx, cancel := forcedContext(forceCtx, cancelledRequestsWait)
	inflight.wait(wctx)
	cancel()
	sctx, cancel := context.WithTimeout(forceCtx, time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	srv.Close()
	<-serveErr
	if cfg.TeardownOnExit {
		log.Info("Tearing the lab down at exit (--teardown-on-exit); the queue is kept")
	} else if s := b.Manager().Status(); s.State != lab.StateNone {
		log.Info("Keeping the lab for the next start", "lab", s.State, "topology", s.TopologyName)
	}
	closeBroker()
	log.Info("Remote Lab Manager shutdown complete")
	return code
}

// openStore opens state.db. A file it cannot read is moved aside by the
// store itself and the run starts empty; a store that cannot be opened at
// all leaves the server running unsaved and not ready.
func (d *daemon) openStore() (*store.Store, *broker.State) {
	path := filepath.Join(d.cfg.StateDir, stateDBName)
	st, state, err := store.Open(path, d.component("store"))
	if err != nil {
		d.log.Error("Cannot open the state store: the queue is not saved and /readyz says not ready", "path", path, "err", err)
		return store.Unavailable(err), nil
	}
	return st, state
}

// importLegacyRecord moves the lab record an earlier version kept in
// <state-dir>/<runner>/lab.json into the state store, so an upgrade with a
// lab running adopts (or cleans up) that lab instead of forgetting it.
func (d *daemon) importLegacyRecord(st *store.Store, runDir string) {
	if rec, err := st.LabRecords().Load(); err != nil || rec != nil {
		return
	}
	legacy := lab.FileRecords(runDir)
	rec, err := legacy.Load()
	if err != nil || rec == nil {
		return
	}
	if err := st.LabRecords().Save(*rec); err != nil {
		d.log.Error("Cannot import the lab record of an earlier version", "dir", rec.Dir, "err", err)
		return
	}
	if err := legacy.Delete(); err != nil {
		d.log.Warn("Cannot remove the imported lab record", "dir", runDir, "err", err)
	}
	d.log.Info("Imported the lab record of an earlier version", "dir", rec.Dir, "topology", rec.Topology)
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
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("another program listens on port %d: stop it (find it with: ss -ltnp 'sport = :%d') or pass another --port", port, port)
	case errors.Is(err, syscall.EACCES):
		return "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher --port"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "the --host address is not configured on this machine"
	case errors.As(err, &dns):
		return "the --host name does not resolve; pass an IP address"
	}
	return "check --host and --port"
}

// listenExitCode is 1 for a port in use (it may free up: systemd retries)
// and 2 for an address this configuration can never listen on (a bad
// --host or a privileged --port: systemd must not retry).
func listenExitCode(err error) int {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EACCES), errors.As(err, &dns):
		return 2
	}
	return 1
}
