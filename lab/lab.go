// Package lab manages the one lab a host can run. A Manager starts a lab
// from a topology.Bundle through a Runner, identifies it by the bundle's
// fingerprint, counts references per holder (a session id), keeps an idle
// lab warm for a while so the next holder with the same bundle gets it at
// once, and tears it down when nobody needs it.
//
// Lab work is serialised: in-process by the Manager and across processes by
// a file lock (by default the one the original Python fixtures use), so a
// local fixture and remotelabd on one host exclude each other. No operation
// waits for that exclusion unless asked to: TryAcquire answers ErrBusy at
// once, Acquire waits until its context ends.
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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/remotelab-go/remotelab/topology"
)

// Device is one node of a running lab as the Runner reports it.
type Device struct {
	// Name is the node name.
	Name string `json:"name"`
	// Raw is the node's data as a JSON object (for Netlab, the output of
	// `netlab inspect --node NAME --format json`).
	Raw json.RawMessage `json:"raw"`
}

// Spec is what a Runner needs to start a lab.
type Spec struct {
	// Dir is the lab's working directory; the bundle is already written
	// into it and every Netlab command runs there.
	Dir string
	// Bundle is the bundle written into Dir. Its TopologyName is the
	// topology file's name relative to Dir.
	Bundle *topology.Bundle
}

// Runner brings labs up and down. Implementations must honour ctx: when it
// ends, the operation is interrupted and returns an error that wraps
// ctx.Err().
type Runner interface {
	// Up starts the lab described by spec and returns its devices in node
	// order. A failed Up may leave a partly started lab behind; the
	// Manager then calls Down on the same directory.
	Up(ctx context.Context, spec Spec) ([]Device, error)
	// Down tears down the lab started in dir. Tearing down a directory
	// where nothing runs is not an error.
	Down(ctx context.Context, dir string) error
}

// Errors returned by Manager methods.
var (
	// ErrBusy: another lab operation is running, in this process or (file
	// lock) in another one. TryAcquire returns it at once; retry later.
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
)

// RunnerError wraps a failed Runner call. Err carries the Runner's own
// message (for Netlab, the tail of its stderr); it wraps ctx.Err() when
// the step ran out of time or was cancelled.
type RunnerError struct {
	Op  string // "up" or "down"
	Err error
}

func (e *RunnerError) Error() string { return fmt.Sprintf("%s lab: %v", e.Op, e.Err) }

// Unwrap returns Err.
func (e *RunnerError) Unwrap() error { return e.Err }

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
	// Runner starts and stops labs. Required.
	Runner Runner
	// WorkRoot is where working directories are created (default
	// os.TempDir()).
	WorkRoot string
	// StateDir is where the running lab's working directory is recorded,
	// so a restarted process can tear down what a crashed one left
	// behind (see Recover). "" disables recording.
	StateDir string
	// LockPath is the cross-process lock file (default
	// <os.TempDir()>/netlab_pytest.lock). "-" disables it.
	LockPath string
	// IdleTTL is how long an unreferenced lab stays up (default 10 min).
	IdleTTL time.Duration
	// DownTimeout bounds teardowns the Manager starts on its own (idle
	// expiry, cleanup after a failed start); default 5 min.
	DownTimeout time.Duration
	// Logger receives lifecycle events (default slog.Default()).
	Logger *slog.Logger
}

// DefaultIdleTTL is how long an idle lab stays warm by default.
const DefaultIdleTTL = 10 * time.Minute

// defaultDownTimeout bounds the teardowns the Manager starts on its own.
const defaultDownTimeout = 5 * time.Minute

// lockRetry is how often Acquire retries the cross-process lock file.
const lockRetry = 50 * time.Millisecond

// recordName is the file in Config.StateDir that names the running lab.
const recordName = "lab.json"

// dirPrefix starts the name of every working directory; Recover refuses to
// remove a recorded directory not named like this.
const dirPrefix = "remotelab-lab-"

// Manager manages the host's one lab. It is safe for concurrent use. The
// caller must call Close.
//
// Two locks keep it responsive: a short mutex guards the state and is never
// held while the Runner runs, and an operation lock serialises lab work
// (start, switch, teardown). Status, Release, ReleaseAll and Devices take
// only the mutex, so they answer at once even while `netlab up` runs.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	lock *flock.Flock // cross-process lock; nil when disabled

	op chan struct{} // 1-buffered: full while lab work runs

	ctx    context.Context // cancelled by Close; merged into every operation
	cancel context.CancelFunc
	ops    sync.WaitGroup // running operations and idle teardowns

	closeDone chan struct{}
	closeErr  error

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
	changed   chan struct{} // closed and replaced on every state or reference change
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

// record is the JSON kept in <StateDir>/lab.json while a lab may run.
type record struct {
	Dir         string    `json:"dir"`
	Fingerprint string    `json:"fingerprint"`
	Topology    string    `json:"topology"`
	StartedAt   time.Time `json:"started_at"`
}

// NewManager returns a Manager with no lab. It does not touch the Runner.
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
		op:        make(chan struct{}, 1),
		closeDone: make(chan struct{}),
		state:     StateNone,
		since:     time.Now(),
		changed:   make(chan struct{}),
	}
	if cfg.LockPath != "-" {
		m.lock = flock.New(cfg.LockPath)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// TryAcquire gives holder a reference to the lab described by b, starting
// it if needed, without waiting for other lab operations: it returns
// ErrBusy at once if one is running here or another process holds the
// lock. It blocks only for its own Runner calls, which end when ctx ends.
//
// Rules: the running lab with the same fingerprint and reuse is attached
// (Result.Reused). Otherwise, if the lab is unreferenced it is torn down
// and b is started. If holder itself references the lab and asks for
// another one, or for reuse=false, the error is ErrConflict; if others
// reference it, ErrBusy. State is committed only after Up succeeded; a
// failed Up is followed by a best-effort Down and leaves no lab.
//
// Cancelling ctx interrupts the Runner calls: a start cut short is cleaned
// up like a failed one; a teardown of the previous lab cut short leaves
// that lab StateDirty. Attaching never runs the Runner and so needs
// neither the operation lock nor the lock file.
//
// The caller keeps ownership of b; the Manager does not use it after
// TryAcquire returns.
func (m *Manager) TryAcquire(ctx context.Context, holder string, b *topology.Bundle, reuse bool) (Result, error) {
	return m.acquire(ctx, holder, b, reuse, false)
}

// Acquire is TryAcquire that waits, until ctx ends, for other operations
// and for other holders' references to go. A cancelled Acquire leaves the
// state unchanged.
//
// Waiters are not queued: whoever finds the lab free first gets it. Fair
// ordering is the job of the session queue in front of the Manager.
func (m *Manager) Acquire(ctx context.Context, holder string, b *topology.Bundle, reuse bool) (Result, error) {
	return m.acquire(ctx, holder, b, reuse, true)
}

// decision is what an acquire should do next.
type decision int

const (
	decStart    decision = iota // tear down what is there (if anything), then start
	decAttach                   // attached to the running lab
	decConflict                 // holder must release first
	decBusy                     // other holders reference the lab
	decClosed                   // the Manager is closed
)

// plan is the outcome of decide.
type plan struct {
	d       decision
	res     Result          // decAttach
	refs    int             // decAttach: holder's references after attaching
	others  int             // decBusy: references held by others
	changed <-chan struct{} // decBusy: closed on the next state change
	old     *labRec         // decStart with commit: the lab to tear down first
	reason  string          // why old is torn down
}

func (m *Manager) acquire(ctx context.Context, holder string, b *topology.Bundle, reuse, wait bool) (Result, error) {
	if b == nil {
		panic("lab: acquire with a nil bundle")
	}
	fp := b.Fingerprint()
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("acquire lab: %w", err)
	}
	defer done()

	held := 0 // 1: operation lock, 2: operation and file lock
	defer func() { m.unlock(held) }()
	for {
		if ctx.Err() != nil {
			// The caller gave up (its session ended) or Close cancelled
			// it: touch nothing.
			return Result{}, fmt.Errorf("acquire lab: %w", m.ctxErr(ctx))
		}
		p := m.decide(holder, fp, reuse, held == 2)
		switch p.d {
		case decClosed:
			return Result{}, fmt.Errorf("acquire lab: %w", ErrClosed)
		case decAttach:
			m.log.Info("Re-using lab", "topology", b.TopologyName(), "holder", short(holder), "ref", p.refs)
			return p.res, nil
		case decConflict:
			return Result{}, fmt.Errorf("acquire lab: %w", ErrConflict)
		case decBusy:
			if !wait {
				return Result{}, fmt.Errorf("acquire lab: %w: %d reference(s) held by other holders", ErrBusy, p.others)
			}
			m.unlock(held)
			held = 0
			select {
			case <-p.changed:
			case <-ctx.Done():
				return Result{}, fmt.Errorf("acquire lab: %w", m.waitErr(ctx, "other holders to release the lab"))
			}
		case decStart:
			switch held {
			case 0:
				if err := m.lockOp(ctx, wait); err != nil {
					return Result{}, fmt.Errorf("acquire lab: %w", err)
				}
			case 1:
				if err := m.lockFile(ctx, wait); err != nil {
					return Result{}, fmt.Errorf("acquire lab: %w", err)
				}
			default:
				return m.start(ctx, holder, b, fp, p)
			}
			held++
		}
	}
}

// decide applies the acquire rules to the current state. It attaches when
// the rules say so. With commit (both locks held) a start decision is
// committed: the idle timer is stopped and the current lab, if any, is
// marked stopping.
func (m *Manager) decide(holder, fp string, reuse, commit bool) plan {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return plan{d: decClosed}
	}
	cur := m.cur
	if cur != nil && (m.state == StateRunning || m.state == StateIdle) {
		switch {
		case cur.fp == fp && reuse:
			cur.holders[holder]++
			cur.refs++
			if m.state == StateIdle {
				m.disarmIdleLocked()
				m.setStateLocked(StateRunning)
			} else {
				m.notifyLocked()
			}
			return plan{
				d:    decAttach,
				res:  Result{Reused: true, Devices: cloneDevices(cur.devices), Fingerprint: fp},
				refs: cur.holders[holder],
			}
		case cur.holders[holder] > 0:
			return plan{d: decConflict}
		case cur.refs > 0:
			return plan{d: decBusy, others: cur.refs, changed: m.changed}
		}
	}
	if !commit || cur == nil {
		return plan{d: decStart}
	}
	// Both locks are held, so the state is Running/Idle (unreferenced) or
	// Dirty here: nothing else runs.
	p := plan{d: decStart, old: cur}
	switch {
	case m.state == StateDirty:
		p.reason = "dirty-retry"
	case cur.fp == fp:
		p.reason = "exclusive-request"
	default:
		p.reason = "topology-switch"
	}
	m.disarmIdleLocked()
	m.setStateLocked(StateStopping)
	return p
}

// start tears down p.old, if any, and starts b for holder. The caller
// holds both locks and has committed p.
func (m *Manager) start(ctx context.Context, holder string, b *topology.Bundle, fp string, p plan) (Result, error) {
	if old := p.old; old != nil {
		switch p.reason {
		case "topology-switch":
			m.log.Info("Switching topology", "from", old.topoName, "to", b.TopologyName(), "holder", short(holder))
		case "exclusive-request":
			m.log.Info("Exclusive request – restarting idle lab", "topology", old.topoName, "holder", short(holder))
		default:
			m.log.Info("Cleaning up dirty lab before start", "topology", old.topoName, "dir", old.dir)
		}
		if err := m.teardown(ctx, old, p.reason); err != nil {
			return Result{}, fmt.Errorf("start lab: %w", err)
		}
	}

	dir, err := os.MkdirTemp(m.cfg.WorkRoot, dirPrefix+"*")
	if err != nil {
		return Result{}, fmt.Errorf("start lab: create working directory: %w", err)
	}
	if err := b.WriteTo(dir); err != nil {
		m.removeDir(dir)
		return Result{}, fmt.Errorf("start lab: write bundle: %w", err)
	}
	l := &labRec{
		dir:      dir,
		fp:       fp,
		topoName: b.TopologyName(),
		holders:  make(map[string]int),
		started:  time.Now(),
	}
	if err := m.writeRecord(l); err != nil {
		m.removeDir(dir)
		return Result{}, fmt.Errorf("start lab: record lab: %w", err)
	}

	m.mu.Lock()
	m.pending = l
	m.setStateLocked(StateStarting)
	m.mu.Unlock()

	m.log.Info("Starting lab - this may take several minutes...", "topology", l.topoName, "holder", short(holder), "dir", dir)
	devs, err := m.cfg.Runner.Up(ctx, Spec{Dir: dir, Bundle: b})
	if err != nil {
		upErr := &RunnerError{Op: "up", Err: err}
		m.log.Error("Lab start failed", "topology", l.topoName, "holder", short(holder), "err", err)
		// Up may have left part of the lab running: tear it down even if
		// the caller gave up, within DownTimeout.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.DownTimeout)
		defer cancel()
		m.mu.Lock()
		m.pending = nil
		m.cur = l
		m.setStateLocked(StateStopping)
		m.mu.Unlock()
		if derr := m.teardown(dctx, l, "start-failed"); derr != nil {
			return Result{}, fmt.Errorf("start lab: %w (cleanup: %v)", upErr, derr)
		}
		return Result{}, fmt.Errorf("start lab: %w", upErr)
	}

	m.mu.Lock()
	l.devices = cloneDevices(devs)
	l.holders[holder] = 1
	l.refs = 1
	m.pending = nil
	m.cur = l
	m.setStateLocked(StateRunning)
	res := Result{Devices: cloneDevices(l.devices), Fingerprint: fp}
	m.mu.Unlock()
	m.log.Info("Lab started", "topology", l.topoName, "devices", len(devs), "holder", short(holder),
		"duration", time.Since(l.started).Round(time.Millisecond))
	return res, nil
}

// teardown runs Down for l, which the caller has marked StateStopping
// while holding the operation lock (and the file lock). On success the
// working directory and the record are removed and there is no lab; on
// failure l is kept as StateDirty for the next start to retry.
func (m *Manager) teardown(ctx context.Context, l *labRec, reason string) error {
	m.log.Info("Tearing down lab", "topology", l.topoName, "reason", reason, "dir", l.dir)
	begun := time.Now()
	if err := m.cfg.Runner.Down(ctx, l.dir); err != nil {
		m.mu.Lock()
		l.holders = make(map[string]int)
		l.refs = 0
		l.devices = nil
		m.cur = l
		m.setStateLocked(StateDirty)
		m.mu.Unlock()
		m.log.Error("Lab teardown failed; kept as dirty", "topology", l.topoName, "reason", reason, "dir", l.dir, "err", err)
		return &RunnerError{Op: "down", Err: err}
	}
	m.removeDir(l.dir)
	m.removeRecord(l.dir)
	m.mu.Lock()
	m.cur = nil
	m.setStateLocked(StateNone)
	m.mu.Unlock()
	m.log.Info("Lab torn down", "topology", l.topoName, "reason", reason,
		"duration", time.Since(begun).Round(time.Millisecond))
	return nil
}

// Release drops one of holder's references. Releasing with nothing held is
// a no-op; with no lab at all it returns ErrNoLab. When the last reference
// goes the lab becomes idle and is torn down after IdleTTL. It never
// blocks on lab work.
func (m *Manager) Release(holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("release lab: %w", ErrClosed)
	}
	if m.cur == nil || m.state == StateDirty {
		return fmt.Errorf("release lab: %w", ErrNoLab)
	}
	if m.cur.holders[holder] > 0 {
		m.dropLocked(holder, 1)
	}
	return nil
}

// ReleaseAll drops all of holder's references (its session ended). It
// never blocks on lab work.
func (m *Manager) ReleaseAll(holder string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.cur == nil {
		return
	}
	if n := m.cur.holders[holder]; n > 0 {
		m.dropLocked(holder, n)
	}
}

// dropLocked removes n of holder's references and arms the idle timer when
// the last one goes.
func (m *Manager) dropLocked(holder string, n int) {
	l := m.cur
	if l.holders[holder] -= n; l.holders[holder] <= 0 {
		delete(l.holders, holder)
	}
	l.refs -= n
	if l.refs > 0 || m.state != StateRunning {
		m.notifyLocked()
		return
	}
	m.setStateLocked(StateIdle)
	m.armIdleLocked()
	m.log.Info("Lab became idle – awaiting next user or teardown", "topology", l.topoName, "holder", short(holder), "idle_ttl", m.cfg.IdleTTL)
}

// armIdleLocked (re)starts the idle timer of the idle lab for IdleTTL.
func (m *Manager) armIdleLocked() {
	m.disarmIdleLocked()
	g, ttl := m.gen, m.cfg.IdleTTL
	m.idleUntil = time.Now().Add(ttl)
	m.idleTimer = time.AfterFunc(ttl, func() { m.expireIdle(g) })
}

// expireIdle tears down the idle lab of generation g. If lab work is
// running it does nothing: that work decides (see unlockOp).
func (m *Manager) expireIdle(g uint64) {
	m.mu.Lock()
	if m.closed || m.gen != g || m.state != StateIdle {
		m.mu.Unlock()
		return
	}
	m.idleTimer = nil
	m.ops.Add(1)
	m.mu.Unlock()
	defer m.ops.Done()

	select {
	case m.op <- struct{}{}:
	default:
		m.mu.Lock()
		if m.gen == g && m.state == StateIdle {
			m.idleDue = true
		}
		m.mu.Unlock()
		m.log.Debug("Idle lab expired while another lab operation runs")
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.DownTimeout)
	defer cancel()
	held := 1
	defer func() { m.unlock(held) }()
	if err := m.lockFile(ctx, true); err != nil {
		// Try again after another idle period rather than leave the lab
		// up with nobody to take it down.
		m.mu.Lock()
		if !m.closed && m.gen == g && m.state == StateIdle {
			m.armIdleLocked()
		}
		m.mu.Unlock()
		m.log.Warn("Idle lab not torn down; retrying after the idle TTL", "err", err)
		return
	}
	held = 2
	m.mu.Lock()
	l := m.cur
	if m.closed || m.gen != g || m.state != StateIdle || l == nil {
		m.mu.Unlock()
		return
	}
	m.disarmIdleLocked()
	m.setStateLocked(StateStopping)
	m.mu.Unlock()
	_ = m.teardown(ctx, l, "idle-timeout") // logged; a failure leaves the lab dirty
}

// Destroy tears the lab down now. Without force it fails with ErrInUse
// while the lab is referenced. It reports whether there was a lab to tear
// down; a failed teardown returns a *RunnerError and leaves StateDirty.
// Like TryAcquire it returns ErrBusy rather than wait for another
// operation. A dirty lab is torn down again.
func (m *Manager) Destroy(ctx context.Context, force bool) (bool, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	defer done()
	if err := m.lockOp(ctx, false); err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	held := 1
	defer func() { m.unlock(held) }()

	check := func() (*labRec, error) {
		switch {
		case m.closed:
			return nil, ErrClosed
		case ctx.Err() != nil:
			// The caller gave up (its session ended): act on nobody's lab.
			return nil, ctx.Err()
		case m.cur == nil:
			return nil, nil
		case m.cur.refs > 0 && !force:
			return nil, fmt.Errorf("%w: %d reference(s)", ErrInUse, m.cur.refs)
		}
		return m.cur, nil
	}
	m.mu.Lock()
	l, err := check()
	m.mu.Unlock()
	if l == nil || err != nil {
		return false, wrapErr("destroy lab", err)
	}
	if err := m.lockFile(ctx, false); err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	held = 2
	m.mu.Lock()
	if l, err = check(); l == nil || err != nil {
		m.mu.Unlock()
		return false, wrapErr("destroy lab", err)
	}
	reason := "destroy"
	if l.refs > 0 {
		reason = "destroy-forced"
	}
	m.disarmIdleLocked()
	m.setStateLocked(StateStopping)
	m.mu.Unlock()
	if err := m.teardown(ctx, l, reason); err != nil {
		return true, fmt.Errorf("destroy lab: %w", err)
	}
	return true, nil
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
	l := m.cur
	if m.state == StateStarting {
		l = m.pending
	}
	if l != nil {
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

// Recover tears down a lab that a previous process recorded in StateDir
// and did not tear down (it crashed), then removes the record and the
// working directory. It touches only that recorded lab. It reports
// whether there was one. Call it before the first acquire: a lab started
// by this Manager replaces the record. It waits, until ctx ends, for
// other lab operations and the cross-process lock.
func (m *Manager) Recover(ctx context.Context) (bool, error) {
	if m.cfg.StateDir == "" {
		return false, nil
	}
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("recover lab: %w", err)
	}
	defer done()
	if _, err := m.readRecord(); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := m.lockOp(ctx, true); err != nil {
		return false, fmt.Errorf("recover lab: %w", err)
	}
	held := 1
	defer func() { m.unlock(held) }()
	if err := m.lockFile(ctx, true); err != nil {
		return false, fmt.Errorf("recover lab: %w", err)
	}
	held = 2

	rec, err := m.readRecord()
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recover lab: %w", err)
	}
	m.mu.Lock()
	ours := (m.cur != nil && m.cur.dir == rec.Dir) || (m.pending != nil && m.pending.dir == rec.Dir)
	m.mu.Unlock()
	if ours {
		return false, nil
	}
	m.log.Info("Recovering lab left by a previous run", "topology", rec.Topology, "dir", rec.Dir,
		"started_at", rec.StartedAt)
	if err := m.cfg.Runner.Down(ctx, rec.Dir); err != nil {
		m.log.Error("Recovered lab teardown failed", "dir", rec.Dir, "err", err)
		return true, fmt.Errorf("recover lab: %w", &RunnerError{Op: "down", Err: err})
	}
	m.removeDir(rec.Dir)
	m.removeRecord(rec.Dir)
	m.log.Info("Recovered lab torn down", "topology", rec.Topology, "dir", rec.Dir)
	return true, nil
}

// Close makes further operations fail with ErrClosed, interrupts running
// ones (their contexts are cancelled) and waits for them, stops the idle
// timer and tears the lab down, bounded by ctx. Later calls wait for the
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
	m.notifyLocked()
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
	held := 1
	defer func() { m.unlock(held) }()
	if err := m.lockFile(ctx, true); err != nil {
		return fmt.Errorf("close lab manager: %w", err)
	}
	held = 2
	m.mu.Lock()
	l := m.cur
	if l != nil {
		m.setStateLocked(StateStopping)
	}
	m.mu.Unlock()
	if l == nil {
		return nil
	}
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

// lockOp takes the operation lock, at once (ErrBusy) or waiting until ctx
// ends.
func (m *Manager) lockOp(ctx context.Context, wait bool) error {
	if !wait {
		select {
		case m.op <- struct{}{}:
			return nil
		default:
			return fmt.Errorf("%w: another lab operation is running", ErrBusy)
		}
	}
	select {
	case m.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return m.waitErr(ctx, "another lab operation to finish")
	}
}

// lockFile takes the cross-process lock, at once (ErrBusy) or waiting
// until ctx ends.
func (m *Manager) lockFile(ctx context.Context, wait bool) error {
	if m.lock == nil {
		return nil
	}
	if !wait {
		ok, err := m.lock.TryLock()
		switch {
		case err != nil:
			return fmt.Errorf("lock %s: %w", m.lock.Path(), err)
		case !ok:
			return fmt.Errorf("%w: lock file %s is held by another process", ErrBusy, m.lock.Path())
		}
		return nil
	}
	if _, err := m.lock.TryLockContext(ctx, lockRetry); err != nil {
		if ctx.Err() != nil {
			return m.waitErr(ctx, "lock file "+m.lock.Path()+" held by another process")
		}
		return fmt.Errorf("lock %s: %w", m.lock.Path(), err)
	}
	return nil
}

// unlock releases the locks counted by held (1: operation lock, 2: both).
func (m *Manager) unlock(held int) {
	if held >= 2 && m.lock != nil {
		if err := m.lock.Unlock(); err != nil {
			m.log.Warn("Cannot unlock the lab lock file", "path", m.lock.Path(), "err", err)
		}
	}
	if held >= 1 {
		m.unlockOp()
	}
}

// unlockOp releases the operation lock. If the idle timer fired while it
// was held, the idle lab's fate was left to this operation: it is torn
// down now unless it was taken again meanwhile.
func (m *Manager) unlockOp() {
	m.mu.Lock()
	due := m.idleDue && m.state == StateIdle && !m.closed
	m.idleDue = false
	g := m.gen
	if due {
		m.ops.Add(1) // Close waits for the expiry goroutine too
	}
	m.mu.Unlock()
	<-m.op
	if due {
		go func() {
			defer m.ops.Done()
			m.expireIdle(g)
		}()
	}
}

// waitErr explains why a wait ended: ErrClosed when the Manager closed,
// otherwise ctx's error and what was waited for.
func (m *Manager) waitErr(ctx context.Context, what string) error {
	err := m.ctxErr(ctx)
	if err == ErrClosed {
		return err
	}
	return fmt.Errorf("wait for %s: %w", what, err)
}

// ctxErr is why ctx ended: ErrClosed when Close cancelled it.
func (m *Manager) ctxErr(ctx context.Context) error {
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}

// setStateLocked changes the state and wakes waiters.
func (m *Manager) setStateLocked(s State) {
	m.state = s
	m.since = time.Now()
	m.notifyLocked()
}

// notifyLocked wakes everyone waiting for a change.
func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// disarmIdleLocked stops the idle timer and invalidates any expiry of the
// current generation that is already on its way.
func (m *Manager) disarmIdleLocked() {
	if m.idleTimer != nil {
		m.idleTimer.Stop()
		m.idleTimer = nil
	}
	m.idleUntil = time.Time{}
	m.idleDue = false
	m.gen++
}

func (m *Manager) recordPath() string { return filepath.Join(m.cfg.StateDir, recordName) }

// writeRecord atomically records l in StateDir.
func (m *Manager) writeRecord(l *labRec) error {
	if m.cfg.StateDir == "" {
		return nil
	}
	data, err := json.MarshalIndent(record{Dir: l.dir, Fingerprint: l.fp, Topology: l.topoName, StartedAt: l.started}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.cfg.StateDir, 0o755); err != nil {
		return err
	}
	if old, err := m.readRecord(); err == nil && old.Dir != l.dir {
		m.log.Warn("Replacing the record of a lab that was not recovered", "dir", old.Dir, "topology", old.Topology)
	}
	f, err := os.CreateTemp(m.cfg.StateDir, "."+recordName+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), m.recordPath())
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// readRecord reads and checks the record in StateDir.
func (m *Manager) readRecord() (record, error) {
	var rec record
	data, err := os.ReadFile(m.recordPath())
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("read %s: %w", m.recordPath(), err)
	}
	if !filepath.IsAbs(rec.Dir) || !strings.HasPrefix(filepath.Base(rec.Dir), dirPrefix) {
		return rec, fmt.Errorf("read %s: %q is not a lab working directory", m.recordPath(), rec.Dir)
	}
	return rec, nil
}

// removeRecord removes the record if it names dir.
func (m *Manager) removeRecord(dir string) {
	if m.cfg.StateDir == "" {
		return
	}
	if rec, err := m.readRecord(); err != nil || rec.Dir != dir {
		return
	}
	if err := os.Remove(m.recordPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("Cannot remove the lab record", "path", m.recordPath(), "err", err)
	}
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
