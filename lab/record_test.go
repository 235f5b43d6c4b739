package lab_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestStateRecord(t *testing.T) {
	started, release := make(chan string, 1), make(chan struct{})
	r := &remotelabtest.FakeRunner{UpHook: blockingUp(started, release)}
	e := newEnv(t, r)
	b := newBundle(t, "lab.yml", topoA)
	recPath := filepath.Join(e.state, "lab.json")

	done := make(chan error, 1)
	go func() {
		_, err := e.m.TryAcquire(t.Context(), "a", b, true)
		done <- err
	}()
	dir := <-started
	// The record exists before Up runs, so a crash during Up is recovered.
	rec := readRecord(t, recPath)
	assert.Equal(t, dir, rec["dir"])
	assert.Equal(t, b.Fingerprint(), rec["fingerprint"])
	assert.Equal(t, "lab.yml", rec["topology"])
	assert.Equal(t, "starting", rec["state"])
	assert.Nil(t, rec["holders"])
	_, err := time.Parse(time.RFC3339Nano, rec["started_at"].(string))
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-done)

	// Committed: running, with its holder and devices.
	got := loadRecord(t, e.state)
	assert.Equal(t, lab.StateRunning, got.State)
	assert.Equal(t, map[string]int{"a": 1}, got.Holders)
	devs, err := e.m.Devices()
	require.NoError(t, err)
	assert.Equal(t, devs, got.Devices)
	assert.Empty(t, got.Processes)

	_, err = e.m.Destroy(t.Context(), true)
	require.NoError(t, err)
	assert.NoFileExists(t, recPath)
	ents, err := os.ReadDir(e.state)
	require.NoError(t, err)
	assert.Empty(t, ents, "no temporary files left in the state dir")
}

// TestRecordFollowsHolders: every reference change is in the record when
// the call returns, so references survive a restart.
func TestRecordFollowsHolders(t *testing.T) {
	store := &memRecords{}
	e := newEnv(t, &remotelabtest.FakeRunner{}, func(c *lab.Config) { c.Records = store })
	b := newBundle(t, "lab.yml", topoA)
	holders := func() map[string]int {
		t.Helper()
		rec := store.current()
		require.NotNil(t, rec)
		return rec.Holders
	}

	_, err := e.m.TryAcquire(t.Context(), "a", b, true)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"a": 1}, holders())
	for _, h := range []string{"a", "b", "c", "c"} {
		_, err = e.m.TryAcquire(t.Context(), h, b, true)
		require.NoError(t, err)
	}
	assert.Equal(t, map[string]int{"a": 2, "b": 1, "c": 2}, holders())
	require.NoError(t, e.m.Release("a"))
	assert.Equal(t, map[string]int{"a": 1, "b": 1, "c": 2}, holders())
	e.m.ReleaseAll("c")
	assert.Equal(t, map[string]int{"a": 1, "b": 1}, holders())
	e.m.DropHoldersExcept(func(h string) bool { return h == "b" })
	assert.Equal(t, map[string]int{"b": 1}, holders())
	assert.Equal(t, map[string]int{"b": 1}, e.m.Status().Holders)
	require.NoError(t, e.m.Release("b"))
	assert.Nil(t, holders())
	assert.Equal(t, lab.StateIdle, store.current().State)

	// Nothing changes, nothing is written.
	n := len(store.states())
	require.NoError(t, e.m.Release("stranger"))
	e.m.ReleaseAll("stranger")
	e.m.DropHoldersExcept(func(string) bool { return true })
	assert.Len(t, store.states(), n)

	assert.Equal(t, []lab.State{lab.StateStarting, lab.StateRunning}, store.states()[:2])
	assert.Zero(t, store.deletes)
	_, err = e.m.Destroy(t.Context(), false)
	require.NoError(t, err)
	assert.Nil(t, store.current())
	assert.Equal(t, lab.StateStopping, store.states()[len(store.states())-1])
	assert.Equal(t, 1, store.deletes)
}

// TestRecordSaveFailure: a record that cannot be saved is reported and
// logged, the lab operation still succeeds, and the next change saves
// the latest state.
func TestRecordSaveFailure(t *testing.T) {
	store := &memRecords{}
	var events eventLog
	e := newEnv(t, &remotelabtest.FakeRunner{}, func(c *lab.Config) {
		c.Records = store
		c.OnEvent = events.add
	})
	boom := errors.New("disk full")
	store.setFailSave(boom)

	res, err := e.m.TryAcquire(t.Context(), "a", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	assert.False(t, res.Reused)
	assert.Nil(t, store.current())
	errs := events.of(lab.EventRecordError)
	require.NotEmpty(t, errs)
	require.ErrorIs(t, errs[0].Err, boom)

	store.setFailSave(nil)
	_, err = e.m.TryAcquire(t.Context(), "b", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	rec := store.current()
	require.NotNil(t, rec)
	assert.Equal(t, map[string]int{"a": 1, "b": 1}, rec.Holders)
	assert.Equal(t, lab.StateRunning, rec.State)
}

func TestFileRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := lab.FileRecords(dir)
	rec, err := s.Load()
	require.NoError(t, err)
	assert.Nil(t, rec, "no record, no state dir")
	require.NoError(t, s.Delete(), "deleting nothing is fine")

	want := lab.Record{
		Dir: "/work/remotelab-lab-1", Fingerprint: "fp", Topology: "lab.yml", State: lab.StateIdle,
		StartedAt: time.Date(2026, 3, 14, 17, 0, 5, 0, time.UTC),
		Holders:   map[string]int{"s1": 2},
		Devices:   []lab.Device{{Name: "r1", Raw: json.RawMessage(`{"a":1}`)}},
		Processes: []lab.Process{{PGID: 42, StartTime: 7, BootID: "boot"}},
	}
	require.NoError(t, s.Save(want))
	rec, err = s.Load()
	require.NoError(t, err)
	assert.Equal(t, want, *rec)
	raw := readRecord(t, filepath.Join(dir, "lab.json"))
	assert.Equal(t, "idle", raw["state"])
	assert.Equal(t, []any{map[string]any{"pgid": 42.0, "start_time": 7.0, "boot_id": "boot"}}, raw["processes"])

	require.NoError(t, s.Delete())
	rec, err = s.Load()
	require.NoError(t, err)
	assert.Nil(t, rec)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "lab.json"), []byte("{not json"), 0o644))
	_, err = s.Load()
	require.Error(t, err)
}

func readRecord(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(data, &rec))
	return rec
}

// loadRecord loads the record FileRecords keeps in stateDir.
func loadRecord(t *testing.T, stateDir string) lab.Record {
	t.Helper()
	rec, err := lab.FileRecords(stateDir).Load()
	require.NoError(t, err)
	require.NotNil(t, rec, "no record in %s", stateDir)
	return *rec
}

// writeRecord writes a record as an older version did: no state, no
// holders.
func writeRecord(t *testing.T, stateDir, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(stateDir, 0o755))
	data, err := json.Marshal(map[string]any{"dir": dir, "fingerprint": "f", "topology": "lab.yml", "started_at": time.Now()})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(stateDir, "lab.json"), data, 0o644))
}
