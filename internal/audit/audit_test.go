package audit_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/audit"
)

func open(t *testing.T) (*audit.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), audit.FileName)
	l, err := audit.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, path
}

func TestRecordAppendsOneJSONLine(t *testing.T) {
	l, path := open(t)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	require.NoError(t, l.Record(broker.Audit{Time: at, Actor: "root", Action: "evicted", Session: "abcd1234", Owner: "alice", Reason: "evicted by root: x"}))
	require.NoError(t, l.Record(broker.Audit{Time: at, Actor: "local", Action: "drain"}))
	data, err := os.ReadFile(path)
	require.NoError(t, err, "on disk when Record returns")
	assert.Equal(t, `{"time":"2026-12-02T10:00:00Z","actor":"root","action":"evicted","session":"abcd1234","owner":"alice","reason":"evicted by root: x"}
{"time":"2026-12-02T10:00:00Z","actor":"local","action":"drain"}
`, string(data))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm())
}

func TestTail(t *testing.T) {
	l, path := open(t)
	entries, err := l.Tail(10)
	require.NoError(t, err)
	assert.Empty(t, entries)

	// Enough lines (long ones) that the tail spans several 64 KiB chunks.
	reason := strings.Repeat("r", 500)
	for i := range 1000 {
		require.NoError(t, l.Record(broker.Audit{Time: time.Unix(int64(i), 0).UTC(), Actor: "a", Action: fmt.Sprint("act", i), Reason: reason}))
	}
	entries, err = l.Tail(300)
	require.NoError(t, err)
	require.Len(t, entries, 300)
	assert.Equal(t, "act700", entries[0].Action, "oldest first")
	assert.Equal(t, "act999", entries[299].Action)

	all, err := l.Tail(5000)
	require.NoError(t, err)
	assert.Len(t, all, 1000)

	// A torn last line (a crash mid-write) is skipped, the rest kept.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"time":"2026-12-02T10:00:00Z","act`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	entries, err = l.Tail(2)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	assert.Equal(t, "act999", entries[1].Action)
}

func TestRecordAfterClose(t *testing.T) {
	l, _ := open(t)
	require.NoError(t, l.Close())
	assert.ErrorIs(t, l.Record(broker.Audit{Action: "drain"}), os.ErrClosed)
	require.NoError(t, l.Close(), "closing twice is fine")
}

// A log that cannot be opened (here: its directory does not exist yet)
// fails its Records until the cause is fixed; then it writes, without a
// restart.
func TestOpenFailsThenRecovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := audit.Open(filepath.Join(dir, audit.FileName))
	require.ErrorIs(t, err, fs.ErrNotExist)
	t.Cleanup(func() { _ = l.Close() })
	require.ErrorIs(t, l.Record(broker.Audit{Action: "drain"}), fs.ErrNotExist)

	require.NoError(t, os.Mkdir(dir, 0o750))
	require.NoError(t, l.Record(broker.Audit{Action: "resume", Actor: "alice"}))
	entries, err := l.Tail(10)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the failed entry was not written")
	assert.Equal(t, "resume", entries[0].Action)
}
