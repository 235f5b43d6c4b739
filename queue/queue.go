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
	"time"
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

// Config configures a Queue. Zero durations mean the defaults.
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
	// implementation defined
}

// New returns an empty queue and starts its expiry goroutine. The caller
// must call Close.
func New[T any](cfg Config[T]) *Queue[T] { panic("unimplemented") }

// Join appends an entry with the given payload and returns its info. If the
// queue was empty the entry is promoted at once (Status Active, a new
// epoch). It fails only with ErrClosed.
func (q *Queue[T]) Join(payload T) (Info[T], error) { panic("unimplemented") }

// Status returns an entry's current info without touching it.
func (q *Queue[T]) Status(id string) (Info[T], error) { panic("unimplemented") }

// Touch records activity for an entry, restarting its idle clock, and
// returns its current info.
func (q *Queue[T]) Touch(id string) (Info[T], error) { panic("unimplemented") }

// Head returns the active entry, or ErrNotFound when the queue is empty.
// It does not touch it.
func (q *Queue[T]) Head() (Info[T], error) { panic("unimplemented") }

// Wait blocks until the entry's status or position differs from last, or
// until ctx ends, and returns the entry's current info. When ctx ends
// first it returns the current info and a nil error: a long-poll that times
// out is not a failure. It returns ErrNotFound as soon as the entry leaves
// or expires. Wait does not count as activity; callers that want it to
// should Touch.
func (q *Queue[T]) Wait(ctx context.Context, id string, last Info[T]) (Info[T], error) {
	panic("unimplemented")
}

// Pin marks the entry as busy with an operation: a pinned entry never
// expires. The returned unpin function restarts the entry's idle clock and
// removes the pin; it is safe to call more than once and after the entry
// has left. Pins nest.
func (q *Queue[T]) Pin(id string) (unpin func(), err error) { panic("unimplemented") }

// Holds reports whether id is the active entry and still holds the lease
// of the given epoch.
func (q *Queue[T]) Holds(id string, epoch uint64) bool { panic("unimplemented") }

// Leave removes an entry, promoting the next one if it was the head, and
// reports the removal to OnRemove before it returns.
func (q *Queue[T]) Leave(id string) (Info[T], error) { panic("unimplemented") }

// Len returns the number of entries.
func (q *Queue[T]) Len() int { panic("unimplemented") }

// Snapshot returns every entry in queue order.
func (q *Queue[T]) Snapshot() []Info[T] { panic("unimplemented") }

// Close stops the expiry goroutine, removes every entry (reporting each
// with Reason Closed) and makes Join fail with ErrClosed. Waiters return
// ErrNotFound. It is safe to call more than once and waits for the expiry
// goroutine to exit.
func (q *Queue[T]) Close() { panic("unimplemented") }
