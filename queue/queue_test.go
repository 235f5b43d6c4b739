package queue_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder collects OnRemove and OnPromote calls.
type recorder struct {
	mu       sync.Mutex
	removed  []queue.Removal[string]
	promoted []queue.Info[string]
}

func (r *recorder) config() queue.Config[string] {
	return queue.Config[string]{
		OnRemove: func(rm queue.Removal[string]) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.removed = append(r.removed, rm)
		},
		OnPromote: func(info queue.Info[string]) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.promoted = append(r.promoted, info)
		},
	}
}

func (r *recorder) removals() []queue.Removal[string] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]queue.Removal[string](nil), r.removed...)
}

func (r *recorder) promotions() []queue.Info[string] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]queue.Info[string](nil), r.promoted...)
}

func newQueue(t *testing.T, cfg queue.Config[string]) *queue.Queue[string] {
	t.Helper()
	q := queue.New(cfg)
	t.Cleanup(q.Close)
	return q
}

func join(t *testing.T, q *queue.Queue[string], payload string) queue.Info[string] {
	t.Helper()
	info, err := q.Join(payload)
	require.NoError(t, err)
	return info
}

// present reports whether id is still queued.
func present(t *testing.T, q *queue.Queue[string], id string) bool {
	t.Helper()
	_, err := q.Status(id)
	if err != nil {
		assert.ErrorIs(t, err, queue.ErrNotFound)
		return false
	}
	return true
}

// advance moves the bubble's clock by d and lets the expiry goroutine run.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestStrings(t *testing.T) {
	assert.Equal(t, "waiting", queue.Waiting.String())
	assert.Equal(t, "active", queue.Active.String())
	assert.Equal(t, "leave", queue.Left.String())
	assert.Equal(t, "expired", queue.Expired.String())
	assert.Equal(t, "closed", queue.Closed.String())
}

func TestNewRejectsNegativeTTL(t *testing.T) {
	assert.Panics(t, func() { queue.New(queue.Config[string]{ActiveTTL: -time.Second}) })
	assert.Panics(t, func() { queue.New(queue.Config[string]{WaitingTTL: -time.Second}) })
}

func TestJoinOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		start := time.Now()

		a := join(t, q, "a")
		b := join(t, q, "b")
		c := join(t, q, "c")

		_, err := uuid.Parse(a.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Info[string]{
			ID: a.ID, Status: queue.Active, Position: 0, Epoch: 1, Payload: "a",
			Joined: start, Since: start, LastSeen: start,
		}, a)
		assert.Equal(t, queue.Info[string]{
			ID: b.ID, Status: queue.Waiting, Position: 1, Payload: "b",
			Joined: start, LastSeen: start,
		}, b)
		assert.Equal(t, 2, c.Position)
		assert.Equal(t, queue.Waiting, c.Status)
		assert.Zero(t, c.Epoch)

		assert.Equal(t, []queue.Info[string]{a, b, c}, q.Snapshot())
		assert.Equal(t, 3, q.Len())
		head, err := q.Head()
		require.NoError(t, err)
		assert.Equal(t, a, head)

		// Only the first join promotes.
		require.Len(t, rec.promotions(), 1)
		assert.Equal(t, a, rec.promotions()[0])
		assert.Len(t, rec.removals(), 0)
	})
}

func TestEmptyQueue(t *testing.T) {
	q := newQueue(t, queue.Config[string]{})
	_, err := q.Head()
	assert.ErrorIs(t, err, queue.ErrNotFound)
	assert.Len(t, q.Snapshot(), 0)
	assert.Zero(t, q.Len())
	assert.False(t, q.Holds("nobody", 1))
	for _, f := range []func(string) (queue.Info[string], error){q.Status, q.Touch, q.Leave} {
		_, err := f("nobody")
		assert.ErrorIs(t, err, queue.ErrNotFound)
	}
	_, err = q.Pin("nobody")
	assert.ErrorIs(t, err, queue.ErrNotFound)
	_, err = q.Wait(context.Background(), "nobody", queue.Info[string]{})
	assert.ErrorIs(t, err, queue.ErrNotFound)
}

func TestJoinConcurrent(t *testing.T) {
	const n = 100
	q := newQueue(t, queue.Config[string]{})
	infos := make([]queue.Info[string], n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			info, err := q.Join("x")
			if err != nil {
				t.Errorf("join: %v", err)
			}
			infos[i] = info
		})
	}
	wg.Wait()

	seenPos := make(map[int]bool)
	seenID := make(map[string]bool)
	active := 0
	for _, info := range infos {
		assert.False(t, seenPos[info.Position], "position %d twice", info.Position)
		assert.False(t, seenID[info.ID], "id %s twice", info.ID)
		seenPos[info.Position] = true
		seenID[info.ID] = true
		if info.Status == queue.Active {
			active++
			assert.Equal(t, 0, info.Position)
			assert.Equal(t, uint64(1), info.Epoch)
		}
		// Nobody left, so the position a join reported is still its place.
		now, err := q.Status(info.ID)
		require.NoError(t, err)
		assert.Equal(t, info.Position, now.Position)
	}
	assert.Equal(t, 1, active)
	for p := range n {
		assert.True(t, seenPos[p], "position %d missing", p)
	}
	snap := q.Snapshot()
	require.Len(t, snap, n)
	for i, info := range snap {
		assert.Equal(t, i, info.Position)
		assert.Equal(t, i == 0, info.Status == queue.Active)
	}
}

func TestLeaveShiftsPositions(t *testing.T) {
	var rec recorder
	q := newQueue(t, rec.config())
	a, b, c, d := join(t, q, "a"), join(t, q, "b"), join(t, q, "c"), join(t, q, "d")

	left, err := q.Leave(b.ID)
	require.NoError(t, err)
	assert.Equal(t, b, left)
	assert.Equal(t, []queue.Removal[string]{{Info: b, Reason: queue.Left}}, rec.removals())

	snap := q.Snapshot()
	require.Len(t, snap, 3)
	assert.Equal(t, []string{a.ID, c.ID, d.ID}, []string{snap[0].ID, snap[1].ID, snap[2].ID})
	assert.Equal(t, 1, snap[1].Position)
	assert.Equal(t, 2, snap[2].Position)
	assert.Equal(t, uint64(1), snap[0].Epoch, "removing a waiter does not promote")
	assert.Len(t, rec.promotions(), 1)

	// Leaving twice fails and changes nothing.
	_, err = q.Leave(b.ID)
	assert.ErrorIs(t, err, queue.ErrNotFound)
	assert.Equal(t, snap, q.Snapshot())
	assert.Len(t, rec.removals(), 1)
}

func TestPromotionOnLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b := join(t, q, "b")
		time.Sleep(10 * time.Second)

		_, err := q.Leave(a.ID)
		require.NoError(t, err)
		// Both callbacks ran before Leave returned.
		assert.Equal(t, []queue.Removal[string]{{Info: a, Reason: queue.Left}}, rec.removals())
		promoted := rec.promotions()
		require.Len(t, promoted, 2)
		now := time.Now()
		want := queue.Info[string]{
			ID: b.ID, Status: queue.Active, Position: 0, Epoch: 2, Payload: "b",
			Joined: b.Joined, Since: now, LastSeen: now,
		}
		assert.Equal(t, want, promoted[1])
		got, err := q.Status(b.ID)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		assert.True(t, q.Holds(b.ID, 2))
		assert.False(t, q.Holds(a.ID, 1))
	})
}

func TestActiveExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b := join(t, q, "b")

		advance(queue.DefaultActiveTTL)
		require.True(t, present(t, q, a.ID), "expiry is strict: idle for exactly the TTL is alive")
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
		assert.Equal(t, []queue.Removal[string]{{Info: a, Reason: queue.Expired}}, rec.removals())

		// b was idle for 300 s while waiting; promotion restarts its clock,
		// so the shorter active TTL does not reap it at once.
		now := time.Now()
		got, err := q.Status(b.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Active, got.Status)
		assert.Equal(t, uint64(2), got.Epoch)
		assert.Equal(t, now, got.Since)
		assert.Equal(t, now, got.LastSeen)
		require.Len(t, rec.promotions(), 2)
		assert.Equal(t, got, rec.promotions()[1])

		advance(queue.DefaultActiveTTL)
		require.True(t, present(t, q, b.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, b.ID))
		assert.Zero(t, q.Len())
		require.Len(t, rec.removals(), 2)
		assert.Equal(t, queue.Expired, rec.removals()[1].Reason)
		assert.Equal(t, "b", rec.removals()[1].Info.Payload)
	})
}

func TestExpiryAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		synctest.Wait() // the expiry goroutine parks with nothing to expire
		for _, payload := range []string{"a", "b"} {
			a := join(t, q, payload)
			advance(time.Hour)
			require.False(t, present(t, q, a.ID), "%s is expired after an hour", payload)
		}
	})
}

func TestWaitingExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b := join(t, q, "b")

		for range 6 { // keep the head alive for 600 s
			advance(100 * time.Second)
			_, err := q.Touch(a.ID)
			require.NoError(t, err)
		}
		require.True(t, present(t, q, b.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, b.ID))
		assert.Equal(t, []queue.Removal[string]{{Info: b, Reason: queue.Expired}}, rec.removals())
		assert.True(t, q.Holds(a.ID, 1), "a waiter's expiry does not touch the lease")
		assert.Len(t, rec.promotions(), 1)
	})
}

func TestTouchPostponesExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		advance(200 * time.Second)
		info, err := q.Touch(a.ID)
		require.NoError(t, err)
		assert.Equal(t, time.Now(), info.LastSeen)
		advance(200 * time.Second)
		require.True(t, present(t, q, a.ID), "400 s after join, 200 s after touch")
		advance(100 * time.Second)
		require.True(t, present(t, q, a.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
	})
}

func TestReadsDoNotTouch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		advance(100 * time.Second)
		_, err := q.Status(a.ID)
		require.NoError(t, err)
		advance(100 * time.Second)
		_, err = q.Head()
		require.NoError(t, err)
		q.Snapshot()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
		defer cancel()
		info, err := q.Wait(ctx, a.ID, a)
		require.NoError(t, err)
		assert.Equal(t, a.LastSeen, info.LastSeen)
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
	})
}

func TestConfigurableTTLs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{ActiveTTL: 10 * time.Second, WaitingTTL: 20 * time.Second})
		a := join(t, q, "a")
		b := join(t, q, "b")
		for range 4 {
			advance(5 * time.Second)
			_, err := q.Touch(a.ID)
			require.NoError(t, err)
		}
		require.True(t, present(t, q, b.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, b.ID))

		advance(10*time.Second - time.Nanosecond)
		require.True(t, present(t, q, a.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
	})
}

func TestPinPreventsExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		unpin, err := q.Pin(a.ID)
		require.NoError(t, err)
		info, err := q.Status(a.ID)
		require.NoError(t, err)
		assert.True(t, info.Pinned)

		advance(time.Hour)
		require.True(t, present(t, q, a.ID))

		unpin()
		info, err = q.Status(a.ID)
		require.NoError(t, err)
		assert.False(t, info.Pinned)
		assert.Equal(t, time.Now(), info.LastSeen, "unpin restarts the idle clock")

		advance(queue.DefaultActiveTTL)
		require.True(t, present(t, q, a.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
		assert.Equal(t, queue.Expired, rec.removals()[0].Reason)

		unpin() // after the entry left: harmless
	})
}

func TestPinsNest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		b := join(t, q, "b")
		unpin1, err := q.Pin(a.ID)
		require.NoError(t, err)
		unpin2, err := q.Pin(a.ID)
		require.NoError(t, err)

		advance(time.Hour)
		unpin1()
		unpin1() // a second call must not release the other pin
		info, err := q.Status(a.ID)
		require.NoError(t, err)
		assert.True(t, info.Pinned)
		advance(time.Hour)
		require.True(t, present(t, q, a.ID))
		require.False(t, present(t, q, b.ID), "pinning the head does not keep waiters alive")

		unpin2()
		advance(queue.DefaultActiveTTL)
		require.True(t, present(t, q, a.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
	})
}

func TestPinnedWaiterSurvivesPromotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		b := join(t, q, "b")
		unpin, err := q.Pin(b.ID)
		require.NoError(t, err)
		advance(time.Hour) // a expires, b is promoted while pinned
		require.False(t, present(t, q, a.ID))
		advance(time.Hour)
		info, err := q.Status(b.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Active, info.Status)
		unpin()
		advance(queue.DefaultActiveTTL + time.Nanosecond)
		require.False(t, present(t, q, b.ID))
	})
}

func TestPinAfterLeave(t *testing.T) {
	q := newQueue(t, queue.Config[string]{})
	a := join(t, q, "a")
	unpin, err := q.Pin(a.ID)
	require.NoError(t, err)
	_, err = q.Leave(a.ID)
	require.NoError(t, err)
	unpin()
	unpin()
	b := join(t, q, "b")
	info, err := q.Status(b.ID)
	require.NoError(t, err)
	assert.False(t, info.Pinned)
}

func TestEpochsAndHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		cfg := rec.config()
		cfg.WaitingTTL = 24 * time.Hour // waiters outlive the test
		q := newQueue(t, cfg)
		const n = 50
		for range n {
			join(t, q, "x")
		}
		var last uint64
		for i := range n {
			head, err := q.Head()
			require.NoError(t, err)
			assert.True(t, head.Epoch > last, "epoch %d after %d", head.Epoch, last)
			last = head.Epoch
			assert.True(t, q.Holds(head.ID, head.Epoch))
			assert.False(t, q.Holds(head.ID, head.Epoch-1))
			assert.False(t, q.Holds(head.ID, head.Epoch+1))
			assert.False(t, q.Holds(head.ID, 0))
			if q.Len() > 1 {
				assert.False(t, q.Holds(q.Snapshot()[1].ID, head.Epoch), "a waiter holds nothing")
			}
			if i%2 == 0 {
				_, err = q.Leave(head.ID)
				require.NoError(t, err)
			} else {
				advance(queue.DefaultActiveTTL + time.Nanosecond)
				require.False(t, present(t, q, head.ID))
			}
			assert.False(t, q.Holds(head.ID, head.Epoch), "a lease ends with its entry")
		}
		promoted := rec.promotions()
		require.Len(t, promoted, n)
		for i, info := range promoted {
			assert.Equal(t, uint64(i+1), info.Epoch)
		}
	})
}

// waitResult is what a Wait in a goroutine returned.
type waitResult struct {
	info queue.Info[string]
	err  error
}

func waitAsync(ctx context.Context, q *queue.Queue[string], last queue.Info[string]) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		info, err := q.Wait(ctx, last.ID, last)
		ch <- waitResult{info, err}
	}()
	return ch
}

// requireBlocked fails if ch has a result once every goroutine is idle.
func requireBlocked(t *testing.T, ch <-chan waitResult) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		t.Fatalf("Wait returned early: %+v, %v", r.info, r.err)
	default:
	}
}

func TestWaitWakesOnPromotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		b := join(t, q, "b")
		ch := waitAsync(t.Context(), q, b)
		requireBlocked(t, ch)
		_, err := q.Leave(a.ID)
		require.NoError(t, err)
		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, queue.Active, r.info.Status)
		assert.Equal(t, 0, r.info.Position)
		assert.Equal(t, uint64(2), r.info.Epoch)
	})
}

// TestWaitWakesAfterCallbacks: a waiter learns of its promotion only after
// OnRemove (the old holder's clean-up) and OnPromote have returned, so it
// can never act before its predecessor's removal was handled.
func TestWaitWakesAfterCallbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		q := newQueue(t, queue.Config[string]{
			OnRemove: func(queue.Removal[string]) { <-release },
		})
		a := join(t, q, "a")
		b := join(t, q, "b")
		ch := waitAsync(t.Context(), q, b)
		requireBlocked(t, ch)
		left := make(chan error, 1)
		go func() {
			_, err := q.Leave(a.ID)
			left <- err
		}()
		synctest.Wait()
		requireBlocked(t, ch) // promoted, but OnRemove still runs
		close(release)
		require.NoError(t, <-left)
		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, queue.Active, r.info.Status)
	})
}

func TestWaitWakesOnPositionChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		join(t, q, "a")
		b := join(t, q, "b")
		c := join(t, q, "c")
		ch := waitAsync(t.Context(), q, c)
		requireBlocked(t, ch)
		_, err := q.Leave(b.ID)
		require.NoError(t, err)
		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, queue.Waiting, r.info.Status)
		assert.Equal(t, 1, r.info.Position)
	})
}

// TestWaitWakesWhenAnEntryAheadExpires: an expiry that moves a waiter up
// wakes its Wait at the moment of the expiry, like a Leave does.
func TestWaitWakesWhenAnEntryAheadExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{ActiveTTL: time.Hour, WaitingTTL: 10 * time.Second})
		join(t, q, "a")
		b := join(t, q, "b")
		c := join(t, q, "c")
		advance(5 * time.Second)
		c, err := q.Touch(c.ID) // c outlives b
		require.NoError(t, err)
		start := time.Now()
		ch := waitAsync(t.Context(), q, c)
		requireBlocked(t, ch)

		r := <-ch
		require.NoError(t, r.err)
		assert.Equal(t, 1, r.info.Position)
		assert.Equal(t, queue.Waiting, r.info.Status)
		assert.Equal(t, 5*time.Second+time.Nanosecond, time.Since(start), "woken when b expired")
		require.False(t, present(t, q, b.ID))
	})
}

func TestWaitIgnoresUnrelatedChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		b := join(t, q, "b")
		c := join(t, q, "c")
		chA := waitAsync(t.Context(), q, a)
		chB := waitAsync(t.Context(), q, b)
		requireBlocked(t, chA)

		join(t, q, "d") // behind everyone
		_, err := q.Touch(b.ID)
		require.NoError(t, err)
		unpin, err := q.Pin(b.ID)
		require.NoError(t, err)
		unpin()
		_, err = q.Leave(c.ID) // behind a and b
		require.NoError(t, err)
		requireBlocked(t, chA)
		requireBlocked(t, chB)

		_, err = q.Leave(a.ID)
		require.NoError(t, err)
		rA, rB := <-chA, <-chB
		assert.ErrorIs(t, rA.err, queue.ErrNotFound)
		require.NoError(t, rB.err)
		assert.Equal(t, queue.Active, rB.info.Status)
	})
}

func TestWaitContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		join(t, q, "a")
		b := join(t, q, "b")
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		info, err := q.Wait(ctx, b.ID, b)
		require.NoError(t, err, "a long-poll that times out is not a failure")
		assert.Equal(t, 30*time.Second, time.Since(start))
		assert.Equal(t, b, info)

		// An already cancelled context returns at once.
		cancelled, cancel2 := context.WithCancel(t.Context())
		cancel2()
		start = time.Now()
		info, err = q.Wait(cancelled, b.ID, b)
		require.NoError(t, err)
		assert.Equal(t, b, info)
		assert.Equal(t, start, time.Now())
	})
}

func TestWaitStaleInfoReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		join(t, q, "a")
		b := join(t, q, "b")
		c := join(t, q, "c")
		_, err := q.Leave(b.ID)
		require.NoError(t, err)
		start := time.Now()
		info, err := q.Wait(t.Context(), c.ID, c) // c was at 2, is at 1
		require.NoError(t, err)
		assert.Equal(t, 1, info.Position)
		assert.Equal(t, start, time.Now())

		info, err = q.Wait(t.Context(), c.ID, queue.Info[string]{Status: queue.Active})
		require.NoError(t, err)
		assert.Equal(t, queue.Waiting, info.Status)
		assert.Equal(t, start, time.Now())
	})
}

func TestWaitEntryRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t, queue.Config[string]{})
		a := join(t, q, "a")
		b := join(t, q, "b")
		chB := waitAsync(t.Context(), q, b)
		requireBlocked(t, chB)
		_, err := q.Leave(b.ID)
		require.NoError(t, err)
		assert.ErrorIs(t, (<-chB).err, queue.ErrNotFound)

		// The head waits on itself until it expires.
		start := time.Now()
		_, err = q.Wait(t.Context(), a.ID, a)
		assert.ErrorIs(t, err, queue.ErrNotFound)
		assert.Equal(t, queue.DefaultActiveTTL+time.Nanosecond, time.Since(start))
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := queue.New(rec.config())
		a := join(t, q, "a")
		b := join(t, q, "b")
		c := join(t, q, "c")
		unpin, err := q.Pin(a.ID)
		require.NoError(t, err)
		a.Pinned = true
		chB := waitAsync(t.Context(), q, b)
		requireBlocked(t, chB)

		q.Close()
		assert.ErrorIs(t, (<-chB).err, queue.ErrNotFound)
		assert.Equal(t, []queue.Removal[string]{
			{Info: a, Reason: queue.Closed},
			{Info: b, Reason: queue.Closed},
			{Info: c, Reason: queue.Closed},
		}, rec.removals())

		_, err = q.Join("d")
		assert.ErrorIs(t, err, queue.ErrClosed)
		_, err = q.Status(a.ID)
		assert.ErrorIs(t, err, queue.ErrNotFound)
		_, err = q.Head()
		assert.ErrorIs(t, err, queue.ErrNotFound)
		assert.Zero(t, q.Len())
		assert.False(t, q.Holds(a.ID, 1))
		unpin()

		q.Close()
		assert.Len(t, rec.removals(), 3, "a second Close reports nothing")
		advance(time.Hour)
		assert.Len(t, rec.removals(), 3, "nothing expires after Close")
	})
}

func TestConcurrentClose(t *testing.T) {
	q := queue.New(queue.Config[string]{})
	join(t, q, "a")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(q.Close)
	}
	wg.Wait()
	assert.Zero(t, q.Len())
}

func TestCallbacksMayCallBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var q *queue.Queue[string]
		var mu sync.Mutex
		var lens []int
		var heads []string
		q = newQueue(t, queue.Config[string]{
			OnRemove: func(r queue.Removal[string]) {
				mu.Lock()
				defer mu.Unlock()
				lens = append(lens, q.Len())
			},
			OnPromote: func(info queue.Info[string]) {
				h, err := q.Head()
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					heads = append(heads, h.Payload)
				}
			},
		})
		a := join(t, q, "a")
		join(t, q, "b")
		_, err := q.Leave(a.ID) // callbacks in this goroutine
		require.NoError(t, err)
		advance(time.Hour) // callbacks in the expiry goroutine
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []int{1, 0}, lens)
		assert.Equal(t, []string{"a", "b"}, heads)
	})
}

// TestHammer runs many goroutines doing everything at random, with short
// TTLs so entries also expire, and checks the queue's invariants from
// snapshots while they run and from the callbacks afterwards.
func TestHammer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu       sync.Mutex
			epochs   = make(map[uint64]int)
			removed  = make(map[string]int)
			joinedMu sync.Mutex
			joined   = make(map[string]bool)
		)
		q := queue.New(queue.Config[string]{
			ActiveTTL:  5 * time.Millisecond,
			WaitingTTL: 60 * time.Millisecond,
			OnRemove: func(r queue.Removal[string]) {
				mu.Lock()
				defer mu.Unlock()
				removed[r.Info.ID]++
			},
			OnPromote: func(info queue.Info[string]) {
				mu.Lock()
				defer mu.Unlock()
				epochs[info.Epoch]++
			},
		})

		stopCheck := make(chan struct{})
		checked := make(chan int)
		go func() {
			var lastHead string
			var lastEpoch uint64
			n := 0
			for {
				select {
				case <-stopCheck:
					checked <- n
					return
				default:
				}
				n++
				snap := q.Snapshot()
				seen := make(map[string]bool, len(snap))
				for i, info := range snap {
					if info.Position != i || seen[info.ID] {
						t.Errorf("snapshot %d: entry %d has position %d (dup %v)", n, i, info.Position, seen[info.ID])
					}
					seen[info.ID] = true
					if (i == 0) != (info.Status == queue.Active) || (i == 0) != (info.Epoch != 0) {
						t.Errorf("snapshot %d: entry %d has status %v epoch %d", n, i, info.Status, info.Epoch)
					}
				}
				if len(snap) > 0 {
					h := snap[0]
					switch {
					case h.ID == lastHead && h.Epoch != lastEpoch:
						t.Errorf("head %s changed epoch %d -> %d", h.ID, lastEpoch, h.Epoch)
					case h.ID != lastHead && h.Epoch <= lastEpoch:
						t.Errorf("new head %s has epoch %d after %d", h.ID, h.Epoch, lastEpoch)
					}
					lastHead, lastEpoch = h.ID, h.Epoch
				}
				time.Sleep(time.Millisecond)
			}
		}()

		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				var mine []string
				for range 500 {
					if len(mine) == 0 || rng.IntN(10) == 0 {
						info, err := q.Join("w")
						if err != nil {
							t.Errorf("join: %v", err)
							return
						}
						joinedMu.Lock()
						joined[info.ID] = true
						joinedMu.Unlock()
						mine = append(mine, info.ID)
						continue
					}
					id := mine[rng.IntN(len(mine))]
					var err error
					switch rng.IntN(7) {
					case 0:
						_, err = q.Touch(id)
					case 1:
						var info queue.Info[string]
						if info, err = q.Status(id); err == nil && info.Status == queue.Active {
							q.Holds(id, info.Epoch)
							if rng.IntN(2) == 0 { // release the lease now and then
								_, err = q.Leave(id)
							}
						}
					case 2:
						var info queue.Info[string]
						if info, err = q.Status(id); err == nil {
							ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(20))*time.Millisecond)
							_, err = q.Wait(ctx, id, info)
							cancel()
						}
					case 3:
						var unpin func()
						if unpin, err = q.Pin(id); err == nil {
							time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
							unpin()
						}
					case 4:
						_, err = q.Leave(id)
					case 5:
						q.Snapshot()
						_, _ = q.Head()
					case 6:
						time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
					}
					if err != nil {
						if !errors.Is(err, queue.ErrNotFound) {
							t.Errorf("unexpected error: %v", err)
						}
						mine = removeID(mine, id)
					}
				}
			})
		}
		wg.Wait()
		close(stopCheck)
		n := <-checked
		q.Close()

		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d snapshots checked, %d entries, %d promotions", n, len(joined), len(epochs))
		require.True(t, len(epochs) > 0)
		for e := uint64(1); e <= uint64(len(epochs)); e++ {
			assert.Equal(t, 1, epochs[e], "epoch %d promoted %d times", e, epochs[e])
		}
		assert.Len(t, removed, len(joined))
		for id := range joined {
			assert.Equal(t, 1, removed[id], "entry %s removed %d times", id, removed[id])
		}
	})
}

func removeID(ids []string, id string) []string {
	for i, x := range ids {
		if x == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}
