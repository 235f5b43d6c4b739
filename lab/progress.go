package lab

import (
	"context"
	"slices"
	"time"
)

// Progress is how a Runner reports what it is doing. The Manager puts one
// into the context of every Runner call; a Runner gets it with
// ProgressFrom (never nil; a no-op outside a Manager). Its methods may be
// called from several goroutines and return quickly.
type Progress interface {
	// Step says a step begins: "up", "inspect" or "down". It ends the
	// previous step of the same call, which thereby succeeded.
	Step(op string)
	// Output is a line the lab tool printed (stdout or stderr).
	Output(line string)
	// Process says a command started (running true, right after it
	// started) or ended (false). The Manager records running commands so
	// that a restarted process can kill what a crash left behind.
	Process(p Process, running bool)
}

type progressKey struct{}

// WithProgress returns a copy of ctx that carries p.
func WithProgress(ctx context.Context, p Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// ProgressFrom returns the Progress in ctx, or one that does nothing.
func ProgressFrom(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok && p != nil {
		return p
	}
	return noProgress{}
}

type noProgress struct{}

func (noProgress) Step(string)           {}
func (noProgress) Output(string)         {}
func (noProgress) Process(Process, bool) {}

// Operation is the Runner call running now, as Status shows it.
type Operation struct {
	// Kind is the current step: "up", "inspect" or "down" (for a Runner
	// that reports no steps, "up" during Up and "down" during Down).
	Kind string
	// Started is when the step began.
	Started time.Time
	// LastOutput is the last line the lab tool printed in this call.
	LastOutput string
}

// maxOutputLine bounds Operation.LastOutput.
const maxOutputLine = 1024

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventChanged     EventKind = iota // state, references, operation or its last output changed
	EventStep                         // a runner step finished: Op, Err, Duration
	EventStarted                      // a lab start finished (up and inventory): Fingerprint, Err
	EventTornDown                     // a teardown finished: Fingerprint, Reason, Err
	EventAcquired                     // a holder got a reference: Holder, Fingerprint, Reused
	EventRecordError                  // storing the record failed: Err
)

var eventNames = [...]string{"changed", "step", "started", "torn-down", "acquired", "record-error"}

// String returns the kind's name, such as "step".
func (k EventKind) String() string {
	if k >= 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is what Config.OnEvent is told. Which fields are set depends on
// Kind (see the EventKind constants). Err of a step that ran out of time
// wraps context.DeadlineExceeded.
type Event struct {
	Kind        EventKind
	Op          string // EventStep: "up", "inspect" or "down"
	Fingerprint string
	Holder      string
	Reason      string // EventTornDown: idle-timeout, topology-switch, exclusive-request, dirty-retry, start-failed, destroy, destroy-forced, recover or shutdown
	Reused      bool
	Err         error
	Duration    time.Duration
}

func (m *Manager) emit(ev Event) {
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(ev)
	}
}

// runnerCall runs call (Runner.Up or Down) as the current Operation, kind
// being its implicit step, with a Progress in its context. Each step that
// finishes is an EventStep; the last one carries call's error.
func (m *Manager) runnerCall(ctx context.Context, kind string, call func(context.Context) error) error {
	tr := &tracker{m: m, implicit: kind}
	m.mu.Lock()
	m.operation = &Operation{Kind: kind, Started: time.Now()}
	m.mu.Unlock()
	m.emit(Event{Kind: EventChanged})

	err := call(WithProgress(ctx, tr))

	m.mu.Lock()
	op := *m.operation
	tr.done = true
	m.operation = nil
	leftover := len(m.procs) > 0 // the call returned, so its commands ended
	m.procs = nil
	if leftover {
		m.recVer++
	}
	ver := m.recVer
	m.mu.Unlock()
	m.emit(Event{Kind: EventStep, Op: op.Kind, Err: err, Duration: time.Since(op.Started)})
	if leftover {
		m.syncRecord(ver)
	}
	m.emit(Event{Kind: EventChanged})
	return err
}

// tracker is the Progress of one Runner call. Its fields are guarded by
// Manager.mu; reports after the call returned are ignored.
type tracker struct {
	m        *Manager
	implicit string // the step the call started with
	stepped  bool   // the Runner reported a step
	done     bool   // the call returned
}

func (t *tracker) Step(op string) {
	m := t.m
	now := time.Now()
	m.mu.Lock()
	if t.done {
		m.mu.Unlock()
		return
	}
	prev := *m.operation
	first := !t.stepped
	t.stepped = true
	if first && op == t.implicit {
		m.mu.Unlock() // the Runner confirms the step it started with
		return
	}
	m.operation = &Operation{Kind: op, Started: now}
	m.mu.Unlock()
	if !first {
		m.emit(Event{Kind: EventStep, Op: prev.Kind, Duration: now.Sub(prev.Started)})
	}
	m.emit(Event{Kind: EventChanged})
}

func (t *tracker) Output(line string) {
	if len(line) > maxOutputLine {
		line = line[:maxOutputLine]
	}
	m := t.m
	m.mu.Lock()
	if t.done {
		m.mu.Unlock()
		return
	}
	m.operation.LastOutput = line
	m.mu.Unlock()
	m.emit(Event{Kind: EventChanged})
}

func (t *tracker) Process(p Process, running bool) {
	m := t.m
	m.mu.Lock()
	if t.done {
		m.mu.Unlock()
		return
	}
	if running {
		m.procs = append(m.procs, p)
	} else if i := slices.Index(m.procs, p); i >= 0 {
		m.procs = slices.Delete(m.procs, i, i+1)
	} else {
		m.mu.Unlock()
		return
	}
	m.recVer++
	ver := m.recVer
	m.mu.Unlock()
	m.syncRecord(ver)
}
