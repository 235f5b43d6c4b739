package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/remotelab-go/remotelab/lab"
)

// probeTimeout bounds one readiness probe of the runner.
const probeTimeout = 30 * time.Second

// health tracks what makes the host unfit for lab work: a quarantine
// (failed teardowns, or failed starts of different topologies, in a row)
// and the periodic probes of the runner and the lab lock file.
type health struct {
	b *Broker

	mu         sync.Mutex
	quarantine *Quarantine
	downFails  int      // teardowns failing in a row
	startFails []string // distinct fingerprints of starts failing in a row
	probeErr   error    // the last runner probe
	lockErr    error    // the last lock file check
	auditErr   error    // the last audit entry's failure (nil once one is written)
	kick       chan struct{}
}

// start starts the probe loop and the quarantine retry loop.
func (h *health) start(b *Broker) {
	h.mu.Lock()
	h.b = b
	h.kick = make(chan struct{}, 1)
	restored := h.quarantine != nil
	h.mu.Unlock()
	b.loops.Add(2)
	go func() {
		defer b.loops.Done()
		h.probeLoop()
	}()
	go func() {
		defer b.loops.Done()
		h.retryLoop(restored)
	}()
}

// restore re-enters a quarantine saved by the previous run.
func (h *health) restore(q Quarantine) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.quarantine = &q
}

// quarantined returns the quarantine, if the host is in one.
func (h *health) quarantined() (Quarantine, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.quarantine == nil {
		return Quarantine{}, false
	}
	return *h.quarantine, true
}

// Quarantined reports whether the host is quarantined, and the
// quarantine if it is.
func (b *Broker) Quarantined() (Quarantine, bool) { return b.health.quarantined() }

// labEvent feeds the quarantine rules and passes lab events on.
func (b *Broker) labEvent(ev lab.Event) {
	switch ev.Kind {
	case lab.EventChanged:
		b.changes.notify()
	case lab.EventTornDown:
		b.health.tornDown(b, ev)
	case lab.EventStarted:
		b.health.started(b, ev)
	}
	if o := b.cfg.Observer; o != nil {
		o.LabEvent(ev)
	}
}

// cutShort reports whether a lab step failed only because its caller gave
// up (its client went away, its session ended, the server is closing): that
// says nothing about the host, so the quarantine rules ignore it. A step
// that ran out of time (context.DeadlineExceeded) still counts.
func cutShort(err error) bool { return errors.Is(err, context.Canceled) }

func (h *health) tornDown(b *Broker, ev lab.Event) {
	if cutShort(ev.Err) {
		return
	}
	h.mu.Lock()
	if ev.Err == nil {
		// Only a cleanup (the retry loop's or an admin's DestroyLab,
		// each followed by the runner's probe) lifts a quarantine: the
		// teardown after a failed start succeeding says nothing of the
		// next start.
		h.downFails = 0
		h.mu.Unlock()
		return
	}
	h.downFails++
	n := h.downFails
	h.mu.Unlock()
	if n >= b.cfg.QuarantineAfter {
		b.enterQuarantine(fmt.Sprintf("%d lab teardowns failed in a row, the last with: %v", n, ev.Err))
	}
}

func (h *health) started(b *Broker, ev lab.Event) {
	if cutShort(ev.Err) {
		return
	}
	h.mu.Lock()
	if ev.Err == nil {
		h.startFails = nil
		h.mu.Unlock()
		return
	}
	if !slices.Contains(h.startFails, ev.Fingerprint) {
		h.startFails = append(h.startFails, ev.Fingerprint)
	}
	n := len(h.startFails)
	h.mu.Unlock()
	if n >= b.cfg.QuarantineAfter {
		b.enterQuarantine(fmt.Sprintf("starts of %d different topologies failed in a row, the last with: %v", n, ev.Err))
	}
}

// enterQuarantine quarantines the host (or updates the reason of the
// quarantine it is in): lab work is refused until a cleanup succeeds.
func (b *Broker) enterQuarantine(reason string) {
	h := &b.health
	h.mu.Lock()
	already := h.quarantine != nil
	if already {
		h.quarantine.Reason = reason
	} else {
		h.quarantine = &Quarantine{Since: time.Now(), Reason: reason}
	}
	q := *h.quarantine
	kick := h.kick
	// Saved under the lock (the Store only buffers), so a lift racing
	// this update is saved in the same order as it happened.
	if st := b.cfg.Store; st != nil {
		st.PutQuarantine(&q)
	}
	h.mu.Unlock()
	if already {
		return
	}
	b.log.Error("Lab host quarantined: lab work is refused until a cleanup succeeds", "reason", reason)
	b.audit(Audit{Actor: SystemActor, Action: "quarantine", Reason: reason})
	b.changes.notify()
	if kick != nil {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// lift ends a quarantine, if there is one, and reports whether there was.
func (b *Broker) lift(actor, why string) bool {
	h := &b.health
	h.mu.Lock()
	was := h.quarantine != nil
	if was {
		h.quarantine = nil
		h.downFails = 0
		h.startFails = nil
		if st := b.cfg.Store; st != nil {
			st.PutQuarantine(nil)
		}
	}
	h.mu.Unlock()
	if !was {
		return false
	}
	b.log.Warn("Lab host quarantine lifted", "actor", actor, "reason", why)
	b.audit(Audit{Actor: actor, Action: "unquarantine", Reason: why})
	b.changes.notify()
	b.sync(context.Background())
	return true
}

// retryLoop retries the cleanup of a quarantined host, waiting
// QuarantineBackoff before the first try and doubling it up to
// MaxQuarantineBackoff, until a cleanup succeeds or the quarantine is
// lifted by hand. With now (a quarantine the previous run saved) the
// first try is at once: a restart is when an operator who repaired the
// host expects it checked.
func (h *health) retryLoop(now bool) {
	b := h.b
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	backoff := b.cfg.QuarantineBackoff
	for {
		if _, ok := h.quarantined(); !ok {
			backoff, now = b.cfg.QuarantineBackoff, false
			select {
			case <-b.ctx.Done():
				return
			case <-h.kick:
				continue
			}
		}
		if !now {
			timer.Reset(backoff)
			select {
			case <-b.ctx.Done():
				return
			case <-timer.C:
			}
		}
		now = false
		if _, ok := h.quarantined(); !ok {
			continue // lifted by hand meanwhile
		}
		if err := h.cleanup(); err != nil {
			b.log.Warn("Quarantine cleanup failed; retrying later", "err", err, "retry_in", min(2*backoff, MaxQuarantineBackoff))
			backoff = min(2*backoff, MaxQuarantineBackoff)
			continue
		}
		b.lift(SystemActor, "a cleanup succeeded")
	}
}

// cleanup tears down whatever lab is left (a dirty one) and probes the
// runner.
func (h *health) cleanup() error {
	b := h.b
	ctx := b.ctx
	if _, err := b.mgr.Destroy(ctx, true); err != nil {
		return fmt.Errorf("clean up lab: %w", err)
	}
	if err := h.probe(ctx); err != nil {
		return fmt.Errorf("probe lab runner: %w", err)
	}
	return nil
}

// probe runs the runner's probe, if there is one, bounded by
// probeTimeout.
func (h *health) probe(ctx context.Context) error {
	if h.b.cfg.Probe == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return h.b.cfg.Probe(ctx)
}

// probeLoop checks the runner and the lab lock file at once and then every
// ProbeInterval.
func (h *health) probeLoop() {
	b := h.b
	ctx := b.ctx
	t := time.NewTicker(b.cfg.ProbeInterval)
	defer t.Stop()
	for {
		perr := h.probe(ctx)
		lerr := b.mgr.CheckLock()
		h.mu.Lock()
		changed := (perr == nil) != (h.probeErr == nil) || (lerr == nil) != (h.lockErr == nil)
		h.probeErr, h.lockErr = perr, lerr
		h.mu.Unlock()
		if changed && ctx.Err() == nil {
			if perr != nil || lerr != nil {
				b.log.Error("Lab host not ready", "runner", errString(perr), "lock_file", errString(lerr))
			} else {
				b.log.Info("Lab host ready again")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// Ready reports whether the host can take lab work now, and if not why:
// shutting down, draining, quarantined, the state not being saved, the
// audit log not being written, the lab runner failing its probe, or the
// lab lock file unusable.
func (b *Broker) Ready() (ready bool, reason string) {
	if b.closing.Load() {
		return false, "shutting down"
	}
	if b.q.IsPaused() {
		return false, "draining: promotions are paused (POST /admin/resume ends it)"
	}
	if q, ok := b.health.quarantined(); ok {
		return false, "quarantined: " + q.Reason
	}
	if st := b.cfg.Store; st != nil {
		if err := st.Err(); err != nil {
			return false, "state not saved: " + err.Error()
		}
	}
	b.health.mu.Lock()
	perr, lerr, aerr := b.health.probeErr, b.health.lockErr, b.health.auditErr
	b.health.mu.Unlock()
	switch {
	case aerr != nil:
		return false, "audit log not written: " + aerr.Error()
	case perr != nil:
		return false, "lab runner unusable: " + perr.Error()
	case lerr != nil:
		var reason string
		if errors.Is(lerr, lab.ErrLockUnavailable) {
			reason = lerr.Error()
		} else {
			reason = "lab lock file unusable: " + lerr.Error()
		}
		return false, reason
	}
	return true, ""
}
