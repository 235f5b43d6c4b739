package store

// White-box tests: a hook fails or holds commits, and synctest stands in
// for the retry backoff's clock (the file I/O is real).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/lab"
)

var errDisk = errors.New("injected: no space left on device")

// disk is a commit hook: it fails commits while failing is set and holds
// them on gate while hold is set.
type disk struct {
	failing atomic.Bool
	hold    atomic.Bool
	gate    chan struct{}
}

func (d *disk) commit() error {
	if d.hold.Load() {
		<-d.gate
	}
	if d.failing.Load() {
		return errDisk
	}
	return nil
}

// openHooked opens a store at a new path whose commits go through d.
func openHooked(t *testing.T, d *disk) (*Store, string, *testutil.Buffer) {
	t.Helper()
	var logs testutil.Buffer
	path := filepath.Join(t.TempDir(), "state.db")
	s, _, err := Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	d.gate = make(chan struct{})
	s.mu.Lock()
	s.failCommit = d.commit
	s.mu.Unlock()
	return s, path, &logs
}

// closeAndLoad closes s and loads the file at path.
func closeAndLoad(t *testing.T, s *Store, path string) *broker.State {
	t.Helper()
	_ = s.Close()
	s, st, err := Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return st
}

func sess(id string) broker.SavedSession {
	return broker.SavedSession{ID: id, Owner: "o", Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func end(i int) broker.Ended {
	return broker.Ended{ID: fmt.Sprintf("e%05d", i), Owner: "o", Outcome: "closed"}
}

func ids(sessions []broker.SavedSession) []string {
	var out []string
	for _, s := range sessions {
		out = append(out, s.ID)
	}
	return out
}

func TestFailedCommitsRetriedInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, path, logs := openHooked(t, &d)
		s.PutSession(sess("kept"))
		s.AddEnded(end(0))
		require.NoError(t, s.Sync(t.Context()))

		d.failing.Store(true)
		s.PutSession(sess("x"))
		s.DeleteSession("x")
		s.DeleteSession("kept")
		s.PutSession(sess("y"))
		s.AddEnded(end(1))
		s.AddEnded(end(2))
		s.PutEpoch(5)
		require.ErrorIs(t, s.Sync(t.Context()), errDisk)
		require.ErrorIs(t, s.Err(), errDisk)
		// Nothing new: Sync reports the failure at once.
		require.ErrorIs(t, s.Sync(t.Context()), errDisk)
		// A new change is tried at once, not after the backoff.
		start := time.Now()
		s.AddEnded(end(3))
		s.PutEpoch(6)
		require.ErrorIs(t, s.Sync(t.Context()), errDisk)
		assert.Equal(t, start, time.Now(), "no backoff for a new change")

		// The disk works again: the backoff's retry saves it all.
		d.failing.Store(false)
		time.Sleep(retryMax)
		synctest.Wait()
		require.NoError(t, s.Err())
		require.NoError(t, s.Sync(t.Context()))

		// Ended sessions are numbered from the file: a failed commit
		// leaves no gap.
		var keys []uint64
		require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEnded).ForEach(func(k, _ []byte) error {
				keys = append(keys, binary.BigEndian.Uint64(k))
				return nil
			})
		}))
		assert.Equal(t, []uint64{1, 2, 3, 4}, keys)

		st := closeAndLoad(t, s, path)
		assert.Equal(t, []string{"y"}, ids(st.Sessions))
		assert.Equal(t, []broker.Ended{end(0), end(1), end(2), end(3)}, st.Ended)
		assert.Equal(t, uint64(6), st.LastEpoch)
		assert.Len(t, regexp.MustCompile(`level=ERROR msg="Cannot save the state; retrying" err="`+errDisk.Error()).
			FindAllString(logs.String(), -1), 1, "one ERROR line per failure period:\n%s", logs)
		assert.Contains(t, logs.String(), `level=INFO msg="State store saves again"`)
	})
}

// TestOneBatchPutThenDelete holds the writer in a commit, so that the
// changes after it form one batch.
func TestOneBatchPutThenDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, path, _ := openHooked(t, &d)
		d.hold.Store(true)
		s.PutSession(sess("a"))
		synctest.Wait() // the writer holds [a]
		s.PutSession(sess("x"))
		s.DeleteSession("x")
		s.DeleteSession("y")
		s.PutSession(sess("y"))
		s.mu.Lock()
		assert.Len(t, s.pending, 4, "one batch next")
		s.mu.Unlock()
		d.hold.Store(false)
		close(d.gate)
		require.NoError(t, s.Sync(t.Context()))
		assert.ElementsMatch(t, []string{"a", "y"}, ids(closeAndLoad(t, s, path).Sessions))
	})
}

// TestSyncGivesUpWithContext: a Sync waiting for a slow commit returns
// when its context ends; the change is still saved.
func TestSyncGivesUpWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, path, _ := openHooked(t, &d)
		d.hold.Store(true)
		s.PutSession(sess("a"))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, s.Sync(ctx), context.DeadlineExceeded)
		d.hold.Store(false)
		close(d.gate)
		require.NoError(t, s.Sync(t.Context()))
		assert.Equal(t, []string{"a"}, ids(closeAndLoad(t, s, path).Sessions))
	})
}

// TestLabRecordSaveReportsFailure: the lab manager must learn that its
// record is not on disk.
func TestLabRecordSaveReportsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, path, _ := openHooked(t, &d)
		records := s.LabRecords()
		d.failing.Store(true)
		rec := lab.Record{Dir: "/lab", Topology: "t.yml", State: lab.StateStarting}
		require.ErrorIs(t, records.Save(rec), errDisk)
		require.ErrorIs(t, records.Delete(), errDisk)
		d.failing.Store(false)
		start := time.Now()
		require.NoError(t, records.Save(rec))
		assert.Equal(t, start, time.Now(), "tried at once, not after the backoff")
		s.Close()
		s, _, err := Open(path, nil)
		require.NoError(t, err)
		defer s.Close()
		got, err := s.LabRecords().Load()
		require.NoError(t, err)
		assert.Equal(t, &rec, got)
	})
}

func TestCloseDoesNotWaitOutAFailingDisk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, path, _ := openHooked(t, &d)
		s.PutSession(sess("saved"))
		require.NoError(t, s.Sync(t.Context()))
		d.failing.Store(true)
		s.PutSession(sess("lost"))
		require.ErrorIs(t, s.Sync(t.Context()), errDisk)

		start := time.Now()
		require.ErrorIs(t, s.Close(), errDisk, "one more attempt")
		assert.Equal(t, start, time.Now(), "Close does not wait for the backoff")
		err := s.Sync(t.Context())
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, err, errDisk)

		assert.Equal(t, []string{"saved"}, ids(closeAndLoad(t, s, path).Sessions))
	})
}

// TestSyncAfterCloseDoesNotHang: a change handed over while a commit that
// then fails runs, and Close in between. Sync for it used to wait for a
// commit that never came.
func TestSyncAfterCloseDoesNotHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, _, _ := openHooked(t, &d)
		d.failing.Store(true)
		d.hold.Store(true)
		s.PutSession(sess("a"))
		synctest.Wait() // the writer holds [a]
		s.PutSession(sess("b"))
		closed := make(chan error)
		go func() { closed <- s.Close() }()
		synctest.Wait() // Close waits for the writer
		close(d.gate)
		require.ErrorIs(t, <-closed, errDisk)

		// A deadlock here fails the bubble.
		err := s.Sync(t.Context())
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, err, errDisk)
	})
}

// TestGiveUp: the backlog overflows while a commit runs; that commit then
// succeeds, but the store keeps reporting that it gave up, and Sync never
// claims the dropped changes durable.
func TestGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d disk
		s, path, logs := openHooked(t, &d)
		s.mu.Lock()
		s.maxBacklog = 2
		s.mu.Unlock()
		d.failing.Store(true)
		s.PutSession(sess("a"))
		require.ErrorIs(t, s.Sync(t.Context()), errDisk)
		d.hold.Store(true)
		s.PutSession(sess("b"))
		synctest.Wait() // the writer holds [a b]
		s.PutSession(sess("c"))
		s.PutSession(sess("d"))
		s.PutSession(sess("e")) // a third pending change: too many
		require.ErrorContains(t, s.Err(), "gave up saving after 2 unsaved changes")
		require.ErrorIs(t, s.Err(), errDisk)
		assert.Contains(t, logs.String(), `level=ERROR msg="State store gave up saving"`)

		d.failing.Store(false)
		d.hold.Store(false)
		close(d.gate)
		synctest.Wait() // [a b] committed
		time.Sleep(retryMax)
		s.PutSession(sess("f"))
		require.ErrorContains(t, s.Sync(t.Context()), "gave up")
		require.ErrorContains(t, s.Err(), "gave up")
		require.ErrorContains(t, s.Close(), "gave up")
		assert.Equal(t, []string{"a", "b"}, ids(closeAndLoad(t, s, path).Sessions))
	})
}

func TestEndedTrimmedToMemory(t *testing.T) {
	var d disk
	s, path, _ := openHooked(t, &d)
	const extra = 1234
	for i := range broker.EndedMemory + extra {
		s.AddEnded(end(i))
		if i%3000 == 0 {
			require.NoError(t, s.Sync(t.Context())) // several commits
		}
	}
	require.NoError(t, s.Sync(t.Context()))
	var n int
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEnded).Stats().KeyN
		return nil
	}))
	assert.Equal(t, broker.EndedMemory, n, "the file keeps EndedMemory of them")
	st := closeAndLoad(t, s, path)
	require.Len(t, st.Ended, broker.EndedMemory)
	assert.Equal(t, end(extra), st.Ended[0])
	assert.Equal(t, end(broker.EndedMemory+extra-1), st.Ended[len(st.Ended)-1])
}
