package main

import (
	"fmt"
	"io"
	"time"
)

// config holds the sizes and durations of a run.
type config struct {
	Bin  string // remotelabd binary; "" builds it
	Run  string // comma-separated scenario names; "" runs all
	Self string // executable for child roles; "" is os.Executable()

	Handovers     int           // long-poll hand-overs
	PollHandovers int           // hand-overs with interval polling
	PollInterval  time.Duration // the polling client's interval
	Hold          time.Duration // how long a holder keeps the head before leaving
	LongPoll      time.Duration // the harness's own long-poll ?wait=

	Waiters  int           // waiting sessions during the throughput test
	Workers  int           // concurrent requesters in the throughput test
	Duration time.Duration // length of each throughput phase

	Scale       int // sessions on long-poll at once
	ScaleRounds int // fan-outs measured
	Sources     int // loopback source addresses

	LabIters   int // lab overhead iterations
	Nodes      int // nodes of the lab overhead topology
	ExtraBytes int // extra files in the lab overhead upload

	ChurnClients  int
	ChurnDuration time.Duration

	KillTTL time.Duration // --active-ttl of the kill -9 scenario (at least killTTLMargin × holdHeartbeat)

	HostileDuration time.Duration // each phase (baseline, hostile)
	HostileRate     float64       // hostile requests per second
	RSSBound        int64         // MiB the server may grow under hostile input

	Rounds     int           // alternating rounds of the comparisons (baseline, overhead, persist)
	Phase      time.Duration // one variant's phase in a round
	CPUProfile string        // baseline: also profile httpserver in a child process, into this file
	OldBin     string        // overhead: remotelabd built from commit cebaff4 ("" skips it)
	OldName    string        // overhead: what -old-bin was built from

	EventWaiters int // events: waiting sessions
	Viewers      int // events: GET /events streams
	EventChanges int // events: changes measured
	EventBursts  int // events: back-to-back pairs of joins checked for lost updates
	QueueGets    int // events: GET /queue requests measured

	FloodDuration time.Duration // flood: how long the creators flood
	FloodWorkers  int           // flood: concurrent creators
	FloodCap      int           // flood: --max-sessions of the bounded server

	PersistWorkers  int // persist: concurrent create/delete workers
	RestartSessions int // restart: queued sessions
	KillRounds      int // kill9churn: kill -9 rounds
	KillClients     int // kill9churn: churning clients (as many again just wait)

	Markdown bool
	Verbose  bool
	Out      io.Writer // progress and results (default os.Stdout)
}

// fullConfig is the published measurement.
func fullConfig() config {
	return config{
		Handovers: 1000, PollHandovers: 40, PollInterval: 5 * time.Second, Hold: 10 * time.Millisecond,
		LongPoll: 30 * time.Second,
		Waiters:  1000, Workers: 16, Duration: 5 * time.Second,
		Scale: 10000, ScaleRounds: 3, Sources: 4,
		LabIters: 50, Nodes: 10, ExtraBytes: 1 << 20,
		ChurnClients: 50, ChurnDuration: 30 * time.Second,
		KillTTL:         2 * time.Second,
		HostileDuration: 10 * time.Second, HostileRate: 40, RSSBound: 128,
		Rounds: 5, Phase: 2 * time.Second,
		EventWaiters: 1000, Viewers: 100, EventChanges: 40, EventBursts: 20, QueueGets: 200,
		FloodDuration: 20 * time.Second, FloodWorkers: 32, FloodCap: 10000,
		PersistWorkers: 64, RestartSessions: 10000,
		KillRounds: 50, KillClients: 8,
		OldName: overheadOldCommit,
	}
}

// shortConfig runs every scenario with small sizes (about 2 minutes).
func shortConfig() config {
	c := fullConfig()
	c.Handovers, c.PollHandovers, c.PollInterval = 200, 10, 500*time.Millisecond
	c.LongPoll = 10 * time.Second
	c.Waiters, c.Duration = 1000, 2*time.Second
	c.Scale, c.ScaleRounds = 1000, 1
	c.LabIters = 10
	c.ChurnClients, c.ChurnDuration = 20, 5*time.Second
	c.HostileDuration, c.HostileRate = 3*time.Second, 20
	c.Rounds, c.Phase = 3, time.Second
	c.EventChanges, c.EventBursts = 24, 8
	c.FloodDuration = 5 * time.Second
	c.KillRounds = 10
	return c
}

// tinyConfig is the short suite made small enough for go test (-race).
func tinyConfig() config {
	c := shortConfig()
	c.Handovers, c.PollHandovers, c.PollInterval = 50, 4, 200*time.Millisecond
	// The long-poll stays at the short suite's 10 s: a passing run never
	// waits one out (every change wakes the waiter), and a hand-over
	// counts as a lost wake-up only after half of it, 5 s, far above
	// hand-overs of a few milliseconds even on a loaded machine.
	c.Waiters, c.Workers, c.Duration = 200, 4, time.Second
	c.Scale, c.Sources = 200, 2
	c.LabIters = 3
	c.ChurnClients, c.ChurnDuration = 8, 2*time.Second
	// 12 heartbeats of the holder per TTL: under go test -race on a
	// loaded 2-core machine the holder may stall for 2.75 s and still
	// never expire while it lives.
	c.KillTTL = 3 * time.Second
	c.HostileDuration, c.HostileRate = 1500*time.Millisecond, 10
	c.Rounds, c.Phase = 2, 250*time.Millisecond
	c.EventWaiters, c.Viewers, c.EventChanges, c.EventBursts, c.QueueGets = 200, 10, 6, 3, 20
	c.FloodDuration, c.FloodWorkers, c.FloodCap = time.Second, 4, 300
	c.PersistWorkers, c.RestartSessions = 16, 500
	c.KillRounds, c.KillClients = 5, 4
	return c
}

// validate rejects sizes and durations the scenarios cannot run with
// (they would divide by zero, index an empty slice or never finish).
func (c config) validate() error {
	for _, v := range []struct {
		flag string
		n    int
	}{
		{"handovers", c.Handovers}, {"poll-handovers", c.PollHandovers},
		{"waiters", c.Waiters}, {"workers", c.Workers},
		{"scale", c.Scale}, {"scale-rounds", c.ScaleRounds},
		{"lab-iters", c.LabIters}, {"nodes", c.Nodes},
		{"churn-clients", c.ChurnClients},
		{"rounds", c.Rounds}, {"event-waiters", c.EventWaiters}, {"viewers", c.Viewers},
		{"event-changes", c.EventChanges}, {"queue-gets", c.QueueGets},
		{"flood-workers", c.FloodWorkers}, {"flood-cap", c.FloodCap},
		{"persist-workers", c.PersistWorkers}, {"restart-sessions", c.RestartSessions},
		{"kill-rounds", c.KillRounds}, {"kill-clients", c.KillClients},
	} {
		if v.n < 1 {
			return fmt.Errorf("invalid -%s %d: must be at least 1", v.flag, v.n)
		}
	}
	for _, v := range []struct {
		flag string
		d    time.Duration
	}{
		{"poll-interval", c.PollInterval}, {"long-poll", c.LongPoll},
		{"duration", c.Duration}, {"churn-duration", c.ChurnDuration},
		{"kill-ttl", c.KillTTL}, {"hostile-duration", c.HostileDuration},
		{"phase", c.Phase}, {"flood-duration", c.FloodDuration},
	} {
		if v.d <= 0 {
			return fmt.Errorf("invalid -%s %s: must be positive", v.flag, v.d)
		}
	}
	switch {
	case c.KillTTL < killTTLMargin*holdHeartbeat:
		return fmt.Errorf("invalid -kill-ttl %s: must be at least %s (%d heartbeats of the holder, every %s)",
			c.KillTTL, killTTLMargin*holdHeartbeat, killTTLMargin, holdHeartbeat)
	case c.Hold < 0:
		return fmt.Errorf("invalid -hold %s: must not be negative", c.Hold)
	case c.Sources < 1 || c.Sources > 254:
		return fmt.Errorf("invalid -sources %d: must be between 1 and 254 (127.0.0.1..127.0.0.254)", c.Sources)
	case c.ExtraBytes < 0:
		return fmt.Errorf("invalid -extra-bytes %d: must not be negative", c.ExtraBytes)
	case !(c.HostileRate > 0) || c.HostileRate > 1e6:
		return fmt.Errorf("invalid -hostile-rate %v: must be above 0 and at most 1e6", c.HostileRate)
	case c.RSSBound < 1:
		return fmt.Errorf("invalid -rss-bound %d: must be at least 1", c.RSSBound)
	}
	return nil
}
