package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/remotelab-go/remotelab/api"
)

// baselineServer is the bare net/http server of the baseline scenario: the
// routes the throughput test calls, answered from a map with the same wire
// types and headers as remotelabd, and nothing else (no queue semantics,
// no authentication, no logging, no metrics, no persistence). It is the
// floor remotelabd is measured against.
type baselineServer struct {
	mu       sync.Mutex
	sessions map[string]*baselineSession
}

type baselineSession struct {
	position int
	owner    string
	lastSeen time.Time
}

// pollKinds are the calls the throughput comparisons measure: a status
// poll or a heartbeat of a random waiter.
var pollKinds = []struct {
	name string
	fn   func(t *pollTarget) func(context.Context) error
}{
	{"status polls", func(t *pollTarget) func(context.Context) error { return t.poll }},
	{"heartbeats", func(t *pollTarget) func(context.Context) error { return t.beat }},
}

// serveBaseline runs the baseline server on a free loopback port until
// SIGTERM or SIGINT.
func serveBaseline() error {
	b := &baselineServer{sessions: map[string]*baselineSession{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /session", b.create)
	mux.HandleFunc("GET /session/{id}", b.status)
	mux.HandleFunc("POST /session/heartbeat", b.heartbeat)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return serveUntilSignal(mux, nil)
}

func (b *baselineServer) create(w http.ResponseWriter, r *http.Request) {
	id := uuid.NewString()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	b.mu.Lock()
	s := &baselineSession{position: len(b.sessions), owner: host, lastSeen: time.Now()}
	b.sessions[id] = s
	b.mu.Unlock()
	st := "waiting"
	if s.position == 0 {
		st = "active"
	}
	baselineJSON(w, http.StatusCreated, api.CreateSessionResponse{SessionID: id, Position: s.position, Status: st,
		SessionDetails: api.SessionDetails{Owner: s.owner}})
}

func (b *baselineServer) status(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	s := b.sessions[r.PathValue("id")]
	var v api.SessionStatus
	if s != nil {
		s.lastSeen = time.Now()
		v = api.SessionStatus{Status: "waiting", Position: s.position, SessionDetails: api.SessionDetails{Owner: s.owner}}
		if s.position == 0 {
			v.Status = "active"
		}
	}
	b.mu.Unlock()
	if s == nil {
		baselineJSON(w, http.StatusNotFound, api.Error{Detail: api.DetailSessionNotFound})
		return
	}
	baselineJSON(w, http.StatusOK, v)
}

func (b *baselineServer) heartbeat(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	s := b.sessions[r.Header.Get(api.HeaderSessionID)]
	if s != nil {
		s.lastSeen = time.Now()
	}
	b.mu.Unlock()
	if s == nil {
		baselineJSON(w, http.StatusNotFound, api.Error{Detail: api.DetailSessionNotFound})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// baselineJSON writes v as remotelabd does: JSON with Content-Type and
// Content-Length.
func baselineJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// baseline starts the baseline server (this binary in role "baseline").
func (e *env) baseline(ctx context.Context) (*server, error) {
	return startProcess(ctx, "baseline", e.cfg.Self, nil, []string{roleEnv + "=" + roleBase})
}

// pollTarget is a server with a holder and waiters, ready for status
// polls and heartbeats.
type pollTarget struct {
	srv *server
	c   *apiClient
	ids []string // the waiters
}

// fill creates a holder and n waiters on srv through c.
func fill(ctx context.Context, srv *server, c *apiClient, n int) (*pollTarget, error) {
	if _, err := c.create(ctx); err != nil {
		return nil, fmt.Errorf("%s: create holder: %w", srv.Name, err)
	}
	ids, _, err := createMany(ctx, c, n, 16)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", srv.Name, err)
	}
	return &pollTarget{srv: srv, c: c, ids: ids}, nil
}

// poll and beat are a status poll and a heartbeat of a random waiter.
func (t *pollTarget) poll(ctx context.Context) error {
	_, err := t.c.status(ctx, t.ids[rand.N(len(t.ids))], 0)
	return err
}

func (t *pollTarget) beat(ctx context.Context) error {
	return t.c.heartbeat(ctx, t.ids[rand.N(len(t.ids))])
}

// runBaseline compares remotelabd (at its default log level, INFO, with
// its state directory) with the bare net/http baseline server: status
// polls and heartbeats of random waiters among cfg.Waiters, the same
// workers, phases alternating. With -cpuprofile it then profiles the same
// load on httpserver in a child process of this binary.
func runBaseline(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	base, err := e.baseline(ctx)
	if err != nil {
		return err
	}
	defer base.Stop()
	rl, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer rl.Stop()
	var targets []*pollTarget
	for _, srv := range []*server{base, rl} {
		c := newAPIClient(srv.URL, cfg.Workers+32, 1)
		defer c.Close()
		t, err := fill(ctx, srv, c, cfg.Waiters)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	bt, rt := targets[0], targets[1]
	for _, kind := range pollKinds {
		res, err := alternate(ctx, cfg.Rounds, cfg.Phase, cfg.Workers, []variant{
			{"baseline", kind.fn(bt), bt.srv}, {"remotelabd", kind.fn(rt), rt.srv},
		})
		if err != nil {
			return err
		}
		b, d := res[0], res[1]
		r.add(kind.name+": baseline (bare net/http)", "%.0f/s (%s), %s; %s", b.rate(), b.spread(), b.cpuPerCall(), summarize(b.lat))
		r.add(kind.name+": remotelabd (INFO)", "%.0f/s (%s), %s; %s", d.rate(), d.spread(), d.cpuPerCall(), summarize(d.lat))
		r.add(kind.name+": remotelabd / baseline", "%s (goal ≥ 90 %%: %s; %d waiting, %d workers, %d × %s alternating)",
			ratio(d.rate(), b.rate()), goal(d.rate(), b.rate(), 0.9), cfg.Waiters, cfg.Workers, cfg.Rounds, cfg.Phase)
		for i, t := range res {
			if len(t.errs) > 0 {
				r.violate("%s on %s failed: %s", kind.name, targets[i].srv.Name, t.failures())
			}
		}
	}
	if cfg.CPUProfile != "" {
		return profileServe(ctx, e, r)
	}
	return nil
}

// profileServe runs status polls and heartbeats against httpserver in a
// child process (role serve, same wiring as remotelabd) that writes a CPU
// profile to cfg.CPUProfile.
func profileServe(ctx context.Context, e *env, r *scenarioReport) error {
	cfg := e.cfg
	env := []string{roleEnv + "=" + roleServ, profileEnv + "=" + cfg.CPUProfile}
	srv, err := startProcess(ctx, "httpserver", cfg.Self, nil, env)
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := newAPIClient(srv.URL, cfg.Workers+32, 1)
	defer c.Close()
	t, err := fill(ctx, srv, c, cfg.Waiters)
	if err != nil {
		return err
	}
	d := time.Duration(cfg.Rounds) * cfg.Phase
	np, _, _ := hammer(ctx, cfg.Workers, d, t.poll)
	nh, _, _ := hammer(ctx, cfg.Workers, d, t.beat)
	srv.Stop() // SIGTERM: the profile is written
	if _, err := os.Stat(cfg.CPUProfile); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	r.add("CPU profile of httpserver (child process)", "%s: %.0f polls/s then %.0f heartbeats/s, %s each (go tool pprof -top %s)",
		cfg.CPUProfile, float64(np)/d.Seconds(), float64(nh)/d.Seconds(), d, cfg.CPUProfile)
	return nil
}
