package queue_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/queue"
)

func TestReasonStrings(t *testing.T) {
	for r, want := range map[queue.Reason]string{
		queue.Left: "leave", queue.Expired: "expired", queue.Closed: "closed",
		queue.Evicted: "evicted", queue.WaitTimeout: "wait_timeout", queue.MaxHold: "max_hold",
	} {
		assert.Equal(t, want, r.String())
	}
}

func TestWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b, err := q.Join("b", queue.WithWaitTimeout(90*time.Second))
		require.NoError(t, err)
		assert.Equal(t, b.Joined.Add(90*time.Second), b.WaitDeadline())
		c := join(t, q, "c")

		advance(90*time.Second - time.Nanosecond)
		require.True(t, present(t, q, b.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, b.ID), "still waiting at its deadline: removed")
		require.Len(t, rec.removals(), 1)
		assert.Equal(t, queue.WaitTimeout, rec.removals()[0].Reason)
		assert.Equal(t, "b", rec.removals()[0].Info.Payload)

		got, err := q.Status(c.ID)
		require.NoError(t, err)
		assert.Equal(t, 1, got.Position, "the waiter behind moved up")
		assert.True(t, q.Holds(a.ID, a.Epoch), "the holder is untouched")
	})
}

func TestWaitTimeoutDoesNotApplyOnceActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b, err := q.Join("b", queue.WithWaitTimeout(time.Minute))
		require.NoError(t, err)
		advance(30 * time.Second)
		_, err = q.Leave(a.ID)
		require.NoError(t, err)
		got, err := q.Status(b.ID)
		require.NoError(t, err)
		require.Equal(t, queue.Active, got.Status)
		assert.True(t, got.WaitDeadline().IsZero())

		advance(2 * time.Minute)
		require.True(t, present(t, q, b.ID), "an active entry has no wait deadline")
	})
}

// A waiter whose wait deadline is the very instant the head expires got its
// turn: promotion wins over the wait timeout.
func TestWaitTimeoutSameInstantAsPromotion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b, err := q.Join("b", queue.WithWaitTimeout(queue.DefaultActiveTTL+time.Nanosecond))
		require.NoError(t, err)

		advance(queue.DefaultActiveTTL + time.Nanosecond)
		require.False(t, present(t, q, a.ID))
		got, err := q.Status(b.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Active, got.Status)
		require.Len(t, rec.removals(), 1)
		assert.Equal(t, queue.Expired, rec.removals()[0].Reason)
	})
}

func TestMaxHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a, err := q.Join("a", queue.WithMaxHold(10*time.Minute))
		require.NoError(t, err)
		assert.Equal(t, a.Since.Add(10*time.Minute), a.HoldDeadline())
		b := join(t, q, "b")

		for range 9 { // busy, never idle
			advance(time.Minute)
			_, err := q.Touch(a.ID)
			require.NoError(t, err)
			_, err = q.Touch(b.ID)
			require.NoError(t, err)
		}
		advance(time.Minute - time.Nanosecond)
		require.True(t, present(t, q, a.ID))
		advance(time.Nanosecond)
		require.False(t, present(t, q, a.ID))
		require.Len(t, rec.removals(), 1)
		assert.Equal(t, queue.MaxHold, rec.removals()[0].Reason)
		got, err := q.Status(b.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Active, got.Status)
	})
}

// Reaching the maximum hold while an operation runs: the operation finishes
// first, then the entry goes.
func TestMaxHoldWaitsForUnpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a, err := q.Join("a", queue.WithMaxHold(time.Minute))
		require.NoError(t, err)
		unpin, err := q.Pin(a.ID)
		require.NoError(t, err)
		advance(5 * time.Minute)
		require.True(t, present(t, q, a.ID), "pinned past its maximum hold")
		unpin()
		synctest.Wait()
		require.False(t, present(t, q, a.ID))
		require.Len(t, rec.removals(), 1)
		assert.Equal(t, queue.MaxHold, rec.removals()[0].Reason)
	})
}

func TestEvict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b := join(t, q, "b")
		got, err := q.Evict(a.ID)
		require.NoError(t, err)
		assert.Equal(t, a, got)
		require.Len(t, rec.removals(), 1)
		assert.Equal(t, queue.Evicted, rec.removals()[0].Reason)
		assert.True(t, q.Holds(b.ID, 2))
		_, err = q.Evict(a.ID)
		assert.ErrorIs(t, err, queue.ErrNotFound)
	})
}

func TestPauseResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		q := newQueue(t, rec.config())
		a := join(t, q, "a")
		b := join(t, q, "b")
		q.Pause()
		assert.True(t, q.IsPaused())
		assert.True(t, q.Holds(a.ID, 1), "the holder keeps its lease while draining")

		_, err := q.Leave(a.ID)
		require.NoError(t, err)
		got, err := q.Status(b.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Waiting, got.Status)
		assert.Equal(t, 0, got.Position, "next in line, but not promoted")
		assert.Zero(t, got.Epoch)
		assert.False(t, q.Holds(b.ID, 2))

		c := join(t, q, "c")
		assert.Equal(t, queue.Waiting, c.Status, "sessions still queue while paused")

		// A waiting head is judged by the waiting TTL.
		advance(queue.DefaultActiveTTL + time.Second)
		require.True(t, present(t, q, b.ID))

		woke := make(chan queue.Info[string])
		go func() {
			info, _ := q.Wait(t.Context(), b.ID, got)
			woke <- info
		}()
		synctest.Wait()
		q.Resume()
		info := <-woke
		assert.Equal(t, queue.Active, info.Status)
		assert.Equal(t, uint64(2), info.Epoch)
		assert.False(t, q.IsPaused())
		require.Len(t, rec.promotions(), 2)
	})
}

func TestPausedEmptyQueueDoesNotPromoteOnJoin(t *testing.T) {
	q := newQueue(t, queue.Config[string]{Paused: true})
	a := join(t, q, "a")
	assert.Equal(t, queue.Waiting, a.Status)
	q.Resume()
	got, err := q.Status(a.ID)
	require.NoError(t, err)
	assert.Equal(t, queue.Active, got.Status)
	assert.Equal(t, uint64(1), got.Epoch)
}

// journal records the changes a queue reports, in order.
type journal struct {
	mu      sync.Mutex
	changes []queue.Change[string]
}

func (j *journal) add(c queue.Change[string]) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.changes = append(j.changes, c)
}

func (j *journal) kinds() []queue.ChangeKind {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []queue.ChangeKind
	for _, c := range j.changes {
		out = append(out, c.Kind)
	}
	return out
}

func TestJournalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var j journal
		q := newQueue(t, queue.Config[string]{Journal: j.add})
		a := join(t, q, "a")
		b := join(t, q, "b")
		_, err := q.Touch(b.ID)
		require.NoError(t, err)
		unpin, err := q.Pin(a.ID)
		require.NoError(t, err)
		unpin()
		q.Pause()
		_, err = q.Leave(a.ID)
		require.NoError(t, err)
		q.Resume()
		advance(time.Hour)
		assert.Equal(t, []queue.ChangeKind{
			queue.Joined, queue.Promoted, // a
			queue.Joined,                // b; touch and pin are not changes
			queue.Paused, queue.Removed, // a leaves, b is not promoted
			queue.Resumed, queue.Promoted, // b
			queue.Removed, // b expires
		}, j.kinds())
		j.mu.Lock()
		defer j.mu.Unlock()
		assert.Equal(t, queue.Left, j.changes[4].Reason)
		assert.Equal(t, a.ID, j.changes[4].Info.ID)
		assert.Equal(t, uint64(2), j.changes[6].Info.Epoch)
		assert.Equal(t, queue.Expired, j.changes[7].Reason)
	})
}

func TestJournalHearsNothingOfClose(t *testing.T) {
	var j journal
	q := queue.New(queue.Config[string]{Journal: j.add})
	join(t, q, "a")
	q.Close()
	assert.Equal(t, []queue.ChangeKind{queue.Joined, queue.Promoted}, j.kinds())
}

func TestRestore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		cfg := rec.config()
		joined := time.Now().Add(-time.Hour)
		since := time.Now().Add(-10 * time.Minute)
		cfg.Restore = []queue.Restored[string]{
			{ID: "h", Payload: "holder", Joined: joined, Epoch: 41, Since: since, MaxHold: 15 * time.Minute},
			{ID: "", Payload: "no id"},
			{ID: "w1", Payload: "waiter", Joined: joined, WaitTimeout: 2 * time.Hour, Epoch: 7},
			{ID: "h", Payload: "duplicate"},
			{ID: "w2", Payload: "waiter 2", Joined: joined},
		}
		cfg.LastEpoch = 42
		q := newQueue(t, cfg)

		snap := q.Snapshot()
		require.Len(t, snap, 3)
		assert.Equal(t, []string{"h", "w1", "w2"}, []string{snap[0].ID, snap[1].ID, snap[2].ID})
		h := snap[0]
		assert.Equal(t, queue.Active, h.Status)
		assert.Equal(t, uint64(41), h.Epoch, "the holder keeps its epoch")
		assert.Equal(t, since, h.Since)
		assert.Equal(t, time.Now(), h.LastSeen, "a full TTL after a restart")
		assert.Empty(t, rec.promotions(), "no new promotion for a restored holder")
		assert.Zero(t, snap[1].Epoch, "only the head keeps an epoch")
		assert.Equal(t, uint64(42), q.Epoch())

		// The maximum hold runs on from the original promotion.
		advance(5*time.Minute - time.Nanosecond)
		require.True(t, present(t, q, "h"))
		advance(time.Nanosecond)
		require.False(t, present(t, q, "h"))
		got, err := q.Status("w1")
		require.NoError(t, err)
		assert.Equal(t, uint64(43), got.Epoch, "epochs never go back")
	})
}

func TestRestoreWaitingHeadIsPromoted(t *testing.T) {
	var rec recorder
	cfg := rec.config()
	cfg.Restore = []queue.Restored[string]{{ID: "w", Payload: "w", Joined: time.Now()}}
	cfg.LastEpoch = 9
	q := newQueue(t, cfg)
	got, err := q.Status("w")
	require.NoError(t, err)
	assert.Equal(t, queue.Active, got.Status)
	assert.Equal(t, uint64(10), got.Epoch)
	require.Len(t, rec.promotions(), 1)

	cfg.Paused = true
	cfg.OnPromote = nil
	p := newQueue(t, cfg)
	got, err = p.Status("w")
	require.NoError(t, err)
	assert.Equal(t, queue.Waiting, got.Status, "restored paused: stays waiting")
}
