package broker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/queue"
)

// Meta describes a session when it joins.
type Meta struct {
	// Owner says who the session is for (a token's name, a user@host, a
	// client address). Required.
	Owner string
	// LimitOwner is whom Config.MaxSessionsPerOwner counts the session
	// against (empty: Owner). An owner a client merely states is its own
	// word: without authentication the HTTP server passes the client's
	// address here, so naming other owners does not dodge the limit.
	LimitOwner string
	// Labels are free key/value pairs (validated by the caller).
	Labels map[string]string
	// WaitTimeout ends the session if it still waits this long after
	// joining (zero: no limit).
	WaitTimeout time.Duration
	// MaxHold ends the session once it has held the lab this long; it is
	// capped by Config.MaxHold, and zero means the cap (or no limit).
	MaxHold time.Duration
	// Client is the address the session was created from, for logs.
	Client string
}

// Session describes a queued session at one moment.
type Session struct {
	ID       string
	Owner    string
	Labels   map[string]string
	Status   queue.Status
	Position int    // 0 for the head
	Epoch    uint64 // lease epoch while active
	Created  time.Time
	Promoted time.Time // zero while waiting
	LastSeen time.Time
	// WaitDeadline and HoldDeadline are when the session's limits end it
	// (zero: no such limit now).
	WaitDeadline, HoldDeadline time.Time
	// EstimatedWait estimates how long a waiting session has left to wait
	// (SPEC §10); HasEstimate is false while active, while draining and
	// before the first hold ended.
	EstimatedWait time.Duration
	HasEstimate   bool
}

// LabUse is what a session last acquired.
type LabUse struct {
	Topology    string `json:"topology"`
	Fingerprint string `json:"fingerprint"`
	Reused      bool   `json:"reused"`
}

// Ended describes a session that ended.
type Ended struct {
	ID       string            `json:"id"`
	Owner    string            `json:"owner"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created_at"`
	Promoted time.Time         `json:"promoted_at,omitzero"` // zero: it never held the lab
	EndedAt  time.Time         `json:"ended_at"`
	// Outcome is one of the api.Outcome* values; Reason says it for
	// people ("expired: no request for 300 s").
	Outcome string  `json:"outcome"`
	Reason  string  `json:"reason"`
	Lab     *LabUse `json:"lab,omitempty"`
}

// Held returns how long the session held the lab; ok is false if it never
// did.
func (e Ended) Held() (d time.Duration, ok bool) {
	if e.Promoted.IsZero() {
		return 0, false
	}
	return e.EndedAt.Sub(e.Promoted), true
}

// Waited returns how long the session waited for the lab (until it ended
// if it never got it).
func (e Ended) Waited() time.Duration {
	if e.Promoted.IsZero() {
		return e.EndedAt.Sub(e.Created)
	}
	return e.Promoted.Sub(e.Created)
}

// session is the payload of a queue entry.
type session struct {
	seq        uint64 // join order: set by the journal, under the queue's lock
	owner      string
	limitOwner string // whom the per-owner limit counts it against
	labels     map[string]string
	// ctx is cancelled when the session leaves the queue, which interrupts
	// its running lab operation.
	ctx    context.Context
	cancel context.CancelFunc
	// op serialises the session's lab operations.
	op sync.Mutex

	mu        sync.Mutex
	lab       *LabUse // what it last acquired
	endActor  string  // who evicts it, set by Evict just before the removal
	endReason string  // and why
}

func newSession(seq uint64, owner, limitOwner string, labels map[string]string) *session {
	if limitOwner == "" {
		limitOwner = owner
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &session{seq: seq, owner: owner, limitOwner: limitOwner, labels: labels, ctx: ctx, cancel: cancel}
}

func (s *session) labUse() *LabUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lab == nil {
		return nil
	}
	l := *s.lab
	return &l
}

// Join queues a new session and returns it: active at once if the queue
// was empty (and not drained), else waiting. It fails with a *FullError
// when the queue or the owner's share of it is full, and ErrClosed once
// the Broker is closing. The join is saved before Join returns.
func (b *Broker) Join(m Meta) (Session, error) {
	if b.closing.Load() {
		return Session{}, ErrClosed
	}
	opts := []queue.JoinOption{queue.WithWaitTimeout(m.WaitTimeout)}
	hold := m.MaxHold
	if c := b.cfg.MaxHold; c > 0 && (hold <= 0 || hold > c) {
		hold = c
	}
	opts = append(opts, queue.WithMaxHold(hold))
	// The join order (seq) is taken by the journal, under the queue's
	// lock: taken here, two joins could get it in one order and their
	// places in the other, and a restart would swap them.
	p := newSession(0, m.Owner, m.LimitOwner, maps.Clone(m.Labels))

	// A place is reserved first, so the join itself (which may promote,
	// and a promotion waits for the Store) runs without a lock.
	if err := b.admission.reserve(p.limitOwner, b.cfg.MaxSessions, b.cfg.MaxSessionsPerOwner); err != nil {
		err.RetryAfter = b.retryAfter()
		return Session{}, err
	}
	info, err := b.q.Join(p, opts...)
	if err != nil {
		b.admission.release(p.limitOwner)
		return Session{}, ErrClosed
	}
	b.log.Info("Created session", "session", short(info.ID), "position", info.Position,
		"owner", m.Owner, "client", m.Client, "wait_timeout", m.WaitTimeout, "max_hold", hold)
	b.changes.notify()
	b.sync(context.Background())
	return b.describe(info, time.Now()), nil
}

// retryAfter is when a full queue may have room: about one hold.
func (b *Broker) retryAfter() time.Duration {
	if avg, ok := b.ended.average(); ok {
		return min(max(avg, 5*time.Second), 5*time.Minute)
	}
	return time.Minute
}

// Session returns a session without refreshing it. A session that ended
// recently is an *EndedError; an unknown one ErrNotFound.
func (b *Broker) Session(id string) (Session, error) {
	info, err := b.q.Status(id)
	if err != nil {
		return Session{}, b.gone(id)
	}
	return b.describe(info, time.Now()), nil
}

// Touch refreshes a session (any request naming it counts as activity)
// and returns it. An active session's promotion is saved before Touch
// returns it, so a client told it is active never loses that to a crash.
func (b *Broker) Touch(id string) (Session, error) {
	info, err := b.q.Touch(id)
	if err != nil {
		return Session{}, b.gone(id)
	}
	if info.Status == queue.Active {
		b.sync(context.Background())
	}
	return b.describe(info, time.Now()), nil
}

// Refresh refreshes a session like Touch without describing it (no wait
// estimate, which takes the queue's head and the hold average): for
// heartbeats, which answer nothing about the session.
func (b *Broker) Refresh(id string) error {
	if _, err := b.q.Touch(id); err != nil {
		return b.gone(id)
	}
	return nil
}

// Wait blocks until the session's status or position differs from last's,
// or until ctx ends, or half the waiting TTL has passed (then it returns
// the session as it is, no error), and refreshes the session before it
// returns: waiting does not count as activity, so a longer wait would let
// the session expire while its client is parked on it. It fails as soon
// as the session ends.
func (b *Broker) Wait(ctx context.Context, id string, last Session) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.WaitingTTL/2)
	defer cancel()
	if _, err := b.q.Wait(ctx, id, queue.Info[*session]{Status: last.Status, Position: last.Position}); err != nil {
		return Session{}, b.gone(id)
	}
	return b.Touch(id)
}

// Leave ends a session at its client's request (outcome closed), dropping
// its lab references and promoting the next session if it was active. The
// end is saved before Leave returns.
func (b *Broker) Leave(id string) error {
	if _, err := b.q.Leave(id); err != nil {
		return b.gone(id)
	}
	return nil
}

// Evict ends a session on an admin's word (outcome evicted, reason
// "evicted by ACTOR: REASON"). id is a full session id or a unique prefix
// of at least 8 characters (the short id every listing shows); a prefix
// matching several sessions is ErrAmbiguous. A running lab operation of
// the session is interrupted. The eviction is audited and saved before
// Evict returns.
func (b *Broker) Evict(id, actor, reason string) (Ended, error) {
	info, err := b.lookup(id)
	if err != nil {
		return Ended{}, err
	}
	p := info.Payload
	p.mu.Lock()
	p.endActor, p.endReason = actor, fmt.Sprintf("evicted by %s: %s", actor, reason)
	p.mu.Unlock()
	if _, err := b.q.Evict(info.ID); err != nil {
		return Ended{}, b.gone(info.ID)
	}
	e, _ := b.ended.find(info.ID, time.Now())
	return e, nil
}

// lookup finds a queued session by full id or unique prefix.
func (b *Broker) lookup(id string) (queue.Info[*session], error) {
	if info, err := b.q.Status(id); err == nil {
		return info, nil
	}
	if len(id) < api.ShortIDLen {
		return queue.Info[*session]{}, fmt.Errorf("%w: %q (give at least %d characters): %w", ErrShortPrefix, id, api.ShortIDLen, ErrNotFound)
	}
	var found []queue.Info[*session]
	for _, info := range b.q.Snapshot() {
		if strings.HasPrefix(info.ID, id) {
			found = append(found, info)
		}
	}
	switch len(found) {
	case 0:
		return queue.Info[*session]{}, b.gone(id)
	case 1:
		return found[0], nil
	}
	return queue.Info[*session]{}, fmt.Errorf("%w: %q matches %d sessions", ErrAmbiguous, id, len(found))
}

// gone explains why id names no queued session: ErrClosed while the
// Broker closes (sessions leave the queue then, kept in the saved state),
// else its end if it ended recently, else ErrNotFound. A session that
// ended is reported only once its end is saved: the end may have been
// journaled by another goroutine (an expiry, a limit) whose save still
// runs, and a client told of the end does not come back for a session a
// crash would restore.
func (b *Broker) gone(id string) error {
	if b.closing.Load() {
		return ErrClosed
	}
	if e, ok := b.ended.find(id, time.Now()); ok {
		b.sync(context.Background())
		return &EndedError{Session: e}
	}
	return ErrNotFound
}

// describe turns queue info into a Session, with its wait estimate (none
// while draining: nobody is promoted until an admin resumes, so no wait
// can be foretold).
func (b *Broker) describe(info queue.Info[*session], now time.Time) Session {
	s := b.session(info)
	if info.Status != queue.Waiting || info.Position == 0 || b.q.IsPaused() {
		return s
	}
	if avg, ok := b.ended.average(); ok {
		if head, err := b.q.Head(); err == nil && head.Status == queue.Active {
			s.EstimatedWait, s.HasEstimate = estimate(avg, now.Sub(head.Since), info.Position), true
		}
	}
	return s
}

// estimate is SPEC §10's wait estimate of the waiter at position:
// max(0, avg − holder's active time) + (position − 1) × avg.
func estimate(avg, holderActive time.Duration, position int) time.Duration {
	return max(0, avg-holderActive) + time.Duration(position-1)*avg
}

// journal records a queue change in the Store and, for removals, in the
// memory of ended sessions. It runs under the queue's lock: no I/O here,
// the Store only buffers.
func (b *Broker) journal(c queue.Change[*session]) {
	st := b.cfg.Store
	switch c.Kind {
	case queue.Joined, queue.Promoted:
		if c.Kind == queue.Joined {
			c.Info.Payload.seq = b.seq.Add(1) // in queue order: see Join
		}
		if st != nil {
			st.PutSession(saved(c.Info))
			if c.Kind == queue.Promoted {
				st.PutEpoch(c.Info.Epoch)
			}
		}
	case queue.Removed:
		e := b.endOf(c.Info, c.Reason, time.Now())
		b.ended.add(e)
		if st != nil {
			st.DeleteSession(c.Info.ID)
			st.AddEnded(e)
		}
	case queue.Paused, queue.Resumed:
		if st != nil {
			st.PutPaused(c.Kind == queue.Paused)
		}
	}
}

// endOf describes how a session ended.
func (b *Broker) endOf(info queue.Info[*session], why queue.Reason, now time.Time) Ended {
	p := info.Payload
	e := Ended{
		ID: info.ID, Owner: p.owner, Labels: p.labels,
		Created: info.Joined, Promoted: info.Since, EndedAt: now,
		Lab: p.labUse(),
	}
	switch why {
	case queue.Left:
		e.Outcome, e.Reason = api.OutcomeClosed, "closed by its client"
	case queue.Expired:
		ttl := b.cfg.WaitingTTL
		if info.Status == queue.Active {
			ttl = b.cfg.ActiveTTL
		}
		e.Outcome = api.OutcomeExpired
		e.Reason = fmt.Sprintf("expired: no request for %s", seconds(ttl))
	case queue.Evicted:
		p.mu.Lock()
		e.Outcome, e.Reason = api.OutcomeEvicted, p.endReason
		p.mu.Unlock()
	case queue.WaitTimeout:
		e.Outcome = api.OutcomeWaitTimeout
		e.Reason = fmt.Sprintf("wait_timeout: still waiting after %s", seconds(info.WaitTimeout))
	case queue.MaxHold:
		e.Outcome = api.OutcomeMaxHold
		e.Reason = fmt.Sprintf("max_hold: held the lab for %s", seconds(info.MaxHold))
	case queue.Closed:
		e.Outcome, e.Reason = api.OutcomeShutdown, "shutdown: the server stopped"
	}
	return e
}

// seconds prints a duration as the spec's reasons do: "300 s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%g s", d.Round(time.Millisecond).Seconds())
}

// onRemove acts on a session that left: its running lab operation is
// interrupted and its lab references dropped (unless the Broker is closing
// with a Store: the saved session keeps them for the next start), the end
// is audited when it is not a plain close, and saved before anyone hears
// of it.
func (b *Broker) onRemove(rm queue.Removal[*session]) {
	info, p := rm.Info, rm.Info.Payload
	p.cancel()
	b.admission.release(p.limitOwner)
	if rm.Reason == queue.Closed {
		// The journal hears nothing of Close: with a Store the session
		// stays saved, references and all, for the next start; without
		// one it ends here.
		if b.cfg.Store != nil {
			return
		}
		b.ended.add(b.endOf(info, queue.Closed, time.Now()))
	}
	b.mgr.ReleaseAll(info.ID)
	e, _ := b.ended.find(info.ID, time.Now())
	level := slog.LevelInfo
	if rm.Reason != queue.Left && rm.Reason != queue.Closed {
		level = slog.LevelWarn
		actor := SystemActor
		if rm.Reason == queue.Evicted {
			// Evict set it; an expiry racing an eviction is the
			// server's doing, not the admin's.
			p.mu.Lock()
			actor = p.endActor
			p.mu.Unlock()
		}
		b.audit(Audit{Actor: actor, Action: e.Outcome, Session: info.ID, Owner: p.owner, Reason: e.Reason})
	}
	b.log.Log(context.Background(), level, "Session removed", "session", short(info.ID),
		"outcome", e.Outcome, "reason", e.Reason, "owner", p.owner, "status", info.Status.String())
	if b.cfg.Observer != nil {
		b.cfg.Observer.SessionEnded(e)
	}
	b.sync(context.Background())
	b.changes.notify()
}

// onPromote announces a new holder, once its promotion is saved.
func (b *Broker) onPromote(info queue.Info[*session]) {
	waited := info.Since.Sub(info.Joined)
	b.log.Info("Session promoted to ACTIVE", "session", short(info.ID), "epoch", info.Epoch,
		"owner", info.Payload.owner, "waited", waited.Round(time.Millisecond))
	if b.cfg.Observer != nil {
		b.cfg.Observer.SessionPromoted(waited)
	}
	b.sync(context.Background())
	b.changes.notify()
}
