package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/remotelab-go/remotelab/lab"
)

var _ lab.Prober = (*Runner)(nil)

// Running implements lab.Prober: it runs `netlab status --format json` in
// dir and answers true exactly when netlab reports the lab instance of
// that directory as started (status "started", or, as netlab itself
// decides, a log line that mentions "started"). netlab's answers "no
// running lab in the current directory" ({"error": ...}, exit 0) and "no
// netlab-managed labs" ({"warning": ...}, exit 1) are false. A netlab older
// than 26.02 has no --format (exit 2), and one may print its table instead
// of JSON: then the lab counts as running when dir still has netlab.lock
// and a snapshot (only a successful down removes them). A directory that
// does not exist runs nothing, and netlab does not run. It blocks until
// done, Config.QueryTimeout passes or ctx ends.
func (r *Runner) Running(ctx context.Context, dir string) (bool, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	cfg := r.Config()
	out, err := r.run(ctx, cfg, invocation{
		dir:     dir,
		timeout: cfg.QueryTimeout,
		args:    []string{"status", "--format", "json"},
		stdout:  true,
		expected: func(e *Error) bool {
			return e.ExitCode == 1 || e.ExitCode == 2
		},
	})
	var st labStatus
	e, failed := errors.AsType[*Error](err)
	switch {
	case err == nil:
		if decodeObject(out, &st) != nil {
			return hasLabFiles(dir), nil // not JSON: an older netlab's table
		}
	case failed && e.ExitCode == 2: // no --format: netlab before 26.02
		return hasLabFiles(dir), nil
	case failed && e.ExitCode == 1 && decodeObject(out, &st) == nil && st.Warning != "":
		return false, nil // no netlab-managed labs at all
	default:
		return false, fmt.Errorf("lab status: %w", err)
	}
	return st.Error == "" && st.Warning == "" && st.started(), nil
}

// labStatus is what `netlab status --format json` prints for the instance
// of the current directory, or its error or warning.
type labStatus struct {
	Error   string   `json:"error"`
	Warning string   `json:"warning"`
	Status  string   `json:"status"`
	Log     []string `json:"log"`
}

// started is netlab's rule: the status is "started", or a log line
// mentions "started" (such as "clab workload started").
func (s labStatus) started() bool {
	if s.Status == "started" {
		return true
	}
	for _, l := range s.Log {
		if strings.Contains(l, "started") {
			return true
		}
	}
	return false
}

// hasLabFiles reports whether dir has netlab.lock and a snapshot, which
// `netlab up` creates and only a successful `netlab down --cleanup`
// removes.
func hasLabFiles(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, lockFile))
	return err == nil && checkSnapshot(dir) == nil
}
