// Package client is the Go client of the remotelab HTTP API.
//
// A [Client] knows where the server is and how long to wait for it. Open
// puts a [Session] into the server's FIFO queue and returns once the
// session is at the head, waiting by long-poll (or, against the original
// Python server, by polling). While a Session is open it sends heartbeats
// in the background, so a test that spends a long time between lab calls
// keeps its place. The session then acquires a lab from a Netlab topology
// (plus extra files), gets its devices, releases it, and is closed:
//
//	c, err := client.FromEnv()
//	...
//	s, err := c.Open(ctx)
//	...
//	defer s.Close(context.Background())
//	devices, reused, err := s.Acquire(ctx, "testdata/lab.yml")
//	...
//	defer s.Release(context.Background())
//
// Open takes options that tell the server who the session is for and
// bound it ([WithOwner], [WithLabels], [WithWaitTimeout], [WithMaxHold]),
// and reports the place in the queue while it waits ([OnProgress]). A
// client made by [FromEnv] fills in the owner, labels (with the CI job it
// runs in) and wait timeout from the environment. Against a server with
// authentication, [WithToken] (or REMOTE_LAB_TOKEN) sends a bearer token.
//
// Heartbeats and the wait in the queue ride through a restart of the
// server: they retry for the ride-through window ([WithRideThrough]). A
// session that ended on the server (closed, expired, evicted, timed out)
// ends the Session: [Session.Err] says why, with the server's reason.
//
// Errors are typed: server answers are [*Error] values matching sentinels
// such as [ErrConflict], [ErrEvicted] or [ErrQueueFull], failed requests
// are [*TransportError] values.
//
// Beyond sessions, a Client reads the server's views ([Client.Queue],
// [Client.History], [Client.Ready], [Client.Watch]) and, for admins,
// acts on the host ([Client.Admin]).
//
// Tests use package remotelabtest, which wraps all of this into one line
// per test.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// Defaults of the client's settings.
const (
	// DefaultRequestTimeout bounds one ordinary API call
	// (REMOTE_LAB_REQUEST_TIMEOUT).
	DefaultRequestTimeout = 30 * time.Second
	// DefaultSessionTimeout bounds how long Open waits for the session to
	// become active (REMOTE_LAB_SESSION_TIMEOUT).
	DefaultSessionTimeout = 600 * time.Second
	// DefaultAcquisitionTimeout bounds one Acquire, busy retries included
	// (REMOTE_LAB_ACQUISITION_TIMEOUT).
	DefaultAcquisitionTimeout = 600 * time.Second
	// DefaultHeartbeatInterval is how often an open session sends a
	// heartbeat. The server's default active TTL is 300 s.
	DefaultHeartbeatInterval = 60 * time.Second
	// DefaultPollInterval is how often the client asks again when the
	// server cannot tell it about a change: session status polls against
	// a server without long-poll, and Acquire retries while the lab is busy.
	DefaultPollInterval = 5 * time.Second
	// DefaultRideThrough is how long heartbeats and the wait in the queue
	// keep retrying a server that does not answer (or answers 502, 503,
	// 504), e.g. while it restarts: the server's default active TTL, after
	// which it would have ended the session anyway.
	DefaultRideThrough = 300 * time.Second
)

// longPollWait is the ?wait= of a status long-poll. The server caps it at
// 60 s; 30 s stays well clear of proxies' idle timeouts.
const longPollWait = 30 * time.Second

// Client talks to one remotelab server. It holds no connection state of
// its own (connections belong to its http.Client), so it needs no Close;
// the Sessions it opens must be closed. A Client is safe for concurrent
// use.
type Client struct {
	base string // base URL without trailing slash
	cfg  config
}

type config struct {
	httpClient         *http.Client
	logger             *slog.Logger
	requestTimeout     time.Duration
	sessionTimeout     time.Duration
	acquisitionTimeout time.Duration
	heartbeatInterval  time.Duration
	pollInterval       time.Duration
	rideThrough        time.Duration
	token              string       // bearer token; "" for none
	openDefaults       []OpenOption // applied before each Open's own
}

func defaultConfig() config {
	return config{
		httpClient:         http.DefaultClient,
		logger:             slog.Default(),
		requestTimeout:     DefaultRequestTimeout,
		sessionTimeout:     DefaultSessionTimeout,
		acquisitionTimeout: DefaultAcquisitionTimeout,
		heartbeatInterval:  DefaultHeartbeatInterval,
		pollInterval:       DefaultPollInterval,
		rideThrough:        DefaultRideThrough,
		openDefaults:       []OpenOption{WithOwner(DefaultOwner())},
	}
}

func (c config) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"request timeout", c.requestTimeout},
		{"session timeout", c.sessionTimeout},
		{"acquisition timeout", c.acquisitionTimeout},
		{"ride-through window", c.rideThrough},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s must not be negative, got %v", d.name, d.v)
		}
	}
	if c.heartbeatInterval <= 0 {
		return fmt.Errorf("heartbeat interval must be positive, got %v", c.heartbeatInterval)
	}
	if c.pollInterval <= 0 {
		return fmt.Errorf("poll interval must be positive, got %v", c.pollInterval)
	}
	if c.httpClient == nil {
		return errors.New("http client must not be nil")
	}
	if c.logger == nil {
		return errors.New("logger must not be nil")
	}
	if err := checkToken(c.token); err != nil {
		return err
	}
	if _, err := newOpenConfig(c.openDefaults, nil); err != nil {
		return fmt.Errorf("session defaults: %w", err)
	}
	return nil
}

// checkToken rejects a token that cannot be sent in a header.
func checkToken(token string) error {
	for _, r := range token {
		if r < 0x21 || r > 0x7e {
			return errors.New("token must be printable ASCII without spaces")
		}
	}
	return nil
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient makes the client send its requests through hc (default
// http.DefaultClient). Per-call timeouts are applied through contexts, so
// hc.Timeout, if set, must be longer than every timeout below.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithLogger makes the client log its progress to l (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRequestTimeout bounds each ordinary API call (default 30 s). A
// long-poll may take longer by the time it asks the server to wait. Zero
// means no bound beyond the caller's context.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *config) { c.requestTimeout = d }
}

// WithSessionTimeout bounds how long Open waits in the queue (default
// 600 s). Zero means no bound beyond the caller's context.
func WithSessionTimeout(d time.Duration) Option {
	return func(c *config) { c.sessionTimeout = d }
}

// WithAcquisitionTimeout bounds one Acquire, including the lab start on
// the server and the retries while the lab is busy (default 600 s). Zero
// means no bound beyond the caller's context.
func WithAcquisitionTimeout(d time.Duration) Option {
	return func(c *config) { c.acquisitionTimeout = d }
}

// WithHeartbeatInterval sets how often an open session tells the server it
// is alive (default 60 s). It must be well below the server's active TTL
// (default 300 s).
func WithHeartbeatInterval(d time.Duration) Option {
	return func(c *config) { c.heartbeatInterval = d }
}

// WithPollInterval sets how often the client asks again when the server
// cannot notify it (default 5 s): status polls against a server without
// long-poll, and Acquire retries while the lab is busy.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) { c.pollInterval = d }
}

// WithToken makes the client send token as "Authorization: Bearer
// <token>" on every request, for a server run with --auth-file (default:
// none; FromEnv reads REMOTE_LAB_TOKEN). The token never appears in logs
// or in String.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithRideThrough sets how long heartbeats and the wait in the queue keep
// retrying while the server does not answer or answers 502, 503 or 504,
// as during a restart (default 300 s, the server's default active TTL).
// The retries back off from 1 s, doubling up to 30 s. Zero turns the
// retries off: the first failure counts.
func WithRideThrough(d time.Duration) Option { return func(c *config) { c.rideThrough = d } }

// WithOpenDefaults makes opts the defaults of every Open of the client;
// the options passed to Open apply after them. New's only default is
// WithOwner(DefaultOwner()); FromEnv's are those of OpenOptionsFromEnv.
// Invalid defaults (e.g. an owner of 200 characters) make New fail.
func WithOpenDefaults(opts ...OpenOption) Option {
	return func(c *config) { c.openDefaults = append(c.openDefaults, opts...) }
}

// New returns a client of the server at baseURL (e.g.
// "http://lab1:8000"; a trailing slash is ignored). It fails on a URL
// that is not absolute http(s) and on invalid options; it does not
// contact the server. It reads no environment variables (FromEnv does):
// its sessions' owner is DefaultOwner(), "user@hostname".
func New(baseURL string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	return newClient(baseURL, cfg, opts)
}

func newClient(baseURL string, cfg config, opts []Option) (*Client, error) {
	base, err := parseBase(baseURL)
	if err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	return &Client{base: base, cfg: cfg}, nil
}

// parseBase checks a base URL and strips trailing slashes.
func parseBase(baseURL string) (string, error) {
	base := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("parse URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("URL %q must be absolute http:// or https://", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("URL %q must not have a query or fragment", baseURL)
	}
	return base, nil
}

// URL returns the server's base URL, without a trailing slash.
func (c *Client) URL() string { return c.base }

// String describes the client for logs; it says whether a token is set,
// never the token.
func (c *Client) String() string {
	s := fmt.Sprintf("remotelab client of %s (request timeout %v, session timeout %v, acquisition timeout %v, heartbeat every %v",
		c.base, c.cfg.requestTimeout, c.cfg.sessionTimeout, c.cfg.acquisitionTimeout, c.cfg.heartbeatInterval)
	if c.cfg.rideThrough != DefaultRideThrough {
		s += fmt.Sprintf(", ride-through %v", c.cfg.rideThrough)
	}
	if c.cfg.token != "" {
		s += ", with token"
	}
	return s + ")"
}

// request is one API call.
type request struct {
	method      string
	path        string // e.g. "/session/ID", already escaped
	query       url.Values
	session     string // X-Session-ID; "" for none
	body        io.Reader
	contentType string
	accept      string        // Accept header; "" for application/json
	timeout     time.Duration // bound on the call; 0 for the caller's ctx only
	// alsoOK lists error status codes whose body is decoded into out
	// like a success (e.g. 503 of /readyz, whose body says why).
	alsoOK []int
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// send performs r and decodes a 2xx JSON answer into out (if non-nil and
// the answer has a body). Other answers become *Error, failures
// *TransportError. It returns the status code of an answer.
func (c *Client) send(ctx context.Context, r request, out any) (int, error) {
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return 0, err
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 300 && !slices.Contains(r.alsoOK, resp.StatusCode) {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return resp.StatusCode, newError(r.method, r.path, resp.StatusCode, resp.Header, body)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, &TransportError{Method: r.method, Path: r.path, Err: fmt.Errorf("decode answer: %w", err)}
		}
	}
	return resp.StatusCode, nil
}

// do sends r and returns the response, whatever its status; the caller
// must close its body. A failure is a *TransportError.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return nil, &TransportError{Method: r.method, Path: r.path, Err: err}
	}
	req.Header.Set("User-Agent", userAgent())
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.session != "" {
		req.Header.Set(api.HeaderSessionID, r.session)
	}
	if c.cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.token)
	}
	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, &TransportError{Method: r.method, Path: r.path, Err: err}
	}
	return resp, nil
}

// userAgent is "remotelab-go/<module version>".
var userAgent = sync.OnceValue(func() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok {
		const mod = "github.com/remotelab-go/remotelab"
		if bi.Main.Path == mod && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == mod && d.Version != "" && d.Version != "(devel)" {
				v = d.Version
			}
		}
	}
	return "remotelab-go/" + v
})
