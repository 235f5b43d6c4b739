// Package broker grants the sessions of one lab host their turn at its lab.
//
// A Broker puts a FIFO queue of sessions (package queue) in front of the
// host's lab.Manager. Sessions carry an owner, labels and limits of their
// own (how long they may wait, how long they may hold the lab); the head
// session may use the lab, and its lab operations run under its lease
// epoch, so a session that ended can never act on its successor's lab.
// Every session end has an outcome and a human reason, kept in a history
// and remembered for an hour so a late call learns why its session is
// gone.
//
// The Broker also watches the host: a run of failed teardowns or of failed
// starts of different topologies quarantines it (no lab work until a
// cleanup succeeds, retried with backoff), and a periodic probe of the
// runner and the lab lock file feeds its readiness.
//
// It knows nothing of HTTP, storage engines or metrics systems: changes go
// to a Store, admin actions and abnormal ends to an Auditor and events to an
// Observer, all interfaces filled by the layer above (remotelabd wires a
// bbolt store, an audit file and Prometheus).
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
)

// Errors returned by Broker methods. Callers branch with errors.Is.
var (
	// ErrNotFound: no session has this id. A session that ended recently
	// is reported as an *EndedError, which matches ErrNotFound too.
	ErrNotFound = errors.New("session not found")
	// ErrNotActive: the session is waiting; only the active one may use
	// the lab.
	ErrNotActive = errors.New("session is not active")
	// ErrOperationRunning: another lab operation of the same session is
	// running.
	ErrOperationRunning = errors.New("another lab operation of this session is running")
	// ErrQueueFull: the queue (or the owner's share of it) is full; the
	// error is a *FullError that says when to retry.
	ErrQueueFull = errors.New("queue full")
	// ErrQuarantined: the host is quarantined; the error is a
	// *QuarantineError with the reason.
	ErrQuarantined = errors.New("lab host quarantined")
	// ErrShortPrefix: an id prefix shorter than the short ids listings
	// show (api.ShortIDLen); it also matches ErrNotFound.
	ErrShortPrefix = errors.New("session id prefix too short")
	// ErrAmbiguous: an id prefix matches more than one session.
	ErrAmbiguous = errors.New("session id prefix is ambiguous")
	// ErrClosed: the Broker is closed (the server is shutting down).
	ErrClosed = errors.New("broker closed")
)

// EndedError reports a session that ended recently (SPEC §9: remembered for
// an hour, at most 10 000). It matches ErrNotFound.
type EndedError struct {
	Session Ended
}

func (e *EndedError) Error() string {
	return fmt.Sprintf("session %s ended (%s): %s", short(e.Session.ID), e.Session.Outcome, e.Session.Reason)
}

// Is reports whether target is ErrNotFound.
func (e *EndedError) Is(target error) bool { return target == ErrNotFound }

// FullError is returned by Join when the queue, or the owner's share of
// it, is full. It matches ErrQueueFull.
type FullError struct {
	// Owner is set when the per-owner limit was hit.
	Owner string
	// Limit is the limit that was hit.
	Limit int
	// RetryAfter estimates when a place may be free.
	RetryAfter time.Duration
}

func (e *FullError) Error() string {
	if e.Owner != "" {
		return fmt.Sprintf("queue full: owner %q has %d sessions, the most allowed", e.Owner, e.Limit)
	}
	return fmt.Sprintf("queue full: %d sessions, the most allowed", e.Limit)
}

// Is reports whether target is ErrQueueFull.
func (e *FullError) Is(target error) bool { return target == ErrQueueFull }

// QuarantineError is returned for lab work while the host is quarantined.
// It matches ErrQuarantined.
type QuarantineError struct {
	Reason string // the last error that made or kept the host quarantined
}

func (e *QuarantineError) Error() string { return "lab host quarantined: " + e.Reason }

// Is reports whether target is ErrQuarantined.
func (e *QuarantineError) Is(target error) bool { return target == ErrQuarantined }

// Defaults of Config.
const (
	DefaultMaxSessions       = 10000
	DefaultQuarantineAfter   = 3
	DefaultQuarantineBackoff = time.Minute
	MaxQuarantineBackoff     = 30 * time.Minute
	DefaultProbeInterval     = 60 * time.Second
	// EndedMemory and EndedMemoryAge bound the memory of ended sessions;
	// HistoryLen is how many of them History can list.
	EndedMemory    = 10000
	EndedMemoryAge = time.Hour
	HistoryLen     = 1000
	// EstimateWindow is how many of the last holds the wait estimate
	// averages.
	EstimateWindow = 20
)

// Config configures a Broker. Zero values mean the defaults.
type Config struct {
	// Lab configures the host's lab.Manager, which the Broker creates,
	// owns and closes. Its OnEvent hook, if set, still receives every
	// event.
	Lab lab.Config
	// ActiveTTL and WaitingTTL are the sessions' inactivity limits
	// (defaults 300 s and 600 s).
	ActiveTTL, WaitingTTL time.Duration
	// MaxHold caps every session's hold of the lab; a session that asks
	// for no limit gets the cap. Zero: no cap.
	MaxHold time.Duration
	// MaxSessions bounds the queue (default 10 000); MaxSessionsPerOwner
	// bounds one owner's sessions (zero: no bound).
	MaxSessions, MaxSessionsPerOwner int
	// QuarantineAfter is how many teardowns failing in a row, or starts
	// of that many different topologies failing in a row, quarantine the
	// host (default 3); a step cut short by its caller (context.Canceled)
	// counts neither way. QuarantineBackoff is the first wait before a
	// cleanup retry while quarantined (default 1 min; it doubles up to 30
	// min).
	QuarantineAfter   int
	QuarantineBackoff time.Duration
	// Probe, if set, checks that the lab runner is usable (for netlab:
	// `netlab version`); it runs every ProbeInterval (default 60 s) and
	// its failure makes the Broker not ready.
	Probe         func(ctx context.Context) error
	ProbeInterval time.Duration
	// Store, if set, receives every change worth keeping; Restore is the
	// state it loaded, rebuilt by Start.
	Store   Store
	Restore *State
	// Audit, if set, receives admin actions and abnormal session ends.
	Audit Auditor
	// Observer, if set, hears of promotions, session ends and lab events.
	Observer Observer
	// Logger receives session events (default slog.Default()).
	Logger *slog.Logger
}

// Broker grants the sessions of one lab host their turn at its lab. It is
// safe for concurrent use. New creates it, Start (once) recovers the lab
// and the saved queue, Close stops it; no other method may be called
// before Start.
type Broker struct {
	cfg Config
	log *slog.Logger
	mgr *lab.Manager
	q   *queue.Queue[*session]

	closing atomic.Bool
	// ctx ends with Close: background loops and their lab work stop.
	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup

	seq         atomic.Uint64 // join order, persisted with each session
	syncFailing atomic.Bool   // the last Sync failed
	admission   admission
	ended       endedLog
	health      health
	changes     notifier
}

// New returns a Broker and creates its lab.Manager. It runs no lab work
// and reads no saved state: Start does.
func New(cfg Config) (*Broker, error) {
	switch {
	case cfg.ActiveTTL < 0 || cfg.WaitingTTL < 0 || cfg.MaxHold < 0:
		return nil, errors.New("new broker: negative duration in Config")
	case cfg.QuarantineBackoff < 0 || cfg.ProbeInterval < 0:
		return nil, errors.New("new broker: negative duration in Config")
	case cfg.MaxSessions < 0 || cfg.MaxSessionsPerOwner < 0 || cfg.QuarantineAfter < 0:
		return nil, errors.New("new broker: negative limit in Config")
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.QuarantineAfter == 0 {
		cfg.QuarantineAfter = DefaultQuarantineAfter
	}
	if cfg.QuarantineBackoff == 0 {
		cfg.QuarantineBackoff = DefaultQuarantineBackoff
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ActiveTTL == 0 {
		cfg.ActiveTTL = queue.DefaultActiveTTL
	}
	if cfg.WaitingTTL == 0 {
		cfg.WaitingTTL = queue.DefaultWaitingTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Broker{cfg: cfg, log: cfg.Logger}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.admission.owners = make(map[string]int)
	b.ended.byID = make(map[string]uint64)
	labCfg := cfg.Lab
	next := labCfg.OnEvent
	labCfg.OnEvent = func(ev lab.Event) {
		b.labEvent(ev)
		if next != nil {
			next(ev)
		}
	}
	mgr, err := lab.NewManager(labCfg)
	if err != nil {
		return nil, fmt.Errorf("new broker: %w", err)
	}
	b.mgr = mgr
	return b, nil
}

// Start recovers what a previous run left: it lets the lab manager adopt
// or clean up the recorded lab (lab.Manager.Recover, bounded by ctx; a
// failed cleanup leaves the lab dirty and is no error here, it is logged
// and counts towards quarantine), rebuilds the saved queue (every restored
// session gets a full TTL from now), drops lab references of sessions that
// no longer exist, and starts the readiness probe. Call it once, before
// serving. When ctx ends during the recovery, the recovery's error is
// returned, but the Broker is started all the same (the lab it could not
// deal with is kept dirty) and must be closed.
func (b *Broker) Start(ctx context.Context) (lab.Recovery, error) {
	if b.q != nil {
		panic("broker: Start called twice")
	}
	rec, err := b.mgr.Recover(ctx)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("start broker: %w", err)
	} else if err != nil {
		b.log.Error("Startup cleanup encountered an error", "err", err)
		err = nil
	}
	b.restore(b.cfg.Restore)
	b.mgr.DropHoldersExcept(func(holder string) bool {
		_, err := b.q.Status(holder)
		return err == nil
	})
	b.health.start(b)
	return rec, err
}

// Manager returns the host's lab manager.
func (b *Broker) Manager() *lab.Manager { return b.mgr }

// Changed returns a channel that is closed at the next change anyone
// looking at the queue would see: a session joining, leaving, being
// promoted, the lab changing state or printing a line, the host entering
// or leaving quarantine, draining.
func (b *Broker) Changed() <-chan struct{} { return b.changes.wait() }

// Close stops the Broker: new sessions are refused, the queue stops and
// the lab manager closes (bounded by ctx; per its Config it tears the lab
// down or keeps it for the next start). With a Store, the sessions stay
// saved for the next start and keep their lab references; without one
// they end with outcome "shutdown". Close is safe to call more than once.
func (b *Broker) Close(ctx context.Context) error {
	if b.closing.Swap(true) {
		return nil
	}
	b.cancel()
	if b.q != nil {
		b.q.Close()
	}
	b.loops.Wait()
	err := b.mgr.Close(ctx)
	if b.cfg.Store != nil {
		if serr := b.cfg.Store.Sync(ctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("save state: %w", serr))
		}
	}
	b.changes.notify()
	if err != nil {
		return fmt.Errorf("close broker: %w", err)
	}
	return nil
}

// sync waits until every change made so far is saved, when there is a
// Store. A failing store is logged and reported by Ready; the answer is
// not failed for it (the service goes on from memory).
func (b *Broker) sync(ctx context.Context) {
	if b.cfg.Store == nil {
		return
	}
	err := b.cfg.Store.Sync(ctx)
	if ctx.Err() != nil {
		return
	}
	// Log the start and the end of a failing period, not every change.
	if failing := err != nil; b.syncFailing.Swap(failing) != failing {
		if failing {
			b.log.Error("Cannot save the server state; answering from memory until it can", "err", err)
		} else {
			b.log.Info("The server state is saved again")
		}
	}
}

// notifier wakes everyone waiting for the next change.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// admission counts the queue's places, in total and per owner, so that
// Join can refuse one beyond the limits.
type admission struct {
	mu     sync.Mutex
	total  int
	owners map[string]int
}

// reserve takes a place for owner, or says which limit is reached (max:
// the queue's, perOwner: an owner's, 0 for none).
func (a *admission) reserve(owner string, max, perOwner int) *FullError {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.total >= max:
		return &FullError{Limit: max}
	case perOwner > 0 && a.owners[owner] >= perOwner:
		return &FullError{Owner: owner, Limit: perOwner}
	}
	a.total++
	a.owners[owner]++
	return nil
}

// release gives owner's place back.
func (a *admission) release(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.owners[owner]--; a.owners[owner] <= 0 {
		delete(a.owners, owner)
	}
}

// add counts a place for owner without a limit (a restored session).
func (a *admission) add(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total++
	a.owners[owner]++
}

// short shortens a session id for logs.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
