package broker_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
)

// TestRestoreKeepsTheOrderOfConcurrentJoins: sessions that joined at the
// same time come back from the Store in the order the queue gave them,
// not in the order their joins started (the load harness's restart
// scenario found two of 10 000 swapped).
func TestRestoreKeepsTheOrderOfConcurrentJoins(t *testing.T) {
	st := newMemStore()
	e := newEnv(t, nil, withStore(st))
	const workers, each = 8, 250
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := e.b.Join(broker.Meta{Owner: fmt.Sprintf("w%d-%d", w, i)})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	before := e.b.Queue()
	require.Len(t, before.Waiting, workers*each-1)
	e.close()

	e2 := newEnv(t, nil, withStore(st))
	after := e2.b.Queue()
	require.NotNil(t, after.Holder)
	assert.Equal(t, before.Holder.ID, after.Holder.ID)
	require.Len(t, after.Waiting, len(before.Waiting))
	swapped := 0
	for i := range before.Waiting {
		if before.Waiting[i].ID != after.Waiting[i].ID {
			swapped++
		}
	}
	assert.Zero(t, swapped, "sessions out of their queue order after the restore")
}

// TestRefreshKeepsASessionAlive: Refresh (a heartbeat) restarts the idle
// clock like Touch, and reports a session that is gone as Touch does.
func TestRefreshKeepsASessionAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil, func(c *broker.Config) { c.ActiveTTL = 90 * time.Second })
		a := e.join("alice")
		for range 3 {
			time.Sleep(60 * time.Second)
			require.NoError(t, e.b.Refresh(a.ID))
		}
		synctest.Wait()
		got, err := e.b.Session(a.ID)
		require.NoError(t, err, "alive after 180 s with a refresh every 60 s")
		assert.Equal(t, a.ID, got.ID)

		time.Sleep(91 * time.Second)
		synctest.Wait()
		err = e.b.Refresh(a.ID)
		var ended *broker.EndedError
		require.ErrorAs(t, err, &ended)
		assert.Equal(t, "expired", ended.Session.Outcome)
		assert.True(t, errors.Is(e.b.Refresh("no-such-session"), broker.ErrNotFound))
		e.close()
	})
}
