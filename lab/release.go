package lab

import (
	"context"
	"fmt"
	"time"
)

// Release drops one of holder's references. Releasing with nothing held is
// a no-op; with no lab at all it returns ErrNoLab. When the last reference
// goes the lab becomes idle and is torn down after IdleTTL. It never waits
// for lab work; it returns once the record (Config.Records) is written.
func (m *Manager) Release(holder string) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("release lab: %w", ErrClosed)
	}
	if m.cur == nil || m.state == StateDirty {
		m.mu.Unlock()
		return fmt.Errorf("release lab: %w", ErrNoLab)
	}
	changed := m.cur.holders[holder] > 0
	if changed {
		m.dropLocked(holder, 1)
	}
	ver := m.recVer
	m.mu.Unlock()
	if changed {
		m.publish(ver)
	}
	return nil
}

// ReleaseAll drops all of holder's references (its session ended). It
// never waits for lab work; it returns once the record is written.
func (m *Manager) ReleaseAll(holder string) {
	m.DropHoldersExcept(func(h string) bool { return h != holder })
}

// DropHoldersExcept drops every reference of the holders for which keep
// returns false. After Recover adopted a lab, the layer above calls it to
// drop the references of holders (sessions) that no longer exist. keep is
// called with the Manager's mutex held and must not call the Manager. It
// never waits for lab work; it returns once the record is written.
func (m *Manager) DropHoldersExcept(keep func(holder string) bool) {
	m.mu.Lock()
	if m.closed || m.cur == nil {
		m.mu.Unlock()
		return
	}
	changed := false
	for h, n := range m.cur.holders {
		if n > 0 && !keep(h) {
			m.dropLocked(h, n)
			changed = true
		}
	}
	ver := m.recVer
	m.mu.Unlock()
	if changed {
		m.publish(ver)
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

// expireIdle tears down the idle lab of generation g. If lab work is
// running it does nothing: that work decides when it ends (see unlockOp).
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
	lk := locks{m: m, op: true}
	defer lk.unlock()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.DownTimeout)
	defer cancel()
	if err := lk.lockFile(ctx, true); err != nil {
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
	m.mu.Lock()
	l := m.cur
	if m.closed || m.gen != g || m.state != StateIdle || l == nil {
		m.mu.Unlock()
		return
	}
	m.disarmIdleLocked()
	m.setStateLocked(StateStopping)
	ver := m.recVer
	m.mu.Unlock()
	m.publish(ver)
	_ = m.teardown(ctx, l, "idle-timeout") // logged; a failure leaves the lab dirty
}
