package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/remotelab-go/remotelab/topology"
)

// TryAcquire may block for minutes: it waits for the Manager's own lab
// work and runs Runner.Up (`netlab up`) when it starts a lab. It gives
// holder a reference to the lab described by b, starting it if needed.
//
// It waits, until ctx ends, for lab work of this Manager (a start, an idle
// teardown, a recovery) and then proceeds, so background work never shows
// as busy. It answers ErrBusy at once when what stands in the way could
// last indefinitely: another process holds the lock file, or other holders
// reference the lab.
//
// Rules: the running lab with the same fingerprint and reuse is attached
// (Result.Reused). Otherwise, if the lab is unreferenced it is torn down
// and b is started. If holder itself references the lab and asks for
// another one, or for reuse=false, the error is ErrConflict; if others
// reference it, ErrBusy. State is committed only after Up succeeded; a
// failed Up is followed by a best-effort Down and leaves no lab (or a
// StateDirty one when that Down fails too).
//
// Cancelling ctx interrupts the waits and the Runner calls: a start cut
// short is cleaned up like a failed one; a teardown of the previous lab
// cut short leaves that lab StateDirty. Attaching never runs the Runner
// and so needs neither the operation lock nor the lock file.
//
// The caller keeps ownership of b; the Manager does not use it after
// TryAcquire returns.
func (m *Manager) TryAcquire(ctx context.Context, holder string, b *topology.Bundle, reuse bool) (Result, error) {
	return m.acquire(ctx, holder, b, reuse, false)
}

// Acquire is TryAcquire that also waits, until ctx ends, for other holders'
// references to go and for the lock file. A cancelled Acquire leaves the
// state unchanged.
//
// Waiters are not queued: whoever finds the lab free first gets it. Fair
// ordering is the job of the session queue in front of the Manager.
func (m *Manager) Acquire(ctx context.Context, holder string, b *topology.Bundle, reuse bool) (Result, error) {
	return m.acquire(ctx, holder, b, reuse, true)
}

// action is what an acquire should do next.
type action int

const (
	actStart    action = iota // tear down what is there (if anything), then start
	actAttach                 // attach to the running lab
	actConflict               // holder must release first
	actBusy                   // other holders reference the lab
	actClosed                 // the Manager is closed
)

// plan is what planLocked decided.
type plan struct {
	act     action
	others  int             // actBusy: references held by others
	changed <-chan struct{} // actBusy: closed on the next change
	old     *labRec         // actStart: the lab to tear down first, if any
	reason  string          // why old is torn down
}

// planLocked applies the acquire rules to the current state and says what
// to do. It changes nothing. A start plan is only carried out with both
// locks held (see commitStartLocked); without them it means "take them".
func (m *Manager) planLocked(holder, fp string, reuse bool) plan {
	if m.closed {
		return plan{act: actClosed}
	}
	cur := m.cur
	if cur != nil && (m.state == StateRunning || m.state == StateIdle) {
		switch {
		case cur.fp == fp && reuse:
			return plan{act: actAttach}
		case cur.holders[holder] > 0:
			return plan{act: actConflict}
		case cur.refs > 0:
			return plan{act: actBusy, others: cur.refs, changed: m.changed}
		}
	}
	p := plan{act: actStart, old: cur}
	switch {
	case cur == nil:
	case m.state == StateDirty:
		p.reason = "dirty-retry"
	case cur.fp == fp:
		p.reason = "exclusive-request"
	default:
		p.reason = "topology-switch"
	}
	return p
}

// attachLocked gives holder one more reference to the running or idle lab
// and returns the result and holder's reference count.
func (m *Manager) attachLocked(holder string) (Result, int) {
	cur := m.cur
	cur.holders[holder]++
	cur.refs++
	if m.state == StateIdle {
		m.disarmIdleLocked()
		m.setStateLocked(StateRunning)
	} else {
		m.notifyLocked()
	}
	return Result{Reused: true, Devices: cloneDevices(cur.devices), Fingerprint: cur.fp}, cur.holders[holder]
}

// commitStartLocked carries out the first step of a start plan, with both
// locks held: the lab to replace stops being usable (StateStopping) and its
// idle timer stops. It reports whether the state changed.
func (m *Manager) commitStartLocked(p plan) bool {
	if p.old == nil {
		return false
	}
	m.disarmIdleLocked()
	m.setStateLocked(StateStopping)
	return true
}

func (m *Manager) acquire(ctx context.Context, holder string, b *topology.Bundle, reuse, patient bool) (Result, error) {
	if b == nil {
		panic("lab: acquire with a nil bundle")
	}
	fp := b.Fingerprint()
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("acquire lab: %w", err)
	}
	defer done()

	lk := locks{m: m}
	defer lk.unlock()
	for {
		if ctx.Err() != nil {
			// The caller gave up (its session ended) or Close cancelled
			// it: touch nothing.
			return Result{}, fmt.Errorf("acquire lab: %w", m.ctxErr(ctx))
		}
		m.mu.Lock()
		p := m.planLocked(holder, fp, reuse)
		switch {
		case p.act == actAttach:
			res, refs := m.attachLocked(holder)
			ver := m.recVer
			m.mu.Unlock()
			m.publish(ver)
			m.log.Info("Re-using lab", "topology", b.TopologyName(), "holder", short(holder), "ref", refs)
			m.emit(Event{Kind: EventAcquired, Holder: holder, Fingerprint: fp, Reused: true})
			return res, nil
		case p.act == actStart && lk.op && lk.file:
			changed := m.commitStartLocked(p)
			ver := m.recVer
			m.mu.Unlock()
			if changed {
				m.publish(ver)
			}
			return m.start(ctx, holder, b, fp, p)
		}
		m.mu.Unlock()

		switch p.act {
		case actClosed:
			return Result{}, fmt.Errorf("acquire lab: %w", ErrClosed)
		case actConflict:
			return Result{}, fmt.Errorf("acquire lab: %w", ErrConflict)
		case actBusy:
			if !patient {
				return Result{}, fmt.Errorf("acquire lab: %w: %d reference(s) held by other holders", ErrBusy, p.others)
			}
			lk.unlock()
			select {
			case <-p.changed:
			case <-ctx.Done():
				return Result{}, fmt.Errorf("acquire lab: %w", m.waitErr(ctx, "other holders to release the lab"))
			}
		case actStart:
			var err error
			if !lk.op {
				err = lk.lockOp(ctx, patient)
			} else {
				err = lk.lockFile(ctx, patient)
			}
			if err != nil {
				return Result{}, fmt.Errorf("acquire lab: %w", err)
			}
		}
	}
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
		// A caller that gives up abandons its start, not this teardown:
		// cut short, it would leave the old lab dirty.
		dctx, cancel := m.teardownContext(ctx)
		err := m.teardown(dctx, old, p.reason)
		cancel()
		if err != nil {
			return Result{}, fmt.Errorf("start lab: %w", err)
		}
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("start lab: %w", m.ctxErr(ctx))
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
	m.mu.Lock()
	m.pending = l
	m.setStateLocked(StateStarting)
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver) // recorded before Up runs, so a crash during Up is recovered

	m.log.Info("Starting lab - this may take several minutes...", "topology", l.topoName, "holder", short(holder), "dir", dir)
	var devs []Device
	err = m.runnerCall(ctx, "up", func(ctx context.Context) error {
		var err error
		devs, err = m.cfg.Runner.Up(ctx, Spec{Dir: dir, Bundle: b})
		return err
	})
	if err != nil {
		upErr := &RunnerError{Op: "up", Err: err}
		if errors.Is(err, context.Canceled) {
			m.log.Info("Lab start cancelled: its caller gave up", "topology", l.topoName, "holder", short(holder))
		} else {
			m.log.Error("Lab start failed", "topology", l.topoName, "holder", short(holder), "err", err)
		}
		m.emit(Event{Kind: EventStarted, Fingerprint: fp, Err: upErr})
		// Up may have left part of the lab running: tear it down even if
		// the caller gave up.
		dctx, cancel := m.teardownContext(ctx)
		defer cancel()
		m.mu.Lock()
		m.pending = nil
		m.cur = l
		m.setStateLocked(StateStopping)
		ver := m.recVer
		m.mu.Unlock()
		m.publish(ver)
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
	ver = m.recVer
	m.mu.Unlock()
	m.publish(ver)
	m.log.Info("Lab started", "topology", l.topoName, "devices", len(devs), "holder", short(holder),
		"duration", time.Since(l.started).Round(time.Millisecond))
	m.emit(Event{Kind: EventStarted, Fingerprint: fp})
	m.emit(Event{Kind: EventAcquired, Holder: holder, Fingerprint: fp})
	return res, nil
}
