package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
)

// versionCheckTimeout bounds the `netlab version` pre-flight check.
const versionCheckTimeout = 10 * time.Second

// errPreflight: the netlab pre-flight check failed (already logged).
var errPreflight = errors.New("netlab pre-flight check failed")

// newRunner returns the lab runner of --runner and its readiness probe
// (nil for sim). For netlab it first checks that the CLI is on PATH and
// answers `netlab version` within 10 s; the probe runs `netlab version`
// again. When ctx ends during the check it returns ctx's error and logs
// nothing: the caller reports the interrupted startup.
func (d *daemon) newRunner(ctx context.Context) (lab.Runner, func(context.Context) error, error) {
	cfg := d.cfg
	if cfg.Runner == runnerSim {
		d.log.Info("Using the simulated lab runner (no Netlab)", "up_delay", cfg.SimUpDelay, "down_delay", cfg.SimDownDelay)
		return &sim.Runner{UpDelay: cfg.SimUpDelay, DownDelay: cfg.SimDownDelay,
			UpTimeout: cfg.UpTimeout, DownTimeout: cfg.DownTimeout}, nil, nil
	}

	path, err := exec.LookPath("netlab")
	if err != nil {
		d.fatal("'netlab' CLI not found in PATH. The Remote Lab Manager requires Netlab to orchestrate labs.")
		d.log.Error("Install Netlab: https://netlab.tools/install/ubuntu/")
		d.log.Error("After installation, ensure your shell can find 'netlab' (relogin or reload your shell).")
		return nil, nil, errPreflight
	}
	r, err := netlab.New(netlab.Config{
		Binary:       path,
		UpTimeout:    cfg.UpTimeout,
		DownTimeout:  cfg.DownTimeout,
		QueryTimeout: cfg.QueryTimeout,
		Stream:       cfg.StreamOutput,
		Logger:       d.component("netlab"),
	})
	if err != nil {
		d.fatal("Cannot set up the netlab runner", "err", err)
		return nil, nil, errPreflight
	}
	vctx, cancel := context.WithTimeout(ctx, versionCheckTimeout)
	defer cancel()
	v, err := r.Version(vctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if vctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no answer within %v: %w", versionCheckTimeout, err)
		}
		d.fatal("Failed to execute 'netlab version'", "path", path, "err", err)
		d.log.Error("Check the Netlab installation: run 'netlab version' as this user; reinstall with https://netlab.tools/install/ubuntu/")
		return nil, nil, errPreflight
	}
	d.log.Info("netlab CLI found", "path", path, "version", v, "stream_output", cfg.StreamOutput)
	probe := func(ctx context.Context) error {
		_, err := r.Version(ctx)
		return err
	}
	return r, probe, nil
}
