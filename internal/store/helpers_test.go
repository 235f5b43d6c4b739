package store_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/internal/store"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/lab"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger returns a logger that writes text lines into the returned
// buffer, for tests that match attributes.
func testLogger() (*slog.Logger, *testutil.Buffer) {
	var buf testutil.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// openStore opens path, failing the test on an error, and closes the
// store at the end of the test (a second Close is harmless).
func openStore(t testing.TB, path string) (*store.Store, *broker.State) {
	t.Helper()
	s, st, err := store.Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, st
}

// reopen closes s and opens path again, returning the state it loads.
func reopen(t testing.TB, s *store.Store, path string) (*store.Store, *broker.State) {
	t.Helper()
	require.NoError(t, s.Close())
	return openStore(t, path)
}

// at is a fixed instant plus d: times that survive a JSON round trip and
// compare equal.
func at(d time.Duration) time.Time {
	return time.Date(2026, 3, 4, 5, 6, 7, 891011, time.UTC).Add(d)
}

// session is a waiting session with every field a waiting session has.
func session(id string, seq uint64) broker.SavedSession {
	return broker.SavedSession{
		ID: id, Seq: seq, Owner: "owner-" + id,
		Labels:      map[string]string{"job": "ci-" + id, "branch": "main"},
		Created:     at(time.Duration(seq) * time.Second),
		WaitTimeout: 90 * time.Second, MaxHold: 2 * time.Hour,
	}
}

// activeSession is a session that holds the lab, with every field set.
func activeSession(id string, seq, epoch uint64) broker.SavedSession {
	s := session(id, seq)
	s.Promoted = at(time.Duration(seq)*time.Second + time.Minute)
	s.Epoch = epoch
	s.Lab = &broker.LabUse{Topology: "topo.yml", Fingerprint: "fp-" + id, Reused: true}
	return s
}

// ended is the end of session i, with every field set.
func ended(i int) broker.Ended {
	return broker.Ended{
		ID: fmt.Sprintf("ended-%05d", i), Owner: "alice",
		Labels:   map[string]string{"n": fmt.Sprint(i)},
		Created:  at(time.Duration(i) * time.Second),
		Promoted: at(time.Duration(i)*time.Second + time.Second),
		EndedAt:  at(time.Duration(i)*time.Second + time.Minute),
		Outcome:  "closed", Reason: "closed by the client",
		Lab: &broker.LabUse{Topology: "t.yml", Fingerprint: "fp"},
	}
}

// labRecord is a lab record with holders, devices and processes.
func labRecord() lab.Record {
	return lab.Record{
		Dir: "/var/lib/remotelab/lab", Fingerprint: "sha256:abc", Topology: "topo.yml",
		State: lab.StateRunning, StartedAt: at(time.Hour),
		Holders: map[string]int{"sess-1": 2, "sess-2": 1},
		Devices: []lab.Device{
			{Name: "r1", Raw: json.RawMessage(`{"mgmt":{"ipv4":"192.168.121.101"},"box":"frr"}`)},
			{Name: "r2", Raw: json.RawMessage(`{"mgmt":{"ipv4":"192.168.121.102"}}`)},
		},
		Processes: []lab.Process{{PGID: 4242, StartTime: 123456, BootID: "0f1e2d3c"}},
	}
}

// mountTmpfs mounts a tmpfs with the given options (e.g. "size=256k") on
// a new directory, unmounted at the end of the test. It skips the test
// when mounting is not permitted (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, flags uintptr, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
