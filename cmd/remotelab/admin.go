package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/client"
)

const adminNote = `Admin commands need an admin token (--token, $REMOTE_LAB_TOKEN) on a
server with --auth-file; on a server without it they work only from the
lab host itself (a loopback address). Every admin action is written to the
server's audit log.`

// adminCommand makes an admin command without flags of its own that
// calls do and prints done on success.
func adminCommand(name, summary, help string, do func(context.Context, *client.Admin) (string, error)) *command {
	return &command{
		name:    "admin " + name,
		summary: summary,
		help:    help + "\n\n" + adminNote,
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, a *app, args, _ []string) int {
				if !a.noArgs("admin "+name, args) {
					return exitUsage
				}
				c, err := a.client()
				if err != nil {
					return a.usageError("admin "+name, "%v", err)
				}
				done, err := do(ctx, c.Admin())
				if err != nil {
					return a.fail("admin "+name, err)
				}
				fmt.Fprintln(a.stdout, done)
				return exitOK
			}
		},
	}
}

var adminEvictCmd = &command{
	name:    "admin evict",
	args:    " ID --reason TEXT",
	summary: "end a session now (ID: its 8-character id from queue, or the full id)",
	help: `Ends the session ID with outcome "evicted" and the reason
"evicted by <you>: TEXT": its lab references drop, the next session is
promoted, and its client learns the reason on its next call. ID is the
session's id as "remotelab queue" shows it (a unique prefix of 8 or more
characters) or the full id.

` + adminNote,
	setup: func(fs *flag.FlagSet) runner {
		reason := fs.String("reason", "", "why (required; shown to the evicted client and in the audit log)")
		return func(ctx context.Context, a *app, args, _ []string) int {
			switch {
			case len(args) != 1:
				return a.usageError("admin evict", "want exactly one session ID, got %d", len(args))
			case strings.TrimSpace(*reason) == "":
				return a.usageError("admin evict", "--reason is required")
			}
			c, err := a.client()
			if err != nil {
				return a.usageError("admin evict", "%v", err)
			}
			if err := c.Admin().Evict(ctx, args[0], *reason); err != nil {
				return a.fail("admin evict", err)
			}
			fmt.Fprintf(a.stdout, "Evicted session %s.\n", args[0])
			return exitOK
		}
	},
}

var adminDrainCmd = adminCommand("drain", "hold promotions: the holder may finish, others keep waiting",
	`Stops promoting sessions: the holder may finish, new sessions still
queue, and the server reports not ready (remotelab status exits 2) until
"remotelab admin resume".`,
	func(ctx context.Context, ad *client.Admin) (string, error) {
		return "Draining: no session is promoted until 'remotelab admin resume'.", ad.Drain(ctx)
	})

var adminResumeCmd = adminCommand("resume", "promote sessions again after drain",
	`Undoes "remotelab admin drain": the next waiting session is promoted when
the lab is free.`,
	func(ctx context.Context, ad *client.Admin) (string, error) {
		return "Resumed: sessions are promoted again.", ad.Resume(ctx)
	})

var adminUnquarantineCmd = adminCommand("unquarantine", "lift the lab host's quarantine by hand",
	`Lifts the quarantine the server put the lab host in after repeated
failed teardowns or starts ("remotelab status" shows it and why). It
succeeds whether or not the host was quarantined.`,
	func(ctx context.Context, ad *client.Admin) (string, error) {
		return "The lab host is not quarantined.", ad.Unquarantine(ctx)
	})

var adminDestroyLabCmd = adminCommand("destroy-lab", "tear the lab down now, whoever holds it",
	`Tears the host's lab down now, even while sessions hold it: their
references go with it, the sessions keep their place in the queue. It
waits until the teardown finished.`,
	func(ctx context.Context, ad *client.Admin) (string, error) {
		torn, err := ad.DestroyLab(ctx)
		if !torn {
			return "No lab was running.", err
		}
		return "Lab torn down.", err
	})

var adminAuditCmd = &command{
	name:    "admin audit",
	summary: "the audit log: admin actions and sessions that did not end by a plain close",
	help: `Lists the last entries of the server's audit log, oldest first: time,
actor, action, session, owner, reason. With --json it prints the server's
document as it is.

` + adminNote,
	setup: func(fs *flag.FlagSet) runner {
		asJSON := fs.Bool("json", false, "print the server's /admin/audit document")
		limit := fs.Int("limit", 0, "at most this many entries (default: the server's, 100)")
		return func(ctx context.Context, a *app, args, _ []string) int {
			if !a.noArgs("admin audit", args) {
				return exitUsage
			}
			if *limit < 0 {
				return a.usageError("admin audit", "--limit must not be negative")
			}
			c, err := a.client()
			if err != nil {
				return a.usageError("admin audit", "%v", err)
			}
			entries, err := c.Admin().Audit(ctx, *limit)
			if err != nil {
				return a.fail("admin audit", err)
			}
			if *asJSON {
				a.printJSON(entries)
				return exitOK
			}
			writeAuditTable(a.stdout, entries, time.Now())
			return exitOK
		}
	},
}

func writeAuditTable(w io.Writer, entries []api.AuditEntry, now time.Time) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "The audit log is empty.")
		return
	}
	t := newTable(w, "TIME", "ACTOR", "ACTION", "SESSION", "OWNER", "REASON")
	for _, e := range entries {
		t.row(e.Time.Local().Format(time.DateTime)+" ("+ago(e.Time, now)+")", e.Actor, e.Action,
			first(api.ShortID(e.Session)), first(e.Owner), oneLine(e.Reason, 80))
	}
	t.flush()
}

var tokenNewCmd = &command{
	name:    "token new",
	args:    " --name NAME --role ROLE",
	summary: "make a new token and its auth-file entry (runs locally)",
	help: `Makes a new random token (rlab_ and 32 random bytes) and prints it with
the entry to add to the server's auth file (remotelabd --auth-file),
below "tokens:". Only the token's SHA-256 goes in the file: the token
itself is shown this once, for its user ($REMOTE_LAB_TOKEN). After
editing the file, reload it with SIGHUP (systemctl reload remotelabd).

NAME is shown as the owner of the token's sessions. ROLE is one of
viewer (reads the queue), user (also queues and uses the lab), admin
(also the admin commands). It contacts no server.`,
	setup: func(fs *flag.FlagSet) runner {
		name := fs.String("name", "", "the token's name, shown as the owner of its sessions (required)")
		roleText := fs.String("role", "", "viewer, user or admin (required)")
		return func(_ context.Context, a *app, args, _ []string) int {
			if !a.noArgs("token new", args) {
				return exitUsage
			}
			if err := auth.CheckName(*name); err != nil {
				return a.usageError("token new", "--name: %v", err)
			}
			role, err := auth.ParseRole(*roleText)
			if err != nil {
				return a.usageError("token new", "--role: %v", err)
			}
			token, err := auth.NewToken()
			if err != nil {
				return a.fail("token new", err)
			}
			fmt.Fprintf(a.stdout, "New %s token for %s:\n\n  %s\n\n", role, *name, token)
			fmt.Fprintf(a.stdout, "Add this entry to the server's auth file, below \"tokens:\", then reload it (SIGHUP):\n\n%s\n", auth.Entry(*name, role, token))
			fmt.Fprintln(a.stdout, "Only the hash goes in the file: the token is shown this once. Give it to its user as REMOTE_LAB_TOKEN.")
			return exitOK
		}
	},
}
