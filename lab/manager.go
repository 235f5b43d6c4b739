// Package lab manages the one lab a host can run. A Manager starts a lab
// from a topology.Bundle through a Runner, identifies it by the bundle's
// fingerprint, counts references per holder (a session id), keeps an idle
// lab warm for a while so the next holder with the same bundle gets it at
// once, and tears it down when nobody needs it.
//
// Lab work is serialised: in-process by the Manager's operation lock and
// across processes by a file lock (by default the one the original Python
// fixtures use), so a local fixture and remotelabd on one host exclude
// each other. TryAcquire and Destroy wait for the Manager's own lab work
// (a start, an idle teardown, a recovery) but answer ErrBusy at once when
// what stands in the way could last indefinitely: another process holds
// the lock file, or other holders use the lab. Acquire waits for
// everything until its context ends.
//
// What the Manager knows about its lab is kept in a Record (see
// RecordStore), so a restarted process can adopt the lab or clean it up
// (Recover). Progress and Config.OnEvent let the layers above show what a
// Runner is doing and count what happened.
//
// The package has no HTTP and no globals. The production Runner is the
// *netlab.Runner that netlab.New returns; *remotelabtest.FakeRunner is the
// one for tests.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Errors returned by Manager methods.
var (
	// ErrBusy: what stands in the way of a lab operation could last
	// indefinitely: another process holds the lock file, or other holders
	// reference the lab. TryAcquire and Destroy return it at once; retry
	// later.
	ErrBusy = errors.New("lab busy")
	// ErrConflict: the holder still holds references to the running lab
	// and asked for a different one, or for a fresh start of the same one
	// (reuse=false). It must release first.
	ErrConflict = errors.New("lab conflict: release the current lab first")
	// ErrInUse: Destroy without force while the lab is referenced.
	ErrInUse = errors.New("lab still in use")
	// ErrNoLab: there is no lab (for Release and Devices).
	ErrNoLab = errors.New("no lab running")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("lab manager closed")
	// ErrLockUnavailable: the cross-process lock file cannot be opened
	// (for instance it was left mode 0600 by another user). The error
	// names the file. Lab work is impossible until an operator fixes the
	// file; CheckLock reports the same.
	ErrLockUnavailable = errors.New("lab lock file unavailable")
)

// State is the lifecycle state of the host's lab.
type State string

// Lab states.
const (
	StateNone     State = "none"     // no lab
	StateStarting State = "starting" // Runner.Up in progress
	StateRunning  State = "running"  // up, referenced
	StateIdle     State = "idle"     // up, unreferenced, kept warm
	StateStopping State = "stopping" // Runner.Down in progress
	StateDirty    State = "dirty"    // a teardown failed; the next start cleans up first
)

// Status is a snapshot of the Manager.
type Status struct {
	State        State
	Fingerprint  string         // bundle fingerprint of the current lab
	TopologyName string         // its topology file name
	Dir          string         // its working directory
	Holders      map[string]int // references per holder
	RefCount     int            // sum of Holders
	Devices      []Device       // its devices (none while it starts or when dirty)
	Since        time.Time      // when the current state began
	IdleUntil    time.Time      // when an idle lab will be torn down (zero otherwise)
	Operation    *Operation     // the Runner call running now; nil when none
}

// Result is the outcome of a successful acquire.
type Result struct {
	// Reused is true exactly when no Runner.Up ran.
	Reused bool
	// Devices are the lab's devices, as its Runner.Up reported them.
	Devices []Device
	// Fingerprint is the fingerprint of the acquired lab's bundle.
	Fingerprint string
}

// Config configures a Manager.
type Config struct {
	// Runner starts and stops labs. Required. If it implements Prober,
	// Recover can adopt a lab a previous process left running.
	Runner Runner
	// WorkRoot is where working directories are created (default
	// os.TempDir()).
	WorkRoot string
	// Records keeps the lab's Record so a restarted process can adopt or
	// clean up what this one left (see Recover). nil: FileRecords(StateDir)
	// when StateDir is set, else nothing is recorded.
	Records RecordStore
	// StateDir, when Records is nil, is where the record is kept as
	// lab.json. "" (and no Records) disables recording.
	StateDir string
	// LockPath is the cross-process lock file (default
	// <os.TempDir()>/netlab_pytest.lock). "-" disables it.
	LockPath string
	// IdleTTL is how long an unreferenced lab stays up (default 10 min).
	IdleTTL time.Duration
	// DownTimeout bounds teardowns the Manager starts on its own (idle
	// expiry, cleanup after a failed start); default 5 min.
	DownTimeout time.Duration
	// KeepOnClose makes Close leave an up lab running and recorded, with
	// its holders, for the next process to adopt, instead of tearing it
	// down. A start that Close interrupts is still cleaned up.
	KeepOnClose bool
	// OnEvent, if set, is told what happens (see Event). It is called
	// without the Manager's mutex, in order per goroutine; it must be
	// quick and must not call Manager methods that wait for lab work.
	OnEvent func(Event)
	// Logger receives lifecycle events (default slog.Default()).
	Logger *slog.Logger
}

// DefaultIdleTTL is how long an idle lab stays warm by default.
const DefaultIdleTTL = 10 * time.Minute

// defaultDownTimeout bounds the teardowns the Manager starts on its own.
const defaultDownTimeout = 5 * time.Minute

// dirPrefix starts the name of every working directory; Recover refuses to
// touch a recorded directory not named like this.
const dirPrefix = "remotelab-lab-"

// Manager manages the host's one lab. It is safe for concurrent use. The
// caller must call Close.
//
// Two locks keep it responsive: a short mutex guards the state and is never
// held while the Runner runs, and an operation lock serialises lab work
// (start, switch, teardown). Status, Release, ReleaseAll and Devices take
// only the mutex, so they answer at once even while `netlab up` runs.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	records RecordStore  // nil: nothing is recorded
	lock    *flock.Flock // cross-process lock; nil when disabled

	op chan struct{} // 1-buffered: full while lab work runs

	ctx    context.Context // cancelled by Close; merged into every operation
	cancel context.CancelFunc
	ops    sync.WaitGroup // running operations and idle teardowns

	closeDone chan struct{}
	closeErr  error

	recMu    sync.Mutex // serialises RecordStore calls; taken before mu
	recSaved uint64     // guarded by recMu: the record version last stored

	mu        sync.Mutex
	closed    bool
	state     State
	since     time.Time
	cur       *labRec // running, idle, stopping or dirty lab
	pending   *labRec // lab being started (StateStarting)
	gen       uint64  // bumped whenever the idle timer is armed or disarmed
	idleTimer *time.Timer
	idleUntil time.Time
	idleDue   bool          // the idle timer fired while the operation lock was held
	fileWait  bool          // the holder of the operation lock waits for the lock file
	changed   chan struct{} // closed and replaced on every change waiters care about
	recVer    uint64        // bumped on every change the record shows
	operation *Operation    // the Runner call running now
	procs     []Process     // processes the running Runner call reported
}

// labRec is one lab's bookkeeping. Its fields are guarded by Manager.mu
// once the lab is visible through Manager.cur or Manager.pending.
type labRec struct {
	dir      string
	fp       string
	topoName string
	devices  []Device
	holders  map[string]int
	refs     int
	started  time.Time
}

// NewManager returns a Manager with no lab. It does not touch the Runner,
// the record or the lock file.
func NewManager(cfg Config) (*Manager, error) {
	switch {
	case cfg.Runner == nil:
		return nil, errors.New("new lab manager: Runner is required")
	case cfg.IdleTTL < 0:
		return nil, fmt.Errorf("new lab manager: negative IdleTTL %v", cfg.IdleTTL)
	case cfg.DownTimeout < 0:
		return nil, fmt.Errorf("new lab manager: negative DownTimeout %v", cfg.DownTimeout)
	}
	if cfg.WorkRoot == "" {
		cfg.WorkRoot = os.TempDir()
	}
	if cfg.LockPath == "" {
		cfg.LockPath = filepath.Join(os.TempDir(), "netlab_pytest.lock")
	}
	if cfg.IdleTTL == 0 {
		cfg.IdleTTL = DefaultIdleTTL
	}
	if cfg.DownTimeout == 0 {
		cfg.DownTimeout = defaultDownTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{
		cfg:       cfg,
		log:       cfg.Logger,
		records:   cfg.Records,
		op:        make(chan struct{}, 1),
		closeDone: make(chan struct{}),
		state:     StateNone,
		since:     time.Now(),
		changed:   make(chan struct{}),
	}
	if m.records == nil && cfg.StateDir != "" {
		m.records = FileRecords(cfg.StateDir)
	}
	if cfg.LockPath != "-" {
		m.lock = flock.New(cfg.LockPath, flock.SetPermissions(lockFileMode))
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Devices returns the running lab's devices, or ErrNoLab.
func (m *Manager) Devices() ([]Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || (m.state != StateRunning && m.state != StateIdle) {
		return nil, ErrNoLab
	}
	return cloneDevices(m.cur.devices), nil
}

// Status returns a snapshot. It never waits for lab work. While a lab
// starts, it describes the lab being started.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{
		State:     m.state,
		Holders:   make(map[string]int),
		Since:     m.since,
		IdleUntil: m.idleUntil,
	}
	if m.operation != nil {
		op := *m.operation
		st.Operation = &op
	}
	if l := m.labLocked(); l != nil {
		st.Fingerprint = l.fp
		st.TopologyName = l.topoName
		st.Dir = l.dir
		for h, n := range l.holders {
			st.Holders[h] = n
		}
		st.RefCount = l.refs
		st.Devices = cloneDevices(l.devices)
	}
	return st
}

// labLocked is the lab the state describes: the one starting, else the
// current one (nil when there is none).
func (m *Manager) labLocked() *labRec {
	if m.state == StateStarting {
		return m.pending
	}
	return m.cur
}

// Close makes further operations fail with ErrClosed, interrupts running
// ones (their contexts are cancelled) and waits for them, stops the idle
// timer and tears the lab down, bounded by ctx; with Config.KeepOnClose an
// up lab is left running and recorded instead. Later calls wait for the
// first to finish and return its result.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		select {
		case <-m.closeDone:
			return m.closeErr
		case <-ctx.Done():
			return fmt.Errorf("close lab manager: %w", ctx.Err())
		}
	}
	m.closed = true
	m.disarmIdleLocked()
	m.wakeLocked()
	m.mu.Unlock()
	m.cancel()
	m.closeErr = m.shutdown(ctx)
	close(m.closeDone)
	return m.closeErr
}

func (m *Manager) shutdown(ctx context.Context) error {
	idle := make(chan struct{})
	go func() {
		m.ops.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		return fmt.Errorf("close lab manager: wait for running lab operations: %w", ctx.Err())
	}
	select {
	case m.op <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("close lab manager: wait for running lab operations: %w", ctx.Err())
	}
	lk := locks{m: m, op: true}
	defer lk.unlock()
	if m.cfg.KeepOnClose {
		m.mu.Lock()
		l, state, ver := m.cur, m.state, m.recVer
		m.mu.Unlock()
		if l != nil {
			m.log.Info("Keeping the lab for the next run", "topology", l.topoName, "state", state, "dir", l.dir)
			m.syncRecord(ver) // retries a save that failed earlier
		}
		return nil
	}
	if err := lk.lockFile(ctx, true); err != nil {
		return fmt.Errorf("close lab manager: %w", err)
	}
	m.mu.Lock()
	l := m.cur
	var ver uint64
	if l != nil {
		m.setStateLocked(StateStopping)
		ver = m.recVer
	}
	m.mu.Unlock()
	if l == nil {
		return nil
	}
	m.publish(ver)
	if err := m.teardown(ctx, l, "shutdown"); err != nil {
		return fmt.Errorf("close lab manager: %w", err)
	}
	return nil
}

// begin registers an operation: it fails with ErrClosed after Close, and
// returns ctx merged with the Manager's own context (cancelled by Close)
// and a func to call when the operation ends.
func (m *Manager) begin(ctx context.Context) (context.Context, func(), error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, nil, ErrClosed
	}
	m.ops.Add(1)
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(m.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		m.ops.Done()
	}, nil
}

// setStateLocked changes the state, wakes waiters and marks the record
// changed.
func (m *Manager) setStateLocked(s State) {
	m.state = s
	m.since = time.Now()
	m.notifyLocked()
}

// notifyLocked marks a change the record shows (state, references) and
// wakes everyone waiting for a change. The caller publishes it after
// unlocking.
func (m *Manager) notifyLocked() {
	m.recVer++
	m.wakeLocked()
}

// wakeLocked wakes everyone waiting for a change.
func (m *Manager) wakeLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// publish makes a change visible outside: it stores the record up to
// version ver (see syncRecord) and tells OnEvent. Call it without mu.
func (m *Manager) publish(ver uint64) {
	m.syncRecord(ver)
	m.emit(Event{Kind: EventChanged})
}

func (m *Manager) removeDir(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		m.log.Warn("Cannot remove the lab working directory", "dir", dir, "err", err)
	}
}

func cloneDevices(devs []Device) []Device {
	if devs == nil {
		return nil
	}
	out := make([]Device, len(devs))
	for i, d := range devs {
		out[i] = Device{Name: d.Name, Raw: append(json.RawMessage(nil), d.Raw...)}
	}
	return out
}

// wrapErr wraps a non-nil err with op.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

// short shortens a holder id for logs.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
