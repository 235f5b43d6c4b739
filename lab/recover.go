package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Recovery is what Recover did.
type Recovery int

// Recover outcomes.
const (
	// RecoveredNothing: no record, or the record is this Manager's own lab.
	RecoveredNothing Recovery = iota
	// RecoveredAdopted: the recorded lab still runs and is now this
	// Manager's, with its recorded holders and devices.
	RecoveredAdopted
	// RecoveredTornDown: the recorded lab was torn down; record and
	// working directory are gone.
	RecoveredTornDown
	// RecoveredDirty: the teardown failed, or could not be tried (the
	// locks could not be taken); the lab is kept as StateDirty (and
	// recorded so) until a start or Destroy tears it down.
	RecoveredDirty
)

// String returns the outcome's name, such as "adopted".
func (r Recovery) String() string {
	switch r {
	case RecoveredNothing:
		return "nothing"
	case RecoveredAdopted:
		return "adopted"
	case RecoveredTornDown:
		return "torn-down"
	case RecoveredDirty:
		return "dirty"
	}
	return fmt.Sprintf("Recovery(%d)", int(r))
}

// Recover takes over the lab a previous process recorded (see
// Config.Records) and did not tear down: it crashed, or closed with
// KeepOnClose. Call it before the first acquire; it waits, until ctx ends,
// for other lab operations and, before a teardown, the lock file.
//
// First every recorded process group (a netlab command the previous
// process ran) that still runs and is still the same is killed, and
// Recover waits until it is gone. Then, if the lab was up (running or
// idle) and the Runner is a Prober that says it still runs, the lab is
// adopted: it becomes the current lab with its recorded holders and
// devices (running if referenced, else idle with the idle timer armed),
// without a Runner call; the layer above then drops holders that no
// longer exist (DropHoldersExcept). Otherwise the lab is torn down in its
// directory; if that fails, it stays the current lab as StateDirty so the
// next start (or Destroy) retries, and the error is returned.
//
// If the locks a teardown needs cannot be taken (ctx ends first, or the
// lock file cannot be opened) the recorded lab is kept as StateDirty (see
// keepDirty) and the error is returned with RecoveredDirty. Adoption needs
// only the Manager's own operation lock.
//
// A record whose directory is not one a Manager creates is refused with
// an error, and nothing is touched.
func (m *Manager) Recover(ctx context.Context) (Recovery, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return RecoveredNothing, fmt.Errorf("recover lab: %w", err)
	}
	defer done()
	if m.records == nil {
		return RecoveredNothing, nil
	}
	rec, err := m.records.Load()
	if err != nil || rec == nil {
		return RecoveredNothing, wrapErr("recover lab", err)
	}
	if err := checkRecordedDir(rec.Dir); err != nil {
		return RecoveredNothing, err
	}
	lk := locks{m: m}
	defer lk.unlock()
	if err := lk.lockOp(ctx, true); err != nil {
		m.killProcesses(context.Background(), rec.Processes)
		return m.keepDirty(rec, fmt.Errorf("recover lab: %w", err))
	}
	// Another operation may have run while this one waited.
	if rec, err = m.records.Load(); err != nil || rec == nil {
		return RecoveredNothing, wrapErr("recover lab", err)
	}
	if err := checkRecordedDir(rec.Dir); err != nil {
		return RecoveredNothing, err
	}
	m.mu.Lock()
	mine := m.cur
	m.mu.Unlock()
	if mine != nil {
		if mine.dir != rec.Dir {
			m.log.Warn("Lab record names another lab than this manager's; left alone", "dir", rec.Dir, "topology", rec.Topology)
		}
		return RecoveredNothing, nil
	}

	m.log.Info("Recovering lab left by a previous run", "topology", rec.Topology, "dir", rec.Dir,
		"state", rec.State, "started_at", rec.StartedAt)
	m.killProcesses(ctx, rec.Processes)
	l := recordedLab(rec)
	// Adopting changes nothing on the host, so it does not wait for the
	// lock file: another process holding it (a local test run) must not
	// cost the recorded holders their running lab.
	if m.stillRuns(ctx, rec) {
		if err := m.adopt(l, rec); err != nil {
			return RecoveredNothing, err
		}
		return RecoveredAdopted, nil
	}
	if err := lk.lockFile(ctx, true); err != nil {
		return m.keepDirty(rec, fmt.Errorf("recover lab: %w", err))
	}

	m.mu.Lock()
	m.cur = l
	m.setStateLocked(StateStopping)
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver)
	if err := m.teardown(ctx, l, "recover"); err != nil {
		return RecoveredDirty, fmt.Errorf("recover lab: %w", err)
	}
	m.log.Info("Recovered lab torn down", "topology", rec.Topology, "dir", rec.Dir)
	return RecoveredTornDown, nil
}

// checkRecordedDir refuses a recorded directory that is not one a Manager
// creates: Recover touches nothing else.
func checkRecordedDir(dir string) error {
	if !filepath.IsAbs(dir) || !strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		return fmt.Errorf("recover lab: recorded directory %q is not a lab working directory", dir)
	}
	return nil
}

// keepDirty handles a Recover that could not take the locks (its context
// ended while another process held the lock file, or the lock file cannot
// be opened): the recorded lab was neither adopted nor torn down, so it is
// kept as this Manager's lab in StateDirty, and the next start or Destroy
// tears it down before anything else runs, instead of starting a lab
// beside it and recording over it. The caller has killed the process
// groups rec lists (the previous run's netlab commands). err is returned.
func (m *Manager) keepDirty(rec *Record, err error) (Recovery, error) {
	m.mu.Lock()
	if m.closed || m.cur != nil || m.state != StateNone {
		m.mu.Unlock()
		return RecoveredNothing, err // not at startup: lab work is under way
	}
	m.cur = recordedLab(rec)
	m.setStateLocked(StateDirty)
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver)
	m.log.Error("Lab left by a previous run not recovered; kept as dirty until a teardown succeeds",
		"topology", rec.Topology, "dir", rec.Dir, "err", err)
	return RecoveredDirty, err
}

// recordedLab is the lab rec names, without holders or devices.
func recordedLab(rec *Record) *labRec {
	return &labRec{dir: rec.Dir, fp: rec.Fingerprint, topoName: rec.Topology,
		holders: make(map[string]int), started: rec.StartedAt}
}

// stillRuns asks the Runner, if it can tell, whether the recorded lab was
// up and still runs.
func (m *Manager) stillRuns(ctx context.Context, rec *Record) bool {
	p, ok := m.cfg.Runner.(Prober)
	if !ok || (rec.State != StateRunning && rec.State != StateIdle) {
		return false
	}
	running, err := p.Running(ctx, rec.Dir)
	if err != nil {
		m.log.Warn("Cannot tell whether the recorded lab still runs; tearing it down", "dir", rec.Dir, "err", err)
		return false
	}
	return running
}

// adopt makes the recorded lab l the current one, with rec's holders and
// devices. The caller holds the operation lock.
func (m *Manager) adopt(l *labRec, rec *Record) error {
	l.devices = cloneDevices(rec.Devices)
	for h, n := range rec.Holders {
		if n > 0 {
			l.holders[h] = n
			l.refs += n
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("recover lab: %w", ErrClosed)
	}
	m.cur = l
	if l.refs > 0 {
		m.setStateLocked(StateRunning)
	} else {
		m.setStateLocked(StateIdle)
		m.armIdleLocked()
	}
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver)
	m.log.Info("Adopted the lab a previous run left running", "topology", l.topoName, "dir", l.dir,
		"holders", len(l.holders), "ref_count", l.refs, "up_for", time.Since(l.started).Round(time.Second))
	return nil
}
