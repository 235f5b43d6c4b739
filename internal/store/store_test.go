package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/store"
	"github.com/remotelab-go/remotelab/lab"
)

func TestNewFileHasEmptyState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, st := openStore(t, path)
	assert.Equal(t, &broker.State{}, st)
	rec, err := s.LabRecords().Load()
	require.NoError(t, err)
	assert.Nil(t, rec)
	require.NoError(t, s.Err())
	require.NoError(t, s.Sync(t.Context()))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)

	waiting := session("waiting-1", 7)
	active := activeSession("active-1", 3, 41)
	bare := broker.SavedSession{ID: "bare", Seq: 9, Owner: "bob", Created: at(0)} // no labels, limits or lab
	s.PutSession(waiting)
	s.PutSession(active)
	s.PutSession(bare)
	s.PutEpoch(41)
	s.PutPaused(true)
	q := &broker.Quarantine{Since: at(3 * time.Hour), Reason: "teardown failed 3 times: exit status 1"}
	s.PutQuarantine(q)
	for i := range 5 {
		s.AddEnded(ended(i))
	}
	neverHeld := ended(5) // waited, never promoted, no labels
	neverHeld.Promoted, neverHeld.Lab, neverHeld.Labels = time.Time{}, nil, nil
	neverHeld.Outcome, neverHeld.Reason = "wait_timeout", "waited longer than 90s"
	s.AddEnded(neverHeld)
	rec := labRecord()
	require.NoError(t, s.LabRecords().Save(rec))
	require.NoError(t, s.Sync(t.Context()))

	s, st := reopen(t, s, path)
	assert.ElementsMatch(t, []broker.SavedSession{waiting, active, bare}, st.Sessions)
	assert.Equal(t, uint64(41), st.LastEpoch)
	assert.True(t, st.Paused)
	assert.Equal(t, q, st.Quarantine)
	want := []broker.Ended{ended(0), ended(1), ended(2), ended(3), ended(4), neverHeld}
	assert.Equal(t, want, st.Ended, "ended sessions, oldest first")
	got, err := s.LabRecords().Load()
	require.NoError(t, err)
	assert.Equal(t, &rec, got)

	// Lifting and clearing round-trip too.
	s.PutPaused(false)
	s.PutQuarantine(nil)
	s.DeleteSession("waiting-1")
	require.NoError(t, s.LabRecords().Delete())
	s, st = reopen(t, s, path)
	assert.ElementsMatch(t, []broker.SavedSession{active, bare}, st.Sessions)
	assert.False(t, st.Paused)
	assert.Nil(t, st.Quarantine)
	assert.Len(t, st.Ended, 6)
	got, err = s.LabRecords().Load()
	require.NoError(t, err)
	assert.Nil(t, got)
}

func TestOrderAcrossBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	ctx := t.Context()

	// Each Sync ends a batch: put, then delete in a later commit.
	s.PutSession(session("a", 1))
	require.NoError(t, s.Sync(ctx))
	s.DeleteSession("a")
	require.NoError(t, s.Sync(ctx))
	// Delete, then put again in a later commit.
	s.PutSession(session("b", 2))
	require.NoError(t, s.Sync(ctx))
	s.DeleteSession("b")
	require.NoError(t, s.Sync(ctx))
	s.PutSession(activeSession("b", 2, 5))
	require.NoError(t, s.Sync(ctx))
	// Changes without a Sync between them, whichever batches they land
	// in: the last one wins.
	for i := range 50 {
		s.PutSession(session("c", uint64(i)))
		s.DeleteSession("c")
	}
	for i := range 50 {
		s.DeleteSession("d")
		s.PutSession(session("d", uint64(i)))
	}
	for epoch := range uint64(100) {
		s.PutEpoch(epoch)
	}

	_, st := reopen(t, s, path)
	assert.ElementsMatch(t, []broker.SavedSession{activeSession("b", 2, 5), session("d", 49)}, st.Sessions)
	assert.Equal(t, uint64(99), st.LastEpoch)
}

// model is what a store should hold after a sequence of changes.
type model struct {
	mu         sync.Mutex // orders the shared changes: call and model update together
	sessions   map[string]broker.SavedSession
	epoch      uint64
	paused     bool
	quarantine *broker.Quarantine
	ended      []broker.Ended
}

// TestConcurrentChangesMatchModel hammers the store from many goroutines,
// each syncing now and then, and compares the reopened file with a model
// of the changes in call order.
func TestConcurrentChangesMatchModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	m := &model{sessions: map[string]broker.SavedSession{}}
	const goroutines, changes = 16, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			mine := map[string]broker.SavedSession{} // this goroutine's sessions, in its own order
			for i := range changes {
				id := fmt.Sprintf("g%02d-%02d", g, rng.IntN(10))
				switch rng.IntN(10) {
				case 0, 1, 2:
					ss := session(id, uint64(i))
					if rng.IntN(2) == 0 {
						ss = activeSession(id, uint64(i), uint64(g))
					}
					s.PutSession(ss)
					mine[id] = ss
				case 3, 4:
					s.DeleteSession(id)
					delete(mine, id)
				case 5:
					m.mu.Lock()
					m.epoch++
					s.PutEpoch(m.epoch)
					m.mu.Unlock()
				case 6:
					m.mu.Lock()
					m.paused = !m.paused
					s.PutPaused(m.paused)
					m.mu.Unlock()
				case 7:
					m.mu.Lock()
					e := ended(len(m.ended))
					m.ended = append(m.ended, e)
					s.AddEnded(e)
					m.mu.Unlock()
				case 8:
					m.mu.Lock()
					if m.quarantine == nil {
						m.quarantine = &broker.Quarantine{Since: at(0), Reason: id}
					} else {
						m.quarantine = nil
					}
					s.PutQuarantine(m.quarantine)
					m.mu.Unlock()
				case 9:
					assert.NoError(t, s.Sync(t.Context()))
				}
			}
			m.mu.Lock()
			for id, ss := range mine {
				m.sessions[id] = ss
			}
			m.mu.Unlock()
		})
	}
	wg.Wait()

	_, st := reopen(t, s, path)
	var want []broker.SavedSession
	for _, ss := range m.sessions {
		want = append(want, ss)
	}
	assert.ElementsMatch(t, want, st.Sessions)
	assert.Equal(t, m.epoch, st.LastEpoch)
	assert.Equal(t, m.paused, st.Paused)
	assert.Equal(t, m.quarantine, st.Quarantine)
	assert.Equal(t, m.ended, st.Ended)
	t.Logf("%d sessions, epoch %d, %d ended", len(want), m.epoch, len(m.ended))
}

// snapshot copies the file at path as it is on disk now, as a crash
// would leave it, and loads the copy.
func snapshot(t *testing.T, path string) (*store.Store, *broker.State) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	cp := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(cp, data, 0o600))
	return openStore(t, cp)
}

func TestSyncedChangesAreInTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	for i := range 20 {
		s.PutSession(session(fmt.Sprint(i), uint64(i)))
	}
	s.PutEpoch(20)
	require.NoError(t, s.Sync(t.Context()))
	_, st := snapshot(t, path)
	assert.Len(t, st.Sessions, 20)
	assert.Equal(t, uint64(20), st.LastEpoch)
}

func TestLabRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	records := s.LabRecords()

	rec := labRecord()
	require.NoError(t, records.Save(rec))
	// Durable when Save returns: a copy of the file has it.
	snap, _ := snapshot(t, path)
	got, err := snap.LabRecords().Load()
	require.NoError(t, err)
	assert.Equal(t, &rec, got)

	// Load gives the latest save, as a copy of its own.
	rec.State, rec.Holders = lab.StateIdle, nil
	require.NoError(t, records.Save(rec))
	got, err = records.Load()
	require.NoError(t, err)
	assert.Equal(t, &rec, got)
	got.Devices[0].Name = "changed"
	again, err := records.Load()
	require.NoError(t, err)
	assert.Equal(t, "r1", again.Devices[0].Name)

	require.NoError(t, records.Delete())
	snap, _ = snapshot(t, path)
	got, err = snap.LabRecords().Load()
	require.NoError(t, err)
	assert.Nil(t, got, "deleted when Delete returns")
	got, err = records.Load()
	require.NoError(t, err)
	assert.Nil(t, got)
}

func TestCloseSavesBufferedChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	for i := range 100 {
		s.PutSession(session(fmt.Sprint(i), uint64(i)))
	}
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close")

	// Changes after Close are refused, and Sync and Save say so.
	s.PutEpoch(7)
	assert.ErrorIs(t, s.Sync(t.Context()), store.ErrClosed)
	assert.ErrorIs(t, s.LabRecords().Save(labRecord()), store.ErrClosed)

	_, st := openStore(t, path)
	assert.Len(t, st.Sessions, 100)
	assert.Zero(t, st.LastEpoch)
}

func TestUnavailable(t *testing.T) {
	cause := errors.New("open state: read-only file system")
	s := store.Unavailable(cause)
	assert.Equal(t, cause, s.Err())
	s.PutSession(session("a", 1))
	s.AddEnded(ended(1))
	assert.Equal(t, cause, s.Sync(t.Context()))
	records := s.LabRecords()
	rec, err := records.Load()
	require.NoError(t, err)
	assert.Nil(t, rec)
	assert.ErrorIs(t, records.Save(labRecord()), cause)
	assert.ErrorIs(t, records.Delete(), cause)
	assert.NoError(t, s.Close())
}

// TestGroupCommit has 200 clients each save a change and wait for it: they
// share far fewer commits. bbolt numbers its write transactions, so the
// file's transaction id counts the commits.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	require.NoError(t, s.Close())
	before := txid(t, path)

	s, _ = openStore(t, path)
	const clients = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			<-start
			s.PutSession(session(fmt.Sprint(i), uint64(i)))
			assert.NoError(t, s.Sync(t.Context()))
		})
	}
	close(start)
	wg.Wait()
	s, st := reopen(t, s, path)
	assert.Len(t, st.Sessions, clients)
	require.NoError(t, s.Close())
	commits := txid(t, path) - before
	t.Logf("%d changes in %d commits", clients, commits)
	assert.Positive(t, commits)
	assert.LessOrEqual(t, commits, clients/4, "far fewer commits than changes")
}

// txid reads the id of the last transaction committed to the file at
// path, which must not be open.
func txid(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer db.Close()
	var id int
	require.NoError(t, db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }))
	return id
}
