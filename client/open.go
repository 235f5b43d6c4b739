package client

import (
	"fmt"
	"maps"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// OpenOption configures one Open: who the session is for, its labels and
// limits, and whom to tell about its progress in the queue.
type OpenOption func(*openConfig)

type openConfig struct {
	owner       string
	labels      map[string]string
	waitTimeout time.Duration
	maxHold     time.Duration
	progress    func(Progress)
}

// WithOwner says who the session is for, e.g. "alice@ci-runner-3"; the
// queue, history and dashboard show it. At most 128 printable
// characters; "" sends no owner, and the server then shows the client's
// address. A server with authentication ignores it and shows the token's
// name. Default: DefaultOwner(), or REMOTE_LAB_OWNER with FromEnv.
func WithOwner(owner string) OpenOption { return func(c *openConfig) { c.owner = owner } }

// WithLabels adds free key/value labels to the session, e.g. {"job":
// "https://ci.example/1234"}, over those of earlier options (a later
// value for a key wins). At most 16 labels; keys are 1 to 63 characters
// of A-Z a-z 0-9 _ . -, values at most 256 printable characters. FromEnv
// starts with REMOTE_LAB_LABELS and the CI job.
func WithLabels(labels map[string]string) OpenOption {
	return func(c *openConfig) {
		if c.labels == nil {
			c.labels = make(map[string]string, len(labels))
		}
		maps.Copy(c.labels, labels)
	}
}

// WithWaitTimeout asks the server to end the session (outcome
// wait_timeout; Open then fails with ErrWaitTimeout) if it is still
// waiting in the queue d after it was created. Zero means none (the
// default, or REMOTE_LAB_WAIT_TIMEOUT with FromEnv); negative values are
// invalid. The client's own bound on the wait is WithSessionTimeout.
func WithWaitTimeout(d time.Duration) OpenOption {
	return func(c *openConfig) { c.waitTimeout = d }
}

// WithMaxHold asks the server to end the session (outcome max_hold; later
// calls fail with ErrMaxHold) once it has been active for d; the server
// caps it at its --max-hold. Zero means none of its own (default);
// negative values are invalid.
func WithMaxHold(d time.Duration) OpenOption { return func(c *openConfig) { c.maxHold = d } }

// OnProgress makes Open call f while the session waits: with the first
// status the server reports, after every answer that changes what
// Progress shows, and a last time when the session becomes active. f is
// called from Open's goroutine, one call at a time; it must not block.
func OnProgress(f func(Progress)) OpenOption { return func(c *openConfig) { c.progress = f } }

// Progress is the state of a session waiting for its turn.
type Progress struct {
	// Status is api.StatusWaiting, or api.StatusActive for the last call.
	Status string
	// Position counts the sessions ahead of this one: 0 at the head.
	Position int
	// EstimatedWait is the server's estimate of the remaining wait,
	// valid when HasEstimate (the server estimates once a first session
	// has held the lab and ended).
	EstimatedWait time.Duration
	HasEstimate   bool
	// WaitDeadline is when the server ends the session if it still
	// waits (WithWaitTimeout); zero for none.
	WaitDeadline time.Time
}

// newOpenConfig applies defaults, then opts, and checks the result with
// the server's own rules (api.SessionRequest.Validate).
func newOpenConfig(defaults, opts []OpenOption) (openConfig, error) {
	var c openConfig
	for _, o := range defaults {
		o(&c)
	}
	for _, o := range opts {
		o(&c)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"wait timeout", c.waitTimeout}, {"max hold", c.maxHold}} {
		if d.v < 0 {
			return c, fmt.Errorf("%w: %s must not be negative, got %v", ErrBadRequest, d.name, d.v)
		}
	}
	if issues := c.request().Validate(); len(issues) > 0 {
		return c, fmt.Errorf("%w: %s", ErrBadRequest, issuesText(issues))
	}
	return c, nil
}

// request is the body of POST /session.
func (c openConfig) request() api.SessionRequest {
	r := api.SessionRequest{Owner: c.owner, Labels: c.labels}
	if c.waitTimeout > 0 {
		v := c.waitTimeout.Seconds()
		r.WaitTimeout = &v
	}
	if c.maxHold > 0 {
		v := c.maxHold.Seconds()
		r.MaxHold = &v
	}
	return r
}
