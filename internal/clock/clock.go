// Package clock holds the one context-aware sleep of the module, so that
// the client, the fake netlab, the simulated runner and the load harness
// wait the same way.
package clock

import (
	"context"
	"time"
)

// Sleep blocks for d or until ctx ends, whichever comes first. It returns
// nil once d has passed, and context.Cause(ctx) when ctx ended first: at
// once if ctx has already ended, even for d <= 0. A d <= 0 with a live
// ctx returns nil without blocking. Sleep uses a timer it stops on
// return, so it leaves nothing running behind.
func Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
