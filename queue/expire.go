package queue

import "time"

// An entry is due for removal when the first of its deadlines passes:
// idle for longer than its state's TTL (Expired), still waiting at its
// wait deadline (WaitTimeout), or active for its whole maximum hold
// (MaxHold). Pinned entries are never due; their deadlines are looked at
// again when the last pin goes.

// ttlLocked returns the inactivity limit that applies to e now.
func (q *Queue[T]) ttlLocked(e *entry[T]) time.Duration {
	if e.active {
		return q.activeTTL
	}
	return q.waitingTTL
}

// deadlineLocked returns the first instant at which e is due and why.
// Idle expiry is strict (idle for more than the TTL), hence the extra
// nanosecond; the limits are due at their deadline.
func (q *Queue[T]) deadlineLocked(e *entry[T]) (time.Time, Reason) {
	d, why := e.lastSeen.Add(q.ttlLocked(e)+time.Nanosecond), Expired
	var limit time.Time
	var limitWhy Reason
	switch {
	case e.active && e.holdFor > 0:
		limit, limitWhy = e.since.Add(e.holdFor), MaxHold
	case !e.active && e.waitFor > 0:
		limit, limitWhy = e.joined.Add(e.waitFor), WaitTimeout
	}
	if !limit.IsZero() && !limit.After(d) {
		return limit, limitWhy
	}
	return d, why
}

// dueLocked reports whether e is due at now, and why.
func (q *Queue[T]) dueLocked(e *entry[T], now time.Time) (bool, Reason) {
	if e.pins > 0 {
		return false, 0
	}
	d, why := q.deadlineLocked(e)
	return !now.Before(d), why
}

// scheduleLocked makes sure the expiry goroutine wakes up by e's deadline.
// Callers are the changes that can create a deadline earlier than all
// known ones: a join, a promotion, an unpin, a restore. Touches only move
// deadlines later and need no call.
func (q *Queue[T]) scheduleLocked(e *entry[T]) {
	if e.pins > 0 {
		return
	}
	d, _ := q.deadlineLocked(e)
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
// deadline (or a kick saying there may be an earlier one), removes what is
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

// sweep removes every entry that is due, promotes the new head, and
// returns the callbacks owed and the next deadline (zero when nothing can
// become due).
//
// The active head is judged first and its successor promoted before the
// waiting entries are judged: a waiter whose wait deadline falls in the
// same instant as its promotion got its turn and does not time out.
func (q *Queue[T]) sweep() (events[T], time.Time) {
	var ev events[T]
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ev, time.Time{}
	}
	now := time.Now()
	for len(q.order) > 0 && q.order[0].active {
		due, why := q.dueLocked(q.order[0], now)
		if !due {
			break
		}
		q.removeLocked(q.order[0], why, &ev)
		q.promoteHeadLocked(now, &ev)
	}

	// One pass over the rest keeps a mass expiry linear.
	kept := q.order[:0]
	for _, e := range q.order {
		if due, why := q.dueLocked(e, now); due && !e.active {
			info := q.infoLocked(e)
			q.record(Change[T]{Kind: Removed, Info: info, Reason: why})
			if q.onRemove != nil {
				ev.removed = append(ev.removed, Removal[T]{Info: info, Reason: why})
			}
			delete(q.byID, e.id)
			ev.wake(e)
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
	q.promoteHeadLocked(now, &ev)
	q.shrinkLocked()

	var next time.Time
	for _, e := range q.order {
		if e.pins > 0 {
			continue
		}
		if d, _ := q.deadlineLocked(e); next.IsZero() || d.Before(next) {
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
