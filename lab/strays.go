package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CleanStrays tears down and removes every lab working directory in
// WorkRoot that is not the current lab's: labs no record names any more
// (the record was lost with a state file that could not be read, say),
// which would otherwise run on unseen beside the next start. Runner.Down
// of a directory where nothing runs is cheap (for netlab: no netlab.lock,
// no command), so this costs nothing in the usual case. It reports how
// many it removed; a directory whose teardown fails is left in place and
// reported in the error.
//
// Call it only when WorkRoot belongs to this Manager alone (remotelabd's
// state directory does; the default, os.TempDir(), may hold other
// processes' labs), after Recover. It waits, until ctx ends, for other
// lab operations and the lock file.
func (m *Manager) CleanStrays(ctx context.Context) (int, error) {
	ctx, done, err := m.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("clean stray labs: %w", err)
	}
	defer done()
	entries, err := os.ReadDir(m.cfg.WorkRoot)
	if err != nil {
		return 0, fmt.Errorf("clean stray labs: %w", err)
	}
	var strays []string
	cur := m.Status().Dir
	for _, e := range entries {
		dir := filepath.Join(m.cfg.WorkRoot, e.Name())
		if e.IsDir() && strings.HasPrefix(e.Name(), dirPrefix) && dir != cur {
			strays = append(strays, dir)
		}
	}
	if len(strays) == 0 {
		return 0, nil
	}
	lk := locks{m: m}
	defer lk.unlock()
	if err := lk.lockOp(ctx, true); err != nil {
		return 0, fmt.Errorf("clean stray labs: %w", err)
	}
	if err := lk.lockFile(ctx, true); err != nil {
		return 0, fmt.Errorf("clean stray labs: %w", err)
	}
	removed := 0
	var errs []error
	for _, dir := range strays {
		m.log.Warn("Tearing down a lab no record names", "dir", dir)
		// As the current operation, so that status and progress show it.
		err := m.runnerCall(ctx, "down", func(ctx context.Context) error { return m.cfg.Runner.Down(ctx, dir) })
		if err != nil {
			m.log.Error("Stray lab teardown failed; its directory is kept", "dir", dir, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", dir, err))
			continue
		}
		m.removeDir(dir)
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("clean stray labs: %w", err)
	}
	return removed, nil
}
