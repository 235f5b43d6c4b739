// Package queue is a generic FIFO lease queue: entries join at the tail,
// the head holds the lease (it is "active"), everyone else waits. Entries
// stay alive by touching the queue; an entry that is idle for longer than
// its state's TTL expires and is removed by the queue itself, so a crashed
// holder can never wedge the queue.
//
// Order never changes: an entry is never overtaken, because letting a
// waiter jump the queue would starve the ones behind it. Every promotion to
// active gets a new, strictly increasing epoch, which lets a caller check
// that a lease it started an operation under is still the current one.
//
// Time is measured with the monotonic clock through package time, so tests
// drive TTLs with testing/synctest. The package has no HTTP and no globals.
package queue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Errors returned by Queue methods.
var (
	// ErrNotFound is returned for an id that never joined, left or expired.
	ErrNotFound = errors.New("queue: entry not found")
	// ErrClosed is returned by Join after Close.
	ErrClosed = errors.New("queue: closed")
)

// Status is an entry's place in the lease protocol.
type Status int

const (
	// Waiting entries are queued behind the head.
	Waiting Status = iota
	// Active is the head entry, the one holding the lease.
	Active
)

// String returns "waiting" or "active", the wire spelling.
func (s Status) String() string {
	if s == Active {
		return "active"
	}
	return "waiting"
}

// Reason says why an entry was removed.
type Reason int

const (
	// Left: the entry was removed by Leave.
	Left Reason = iota
	// Expired: the entry was idle for longer than its TTL.
	Expired
	// Closed: the queue was closed with the entry still in it.
	Closed
)

// String returns "leave", "expired" or "closed".
func (r Reason) String() string {
	switch r {
	case Expired:
		return "expired"
	case Closed:
		return "closed"
	}
	return "leave"
}

// Info describes one entry at one moment.
type Info[T any] struct {
	ID       string
	Status   Status
	Position int    // 0 for the head, 1 for the next, ...
	Epoch    uint64 // the lease epoch while Active; 0 while Waiting
	Payload  T
	Joined   time.Time // when the entry joined
	Since    time.Time // when it became active (zero while waiting)
	LastSeen time.Time // its last activity (join, touch, unpin)
	Pinned   bool      // an operation holds a pin
}

// Removal reports an entry that left the queue. It is passed to
// Config.OnRemove.
type Removal[T any] struct {
	Info   Info[T] // the entry as it was just before removal
	Reason Reason
}

// Config configures a Queue. Zero durations mean the defaults; negative
// ones are a programming error and make New panic.
type Config[T any] struct {
	// ActiveTTL is how long the head may stay idle before it expires
	// (default 300 s).
	ActiveTTL time.Duration
	// WaitingTTL is how long a waiting entry may stay idle before it
	// expires (default 600 s).
	WaitingTTL time.Duration
	// OnRemove, if set, is called once for every entry that leaves the
	// queue, whatever the reason, after the queue's state was updated and
	// without the queue's lock held (it may call back into the queue). For
	// Leave it runs in the caller's goroutine before Leave returns; for
	// expiry in the queue's own goroutine, so it should not block long.
	// Within one change removals are reported before the promotion they
	// caused, and the waiters (Wait) the change concerns are woken only
	// after both callbacks returned; calls made by different goroutines may
	// run concurrently.
	OnRemove func(Removal[T])
	// OnPromote, if set, is called for every promotion to Active, under
	// the same rules as OnRemove.
	OnPromote func(Info[T])
}

// DefaultActiveTTL and DefaultWaitingTTL are the spec's inactivity limits.
const (
	DefaultActiveTTL  = 300 * time.Second
	DefaultWaitingTTL = 600 * time.Second
)

// Queue is a FIFO lease queue of entries carrying a payload of type T. It is
// safe for concurrent use. New starts one goroutine that expires idle
// entries; Close stops it.
type Queue[T any] struct {
	activeTTL  time.Duration
	waitingTTL time.Duration
	onRemove   func(Removal[T])
	onPromote  func(Info[T])

	kick    chan struct{} // buffered (1): a deadline may have moved earlier
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the expiry goroutine has returned

	mu     sync.Mutex
	order  []*entry[T]          // queue order; order[0] is the active head
	byID   map[string]*entry[T] // the same entries by id
	epoch  uint64               // the last epoch handed out
	closed bool
	// next is the earliest expiry deadline the expiry goroutine knows of
	// (zero: none). Changes that create an earlier deadline kick it.
	next time.Time
}

// entry is one queued entry. Its fields are guarded by Queue.mu.
type entry[T any] struct {
	id       string
	payload  T
	idx      int    // index in Queue.order, i.e. the position
	epoch    uint64 // set on promotion
	pins     int
	joined   time.Time
	since    time.Time // when promoted
	lastSeen time.Time
	// changed is closed when the entry's status or position changes or
	// when it is removed. It is made lazily by Wait, so entries nobody
	// waits on cost no channel, and cleared when closed.
	changed chan struct{}
}

// New returns an empty queue and starts its expiry goroutine. The caller
// must call Close.
func New[T any](cfg Config[T]) *Queue[T] {
	if cfg.ActiveTTL < 0 || cfg.WaitingTTL < 0 {
		panic("queue: negative TTL")
	}
	q := &Queue[T]{
		activeTTL:  cfg.ActiveTTL,
		waitingTTL: cfg.WaitingTTL,
		onRemove:   cfg.OnRemove,
		onPromote:  cfg.OnPromote,
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
		byID:       make(map[string]*entry[T]),
	}
	if q.activeTTL == 0 {
		q.activeTTL = DefaultActiveTTL
	}
	if q.waitingTTL == 0 {
		q.waitingTTL = DefaultWaitingTTL
	}
	go q.expireLoop()
	return q
}

// Join appends an entry with the given payload and returns its info. If the
// queue was empty the entry is promoted at once (Status Active, a new
// epoch). It fails only with ErrClosed.
func (q *Queue[T]) Join(payload T) (Info[T], error) {
	id := uuid.NewString()
	var ev events[T]
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return Info[T]{}, ErrClosed
	}
	now := time.Now()
	e := &entry[T]{id: id, payload: payload, idx: len(q.order), joined: now, lastSeen: now}
	q.order = append(q.order, e)
	q.byID[id] = e
	if e.idx == 0 {
		q.promoteLocked(now, &ev)
	} else {
		q.scheduleLocked(e)
	}
	info := q.infoLocked(e)
	q.mu.Unlock()
	q.deliver(ev)
	return info, nil
}

// Status returns an entry's current info without touching it.
func (q *Queue[T]) Status(id string) (Info[T], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.byID[id]
	if e == nil {
		return Info[T]{}, ErrNotFound
	}
	return q.infoLocked(e), nil
}

// Touch records activity for an entry, restarting its idle clock, and
// returns its current info.
func (q *Queue[T]) Touch(id string) (Info[T], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.byID[id]
	if e == nil {
		return Info[T]{}, ErrNotFound
	}
	// A touch only moves the deadline later, so the expiry goroutine
	// need not hear of it: when its timer fires it recomputes.
	e.lastSeen = time.Now()
	return q.infoLocked(e), nil
}

// Head returns the active entry, or ErrNotFound when the queue is empty.
// It does not touch it.
func (q *Queue[T]) Head() (Info[T], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return Info[T]{}, ErrNotFound
	}
	return q.infoLocked(q.order[0]), nil
}

// Wait blocks until the entry's status or position differs from last, or
// until ctx ends, and returns the entry's current info. When ctx ends
// first it returns the current info and a nil error: a long-poll that times
// out is not a failure. It returns ErrNotFound as soon as the entry leaves
// or expires. Wait does not count as activity; callers that want it to
// should Touch.
//
// Each entry has its own notification, so a change wakes only the waiters
// of the entries it concerns.
func (q *Queue[T]) Wait(ctx context.Context, id string, last Info[T]) (Info[T], error) {
	for {
		q.mu.Lock()
		e := q.byID[id]
		if e == nil {
			q.mu.Unlock()
			return Info[T]{}, ErrNotFound
		}
		info := q.infoLocked(e)
		if info.Status != last.Status || info.Position != last.Position {
			q.mu.Unlock()
			return info, nil
		}
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		changed := e.changed
		q.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return q.Status(id)
		}
	}
}

// Pin marks the entry as busy with an operation: a pinned entry never
// expires. The returned unpin function restarts the entry's idle clock and
// removes the pin; it is safe to call more than once and after the entry
// has left. Pins nest.
func (q *Queue[T]) Pin(id string) (unpin func(), err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.byID[id]
	if e == nil {
		return nil, ErrNotFound
	}
	e.pins++
	released := false // guarded by q.mu
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if released {
			return
		}
		released = true
		if q.byID[e.id] != e {
			return // it left; nothing to restart
		}
		e.pins--
		e.lastSeen = time.Now()
		q.scheduleLocked(e)
	}, nil
}

// Holds reports whether id is the active entry and still holds the lease
// of the given epoch.
func (q *Queue[T]) Holds(id string, epoch uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return false
	}
	h := q.order[0]
	return h.id == id && h.epoch == epoch
}

// Leave removes an entry, promoting the next one if it was the head, and
// reports the removal to OnRemove before it returns.
func (q *Queue[T]) Leave(id string) (Info[T], error) {
	var ev events[T]
	q.mu.Lock()
	e := q.byID[id]
	if e == nil {
		q.mu.Unlock()
		return Info[T]{}, ErrNotFound
	}
	info := q.infoLocked(e)
	q.reportLocked(&ev, info, Left)
	q.removeLocked(e, &ev)
	if e.idx == 0 && len(q.order) > 0 {
		q.promoteLocked(time.Now(), &ev)
	}
	q.shrinkLocked()
	q.mu.Unlock()
	q.deliver(ev)
	return info, nil
}

// Len returns the number of entries.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// Snapshot returns every entry in queue order.
func (q *Queue[T]) Snapshot() []Info[T] {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Info[T], len(q.order))
	for i, e := range q.order {
		out[i] = q.infoLocked(e)
	}
	return out
}

// Close stops the expiry goroutine, removes every entry (reporting each
// with Reason Closed) and makes Join fail with ErrClosed. Waiters return
// ErrNotFound. It is safe to call more than once and waits for the expiry
// goroutine to exit, so it must not be called from OnRemove or OnPromote.
func (q *Queue[T]) Close() {
	var ev events[T]
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.stopped
		return
	}
	q.closed = true
	close(q.stop)
	for _, e := range q.order {
		q.reportLocked(&ev, q.infoLocked(e), Closed)
		ev.wake(e)
	}
	q.order = nil
	q.byID = make(map[string]*entry[T])
	q.mu.Unlock()
	<-q.stopped
	q.deliver(ev)
}

// events collects the callbacks a change owes, to run after the lock is
// released.
type events[T any] struct {
	removed  []Removal[T]
	promoted []Info[T]
	woken    []chan struct{} // waiters' channels, closed after the callbacks
}

// wake takes e's waiters' channel, if any, to be closed by deliver. Waiters
// are woken only after OnRemove and OnPromote ran, so whoever learns of a
// promotion also sees its predecessor's removal already handled (for
// remotelabd: the old holder's lab references already dropped).
func (ev *events[T]) wake(e *entry[T]) {
	if e.changed != nil {
		ev.woken = append(ev.woken, e.changed)
		e.changed = nil
	}
}

// reportLocked records a removal for OnRemove, if it is set.
func (q *Queue[T]) reportLocked(ev *events[T], info Info[T], why Reason) {
	if q.onRemove != nil {
		ev.removed = append(ev.removed, Removal[T]{Info: info, Reason: why})
	}
}

// deliver runs the callbacks for ev, then wakes the waiters it owes. It
// must be called without q.mu held.
func (q *Queue[T]) deliver(ev events[T]) {
	for _, r := range ev.removed {
		q.onRemove(r)
	}
	for _, info := range ev.promoted {
		q.onPromote(info)
	}
	for _, c := range ev.woken {
		close(c)
	}
}

// infoLocked describes e. The head is Active by construction: every change
// that replaces the head promotes the new one in the same critical
// section, so there is no stored flag that could disagree with the order.
func (q *Queue[T]) infoLocked(e *entry[T]) Info[T] {
	info := Info[T]{
		ID:       e.id,
		Position: e.idx,
		Payload:  e.payload,
		Joined:   e.joined,
		LastSeen: e.lastSeen,
		Pinned:   e.pins > 0,
	}
	if e.idx == 0 {
		info.Status = Active
		info.Epoch = e.epoch
		info.Since = e.since
	}
	return info
}

// promoteLocked makes order[0] the lease holder with a new epoch. Its idle
// clock restarts: it was judged by the longer waiting TTL until now, and
// must get the full active TTL to notice its turn came.
func (q *Queue[T]) promoteLocked(now time.Time, ev *events[T]) {
	h := q.order[0]
	q.epoch++
	h.epoch = q.epoch
	h.since = now
	h.lastSeen = now
	ev.wake(h)
	q.scheduleLocked(h)
	if q.onPromote != nil {
		ev.promoted = append(ev.promoted, q.infoLocked(h))
	}
}

// removeLocked takes e out of the queue, shifting the entries behind it
// forward and waking their waiters and its own. e.idx keeps its old value.
func (q *Queue[T]) removeLocked(e *entry[T], ev *events[T]) {
	delete(q.byID, e.id)
	ev.wake(e)
	i := e.idx
	copy(q.order[i:], q.order[i+1:])
	q.order[len(q.order)-1] = nil
	q.order = q.order[:len(q.order)-1]
	for j := i; j < len(q.order); j++ {
		q.order[j].idx = j
		ev.wake(q.order[j])
	}
}

// shrinkLocked gives back the memory of a queue that was long and has
// drained, so a burst of joins does not pin its peak for ever.
func (q *Queue[T]) shrinkLocked() {
	if c := cap(q.order); c > 64 && len(q.order) < c/4 {
		q.order = append(make([]*entry[T], 0, 2*len(q.order)), q.order...)
	}
}

// ttlLocked returns the inactivity limit that applies to e now.
func (q *Queue[T]) ttlLocked(e *entry[T]) time.Duration {
	if e.idx == 0 {
		return q.activeTTL
	}
	return q.waitingTTL
}

// deadlineLocked returns the first instant at which e counts as expired:
// expiry is strict, idle for more than the TTL, hence the extra nanosecond.
func (q *Queue[T]) deadlineLocked(e *entry[T]) time.Time {
	return e.lastSeen.Add(q.ttlLocked(e) + time.Nanosecond)
}

// scheduleLocked makes sure the expiry goroutine wakes up by e's deadline.
// Callers are the changes that can create a deadline earlier than all
// known ones: a join, a promotion, an unpin. Touches only move deadlines
// later and need no call.
func (q *Queue[T]) scheduleLocked(e *entry[T]) {
	if e.pins > 0 {
		return
	}
	d := q.deadlineLocked(e)
	if !q.next.IsZero() && !d.Before(q.next) {
		return
	}
	q.next = d
	select {
	case q.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// expireLoop is the queue's one goroutine: it sleeps until the earliest
// deadline (or a kick saying there may be an earlier one), expires what is
// due and goes back to sleep.
func (q *Queue[T]) expireLoop() {
	defer close(q.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ev, next := q.sweep()
		q.deliver(ev)
		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			fire = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-q.stop:
			return
		case <-q.kick:
		case <-fire:
		}
	}
}

// sweep removes every entry that is idle for longer than its TTL, promotes
// the new head if the head went, and returns the callbacks owed and the
// next deadline (zero when nothing can expire).
func (q *Queue[T]) sweep() (events[T], time.Time) {
	var ev events[T]
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ev, time.Time{}
	}
	now := time.Now()
	headGone := false
	kept := q.order[:0]
	for _, e := range q.order {
		if e.pins == 0 && now.Sub(e.lastSeen) > q.ttlLocked(e) {
			q.reportLocked(&ev, q.infoLocked(e), Expired)
			delete(q.byID, e.id)
			ev.wake(e)
			headGone = headGone || e.idx == 0
			continue
		}
		if i := len(kept); e.idx != i {
			e.idx = i
			ev.wake(e)
		}
		kept = append(kept, e)
	}
	clear(q.order[len(kept):])
	q.order = kept
	if headGone && len(q.order) > 0 {
		q.promoteLocked(now, &ev)
	}
	q.shrinkLocked()

	var next time.Time
	for _, e := range q.order {
		if e.pins > 0 {
			continue
		}
		if d := q.deadlineLocked(e); next.IsZero() || d.Before(next) {
			next = d
		}
	}
	q.next = next
	// Any pending kick was sent under the lock before this sweep, which
	// has seen its change: drop it rather than sweep again for nothing.
	select {
	case <-q.kick:
	default:
	}
	return ev, next
}
