package store_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/store"
)

// fillDisk writes a file in dir until the file system is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, syscall.ENOSPC)
	return path
}

// TestFullDisk runs the store on a small tmpfs that fills up: commits
// fail, the changes are kept in order, and the retry after the backoff
// (synctest's clock; the file system is real) saves them once space is
// freed.
func TestFullDisk(t *testing.T) {
	dir := mountTmpfs(t, 0, "size=256k")
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(dir, "state.db")
		log, logs := testLogger()
		s, _, err := store.Open(path, log)
		require.NoError(t, err)
		defer s.Close()
		s.PutSession(session("before", 1))
		require.NoError(t, s.Sync(t.Context()))

		filler := fillDisk(t, dir)
		big := session("big", 2)
		big.Labels["notes"] = strings.Repeat("x", 100<<10) // needs new pages
		s.PutSession(big)
		s.PutSession(session("gone", 3))
		s.DeleteSession("gone")
		s.DeleteSession("before")
		s.AddEnded(ended(1))
		s.PutEpoch(9)
		require.ErrorIs(t, s.Sync(t.Context()), syscall.ENOSPC)
		require.ErrorIs(t, s.Err(), syscall.ENOSPC)
		assert.Contains(t, logs.String(), `level=ERROR msg="Cannot save the state; retrying"`)

		// Space freed: the next retry commits everything, in order.
		require.NoError(t, os.Remove(filler))
		time.Sleep(store.RetryMax)
		synctest.Wait()
		require.NoError(t, s.Err())
		require.NoError(t, s.Sync(t.Context()))
		assert.Contains(t, logs.String(), `level=INFO msg="State store saves again"`)

		s, st := reopen(t, s, path)
		defer s.Close()
		assert.Equal(t, []broker.SavedSession{big}, st.Sessions)
		assert.Equal(t, []broker.Ended{ended(1)}, st.Ended)
		assert.Equal(t, uint64(9), st.LastEpoch)
	})
}

// TestFullDiskAtOpen: a new state file on a full file system cannot be
// created; Open says so and moves nothing. Once there is space, it opens.
func TestFullDiskAtOpen(t *testing.T) {
	dir := mountTmpfs(t, 0, "size=64k")
	filler := fillDisk(t, dir)
	path := filepath.Join(dir, "state.db")
	_, _, err := store.Open(path, nil)
	require.ErrorIs(t, err, syscall.ENOSPC)
	isAside := func(name string) bool { return strings.HasPrefix(name, "state.db.corrupt-") }
	assert.False(t, slices.ContainsFunc(dirNames(t, dir), isAside), "nothing moved aside")

	fi, err := os.Stat(path)
	if err == nil {
		t.Logf("left behind: a state.db of %d bytes", fi.Size())
	}
	require.NoError(t, os.Remove(filler))
	s, st := openStore(t, path)
	assert.Equal(t, &broker.State{}, st)
	s.PutSession(session("a", 1))
	require.NoError(t, s.Sync(t.Context()))
}
