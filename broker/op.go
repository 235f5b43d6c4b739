package broker

import (
	"context"
	"errors"
	"time"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
	"github.com/remotelab-go/remotelab/topology"
)

// Gate refreshes the session id and checks that it may use the lab: an
// unknown session is ErrNotFound (an *EndedError if it ended recently), a
// waiting one ErrNotActive.
func (b *Broker) Gate(id string) (Session, error) {
	info, err := b.q.Touch(id)
	if err != nil {
		return Session{}, b.gone(id)
	}
	if info.Status != queue.Active {
		return Session{}, ErrNotActive
	}
	return b.session(info), nil
}

// Op is one lab operation of the active session: an acquire, a release or
// a teardown. A session runs one at a time. Begin starts it; the caller
// must call End.
type Op struct {
	b     *Broker
	id    string
	sess  *session
	epoch uint64 // the lease the operation started under
}

// Begin starts a lab operation of session id: it gates the session (see
// Gate) and takes the session's operation lock, failing with
// ErrOperationRunning if another operation of the session runs. It does
// not block.
func (b *Broker) Begin(id string) (*Op, error) {
	info, err := b.q.Touch(id)
	if err != nil {
		return nil, b.gone(id)
	}
	if info.Status != queue.Active {
		return nil, ErrNotActive
	}
	if !info.Payload.op.TryLock() {
		return nil, ErrOperationRunning
	}
	return &Op{b: b, id: id, sess: info.Payload, epoch: info.Epoch}, nil
}

// End ends the operation, releasing the session's operation lock.
func (o *Op) End() { o.sess.op.Unlock() }

// Context returns a context that ends when the session ends (it left, was
// evicted, expired...). A caller reading a long upload for the operation
// stops reading when it ends.
func (o *Op) Context() context.Context { return o.sess.ctx }

// Err returns nil while the session still holds the lease the operation
// started under, else why not: an *EndedError, or ErrNotFound.
func (o *Op) Err() error {
	if o.b.q.Holds(o.id, o.epoch) {
		return nil
	}
	return o.b.gone(o.id)
}

// Touch refreshes the session: an upload in progress calls it as bytes
// arrive, so a session sending its topology does not expire, and one that
// stopped sending does.
func (o *Op) Touch() { _, _ = o.b.q.Touch(o.id) }

// CanAcquire returns a *QuarantineError while the host is quarantined,
// else nil: a caller checks it before it reads an upload that Acquire
// would refuse.
func (o *Op) CanAcquire() error {
	if q, ok := o.b.Quarantined(); ok {
		return &QuarantineError{Reason: q.Reason}
	}
	return nil
}

// Acquire gives the session a reference to the lab described by bundle
// (see lab.Manager.TryAcquire for the rules). It may block for minutes: it
// waits for the Broker's own background lab work and runs netlab up; it
// ends early when ctx ends or the session ends. The session cannot expire
// while it runs. A session that ended meanwhile gets its end as an
// *EndedError, and whatever it got is dropped. While the host is
// quarantined it fails at once with CanAcquire's error.
func (o *Op) Acquire(ctx context.Context, bundle *topology.Bundle, reuse bool) (lab.Result, error) {
	if err := o.CanAcquire(); err != nil {
		return lab.Result{}, err
	}
	unpin, err := o.pin()
	if err != nil {
		return lab.Result{}, err
	}
	defer unpin()
	// The start ends early when the session ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(o.sess.ctx, cancel)()
	res, err := o.b.mgr.TryAcquire(ctx, o.id, bundle, reuse)
	if !o.b.q.Holds(o.id, o.epoch) {
		// It ended while the lab started: what it got belongs to nobody.
		o.b.mgr.ReleaseAll(o.id)
		err := o.b.gone(o.id)
		if !errors.Is(err, ErrClosed) {
			o.b.log.Warn("Session ended during lab acquisition; its references were dropped", "session", short(o.id))
		}
		return lab.Result{}, err
	}
	if err != nil {
		return lab.Result{}, err
	}
	o.sess.mu.Lock()
	o.sess.lab = &LabUse{Topology: bundle.TopologyName(), Fingerprint: res.Fingerprint, Reused: res.Reused}
	o.sess.mu.Unlock()
	if err := o.save(); err != nil {
		return lab.Result{}, err
	}
	o.b.sync(ctx)
	return res, nil
}

// save hands the session, as it is now, to the Store. The save is made
// outside the queue's lock, so a removal journaled between the look-up and
// the save would be undone by it: if the session ended by the time it is
// saved (the journal puts every removal in the memory of ended sessions
// first), its deletion is handed over once more, after the save, and the
// end is the error. Its lab references went with its removal. A session
// that left because the Broker is closing stays saved, references and all.
func (o *Op) save() error {
	info, err := o.b.q.Status(o.id)
	if err != nil {
		return o.b.gone(o.id)
	}
	st := o.b.cfg.Store
	if st == nil {
		return nil
	}
	st.PutSession(saved(info))
	if _, ended := o.b.ended.find(o.id, time.Now()); ended {
		st.DeleteSession(o.id)
		return o.b.gone(o.id)
	}
	return nil
}

// Release drops one of the session's lab references (none held: no-op;
// no lab: lab.ErrNoLab). It never waits for lab work.
func (o *Op) Release() error {
	if err := o.b.mgr.Release(o.id); err != nil {
		return err
	}
	o.b.sync(context.Background())
	return nil
}

// Destroy tears the lab down (without force: lab.ErrInUse while it is
// referenced) and reports whether there was one. Like Acquire it waits for
// background lab work and keeps the session from expiring; unlike it, a
// teardown that started runs to its end even if the session ends meanwhile
// (cut short, it would leave the lab dirty): only ctx bounds it.
func (o *Op) Destroy(ctx context.Context, force bool) (bool, error) {
	unpin, err := o.pin()
	if err != nil {
		return false, err
	}
	defer unpin()
	torn, err := o.b.mgr.Destroy(ctx, force)
	o.b.sync(ctx)
	return torn, err
}

// pin keeps the session from expiring and checks that it still holds its
// lease; unpin ends the pin.
func (o *Op) pin() (unpin func(), err error) {
	unpin, err = o.b.q.Pin(o.id)
	if err != nil {
		return nil, o.b.gone(o.id)
	}
	if !o.b.q.Holds(o.id, o.epoch) {
		unpin()
		return nil, o.b.gone(o.id)
	}
	return unpin, nil
}
