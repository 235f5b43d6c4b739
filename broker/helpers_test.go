package broker_test

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Topologies used throughout.
const (
	topoA = "name: a\nnodes: [r1, r2]\n"
	topoB = "name: b\nnodes: [r1, r2, r3]\n"
	topoC = "name: c\nnodes: [x]\n"
)

func bundle(t testing.TB, src string) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle("lab.yml", []byte(src), topology.Limits{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// memStore is an in-memory broker.Store that applies changes as they come.
type memStore struct {
	mu         sync.Mutex
	sessions   map[string]broker.SavedSession
	epoch      uint64
	paused     bool
	ended      []broker.Ended
	quarantine *broker.Quarantine
	lab        *lab.Record
	syncs      int
}

func newMemStore() *memStore {
	return &memStore{sessions: map[string]broker.SavedSession{}}
}

func (m *memStore) PutSession(s broker.SavedSession) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[s.ID] = s
}

func (m *memStore) DeleteSession(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
}

func (m *memStore) PutEpoch(e uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch = e
}

func (m *memStore) PutPaused(p bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = p
}

func (m *memStore) AddEnded(e broker.Ended) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended = append(m.ended, e)
}

func (m *memStore) PutQuarantine(q *broker.Quarantine) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.quarantine = q
}

func (m *memStore) Sync(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
	return nil
}

func (m *memStore) Err() error { return nil }

// state is what the store would load at the next start.
func (m *memStore) state() *broker.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &broker.State{
		Sessions:   slices.Collect(maps.Values(m.sessions)),
		LastEpoch:  m.epoch,
		Paused:     m.paused,
		Ended:      slices.Clone(m.ended),
		Quarantine: m.quarantine,
	}
}

// The lab record half of the store.
func (m *memStore) Load() (*lab.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lab, nil
}

func (m *memStore) Save(r lab.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lab = &r
	return nil
}

func (m *memStore) Delete() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lab = nil
	return nil
}

// auditLog collects audit entries; while fail is set, Record fails with
// it and keeps nothing.
type auditLog struct {
	mu      sync.Mutex
	entries []broker.Audit
	fail    error
}

func (a *auditLog) Record(e broker.Audit) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.entries = append(a.entries, e)
	return nil
}

func (a *auditLog) setFail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

func (a *auditLog) all() []broker.Audit {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.entries)
}

func (a *auditLog) actions() []string {
	var out []string
	for _, e := range a.all() {
		out = append(out, e.Action)
	}
	return out
}

// env is a started Broker over a FakeRunner.
type env struct {
	t      testing.TB
	b      *broker.Broker
	runner *remotelabtest.FakeRunner
	audit  *auditLog
	store  *memStore
}

type envOpt func(*broker.Config)

func newEnv(t testing.TB, runner *remotelabtest.FakeRunner, opts ...envOpt) *env {
	t.Helper()
	if runner == nil {
		runner = &remotelabtest.FakeRunner{}
	}
	e := &env{t: t, runner: runner, audit: &auditLog{}}
	cfg := broker.Config{
		Lab: lab.Config{
			Runner:   runner,
			WorkRoot: t.TempDir(),
			LockPath: "-",
			Logger:   slog.New(slog.DiscardHandler),
		},
		Audit:  e.audit,
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if s, ok := cfg.Store.(*memStore); ok {
		e.store = s
		cfg.Lab.Records = s
	}
	b, err := broker.New(cfg)
	require.NoError(t, err)
	_, err = b.Start(context.Background())
	require.NoError(t, err)
	e.b = b
	t.Cleanup(func() { e.close() })
	return e
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = e.b.Close(ctx)
}

func withStore(s *memStore) envOpt {
	return func(c *broker.Config) {
		c.Store = s
		c.Restore = s.state()
		c.Lab.KeepOnClose = true
	}
}

func (e *env) join(owner string) broker.Session {
	e.t.Helper()
	s, err := e.b.Join(broker.Meta{Owner: owner})
	require.NoError(e.t, err)
	return s
}

// acquire runs one acquire of src for session id.
func (e *env) acquire(id, src string) (lab.Result, error) {
	e.t.Helper()
	op, err := e.b.Begin(id)
	if err != nil {
		return lab.Result{}, err
	}
	defer op.End()
	return op.Acquire(context.Background(), bundle(e.t, src), true)
}

func (e *env) release(id string) {
	e.t.Helper()
	op, err := e.b.Begin(id)
	require.NoError(e.t, err)
	defer op.End()
	require.NoError(e.t, op.Release())
}
