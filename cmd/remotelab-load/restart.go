package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// runRestart queues cfg.RestartSessions sessions behind a holder that
// acquired a lab, stops remotelabd with SIGTERM and starts it again on the
// same state directory and port. It measures SIGTERM → exit and start →
// the first GET /queue that lists every session in the same order, and
// checks that the holder kept its lease (same epoch) and its lab.
func runRestart(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	srv, err := e.remotelabd(ctx, "--max-sessions", strconv.Itoa(cfg.RestartSessions+1))
	if err != nil {
		return err
	}
	defer func() { srv.Stop() }()
	c := newAPIClient(srv.URL, 40, 1)
	defer c.Close()
	holder, err := c.create(ctx)
	if err != nil {
		return err
	}
	acq, err := c.acquire(ctx, holder.SessionID, upload{Topo: topologyYAML(3, "restart")})
	if err != nil {
		return fmt.Errorf("holder acquires: %w", err)
	}
	epoch := holder.Epoch
	t0 := time.Now()
	ids, pos, err := createMany(ctx, c, cfg.RestartSessions, 32)
	if err != nil {
		return err
	}
	created := time.Since(t0)
	want := make([]string, len(ids)+1) // short ids in queue order
	want[0] = api.ShortID(holder.SessionID)
	for i, id := range ids {
		if pos[i] < 1 || pos[i] >= len(want) || want[pos[i]] != "" {
			return fmt.Errorf("session %s created at position %d", api.ShortID(id), pos[i])
		}
		want[pos[i]] = api.ShortID(id)
	}
	r.add("queued", "%d sessions in %s (32 concurrent) behind a holder with a %d-node lab", len(ids), fmtDur(created), len(acq.Devices))
	c.Close()

	tTerm := time.Now()
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	code, err := srv.WaitExit(time.Minute)
	if err != nil {
		return err
	}
	r.add("SIGTERM → exit", "%s, exit code %d, with %d sessions queued", fmtDur(time.Since(tTerm)), code, len(want))
	if code != 0 {
		r.violate("exit code %d: %s", code, srv.Tail(10))
	}

	old := srv
	if srv, err = old.Restart(ctx); err != nil {
		srv = old
		return err
	}
	listening := time.Since(srv.Started)
	c = newAPIClient(srv.URL, 4, 1)
	defer c.Close()
	var q api.Queue
	var lastErr error
	for deadline := time.Now().Add(time.Minute); ; {
		q, lastErr = c.queue(ctx)
		if lastErr == nil && len(q.Waiting)+1 >= len(want) || time.Now().After(deadline) {
			break
		}
		if err := clock.Sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	ready := time.Since(srv.Started)
	if lastErr != nil {
		r.violate("GET /queue after the restart: %v", lastErr)
		return nil
	}
	r.add("start → listening", "%s", fmtDur(listening))
	r.add("start → first GET /queue listing them all", "%s (%d sessions)", fmtDur(ready), len(want))
	got := queueOrder(q)
	if d := firstDiff(want, got); d >= 0 {
		r.violate("queue after the restart differs at position %d: %d sessions, want %d (%s)", d, len(got), len(want), around(want, got, d))
	} else {
		r.add("queue after the restart", "the same %d sessions in the same order", len(got))
	}
	st, err := c.status(ctx, holder.SessionID, 0)
	switch {
	case err != nil:
		r.violate("holder after the restart: %v", err)
	case st.Status != api.StatusActive || st.Epoch != epoch:
		r.violate("holder after the restart: %s with epoch %d, want active with epoch %d", st.Status, st.Epoch, epoch)
	default:
		ls, err := c.labStatus(ctx, holder.SessionID)
		if err != nil {
			r.violate("holder's lab after the restart: %v", err)
			break
		}
		r.add("holder after the restart", "active, epoch %d as before; lab %s, ref_count %d, %d devices", st.Epoch, ls.State, ls.RefCount, len(ls.Devices))
		if ls.RefCount < 1 {
			r.violate("the holder's lab reference was lost: ref_count %d", ls.RefCount)
		}
	}
	if !logged(srv, `msg="Adopted the lab a previous run left running"`) {
		r.violate("the lab was not adopted at the restart: %s", srv.Tail(10))
	}
	return nil
}

// firstDiff returns the first index where a and b differ, or -1 if they
// are equal.
func firstDiff(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

// around prints both lists near index i.
func around(want, got []string, i int) string {
	lo := max(0, i-2)
	return fmt.Sprintf("want …%v…, got …%v…", want[lo:min(len(want), i+3)], got[min(lo, len(got)):min(len(got), i+3)])
}

// logged reports whether a line of the server's kept output holds s.
func logged(srv *server, s string) bool {
	for _, l := range srv.Logs() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
