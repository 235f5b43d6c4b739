package netlab_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
	"github.com/remotelab-go/remotelab/topology"
)

// ownerHelperEnv makes the test binary stand in for a daemon: it starts a
// lab through a lab.Manager that records into the state directory named by
// the variable (working directories in NETLAB_TEST_WORK), says on stdout
// when netlab up's process group is recorded ("recorded <pgid>") and each
// line netlab prints ("output <line>"), and waits to be killed.
const ownerHelperEnv = "NETLAB_TEST_OWNER"

func ownerHelper(state string) int {
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	quiet := slog.New(slog.DiscardHandler)
	r, err := netlab.New(netlab.Config{Logger: quiet})
	if err != nil {
		say("error %v", err)
		return 1
	}
	m, err := lab.NewManager(lab.Config{
		Runner:   tellingRunner{Runner: r, say: say},
		WorkRoot: os.Getenv("NETLAB_TEST_WORK"),
		Records:  tellingStore{RecordStore: lab.FileRecords(state), say: say},
		LockPath: "-",
		Logger:   quiet,
	})
	if err != nil {
		say("error %v", err)
		return 1
	}
	b, err := topology.NewBundle("lab.yml", []byte(threeNodes), topology.Limits{})
	if err != nil {
		say("error %v", err)
		return 1
	}
	_, err = m.TryAcquire(context.Background(), "s1", b, true)
	say("error acquire returned: %v", err)
	return 1
}

// tellingStore says when a record with a process is saved.
type tellingStore struct {
	lab.RecordStore
	say func(string, ...any)
}

func (s tellingStore) Save(rec lab.Record) error {
	err := s.RecordStore.Save(rec)
	if err == nil && len(rec.Processes) > 0 {
		s.say("recorded %d", rec.Processes[0].PGID)
	}
	return err
}

// tellingRunner says every line netlab prints.
type tellingRunner struct {
	*netlab.Runner
	say func(string, ...any)
}

func (r tellingRunner) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	return r.Runner.Up(lab.WithProgress(ctx, tellingProgress{lab.ProgressFrom(ctx), r.say}), spec)
}

type tellingProgress struct {
	lab.Progress
	say func(string, ...any)
}

func (p tellingProgress) Output(line string) {
	p.say("output %s", line)
	p.Progress.Output(line)
}
