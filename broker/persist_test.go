package broker_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// hookStore is a memStore that can run a function just before it stores
// a session, to place a concurrent change exactly there.
type hookStore struct {
	*memStore
	mu    sync.Mutex
	onPut func(broker.SavedSession)
}

func (h *hookStore) PutSession(s broker.SavedSession) {
	h.mu.Lock()
	f := h.onPut
	h.onPut = nil
	h.mu.Unlock()
	if f != nil {
		f(s)
	}
	h.memStore.PutSession(s)
}

func (h *hookStore) arm(f func(broker.SavedSession)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onPut = f
}

// A session that leaves while its acquire saves what it got must not come
// back from the store: the acquire's save must not land after the
// removal, or the next start restores a session that ended (as the
// holder, blocking the queue for a whole active TTL).
func TestAcquireRacingLeaveLeavesNoGhostInTheStore(t *testing.T) {
	ms := newMemStore()
	hs := &hookStore{memStore: ms}
	e := newEnv(t, nil, func(c *broker.Config) {
		c.Store = hs
		c.Lab.Records = ms
		c.Lab.KeepOnClose = true
	})
	a := e.join("alice")
	w := e.join("bob")
	hs.arm(func(s broker.SavedSession) {
		require.Equal(t, a.ID, s.ID, "the acquire saves its session")
		require.NoError(t, e.b.Leave(a.ID)) // the client closes meanwhile
	})
	_, err := e.acquire(a.ID, topoA)
	var ended *broker.EndedError
	require.ErrorAs(t, err, &ended, "the acquire learns that its session ended")
	assert.Equal(t, "closed", ended.Session.Outcome)

	var ids []string
	for _, s := range ms.state().Sessions {
		ids = append(ids, s.ID)
	}
	assert.Equal(t, []string{w.ID}, ids, "only the live session is saved")
	assert.Empty(t, e.b.Manager().Status().Holders, "the ended session holds nothing")
}

// A startup cleanup cut short by its deadline (a netlab down slower than
// the daemon's recovery budget) is reported by Start, but the Broker is
// started all the same: the saved queue is back, sessions can join, and
// the lab is kept dirty. (Start used to return before rebuilding the
// queue, and remotelabd then served a Broker whose every call panicked.)
func TestStartCutShortStillStarts(t *testing.T) {
	ms := newMemStore()
	work := t.TempDir()
	dir, err := os.MkdirTemp(work, "remotelab-lab-*")
	require.NoError(t, err)
	ms.lab = &lab.Record{Dir: dir, Fingerprint: "f", Topology: "lab.yml", State: lab.StateRunning}
	ms.sessions["saved-1"] = broker.SavedSession{ID: "saved-1", Seq: 1, Owner: "alice", Created: time.Now()}
	runner := &remotelabtest.FakeRunner{DownHook: func(ctx context.Context, _ string) error { return ctx.Err() }}
	b, err := broker.New(broker.Config{
		Lab: lab.Config{Runner: runner, WorkRoot: work, LockPath: "-", Records: ms,
			Logger: slog.New(slog.DiscardHandler)},
		Store: ms, Restore: ms.state(),
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec, err := b.Start(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, lab.RecoveredDirty, rec)

	v := b.Queue()
	require.NotNil(t, v.Holder, "the saved queue is back")
	assert.Equal(t, "saved-1", v.Holder.ID)
	assert.Equal(t, lab.StateDirty, v.Lab.State)
	s, err := b.Join(broker.Meta{Owner: "bob"})
	require.NoError(t, err)
	assert.Equal(t, 1, s.Position)
	ready, _ := b.Ready()
	assert.True(t, ready)
}

// gateStore is a memStore whose Sync, once closed, waits for the gate to
// open: a commit (an fsync) that is still running.
type gateStore struct {
	*memStore
	closed atomic.Bool
	gate   chan struct{}
}

func (g *gateStore) Sync(ctx context.Context) error {
	if g.closed.Load() {
		<-g.gate
	}
	return g.memStore.Sync(ctx)
}

// A session that expired is reported ended (404 with its outcome) only
// once its end is saved: a client told so closes without deleting, and a
// crash before the save would bring the session back as a ghost.
func TestEndIsSavedBeforeItIsAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ms := newMemStore()
		gs := &gateStore{memStore: ms, gate: make(chan struct{})}
		e := newEnv(t, nil, func(c *broker.Config) {
			c.Store, c.Lab.Records = gs, ms
			c.WaitingTTL = time.Minute
		})
		e.join("alice")
		w := e.join("bob")
		gs.closed.Store(true)
		release := sync.OnceFunc(func() { close(gs.gate) })
		defer release()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait() // bob expired; saving his end takes a while

		answered := make(chan error, 1)
		go func() {
			_, err := e.b.Session(w.ID)
			answered <- err
		}()
		synctest.Wait()
		select {
		case err := <-answered:
			t.Fatalf("answered %v before the end was saved", err)
		default:
		}
		release()
		var ended *broker.EndedError
		require.ErrorAs(t, <-answered, &ended)
		assert.Equal(t, "expired", ended.Session.Outcome)
		e.close()
	})
}
