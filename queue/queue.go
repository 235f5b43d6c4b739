// Package queue is a generic FIFO lease queue: entries join at the tail,
// the head holds the lease (it is "active"), everyone else waits. Entries
// stay alive by touching the queue; an entry that is idle for longer than
// its state's TTL expires and is removed by the queue itself, so a crashed
// holder can never wedge the queue. An entry may also carry limits of its
// own: how long it may wait for its turn, and how long it may hold it.
//
// Order never changes: an entry is never overtaken, because letting a
// waiter jump the queue would starve the ones behind it. Every promotion to
// active gets a new, strictly increasing epoch, which lets a caller check
// that a lease it started an operation under is still the current one.
// Promotion can be paused (an operator draining the host): the head then
// keeps waiting until Resume.
//
// A queue can be rebuilt from a saved state (Config.Restore) and reports
// every change, in order, to Config.Journal, so a layer above can persist
// it without the queue knowing how.
//
// Time is measured with package time, so tests drive TTLs and limits with
// testing/synctest. The package has no HTTP and no globals.
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
	// ErrNotFound is returned for an id that never joined or has left.
	ErrNotFound = errors.New("queue: entry not found")
	// ErrClosed is returned by Join after Close.
	ErrClosed = errors.New("queue: closed")
)

// Status is an entry's place in the lease protocol.
type Status int

const (
	// Waiting entries are queued for the lease.
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
	// Evicted: the entry was removed by Evict.
	Evicted
	// WaitTimeout: the entry was still waiting at its wait deadline.
	WaitTimeout
	// MaxHold: the entry was active for its whole maximum hold.
	MaxHold
)

// String returns "leave", "expired", "closed", "evicted", "wait_timeout"
// or "max_hold".
func (r Reason) String() string {
	switch r {
	case Expired:
		return "expired"
	case Closed:
		return "closed"
	case Evicted:
		return "evicted"
	case WaitTimeout:
		return "wait_timeout"
	case MaxHold:
		return "max_hold"
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
	LastSeen time.Time // its last activity (join, touch, unpin, promotion)
	Pinned   bool      // an operation holds a pin
	// WaitTimeout and MaxHold are the entry's own limits (zero: none).
	WaitTimeout, MaxHold time.Duration
}

// WaitDeadline returns when a waiting entry times out, or the zero time
// when it has no wait timeout or is active.
func (i Info[T]) WaitDeadline() time.Time {
	if i.WaitTimeout <= 0 || i.Status == Active {
		return time.Time{}
	}
	return i.Joined.Add(i.WaitTimeout)
}

// HoldDeadline returns when an active entry's maximum hold ends, or the
// zero time when it has none or is waiting. A pinned entry past its
// deadline is removed when its last pin goes.
func (i Info[T]) HoldDeadline() time.Time {
	if i.MaxHold <= 0 || i.Status != Active {
		return time.Time{}
	}
	return i.Since.Add(i.MaxHold)
}

// Removal reports an entry that left the queue. It is passed to
// Config.OnRemove and in a Change.
type Removal[T any] struct {
	Info   Info[T] // the entry as it was just before removal
	Reason Reason
}

// ChangeKind says what a Change is.
type ChangeKind int

// Kinds of Change.
const (
	Joined   ChangeKind = iota // an entry joined (Info)
	Promoted                   // an entry became active with a new epoch (Info)
	Removed                    // an entry left (Info, Reason)
	Paused                     // promotion was paused
	Resumed                    // promotion was resumed
)

// Change is one change of the queue's state, as reported to
// Config.Journal.
type Change[T any] struct {
	Kind   ChangeKind
	Info   Info[T] // the entry concerned (zero for Paused and Resumed)
	Reason Reason  // why it left (Removed)
}

// Restored is an entry of a saved queue, for Config.Restore.
type Restored[T any] struct {
	ID      string
	Payload T
	Joined  time.Time
	// Epoch and Since are the lease epoch and promotion time of an entry
	// that was active; the head keeps them (it is active again without a
	// new promotion). They are ignored for any other entry.
	Epoch uint64
	Since time.Time
	// WaitTimeout and MaxHold are the entry's limits (zero: none).
	WaitTimeout, MaxHold time.Duration
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
	// Leave and Evict it runs in the caller's goroutine before they
	// return; for expiry and limits in the queue's own goroutine, so it
	// should not block long. Within one change removals are reported
	// before the promotion they caused, and the waiters (Wait) the change
	// concerns are woken only after both callbacks returned; calls made by
	// different goroutines may run concurrently.
	OnRemove func(Removal[T])
	// OnPromote, if set, is called for every promotion to Active, under
	// the same rules as OnRemove.
	OnPromote func(Info[T])
	// Journal, if set, is called for every change, in the order the
	// changes happen, WITH the queue's lock held: it must only record the
	// change (append it to a buffer) and return at once; it must not block
	// or call the queue. Touches and pins are not changes. It lets a layer
	// above persist the queue in order without racing its own callbacks.
	Journal func(Change[T])
	// Restore, if set, is the saved queue to start from, in queue order.
	// Entries with an empty or repeated ID are skipped. Every restored
	// entry starts with a full TTL (LastSeen is the time of New).
	Restore []Restored[T]
	// LastEpoch is the last epoch handed out before the saved state was
	// taken; epochs continue above it (and above every restored epoch).
	LastEpoch uint64
	// Paused starts the queue with promotion paused (see Pause).
	Paused bool
}

// DefaultActiveTTL and DefaultWaitingTTL are the spec's inactivity limits.
const (
	DefaultActiveTTL  = 300 * time.Second
	DefaultWaitingTTL = 600 * time.Second
)

// Queue is a FIFO lease queue of entries carrying a payload of type T. It is
// safe for concurrent use. New starts one goroutine that expires idle
// entries and enforces limits; Close stops it.
type Queue[T any] struct {
	activeTTL  time.Duration
	waitingTTL time.Duration
	onRemove   func(Removal[T])
	onPromote  func(Info[T])
	journal    func(Change[T])

	kick    chan struct{} // buffered (1): a deadline may have moved earlier
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the expiry goroutine has returned

	mu     sync.Mutex
	order  []*entry[T]          // queue order; order[0] is the head
	byID   map[string]*entry[T] // the same entries by id
	epoch  uint64               // the last epoch handed out
	paused bool                 // promotion is paused
	closed bool
	// next is the earliest deadline the expiry goroutine knows of (zero:
	// none). Changes that create an earlier deadline kick it.
	next time.Time
}

// entry is one queued entry. Its fields are guarded by Queue.mu.
type entry[T any] struct {
	id       string
	payload  T
	idx      int    // index in Queue.order, i.e. the position
	active   bool   // promoted (only the head can be)
	epoch    uint64 // set on promotion
	pins     int
	joined   time.Time
	since    time.Time // when promoted
	lastSeen time.Time
	waitFor  time.Duration // wait timeout (0: none)
	holdFor  time.Duration // maximum hold (0: none)
	// changed is closed when the entry's status or position changes or
	// when it is removed. It is made lazily by Wait, so entries nobody
	// waits on cost no channel, and cleared when closed.
	changed chan struct{}
}

// New returns a queue, restored from cfg.Restore if set, and starts its
// expiry goroutine. If the restored head was not active and promotion is
// not paused, it is promoted before New returns (callbacks included). The
// caller must call Close.
func New[T any](cfg Config[T]) *Queue[T] {
	if cfg.ActiveTTL < 0 || cfg.WaitingTTL < 0 {
		panic("queue: negative TTL")
	}
	q := &Queue[T]{
		activeTTL:  cfg.ActiveTTL,
		waitingTTL: cfg.WaitingTTL,
		onRemove:   cfg.OnRemove,
		onPromote:  cfg.OnPromote,
		journal:    cfg.Journal,
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
		byID:       make(map[string]*entry[T]),
		epoch:      cfg.LastEpoch,
		paused:     cfg.Paused,
	}
	if q.activeTTL == 0 {
		q.activeTTL = DefaultActiveTTL
	}
	if q.waitingTTL == 0 {
		q.waitingTTL = DefaultWaitingTTL
	}
	var ev events[T]
	q.mu.Lock()
	q.restoreLocked(cfg.Restore, &ev)
	q.mu.Unlock()
	q.deliver(ev)
	go q.expireLoop()
	return q
}

// restoreLocked rebuilds the saved entries.
func (q *Queue[T]) restoreLocked(saved []Restored[T], ev *events[T]) {
	now := time.Now()
	for _, r := range saved {
		if r.ID == "" || q.byID[r.ID] != nil {
			continue
		}
		e := &entry[T]{
			id: r.ID, payload: r.Payload, idx: len(q.order),
			joined: r.Joined, lastSeen: now,
			waitFor: max(r.WaitTimeout, 0), holdFor: max(r.MaxHold, 0),
		}
		if e.idx == 0 && r.Epoch > 0 {
			// The holder keeps its lease: same epoch, same promotion
			// time (its maximum hold runs on).
			e.active, e.epoch, e.since = true, r.Epoch, r.Since
		}
		q.epoch = max(q.epoch, r.Epoch)
		q.order = append(q.order, e)
		q.byID[r.ID] = e
	}
	for _, e := range q.order {
		q.scheduleLocked(e)
	}
	q.promoteHeadLocked(now, ev)
}

// JoinOption sets a limit of one entry.
type JoinOption func(*entryLimits)

type entryLimits struct{ wait, hold time.Duration }

// WithWaitTimeout removes the entry (Reason WaitTimeout) if it is still
// waiting d after it joined. Zero or negative means no limit.
func WithWaitTimeout(d time.Duration) JoinOption {
	return func(l *entryLimits) { l.wait = max(d, 0) }
}

// WithMaxHold removes the entry (Reason MaxHold) once it has been active
// for d; while it is pinned the removal waits for the last unpin. Zero or
// negative means no limit.
func WithMaxHold(d time.Duration) JoinOption {
	return func(l *entryLimits) { l.hold = max(d, 0) }
}

// Join appends an entry with the given payload and limits and returns its
// info. If the queue was empty (and promotion is not paused) the entry is
// promoted at once (Status Active, a new epoch). It fails only with
// ErrClosed.
func (q *Queue[T]) Join(payload T, opts ...JoinOption) (Info[T], error) {
	var lim entryLimits
	for _, o := range opts {
		o(&lim)
	}
	id := uuid.NewString()
	var ev events[T]
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return Info[T]{}, ErrClosed
	}
	now := time.Now()
	e := &entry[T]{id: id, payload: payload, idx: len(q.order), joined: now, lastSeen: now,
		waitFor: lim.wait, holdFor: lim.hold}
	q.order = append(q.order, e)
	q.byID[id] = e
	q.record(Change[T]{Kind: Joined, Info: q.infoLocked(e)})
	if e.idx == 0 && !q.paused {
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
	// A touch only moves the idle deadline later, so the expiry goroutine
	// need not hear of it: when its timer fires it recomputes.
	e.lastSeen = time.Now()
	return q.infoLocked(e), nil
}

// Head returns the head entry (active, or waiting while promotion is
// paused), or ErrNotFound when the queue is empty. It does not touch it.
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
// out is not a failure. It returns ErrNotFound as soon as the entry leaves.
// Wait does not count as activity; callers that want it to should Touch.
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
// expires and is not removed by its limits. The returned unpin function
// restarts the entry's idle clock and removes the pin; it is safe to call
// more than once and after the entry has left. Pins nest.
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
	return h.id == id && h.active && h.epoch == epoch
}

// Leave removes an entry (Reason Left), promoting the next one if it was
// the head, and reports the removal to OnRemove before it returns.
func (q *Queue[T]) Leave(id string) (Info[T], error) {
	return q.remove(id, Left)
}

// Evict is Leave with Reason Evicted: the entry is removed by someone
// other than its owner.
func (q *Queue[T]) Evict(id string) (Info[T], error) {
	return q.remove(id, Evicted)
}

func (q *Queue[T]) remove(id string, why Reason) (Info[T], error) {
	var ev events[T]
	q.mu.Lock()
	e := q.byID[id]
	if e == nil {
		q.mu.Unlock()
		return Info[T]{}, ErrNotFound
	}
	info := q.infoLocked(e)
	q.removeLocked(e, why, &ev)
	q.promoteHeadLocked(time.Now(), &ev)
	q.shrinkLocked()
	q.mu.Unlock()
	q.deliver(ev)
	return info, nil
}

// Pause stops promotions: when the active entry leaves, the next one stays
// waiting (at position 0) until Resume. Entries still join, wait and
// expire. The active entry, if any, keeps its lease.
func (q *Queue[T]) Pause() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.paused || q.closed {
		return
	}
	q.paused = true
	q.record(Change[T]{Kind: Paused})
}

// Resume lets promotions happen again and promotes a waiting head at once.
func (q *Queue[T]) Resume() {
	var ev events[T]
	q.mu.Lock()
	if !q.paused || q.closed {
		q.mu.Unlock()
		return
	}
	q.paused = false
	q.record(Change[T]{Kind: Resumed})
	q.promoteHeadLocked(time.Now(), &ev)
	q.mu.Unlock()
	q.deliver(ev)
}

// IsPaused reports whether promotion is paused.
func (q *Queue[T]) IsPaused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.paused
}

// Len returns the number of entries.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// Epoch returns the last epoch handed out.
func (q *Queue[T]) Epoch() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.epoch
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
// with Reason Closed to OnRemove; Journal hears nothing, so a persisted
// queue survives Close) and makes Join fail with ErrClosed. Waiters return
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
		if q.onRemove != nil {
			ev.removed = append(ev.removed, Removal[T]{Info: q.infoLocked(e), Reason: Closed})
		}
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

// record reports a change to the journal.
func (q *Queue[T]) record(c Change[T]) {
	if q.journal != nil {
		q.journal(c)
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

// infoLocked describes e.
func (q *Queue[T]) infoLocked(e *entry[T]) Info[T] {
	info := Info[T]{
		ID:          e.id,
		Position:    e.idx,
		Payload:     e.payload,
		Joined:      e.joined,
		LastSeen:    e.lastSeen,
		Pinned:      e.pins > 0,
		WaitTimeout: e.waitFor,
		MaxHold:     e.holdFor,
	}
	if e.active {
		info.Status = Active
		info.Epoch = e.epoch
		info.Since = e.since
	}
	return info
}

// promoteHeadLocked promotes the head if it is waiting and promotion is
// not paused.
func (q *Queue[T]) promoteHeadLocked(now time.Time, ev *events[T]) {
	if len(q.order) > 0 && !q.order[0].active && !q.paused {
		q.promoteLocked(now, ev)
	}
}

// promoteLocked makes order[0] the lease holder with a new epoch. Its idle
// clock restarts: it was judged by the longer waiting TTL until now, and
// must get the full active TTL to notice its turn came.
func (q *Queue[T]) promoteLocked(now time.Time, ev *events[T]) {
	h := q.order[0]
	q.epoch++
	h.active = true
	h.epoch = q.epoch
	h.since = now
	h.lastSeen = now
	ev.wake(h)
	q.scheduleLocked(h)
	info := q.infoLocked(h)
	q.record(Change[T]{Kind: Promoted, Info: info})
	if q.onPromote != nil {
		ev.promoted = append(ev.promoted, info)
	}
}

// removeLocked takes e out of the queue, shifting the entries behind it
// forward and waking their waiters and its own, and records the removal.
// e.idx keeps its old value. The caller promotes a new head if needed.
func (q *Queue[T]) removeLocked(e *entry[T], why Reason, ev *events[T]) {
	rm := Removal[T]{Info: q.infoLocked(e), Reason: why}
	q.record(Change[T]{Kind: Removed, Info: rm.Info, Reason: why})
	if q.onRemove != nil {
		ev.removed = append(ev.removed, rm)
	}
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
