package store_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/store"
)

// validFile writes a state file with n sessions (big enough for many
// pages) and returns its bytes.
func validFile(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, _ := openStore(t, path)
	for i := range n {
		s.PutSession(session(fmt.Sprintf("s%05d", i), uint64(i)))
	}
	s.PutEpoch(uint64(n))
	require.NoError(t, s.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// boltFile writes a bbolt file at a new path by fill and returns its bytes.
func boltFile(t *testing.T, fill func(tx *bolt.Tx) error) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(fill))
	require.NoError(t, db.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// pageSize is bbolt's page size of the files the tests write (the OS
// page size).
var pageSize = os.Getpagesize()

// setPageFlags overwrites the type flags of pages 2 and up (after the two
// meta pages) for which pick returns true; bbolt trusts them.
func setPageFlags(data []byte, pick func(flags uint16) bool, flags uint16) []byte {
	data = append([]byte(nil), data...)
	for off := 2 * pageSize; off+pageSize <= len(data); off += pageSize {
		f := uint16(data[off+8]) | uint16(data[off+9])<<8 // little-endian, after the 8-byte page id
		if pick(f) {
			data[off+8], data[off+9] = byte(flags), byte(flags>>8)
		}
	}
	return data
}

const leafPage = 0x02

func TestCorruptFileMovedAside(t *testing.T) {
	valid := validFile(t, 3000)
	require.Greater(t, len(valid), 16*pageSize, "the valid file spans many pages")
	random := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	cases := map[string][]byte{
		"random bytes":         random,
		"one byte":             {0},
		"truncated to half":    valid[:len(valid)/2],
		"truncated to 3 pages": valid[:3*pageSize],
		"truncated mid-page":   valid[:5*pageSize+100],
		"another layout": boltFile(t, func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("users"))
			if err != nil {
				return err
			}
			return b.Put([]byte("alice"), []byte("admin"))
		}),
		"wrong version": boltFile(t, func(tx *bolt.Tx) error {
			for _, name := range []string{"meta", "sessions", "ended"} {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte("999"))
		}),
		"no version": boltFile(t, func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("meta"))
			return err
		}),
		"sessions not JSON": boltFile(t, func(tx *bolt.Tx) error {
			for _, name := range []string{"meta", "sessions", "ended"} {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			if err := tx.Bucket([]byte("meta")).Put([]byte("version"), []byte("1")); err != nil {
				return err
			}
			return tx.Bucket([]byte("sessions")).Put([]byte("a"), []byte("{not json"))
		}),
		// bbolt panics on these: in Open (loading the free list) and
		// when our load reads the sessions.
		"all page types flipped":  setPageFlags(valid, func(uint16) bool { return true }, 0x5555),
		"leaf page types flipped": setPageFlags(valid, func(f uint16) bool { return f == leafPage }, 0x40),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			require.NoError(t, os.WriteFile(path, data, 0o600))
			log, logs := testLogger()

			s, st, err := store.Open(path, log)
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			assert.Equal(t, &broker.State{}, st, "an empty state")

			// The original bytes are kept aside, named in the ERROR line.
			names := dirNames(t, dir)
			require.Len(t, names, 2, "state.db and the corrupt copy: %q", names)
			assert.Equal(t, "state.db", names[0])
			assert.Regexp(t, `^state\.db\.corrupt-\d{8}T\d{6}Z$`, names[1])
			aside := filepath.Join(dir, names[1])
			kept, err := os.ReadFile(aside)
			require.NoError(t, err)
			assert.True(t, string(kept) == string(data), "the original bytes are preserved")
			m := regexp.MustCompile(`level=ERROR msg="The state file cannot be read; moved it aside and starting with an empty queue" path=(\S+) moved_to=(\S+) err=`).
				FindStringSubmatch(logs.String())
			require.NotNil(t, m, "ERROR line in:\n%s", logs.String())
			assert.Equal(t, path, m[1])
			assert.Equal(t, aside, m[2])

			// The new file works.
			s.PutSession(session("after", 1))
			require.NoError(t, s.Sync(t.Context()))
			_, st = reopen(t, s, path)
			assert.Equal(t, []broker.SavedSession{session("after", 1)}, st.Sessions)
			assert.Len(t, dirNames(t, dir), 2, "nothing more moved aside")
		})
	}
}

func TestCorruptAgainKeepsEveryCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	var want []string
	for i := range 3 {
		data := []byte(strings.Repeat(fmt.Sprintf("garbage %d ", i), 1000))
		want = append(want, string(data))
		require.NoError(t, os.WriteFile(path, data, 0o600))
		s, _, err := store.Open(path, nil)
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	var kept []string
	for _, name := range dirNames(t, dir) {
		if strings.HasPrefix(name, "state.db.corrupt-") {
			data, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			kept = append(kept, string(data))
		}
	}
	assert.ElementsMatch(t, want, kept, "three corrupt files (likely in the same second), three copies")
}

func TestUnopenableReadOnlyDirectory(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		dir := mountTmpfs(t, syscall.MS_RDONLY, "size=1m")
		log, logs := testLogger()
		s, st, err := store.Open(filepath.Join(dir, "state.db"), log)
		require.ErrorIs(t, err, syscall.EROFS)
		assert.Nil(t, s)
		assert.Nil(t, st)
		assert.Empty(t, dirNames(t, dir))
		assert.NotContains(t, logs.String(), "moved it aside")
	})
	t.Run("with a state file", func(t *testing.T) {
		dir := mountTmpfs(t, 0, "size=1m")
		path := filepath.Join(dir, "state.db")
		s, _ := openStore(t, path)
		s.PutSession(session("a", 1))
		require.NoError(t, s.Close())
		before, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=1m"))

		s, st, err := store.Open(path, nil)
		require.ErrorIs(t, err, syscall.EROFS)
		assert.Nil(t, s)
		assert.Nil(t, st)
		assert.Equal(t, []string{"state.db"}, dirNames(t, dir), "nothing renamed")
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.True(t, string(before) == string(after), "the file is unchanged")
	})
}

// TestOpenWaitsForBboltLock: a file another process holds is an error, not
// a corrupt file.
func TestOpenLockedFileIsAnError(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: waits out the open timeout (5 s)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	openStore(t, path) // holds bbolt's lock
	start := time.Now()
	_, _, err := store.Open(path, nil)
	require.ErrorIs(t, err, bolt.ErrTimeout)
	t.Logf("gave up after %v", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, []string{"state.db"}, dirNames(t, dir))
}

// TestTruncatedFiles cuts valid files at every page: bbolt reads past the
// end of the file through its memory map (a SIGBUS, fatal unless turned
// into a panic) or follows zeroed pages. Each cut must load the whole
// state (only unused pages were cut) or be moved aside.
func TestTruncatedFiles(t *testing.T) {
	for _, sessions := range []int{5, 500} {
		valid := validFile(t, sessions)
		var whole, aside int
		for cut := 0; cut < len(valid); cut += pageSize {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			require.NoError(t, os.WriteFile(path, valid[:cut], 0o600))
			s, st, err := store.Open(path, nil)
			require.NoError(t, err, "cut at page %d", cut/pageSize)
			require.NoError(t, s.Close())
			switch names := dirNames(t, dir); len(names) {
			case 1:
				if cut == 0 {
					assert.Equal(t, &broker.State{}, st, "an empty file is a new one")
					continue
				}
				require.Len(t, st.Sessions, sessions, "cut at page %d: unused pages cut, all there", cut/pageSize)
				whole++
			case 2:
				require.Equal(t, &broker.State{}, st, "cut at page %d", cut/pageSize)
				aside++
			default:
				t.Fatalf("cut at page %d: %q", cut/pageSize, names)
			}
		}
		t.Logf("%d sessions, %d pages: %d cuts moved aside, %d loaded whole", sessions, len(valid)/pageSize, aside, whole)
		assert.Positive(t, aside)
	}
}
