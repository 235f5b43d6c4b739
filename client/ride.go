package client

import (
	"math/rand/v2"
	"time"
)

// Backoff of retries against a server that does not answer (SPEC §11).
const (
	backoffStart = time.Second
	backoffMax   = 30 * time.Second
)

// backoff paces the retries of one run of failures: 1 s, doubling up to
// 30 s, each stretched by up to a tenth at random so that the clients of
// a restarted server do not all knock at once. The zero value starts a
// run at the first failure.
type backoff struct {
	next time.Duration
}

// wait returns how long to wait after a failure, and moves on.
func (b *backoff) wait() time.Duration {
	if b.next == 0 {
		b.next = backoffStart
	}
	d := b.next + rand.N(b.next/10+1)
	b.next = min(2*b.next, backoffMax)
	return d
}

// reset starts a new run: the next failure waits backoffStart again.
func (b *backoff) reset() { b.next = 0 }

// rider decides how long a run of failures is ridden through: retries
// back off (see backoff) until window has passed since the run's first
// failure; the last retry is made when the window ends.
type rider struct {
	window time.Duration
	since  time.Time // first failure of the current run; zero when none
	b      backoff
}

// failed records a failure at now and returns how long to wait before
// the next try, or ok == false once the window is used up.
func (r *rider) failed(now time.Time) (wait time.Duration, ok bool) {
	if r.since.IsZero() {
		r.since = now
	}
	left := r.window - now.Sub(r.since)
	if left <= 0 {
		return 0, false
	}
	return min(r.b.wait(), left), true
}

// failing returns how long the current run of failures has lasted, and
// whether there is one.
func (r *rider) failing(now time.Time) (time.Duration, bool) {
	if r.since.IsZero() {
		return 0, false
	}
	return now.Sub(r.since), true
}

// ok ends a run of failures.
func (r *rider) ok() {
	r.since = time.Time{}
	r.b.reset()
}
