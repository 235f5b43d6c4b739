package lab

import (
	"context"
	"fmt"
	"time"
)

// Destroy may block for minutes: it waits for the Manager's own lab work
// and runs Runner.Down. It tears the lab down now. Without force it fails
// with ErrInUse, at once, while the lab is referenced. It reports whether
// there was a lab to tear down; a failed teardown returns a *RunnerError
// and leaves StateDirty. A dirty lab is torn down again.
//
// Like TryAcquire it waits, until ctx ends, for lab work of this Manager
// (when that work already tore the lab down, there is nothing left to do)
// and answers ErrBusy at once when another process holds the lock file.
// Cancelling ctx interrupts the wait and the teardown (the lab is then
// StateDirty).
func (m *Manager) Destroy(ctx context.Context, force bool) (bool, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	defer done()
	lk := locks{m: m}
	defer lk.unlock()

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
	// A referenced lab stays referenced while we wait: say so at once.
	m.mu.Lock()
	_, err = check()
	m.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	if err := lk.lockOp(ctx, false); err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	m.mu.Lock()
	l, err := check()
	m.mu.Unlock()
	if l == nil || err != nil {
		return false, wrapErr("destroy lab", err)
	}
	if err := lk.lockFile(ctx, false); err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
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
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver)
	if err := m.teardown(ctx, l, reason); err != nil {
		return true, fmt.Errorf("destroy lab: %w", err)
	}
	return true, nil
}

// teardown runs Down for l, which the caller has marked StateStopping
// while holding both locks. On success the working directory is removed,
// there is no lab and the record is deleted; on failure l is kept as
// StateDirty (and recorded so) for the next start to retry.
func (m *Manager) teardown(ctx context.Context, l *labRec, reason string) error {
	m.log.Info("Tearing down lab", "topology", l.topoName, "reason", reason, "dir", l.dir)
	begun := time.Now()
	err := m.runnerCall(ctx, "down", func(ctx context.Context) error {
		return m.cfg.Runner.Down(ctx, l.dir)
	})
	if err != nil {
		m.mu.Lock()
		l.holders = make(map[string]int)
		l.refs = 0
		l.devices = nil
		m.cur = l
		m.setStateLocked(StateDirty)
		ver := m.recVer
		m.mu.Unlock()
		m.publish(ver)
		m.log.Error("Lab teardown failed; kept as dirty", "topology", l.topoName, "reason", reason, "dir", l.dir, "err", err)
		rerr := &RunnerError{Op: "down", Err: err}
		m.emit(Event{Kind: EventTornDown, Fingerprint: l.fp, Reason: reason, Err: rerr})
		return rerr
	}
	m.removeDir(l.dir)
	m.mu.Lock()
	m.cur = nil
	m.setStateLocked(StateNone)
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver) // deletes the record
	m.log.Info("Lab torn down", "topology", l.topoName, "reason", reason,
		"duration", time.Since(begun).Round(time.Millisecond))
	m.emit(Event{Kind: EventTornDown, Fingerprint: l.fp, Reason: reason})
	return nil
}

// teardownContext returns the context of a teardown the caller must not
// cut short (a failed start's cleanup, the teardown before a switch): it
// ignores ctx's cancellation (and Close's: an interrupted start is still
// cleaned up) but keeps its values, and ends after DownTimeout.
func (m *Manager) teardownContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.cfg.DownTimeout)
}
