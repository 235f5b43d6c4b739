package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/internal/audit"
	"github.com/remotelab-go/remotelab/internal/metrics"
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
)

// env is a Server over a FakeRunner-backed lab.Manager, served either on a
// real socket (httptest) or, inside a synctest bubble, over net.Pipe.
type env struct {
	t      testing.TB
	runner *remotelabtest.FakeRunner
	b      *broker.Broker
	mgr    *lab.Manager
	srv    *httpserver.Server
	client *http.Client
	base   string
	work   string // the Manager's WorkRoot
	logs   *logBuffer
	// metrics is wired to both the broker (Observer) and the server.
	metrics *metrics.Metrics
	// audit is the audit log, withAudit only.
	audit *audit.Log
	// pipe is the listener when serving over net.Pipe, so a test can dial
	// a raw connection.
	pipe *pipeListener
}

// envOpts configures newEnv.
type envOpts struct {
	runner     *remotelabtest.FakeRunner
	cfg        httpserver.Config
	broker     broker.Config
	brokerOpts []func(*broker.Config)
	pipe       bool // serve over net.Pipe (for synctest bubbles)
	// remote is the client address the server sees over net.Pipe
	// (default "pipe", which is not loopback).
	remote string
	audit  bool
}

type envOpt func(*envOpts)

func withRunner(r *remotelabtest.FakeRunner) envOpt { return func(o *envOpts) { o.runner = r } }

func withConfig(f func(*httpserver.Config)) envOpt { return func(o *envOpts) { f(&o.cfg) } }

func overPipe() envOpt { return func(o *envOpts) { o.pipe = true } }

// overPipeFrom is overPipe with the server seeing its clients at remote
// (e.g. a loopback address, which admin routes need without auth).
func overPipeFrom(remote string) envOpt {
	return func(o *envOpts) { o.pipe, o.remote = true, remote }
}

// withAuth turns authentication on.
func withAuth(a httpserver.Authenticator) envOpt { return func(o *envOpts) { o.cfg.Auth = a } }

// withAudit gives the broker and the server an audit log (e.audit) in a
// temporary directory.
func withAudit() envOpt { return func(o *envOpts) { o.audit = true } }

func withBroker(f func(*broker.Config)) envOpt {
	return func(o *envOpts) { o.brokerOpts = append(o.brokerOpts, f) }
}

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	o := envOpts{}
	for _, f := range opts {
		f(&o)
	}
	if o.runner == nil {
		o.runner = &remotelabtest.FakeRunner{}
	}
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &env{t: t, runner: o.runner, logs: logs, work: t.TempDir()}
	bcfg := o.broker
	bcfg.Lab = lab.Config{
		Runner:   o.runner,
		WorkRoot: e.work,
		StateDir: t.TempDir(),
		LockPath: "-",
		Logger:   logger,
	}
	bcfg.Logger = logger
	e.metrics = metrics.New()
	bcfg.Observer = e.metrics
	if o.audit {
		a, err := audit.Open(filepath.Join(t.TempDir(), audit.FileName))
		require.NoError(t, err)
		t.Cleanup(func() { a.Close() })
		e.audit = a
		bcfg.Audit = a
	}
	for _, f := range o.brokerOpts {
		f(&bcfg)
	}
	b, err := broker.New(bcfg)
	require.NoError(t, err)
	_, err = b.Start(context.Background())
	require.NoError(t, err)
	e.b = b
	e.mgr = b.Manager()
	cfg := o.cfg
	cfg.Broker = b
	cfg.Logger = logger
	if cfg.Metrics == nil {
		cfg.Metrics = e.metrics
	}
	if e.audit != nil && cfg.Audit == nil {
		cfg.Audit = e.audit
	}
	srv, err := httpserver.New(cfg)
	require.NoError(t, err)
	e.srv = srv

	var stop func()
	if o.pipe {
		l := newPipeListener()
		l.remote = o.remote
		e.pipe = l
		hs := &http.Server{Handler: srv}
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = hs.Serve(l)
		}()
		tr := &http.Transport{DialContext: l.DialContext}
		e.client = &http.Client{Transport: tr}
		e.base = "http://remotelab.test"
		stop = func() {
			_ = hs.Close()
			<-served
			tr.CloseIdleConnections()
		}
	} else {
		ts := httptest.NewServer(srv)
		e.client = ts.Client()
		e.base = ts.URL
		stop = ts.Close
	}
	t.Cleanup(func() {
		// The broker closes first: it interrupts lab operations that
		// still run, so the server's connections can close.
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			// Tests with failing teardowns end with a dirty lab.
			t.Logf("close broker: %v", err)
		}
		stop()
	})
	return e
}

// resp is a received response.
type resp struct {
	code   int
	header http.Header
	body   []byte
}

// detail returns the {"detail": "..."} of an error body.
func (r resp) detail(t testing.TB) string {
	t.Helper()
	var e api.Error
	require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
	return e.Detail
}

// issues returns the list of a 422 validation body.
func (r resp) issues(t testing.TB) []api.ValidationIssue {
	t.Helper()
	var e api.ValidationError
	require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
	return e.Detail
}

// decode unmarshals the body into v.
func (r resp) decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body %s", r.body)
}

// request is a request to send.
type request struct {
	method  string
	path    string
	session string // X-Session-ID, if set
	ctype   string
	body    []byte
	header  http.Header
}

func (e *env) send(req request) resp {
	e.t.Helper()
	r, err := e.sendCtx(context.Background(), req)
	require.NoError(e.t, err)
	return r
}

// httpRequest builds the *http.Request of req to e's server.
func (e *env) httpRequest(ctx context.Context, req request) (*http.Request, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, e.base+req.path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.session != "" {
		hr.Header.Set(api.HeaderSessionID, req.session)
	}
	if req.ctype != "" {
		hr.Header.Set("Content-Type", req.ctype)
	}
	return hr, nil
}

func (e *env) sendCtx(ctx context.Context, req request) (resp, error) {
	hr, err := e.httpRequest(ctx, req)
	if err != nil {
		return resp{}, err
	}
	res, err := e.client.Do(hr)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{code: res.StatusCode, header: res.Header, body: b}, nil
}

func (e *env) get(path, session string) resp {
	e.t.Helper()
	return e.send(request{method: http.MethodGet, path: path, session: session})
}

// createSession opens a session and returns its id.
func (e *env) createSession() api.CreateSessionResponse {
	e.t.Helper()
	r := e.send(request{method: http.MethodPost, path: "/session"})
	require.Equal(e.t, http.StatusCreated, r.code, "POST /session: %s", r.body)
	var c api.CreateSessionResponse
	r.decode(e.t, &c)
	return c
}

// status returns GET /session/{id}.
func (e *env) status(id string) api.SessionStatus {
	e.t.Helper()
	r := e.get("/session/"+id, "")
	require.Equal(e.t, http.StatusOK, r.code, "GET /session: %s", r.body)
	var s api.SessionStatus
	r.decode(e.t, &s)
	return s
}

// head returns the session id GET /active-session reports, "" for none.
func (e *env) head() string {
	e.t.Helper()
	r := e.get("/active-session", "")
	if r.code == http.StatusNotFound {
		return ""
	}
	require.Equal(e.t, http.StatusOK, r.code, "GET /active-session: %s", r.body)
	var a api.ActiveSession
	r.decode(e.t, &a)
	return a.SessionID
}

// acquireReq is POST /lab with the given form parts.
func acquireReq(session string, parts ...part) request {
	body, ctype := form(parts...)
	return request{method: http.MethodPost, path: "/lab", session: session, body: body, ctype: ctype}
}

// acquire posts the parts to /lab for session.
func (e *env) acquire(session string, parts ...part) resp {
	e.t.Helper()
	return e.send(acquireReq(session, parts...))
}

// mustAcquire acquires topoA (or the given topology) and checks for 200.
func (e *env) mustAcquire(session string, parts ...part) api.AcquireResponse {
	e.t.Helper()
	if len(parts) == 0 {
		parts = []part{topo("lab.yml", topoA)}
	}
	r := e.acquire(session, parts...)
	require.Equal(e.t, http.StatusOK, r.code, "POST /lab: %s", r.body)
	var a api.AcquireResponse
	r.decode(e.t, &a)
	return a
}

// bundle returns a topology bundle for acquiring through the Manager
// directly (as another holder).
func bundle(t testing.TB, topo string) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle("other.yml", []byte(topo), topology.Limits{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// part is one multipart form part.
type part struct {
	name     string
	filename string
	hasFile  bool
	ctype    string
	body     []byte
}

func topo(filename, body string) part {
	return part{name: api.PartTopology, filename: filename, hasFile: true, ctype: "application/x-yaml", body: []byte(body)}
}

func extra(filename string, body []byte) part {
	return part{name: api.PartExtraFiles, filename: filename, hasFile: true, ctype: "application/octet-stream", body: body}
}

func field(name, value string) part { return part{name: name, body: []byte(value)} }

// form encodes parts as multipart/form-data. File names are sent as
// given (quoted, or RFC 2231-encoded when they hold control characters),
// so hostile names reach the server intact.
func form(parts ...part) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := make(textproto.MIMEHeader)
		cd := fmt.Sprintf("form-data; name=%s", quote(p.name))
		if p.hasFile {
			if strings.ContainsFunc(p.filename, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				cd += "; filename*=UTF-8''" + url.PathEscape(p.filename)
			} else {
				cd += "; filename=" + quote(p.filename)
			}
		}
		h.Set("Content-Disposition", cd)
		if p.ctype != "" {
			h.Set("Content-Type", p.ctype)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			panic(err)
		}
		pw.Write(p.body)
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// blocker holds a FakeRunner hook open: entered is signalled when the hook
// starts, and the hook returns when release is closed (nil) or its context
// ends (the context's error).
type blocker struct {
	entered chan string // the working directory, once per call
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan string, 16), release: make(chan struct{})}
}

func (b *blocker) upHook(ctx context.Context, spec lab.Spec) error {
	b.entered <- spec.Dir
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *blocker) downHook(ctx context.Context, dir string) error {
	return b.upHook(ctx, lab.Spec{Dir: dir})
}
