package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/remotelab-go/remotelab/lab"
)

// SystemActor is the actor of what the server does on its own (expiry,
// quarantine) in the audit log.
const SystemActor = "remotelabd"

// Audit is one entry of the audit log.
type Audit struct {
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`             // who: an admin's name, "local" or SystemActor
	Action  string    `json:"action"`            // drain, resume, evicted, expired, quarantine, ...
	Session string    `json:"session,omitempty"` // the session concerned (8 characters), if any
	Owner   string    `json:"owner,omitempty"`   // its owner
	Reason  string    `json:"reason,omitempty"`
}

// Auditor records audit entries. Record must have made the entry durable
// when it returns: the Broker answers an admin action only after.
type Auditor interface {
	Record(Audit) error
}

// Observer hears what the Broker does, for metrics. Its methods are called
// without the Broker's locks, from many goroutines, and must be quick.
type Observer interface {
	// SessionPromoted: a session became active after waiting that long.
	SessionPromoted(waited time.Duration)
	// SessionEnded: a session ended.
	SessionEnded(Ended)
	// LabEvent: the lab manager reported an event.
	LabEvent(lab.Event)
}

// audit records a. An audit log that cannot be written does not stop the
// service: the failure is logged and makes the Broker not Ready until an
// entry is written again.
func (b *Broker) audit(a Audit) {
	if b.cfg.Audit == nil {
		return
	}
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	a.Session = short(a.Session)
	err := b.cfg.Audit.Record(a)
	if err != nil {
		b.log.Error("Cannot write the audit log", "err", err, "action", a.Action, "actor", a.Actor)
	}
	b.health.mu.Lock()
	b.health.auditErr = err
	b.health.mu.Unlock()
}

// Drain pauses promotions: the holder may finish, sessions still queue,
// nobody new gets the lab until Resume. Audited and saved before it
// returns.
func (b *Broker) Drain(actor string) {
	b.q.Pause()
	b.log.Warn("Draining: no session is promoted until resumed", "actor", actor)
	b.audit(Audit{Actor: actor, Action: "drain"})
	b.changes.notify()
	b.sync(context.Background())
}

// Resume ends a Drain and promotes the next session at once.
func (b *Broker) Resume(actor string) {
	b.q.Resume()
	b.log.Info("Resumed: sessions are promoted again", "actor", actor)
	b.audit(Audit{Actor: actor, Action: "resume"})
	b.changes.notify()
	b.sync(context.Background())
}

// Unquarantine lifts a quarantine by hand and reports whether there was
// one.
func (b *Broker) Unquarantine(actor string) bool {
	return b.lift(actor, "lifted by hand")
}

// DestroyLab tears the lab down now, whoever holds it (their references
// go with it), and reports whether there was a lab. It waits for running
// lab work (bounded by ctx). Audited before it returns, with the outcome.
// On a quarantined host it is a cleanup like the automatic retry's: when
// it succeeds and the runner passes its probe, the quarantine is lifted.
func (b *Broker) DestroyLab(ctx context.Context, actor string) (bool, error) {
	before := b.mgr.Status()
	torn, err := b.mgr.Destroy(ctx, true)
	a := Audit{Actor: actor, Action: "destroy_lab", Reason: "no lab"}
	if before.State != lab.StateNone {
		a.Reason = fmt.Sprintf("lab %s, %s, %d reference(s)", before.TopologyName, before.State, before.RefCount)
	}
	if err != nil {
		a.Reason += ": failed: " + err.Error()
		b.log.Error("Lab teardown by an admin failed", "actor", actor, "state", before.State, "topology", before.TopologyName, "err", err)
		b.audit(a)
		b.sync(ctx)
		return torn, err
	}
	b.log.Warn("Lab destroyed by an admin", "actor", actor, "state", before.State, "topology", before.TopologyName)
	b.audit(a)
	if _, quarantined := b.health.quarantined(); quarantined {
		if perr := b.health.probe(ctx); perr != nil {
			b.log.Warn("Quarantine kept after the admin's teardown: the lab runner fails its probe", "err", perr)
		} else {
			b.lift(actor, "a cleanup by an admin succeeded")
		}
	}
	b.sync(ctx)
	return torn, err
}
