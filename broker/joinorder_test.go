package broker_test

import (
	"fmt"
	"sync"
	"testing"

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
