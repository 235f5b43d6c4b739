package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// Exit codes of status.
const exitNotReady = 2

var statusCmd = &command{
	name:    "status",
	summary: "who holds the lab, the lab, the queue, and whether the server is ready",
	help: `Shows on one screen who holds the lab (owner, labels, held for, idle
for), the lab (state, topology, holders, a running netlab step and its
last output), the waiting sessions, and whether the server is ready to
serve sessions.

Exit status: 0 ready, 1 unreachable (or no usable answer), 2 reachable
but not ready (draining, quarantined, shutting down, runner unusable; the
reason is printed). Bad flags also exit 2.

With --json it prints {"ready": bool, "reason": string, "queue": the
/queue document} instead, with the same exit status.`,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := fs.Bool("json", false, "print {ready, reason, queue} as JSON")
		return func(ctx context.Context, a *app, args, _ []string) int {
			if !a.noArgs("status", args) {
				return exitUsage
			}
			return a.status(ctx, *asJSON)
		}
	},
}

// statusDoc is what status --json prints.
type statusDoc struct {
	Ready  bool      `json:"ready"`
	Reason string    `json:"reason"`
	Queue  api.Queue `json:"queue"`
}

func (a *app) status(ctx context.Context, asJSON bool) int {
	c, err := a.client()
	if err != nil {
		return a.usageError("status", "%v", err)
	}
	ready, reason, err := c.Ready(ctx)
	if err != nil {
		return a.fail("status", err)
	}
	q, err := c.Queue(ctx)
	if err != nil {
		return a.fail("status", err)
	}
	code := exitOK
	if !ready {
		code = exitNotReady
	}
	if asJSON {
		a.printJSON(statusDoc{Ready: ready, Reason: reason, Queue: q})
		return code
	}
	state := "ready"
	if !ready {
		state = "NOT READY: " + reason
	}
	fmt.Fprintf(a.stdout, "Server    %s (%s)\n", c.URL(), state)
	writeOverview(a.stdout, q)
	return code
}

// writeOverview writes the holder, lab, queue and figures of q.
func writeOverview(w io.Writer, q api.Queue) {
	now := q.ServerTime
	if h := q.Holder; h != nil {
		fmt.Fprintf(w, "Holder    %s (%s), held for %s, idle for %s", h.Owner, h.ID, optSeconds(h.ActiveSeconds), seconds(h.IdleSeconds))
		if h.HoldDeadline != nil {
			fmt.Fprintf(w, ", max hold ends %s", ago(*h.HoldDeadline, now))
		}
		fmt.Fprintln(w)
		if len(h.Labels) > 0 {
			fmt.Fprintf(w, "          labels %s\n", labelsText(h.Labels))
		}
	} else {
		fmt.Fprintln(w, "Holder    none")
	}
	l := q.Lab
	fmt.Fprintf(w, "Lab       %s", l.State)
	if l.Topology != nil {
		fmt.Fprintf(w, " %s", *l.Topology)
	}
	if l.State != "none" {
		fmt.Fprintf(w, ", %d holder%s", l.Holders, plural(l.Holders))
	}
	if l.Since != nil {
		fmt.Fprintf(w, ", since %s", ago(*l.Since, now))
	}
	fmt.Fprintln(w)
	if op := l.Operation; op != nil {
		fmt.Fprintf(w, "          netlab %s running for %s", op.Kind, seconds(op.RunningSeconds))
		if op.LastOutput != nil {
			fmt.Fprintf(w, ": %s", oneLine(*op.LastOutput, 100))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Queue     %d waiting", len(q.Waiting))
	if len(q.Waiting) > 0 {
		next := q.Waiting[0]
		fmt.Fprintf(w, "; next %s (%s), waiting %s", next.Owner, next.ID, seconds(next.WaitingSeconds))
		if next.EstimatedWaitSeconds != nil {
			fmt.Fprintf(w, ", about %s to go", seconds(*next.EstimatedWaitSeconds))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Served    %d session%s", q.Stats.SessionsServed, plural(q.Stats.SessionsServed))
	if q.Stats.HoldSecondsAvg != nil {
		fmt.Fprintf(w, ", average hold %s", seconds(*q.Stats.HoldSecondsAvg))
	}
	fmt.Fprintln(w)
	if q.Draining {
		fmt.Fprintln(w, "Draining  no session is promoted until an admin resumes (remotelab admin resume)")
	}
	if qr := q.Quarantine; qr != nil {
		fmt.Fprintf(w, "QUARANTINED since %s: %s\n", ago(qr.Since, now), oneLine(qr.Reason, 200))
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

var queueCmd = &command{
	name:    "queue",
	summary: "the sessions in the queue, holder first",
	help: `Lists the holder and the waiting sessions in order: position, id
(8 characters), owner, status, time waited, estimated wait, labels. With
--json it prints the server's /queue document as it is.`,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := fs.Bool("json", false, "print the server's /queue document")
		return func(ctx context.Context, a *app, args, _ []string) int {
			if !a.noArgs("queue", args) {
				return exitUsage
			}
			c, err := a.client()
			if err != nil {
				return a.usageError("queue", "%v", err)
			}
			q, err := c.Queue(ctx)
			if err != nil {
				return a.fail("queue", err)
			}
			if *asJSON {
				a.printJSON(q)
				return exitOK
			}
			writeQueueTable(a.stdout, q)
			return exitOK
		}
	},
}

// writeQueueTable writes the holder and waiters of q as a table.
func writeQueueTable(w io.Writer, q api.Queue) {
	if q.Holder == nil && len(q.Waiting) == 0 {
		fmt.Fprintln(w, "The queue is empty.")
		return
	}
	t := newTable(w, "POS", "ID", "OWNER", "STATUS", "WAITED", "ESTIMATE", "LABELS")
	sessions := q.Waiting
	if q.Holder != nil {
		sessions = append([]api.QueueSession{*q.Holder}, sessions...)
	}
	for _, s := range sessions {
		status := s.Status
		if s.ActiveSeconds != nil {
			status += " " + seconds(*s.ActiveSeconds)
		}
		t.row(fmt.Sprint(s.Position), s.ID, s.Owner, status, seconds(s.WaitingSeconds),
			optSeconds(s.EstimatedWaitSeconds), labelsText(s.Labels))
	}
	t.flush()
}

var historyCmd = &command{
	name:    "history",
	summary: "finished sessions, newest first",
	help: `Lists finished sessions, newest first: when they ended, id, owner,
outcome (closed, expired, evicted, wait_timeout, max_hold, shutdown), time
waited, time held, and the server's reason. With --json it prints the
server's /history document as it is.`,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := fs.Bool("json", false, "print the server's /history document")
		limit := fs.Int("limit", 0, "at most this many sessions (default: the server's, 50; at most 1000)")
		return func(ctx context.Context, a *app, args, _ []string) int {
			if !a.noArgs("history", args) {
				return exitUsage
			}
			if *limit < 0 {
				return a.usageError("history", "--limit must not be negative")
			}
			c, err := a.client()
			if err != nil {
				return a.usageError("history", "%v", err)
			}
			h, err := c.History(ctx, *limit)
			if err != nil {
				return a.fail("history", err)
			}
			if *asJSON {
				a.printJSON(h)
				return exitOK
			}
			writeHistoryTable(a.stdout, h, time.Now())
			return exitOK
		}
	},
}

func writeHistoryTable(w io.Writer, h []api.HistoryEntry, now time.Time) {
	if len(h) == 0 {
		fmt.Fprintln(w, "No finished sessions.")
		return
	}
	t := newTable(w, "ENDED", "ID", "OWNER", "OUTCOME", "WAITED", "HELD", "REASON")
	for _, e := range h {
		t.row(ago(e.EndedAt, now), e.ID, e.Owner, e.Outcome, seconds(e.WaitedSeconds), optSeconds(e.HeldSeconds), oneLine(e.Reason, 80))
	}
	t.flush()
}

var watchCmd = &command{
	name:    "watch",
	summary: "show the queue and redraw it on every change, until Ctrl-C",
	help: `Shows what status and queue show and redraws it on every change, as the
server's event stream (/events) tells it (at most 4 times a second). On a
terminal the screen is cleared and redrawn; otherwise each change prints
one block. A dropped stream is reopened with backoff. Ctrl-C (or SIGTERM)
exits 0.`,
	setup: func(fs *flag.FlagSet) runner {
		return func(ctx context.Context, a *app, args, _ []string) int {
			if !a.noArgs("watch", args) {
				return exitUsage
			}
			return a.watch(ctx)
		}
	},
}

func (a *app) watch(ctx context.Context) int {
	c, err := a.client()
	if err != nil {
		return a.usageError("watch", "%v", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	redraw := isTerminal(a.stdout)
	err = c.Watch(ctx, func(q api.Queue) error {
		var b strings.Builder
		if redraw {
			b.WriteString("\033[H\033[2J") // home, clear screen
		}
		fmt.Fprintf(&b, "%s at %s\n", c.URL(), q.ServerTime.Local().Format(time.TimeOnly))
		writeOverview(&b, q)
		b.WriteString("\n")
		writeQueueTable(&b, q)
		if !redraw {
			b.WriteString("\n")
		}
		_, err := io.WriteString(a.stdout, b.String())
		return err
	})
	if ctx.Err() != nil {
		return exitOK // interrupted: the normal end
	}
	return a.fail("watch", err)
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
