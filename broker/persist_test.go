package broker_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
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
