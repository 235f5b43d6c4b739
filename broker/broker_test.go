package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestJoinAndLeave(t *testing.T) {
	e := newEnv(t, nil)
	a, err := e.b.Join(broker.Meta{Owner: "alice", Labels: map[string]string{"job": "1"}})
	require.NoError(t, err)
	assert.Equal(t, queue.Active, a.Status)
	assert.Equal(t, uint64(1), a.Epoch)
	assert.Equal(t, "alice", a.Owner)
	bob := e.join("bob")
	assert.Equal(t, queue.Waiting, bob.Status)
	assert.Equal(t, 1, bob.Position)
	assert.False(t, bob.HasEstimate, "no estimate before the first hold ended")

	require.NoError(t, e.b.Leave(a.ID))
	got, err := e.b.Session(bob.ID)
	require.NoError(t, err)
	assert.Equal(t, queue.Active, got.Status)

	_, err = e.b.Touch(a.ID)
	var ended *broker.EndedError
	require.ErrorAs(t, err, &ended)
	assert.ErrorIs(t, err, broker.ErrNotFound)
	assert.Equal(t, api.OutcomeClosed, ended.Session.Outcome)
	assert.Equal(t, "alice", ended.Session.Owner)
	assert.Equal(t, map[string]string{"job": "1"}, ended.Session.Labels)
	assert.ErrorIs(t, e.b.Leave(a.ID), broker.ErrNotFound)

	_, err = e.b.Session("never-was")
	assert.ErrorIs(t, err, broker.ErrNotFound)
	assert.NotErrorAs(t, err, &ended)
	assert.Empty(t, e.audit.all(), "a plain close is not audited")

	h := e.b.History(10)
	require.Len(t, h, 1)
	assert.Equal(t, a.ID, h[0].ID)
	_, held := h[0].Held()
	assert.True(t, held)
}

func TestEndedMemoryLastsAnHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		a := e.join("alice")
		require.NoError(t, e.b.Leave(a.ID))
		time.Sleep(broker.EndedMemoryAge)
		_, err := e.b.Session(a.ID)
		var ended *broker.EndedError
		require.ErrorAs(t, err, &ended, "remembered for an hour")
		time.Sleep(time.Nanosecond)
		_, err = e.b.Session(a.ID)
		assert.ErrorIs(t, err, broker.ErrNotFound)
		assert.NotErrorAs(t, err, &ended, "forgotten after an hour")
		assert.Len(t, e.b.History(10), 1, "history outlives the hour")
		e.close()
	})
}

func TestExpiryIsAuditedWithItsReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil, func(c *broker.Config) { c.ActiveTTL = 90 * time.Second })
		a := e.join("alice")
		w := e.join("bob")
		_, err := e.acquire(a.ID, topoA)
		require.NoError(t, err)
		time.Sleep(91 * time.Second)
		synctest.Wait()

		_, err = e.b.Session(a.ID)
		var ended *broker.EndedError
		require.ErrorAs(t, err, &ended)
		assert.Equal(t, api.OutcomeExpired, ended.Session.Outcome)
		assert.Equal(t, "expired: no request for 90 s", ended.Session.Reason)
		require.Equal(t, &broker.LabUse{Topology: "lab.yml", Fingerprint: ended.Session.Lab.Fingerprint}, ended.Session.Lab)

		entries := e.audit.all()
		require.Len(t, entries, 1)
		assert.Equal(t, broker.SystemActor, entries[0].Actor)
		assert.Equal(t, api.OutcomeExpired, entries[0].Action)
		assert.Equal(t, a.ID[:8], entries[0].Session)
		assert.Equal(t, "alice", entries[0].Owner)

		// Its references went with it; the lab stays warm for bob.
		st := e.b.Manager().Status()
		assert.Equal(t, lab.StateIdle, st.State)
		got, err := e.b.Session(w.ID)
		require.NoError(t, err)
		assert.Equal(t, queue.Active, got.Status)
		e.close()
	})
}

func TestLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil, func(c *broker.Config) { c.MaxHold = time.Hour })
		a, err := e.b.Join(broker.Meta{Owner: "alice", MaxHold: 2 * time.Hour})
		require.NoError(t, err)
		assert.Equal(t, a.Promoted.Add(time.Hour), a.HoldDeadline, "capped by the operator")
		w, err := e.b.Join(broker.Meta{Owner: "bob", WaitTimeout: 10 * time.Minute})
		require.NoError(t, err)
		assert.Equal(t, w.Created.Add(10*time.Minute), w.WaitDeadline)

		for range 5 { // both stay busy
			time.Sleep(100 * time.Second)
			_, err := e.b.Touch(a.ID)
			require.NoError(t, err)
			_, err = e.b.Touch(w.ID)
			require.NoError(t, err)
		}
		time.Sleep(100*time.Second - time.Nanosecond)
		synctest.Wait()
		_, err = e.b.Session(w.ID)
		require.NoError(t, err, "still waiting just before its deadline")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		_, err = e.b.Session(w.ID)
		var ended *broker.EndedError
		require.ErrorAs(t, err, &ended)
		assert.Equal(t, api.OutcomeWaitTimeout, ended.Session.Outcome)
		assert.Equal(t, "wait_timeout: still waiting after 600 s", ended.Session.Reason)

		for range 60 { // a stays busy until its maximum hold
			time.Sleep(time.Minute)
			_, _ = e.b.Touch(a.ID)
		}
		synctest.Wait()
		_, err = e.b.Session(a.ID)
		require.ErrorAs(t, err, &ended)
		assert.Equal(t, api.OutcomeMaxHold, ended.Session.Outcome)
		assert.Equal(t, "max_hold: held the lab for 3600 s", ended.Session.Reason)
		assert.Equal(t, []string{api.OutcomeWaitTimeout, api.OutcomeMaxHold}, e.audit.actions())

		// A session asking for nothing gets the cap.
		c := e.join("carol")
		assert.Equal(t, c.Promoted.Add(time.Hour), c.HoldDeadline)
		e.close()
	})
}

func TestQueueFull(t *testing.T) {
	e := newEnv(t, nil, func(c *broker.Config) {
		c.MaxSessions = 3
		c.MaxSessionsPerOwner = 2
	})
	a := e.join("alice")
	e.join("alice")
	_, err := e.b.Join(broker.Meta{Owner: "alice"})
	var full *broker.FullError
	require.ErrorAs(t, err, &full)
	assert.ErrorIs(t, err, broker.ErrQueueFull)
	assert.Equal(t, "alice", full.Owner)
	assert.Equal(t, 2, full.Limit)
	assert.Equal(t, time.Minute, full.RetryAfter, "no hold ended yet: retry in a minute")

	e.join("bob")
	_, err = e.b.Join(broker.Meta{Owner: "carol"})
	require.ErrorAs(t, err, &full)
	assert.Empty(t, full.Owner)
	assert.Equal(t, 3, full.Limit)

	require.NoError(t, e.b.Leave(a.ID))
	_, err = e.b.Join(broker.Meta{Owner: "alice"})
	assert.NoError(t, err, "a place freed up, also in alice's share")
}

func TestEstimates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil, func(c *broker.Config) { c.ActiveTTL, c.WaitingTTL = 2*time.Hour, 2*time.Hour })
		for _, hold := range []time.Duration{100 * time.Second, 300 * time.Second} {
			s := e.join("x")
			time.Sleep(hold)
			require.NoError(t, e.b.Leave(s.ID))
		}
		// Mean hold 200 s. The holder has held for 50 s.
		h := e.join("holder")
		w1 := e.join("w1")
		w2 := e.join("w2")
		time.Sleep(50 * time.Second)
		got, err := e.b.Session(w1.ID)
		require.NoError(t, err)
		require.True(t, got.HasEstimate)
		assert.Equal(t, 150*time.Second, got.EstimatedWait)
		got, err = e.b.Session(w2.ID)
		require.NoError(t, err)
		assert.Equal(t, 350*time.Second, got.EstimatedWait)

		v := e.b.Queue()
		require.NotNil(t, v.Holder)
		assert.Equal(t, h.ID, v.Holder.ID)
		require.Len(t, v.Waiting, 2)
		assert.Equal(t, 150*time.Second, v.Waiting[0].EstimatedWait)
		assert.Equal(t, 350*time.Second, v.Waiting[1].EstimatedWait)
		assert.Equal(t, 200*time.Second, v.HoldAverage)
		assert.Equal(t, 2, v.Served)

		// The holder overran the mean: the first waiter's share is 0.
		time.Sleep(time.Hour)
		_, _ = e.b.Touch(w1.ID)
		_, _ = e.b.Touch(w2.ID)
		_, _ = e.b.Touch(h.ID)
		got, err = e.b.Session(w1.ID)
		require.NoError(t, err)
		assert.Equal(t, time.Duration(0), got.EstimatedWait)
		e.close()
	})
}

func TestEvict(t *testing.T) {
	e := newEnv(t, nil)
	a := e.join("alice")
	w := e.join("bob")
	_, err := e.acquire(a.ID, topoA)
	require.NoError(t, err)

	_, err = e.b.Evict(a.ID[:7], "root", "too short")
	assert.ErrorIs(t, err, broker.ErrNotFound, "prefixes need 8 characters")
	assert.ErrorIs(t, err, broker.ErrShortPrefix)
	ended, err := e.b.Evict(a.ID[:8], "root", "hogging the lab")
	require.NoError(t, err)
	assert.Equal(t, api.OutcomeEvicted, ended.Outcome)
	assert.Equal(t, "evicted by root: hogging the lab", ended.Reason)

	_, err = e.b.Gate(a.ID)
	var gone *broker.EndedError
	require.ErrorAs(t, err, &gone)
	assert.Equal(t, "evicted by root: hogging the lab", gone.Session.Reason)
	got, err := e.b.Session(w.ID)
	require.NoError(t, err)
	assert.Equal(t, queue.Active, got.Status)
	assert.Empty(t, e.b.Manager().Status().Holders, "its references dropped")

	entries := e.audit.all()
	require.Len(t, entries, 1)
	assert.Equal(t, "root", entries[0].Actor)
	assert.Equal(t, api.OutcomeEvicted, entries[0].Action)
	assert.Equal(t, "alice", entries[0].Owner)
}

func TestEvictAmbiguousPrefix(t *testing.T) {
	// Two saved sessions whose ids share their first 8 characters.
	st := newMemStore()
	for i, id := range []string{"abcdefgh-0001", "abcdefgh-0002", "abcdefgz-0003"} {
		st.PutSession(broker.SavedSession{ID: id, Seq: uint64(i + 1), Owner: "x", Created: time.Now()})
	}
	e := newEnv(t, nil, withStore(st))
	_, err := e.b.Evict("abcdefgh", "root", "x")
	assert.ErrorIs(t, err, broker.ErrAmbiguous)
	assert.Equal(t, 3, e.b.Len(), "nothing evicted")
	ended, err := e.b.Evict("abcdefgh-0002", "root", "x")
	require.NoError(t, err, "a full id is never ambiguous")
	assert.Equal(t, "abcdefgh-0002", ended.ID)
	ended, err = e.b.Evict("abcdefgh", "root", "x")
	require.NoError(t, err, "now the prefix is unique")
	assert.Equal(t, "abcdefgh-0001", ended.ID)
	_, err = e.b.Evict("zzzzzzzz", "root", "x")
	assert.ErrorIs(t, err, broker.ErrNotFound)
}

// Evicting a session while its netlab up runs interrupts the up; the
// evicted client gets its reason.
func TestEvictDuringUp(t *testing.T) {
	entered := make(chan struct{})
	var first sync.Once
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, _ lab.Spec) error {
		blocked := false
		first.Do(func() { blocked = true })
		if !blocked {
			return nil
		}
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}}
	e := newEnv(t, runner)
	a := e.join("alice")
	w := e.join("bob")
	done := make(chan error, 1)
	go func() {
		_, err := e.acquire(a.ID, topoA)
		done <- err
	}()
	<-entered
	_, err := e.b.Evict(a.ID, "root", "maintenance")
	require.NoError(t, err)
	err = <-done
	var gone *broker.EndedError
	require.ErrorAs(t, err, &gone)
	assert.Equal(t, "evicted by root: maintenance", gone.Session.Reason)
	assert.Equal(t, lab.StateNone, e.b.Manager().Status().State, "the partial start was cleaned up")

	res, err := e.acquire(w.ID, topoA)
	require.NoError(t, err, "the next holder gets a clean lab")
	assert.False(t, res.Reused)
}

func TestOperationsOfOneSessionAreSerialised(t *testing.T) {
	e := newEnv(t, nil)
	a := e.join("alice")
	op, err := e.b.Begin(a.ID)
	require.NoError(t, err)
	_, err = e.b.Begin(a.ID)
	assert.ErrorIs(t, err, broker.ErrOperationRunning)
	op.End()
	w := e.join("bob")
	_, err = e.b.Begin(w.ID)
	assert.ErrorIs(t, err, broker.ErrNotActive)
}

func TestDrain(t *testing.T) {
	e := newEnv(t, nil)
	a := e.join("alice")
	w := e.join("bob")
	e.b.Drain("root")
	ready, reason := e.b.Ready()
	assert.False(t, ready)
	assert.Contains(t, reason, "draining")
	require.NoError(t, e.b.Leave(a.ID))
	got, err := e.b.Session(w.ID)
	require.NoError(t, err)
	assert.Equal(t, queue.Waiting, got.Status, "nobody is promoted while draining")
	assert.True(t, e.b.Queue().Draining)
	e.b.Resume("root")
	got, err = e.b.Session(w.ID)
	require.NoError(t, err)
	assert.Equal(t, queue.Active, got.Status)
	ready, _ = e.b.Ready()
	assert.True(t, ready)
	assert.Equal(t, []string{"drain", "resume"}, e.audit.actions())
}

// An audit entry that cannot be written does not stop the action, but
// makes the host not ready until an entry is written again.
func TestAuditFailureMakesNotReady(t *testing.T) {
	e := newEnv(t, nil)
	e.audit.setFail(errors.New("open audit log: permission denied"))
	e.b.Drain("root")
	ready, reason := e.b.Ready()
	assert.False(t, ready)
	assert.True(t, e.b.Queue().Draining, "the action happened")
	e.b.Resume("root")
	ready, reason = e.b.Ready()
	assert.False(t, ready)
	assert.Equal(t, "audit log not written: open audit log: permission denied", reason)

	e.audit.setFail(nil)
	e.b.Drain("root")
	e.b.Resume("root")
	ready, reason = e.b.Ready()
	assert.True(t, ready, reason)
	assert.Equal(t, []string{"drain", "resume"}, e.audit.actions())
}

func TestChangedWakesOnJoin(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.b.Changed()
	select {
	case <-ch:
		t.Fatal("changed before any change")
	default:
	}
	e.join("alice")
	<-ch
}

func TestQuarantineAfterFailedTeardowns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		failing.Store(true)
		runner := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
			if failing.Load() {
				return errors.New("containerlab destroy failed")
			}
			return nil
		}}
		e := newEnv(t, runner, func(c *broker.Config) { c.QuarantineBackoff = time.Minute })
		s := e.join("alice")
		topos := []string{topoA, topoB, topoC, topoA}
		for i := range 3 {
			_, err := e.acquire(s.ID, topos[i])
			if i == 0 {
				require.NoError(t, err)
			} else {
				require.Error(t, err, "switching needs a teardown, which fails")
			}
			op, err := e.b.Begin(s.ID)
			require.NoError(t, err)
			_ = op.Release() // no lab while dirty
			op.End()
		}
		// Teardowns so far: the switch from a (fails), the dirty retry
		// before c (fails); one more makes three.
		_, err := e.acquire(s.ID, topoA)
		require.Error(t, err)
		_, err = e.acquire(s.ID, topoA)
		var qe *broker.QuarantineError
		require.ErrorAs(t, err, &qe, "quarantined after 3 failed teardowns")
		assert.ErrorIs(t, err, broker.ErrQuarantined)
		assert.Contains(t, qe.Reason, "containerlab destroy failed")
		ready, reason := e.b.Ready()
		assert.False(t, ready)
		assert.Contains(t, reason, "quarantined")
		require.NotNil(t, e.b.Queue().Quarantine)
		assert.Contains(t, e.audit.actions(), "quarantine")

		// The first retry fails (still broken), the second, two minutes
		// later, succeeds and lifts the quarantine.
		time.Sleep(time.Minute)
		synctest.Wait()
		require.NotNil(t, e.b.Queue().Quarantine)
		failing.Store(false)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		assert.Nil(t, e.b.Queue().Quarantine)
		assert.Equal(t, "unquarantine", e.audit.actions()[len(e.audit.actions())-1])
		_, err = e.acquire(s.ID, topoA)
		assert.NoError(t, err)
		e.close()
	})
}

func TestQuarantineNeedsDifferentTopologies(t *testing.T) {
	runner := &remotelabtest.FakeRunner{UpHook: func(context.Context, lab.Spec) error {
		return errors.New("Fatal error in netlab: boom")
	}}
	e := newEnv(t, runner)
	s := e.join("alice")
	for range 5 {
		_, err := e.acquire(s.ID, topoA)
		var re *lab.RunnerError
		require.ErrorAs(t, err, &re, "one broken topology never quarantines the host")
	}
	_, err := e.acquire(s.ID, topoB)
	require.Error(t, err)
	_, err = e.acquire(s.ID, topoC)
	require.Error(t, err)
	_, err = e.acquire(s.ID, topoA)
	assert.ErrorIs(t, err, broker.ErrQuarantined, "three different topologies failed in a row")

	assert.True(t, e.b.Unquarantine("root"))
	assert.False(t, e.b.Unquarantine("root"))
	_, err = e.acquire(s.ID, topoA)
	var re *lab.RunnerError
	assert.ErrorAs(t, err, &re, "lab work is tried again")
}

func TestRestoreFromStore(t *testing.T) {
	st := newMemStore()
	runner := &remotelabtest.FakeRunner{}
	e := newEnv(t, runner, withStore(st))
	a := e.join("alice")
	var waiters []broker.Session
	for i := range 5 {
		waiters = append(waiters, e.join(fmt.Sprintf("w%d", i)))
	}
	res, err := e.acquire(a.ID, topoA)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	gone := e.join("gone")
	require.NoError(t, e.b.Leave(gone.ID))
	e.close() // SIGTERM: keeps queue and lab

	assert.Len(t, runner.Calls(), 1, "the lab was kept: no down")
	e2 := newEnv(t, runner, withStore(st))
	v := e2.b.Queue()
	require.NotNil(t, v.Holder)
	assert.Equal(t, a.ID, v.Holder.ID)
	assert.Equal(t, uint64(1), v.Holder.Epoch, "same epoch")
	require.Len(t, v.Waiting, 5)
	for i, w := range v.Waiting {
		assert.Equal(t, waiters[i].ID, w.ID, "same order")
		assert.Equal(t, fmt.Sprintf("w%d", i), w.Owner)
	}
	assert.Equal(t, lab.StateRunning, v.Lab.State, "the lab was adopted")
	assert.Equal(t, map[string]int{a.ID: 1}, v.Lab.Holders, "references survive")
	res, err = e2.acquire(a.ID, topoA)
	require.NoError(t, err)
	assert.True(t, res.Reused, "no up after the restart")
	assert.Len(t, runner.Calls(), 1)

	_, err = e2.b.Session(gone.ID)
	var ended *broker.EndedError
	require.ErrorAs(t, err, &ended, "the memory of ended sessions survives too")

	require.NoError(t, e2.b.Leave(a.ID))
	got, err := e2.b.Session(waiters[0].ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), got.Epoch, "epochs continue")
}
