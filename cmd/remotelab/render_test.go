package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
)

func ptr[T any](v T) *T { return &v }

// The overview shows every part of the queue document a server may send.
func TestWriteOverview(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	q := api.Queue{
		ServerTime: now,
		Holder: &api.QueueSession{ID: "aaaaaaaa", Owner: "alice", Labels: map[string]string{"job": "j"}, Status: "active",
			ActiveSeconds: ptr(252.0), IdleSeconds: 3, HoldDeadline: ptr(now.Add(10 * time.Minute))},
		Waiting: []api.QueueSession{{ID: "bbbbbbbb", Owner: "bob", Status: "waiting", Position: 1, WaitingSeconds: 61,
			EstimatedWaitSeconds: ptr(3780.0)}},
		Lab: api.QueueLab{State: "starting", Topology: ptr("lab.yml"), Holders: 1, Since: ptr(now.Add(-time.Minute)),
			Operation: &api.LabOperation{Kind: "up", RunningSeconds: 42, LastOutput: ptr("[INFO]  Starting\tcontainers\n")}},
		Stats:      api.QueueStats{HoldSecondsAvg: ptr(600.0), SessionsServed: 1},
		Draining:   true,
		Quarantine: &api.Quarantine{Since: now.Add(-2 * time.Hour), Reason: "netlab down: exit status 1"},
	}
	var b strings.Builder
	writeOverview(&b, q)
	assert.Equal(t, `Holder    alice (aaaaaaaa), held for 4m12s, idle for 3s, max hold ends in 10m
          labels job=j
Lab       starting lab.yml, 1 holder, since 1m ago
          netlab up running for 42s: [INFO] Starting containers
Queue     1 waiting; next bob (bbbbbbbb), waiting 1m1s, about 1h3m to go
Served    1 session, average hold 10m
Draining  no session is promoted until an admin resumes (remotelab admin resume)
QUARANTINED since 2h ago: netlab down: exit status 1
`, b.String())

	b.Reset()
	writeOverview(&b, api.Queue{ServerTime: now, Lab: api.QueueLab{State: "none"}})
	assert.Equal(t, "Holder    none\nLab       none\nQueue     0 waiting\nServed    0 sessions\n", b.String())
}

func TestWriteDevicesTable(t *testing.T) {
	var b strings.Builder
	writeDevicesTable(&b, []client.Device{
		{Name: "r1", Raw: json.RawMessage(`{"mgmt":{"ipv4":"10.0.0.1"},"device":"eos","ansible_user":"admin"}`)},
		{Name: "r2", Raw: json.RawMessage(`{"ansible_host":"10.0.0.2","ansible_network_os":"ios"}`)},
		{Name: "x", Raw: json.RawMessage(`null`)},
	})
	assert.Equal(t, `NAME  MGMT      DEVICE  USER
r1    10.0.0.1  eos     admin
r2    10.0.0.2  ios     -
x     -         -       -
`, b.String())
}

// On a terminal the wait is one line, rewritten in place.
func TestProgressLine(t *testing.T) {
	var b strings.Builder
	p := &progressLine{w: &b, tty: true, started: time.Now()}
	p.update(client.Progress{Status: "waiting", Position: 2})
	p.update(client.Progress{Status: "waiting", Position: 1, HasEstimate: true, EstimatedWait: 90 * time.Second})
	p.update(client.Progress{Status: "active"})
	assert.Equal(t, "\r\033[KWaiting for the lab: position 2 in the queue"+
		"\r\033[KWaiting for the lab: position 1 in the queue, about 1m30s to go\n"+
		"Session active after 0s in the queue.\n", b.String())

	// A session active at once says nothing.
	b.Reset()
	p = &progressLine{w: &b, tty: true, started: time.Now()}
	p.update(client.Progress{Status: "active"})
	assert.Empty(t, b.String())
}

func TestWriteAuditTable(t *testing.T) {
	now := time.Now()
	var b strings.Builder
	writeAuditTable(&b, []api.AuditEntry{{Time: now.Add(-time.Minute), Actor: "alice", Action: "evicted",
		Session: "0123456789abcdef", Owner: "bob", Reason: "evicted by alice: stuck"}}, now)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	assert.Len(t, lines, 2)
	assert.Regexp(t, `^TIME\s+ACTOR\s+ACTION\s+SESSION\s+OWNER\s+REASON$`, lines[0])
	assert.Regexp(t, `\(1m ago\)\s+alice\s+evicted\s+01234567\s+bob\s+evicted by alice: stuck$`, lines[1])
}
