package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// Sentinel errors. Server answers are *Error values and transport
// failures *TransportError values (errors.As); callers branch on the
// sentinels with errors.Is. Most answers match one sentinel. These pairs
// match together, the specific one refining the general one:
//
//   - ErrEvicted, ErrWaitTimeout, ErrMaxHold and ErrExpired each also
//     match ErrNotFound: the server no longer knows the session, and says
//     why it ended.
//   - ErrQuarantined also matches ErrUnavailable: a 503, for a reason
//     that waiting for a restart does not cure.
//
// An error that an ended Session returns at once (see Session.Err)
// matches the same sentinels as the answer that told of the end.
var (
	// ErrNotFound: the server does not know the session. It was closed,
	// or it ended for a reason the server may say (404 "Session not
	// found"; Outcome and Reason of the *Error tell why when the server
	// remembers, and one of the sentinels below matches too).
	ErrNotFound = errors.New("session not found")
	// ErrExpired: the session ended because neither heartbeats nor calls
	// reached the server for longer than its TTL (404, outcome expired).
	ErrExpired = errors.New("session expired")
	// ErrEvicted: an admin ended the session (404, outcome evicted); the
	// *Error's Reason says who and why.
	ErrEvicted = errors.New("session evicted")
	// ErrWaitTimeout: the session was still waiting in the queue at its
	// wait timeout (WithWaitTimeout; 404, outcome wait_timeout).
	ErrWaitTimeout = errors.New("session wait timeout")
	// ErrMaxHold: the session held the lab for its whole maximum hold
	// (WithMaxHold, or the server's cap; 404, outcome max_hold).
	ErrMaxHold = errors.New("session max hold reached")
	// ErrNotActive: the session is still waiting in the queue (423
	// "Session is not active"). Acquire retries it.
	ErrNotActive = errors.New("session not active")
	// ErrBusy: the lab cannot be given to this session now (423 "Lab
	// currently busy"), e.g. another lab operation is running on the host.
	// Acquire retries it.
	ErrBusy = errors.New("lab busy")
	// ErrConflict: the session still holds a different lab (or asked for a
	// fresh start of the one it holds), or Destroy without force found the
	// lab in use, or another lab call of the same session is still running,
	// or an admin's session prefix names more than one session (409; the
	// detail says which). Acquire does not retry it: in the first two
	// cases only a Release can help.
	ErrConflict = errors.New("lab conflict")
	// ErrTooLarge: the upload exceeds the server's limits (413).
	ErrTooLarge = errors.New("upload too large")
	// ErrInvalidTopology: the topology is not valid YAML or not a valid
	// Netlab topology (422 from POST /lab, or found before uploading).
	ErrInvalidTopology = errors.New("invalid topology")
	// ErrBadRequest: a bad topology file name or an unsafe extra file path
	// (400, or found before uploading), invalid session metadata (found
	// before sending), or another request the server rejected as
	// malformed (422 outside POST /lab).
	ErrBadRequest = errors.New("bad request")
	// ErrNoLab: there is no lab running (404 "No lab running" from
	// Devices).
	ErrNoLab = errors.New("no lab running")
	// ErrNetlabFailed: netlab failed to start the lab (502); the *Error's
	// Detail carries netlab's own error text.
	ErrNetlabFailed = errors.New("netlab failed")
	// ErrNetlabTimeout: a netlab step ran into its deadline on the server
	// (504).
	ErrNetlabTimeout = errors.New("netlab timed out")
	// ErrUnavailable: the server cannot serve the request now (503): it
	// is shutting down, or its lab host is quarantined (then
	// ErrQuarantined matches too).
	ErrUnavailable = errors.New("server unavailable")
	// ErrQuarantined: the lab host is quarantined after repeated failed
	// teardowns or starts (503 "Lab host quarantined: <last error>" from
	// POST /lab); an admin lifts it with Admin.Unquarantine.
	ErrQuarantined = errors.New("lab host quarantined")
	// ErrUnauthorized: the server runs with authentication and got no
	// token, or one it does not know (401). See WithToken.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the caller may not do this (403): the session belongs
	// to another owner, the token's role is too low, an admin route was
	// called from another host of a server without authentication, or a
	// request named another session than its X-Session-ID.
	ErrForbidden = errors.New("forbidden")
	// ErrQueueFull: the server's queue, or this owner's share of it, is
	// full (429); the *Error's RetryAfter says when to try again.
	ErrQueueFull = errors.New("queue full")
	// ErrClosed: the Session was closed by this client; no request was
	// sent.
	ErrClosed = errors.New("session closed")
	// ErrNoURL: FromEnv found no REMOTE_LAB_URL.
	ErrNoURL = errors.New("REMOTE_LAB_URL is not set")
)

// Error is an error answer of the server: any status code of 300 or more.
// It matches (errors.Is) the sentinels that its status code and body
// stand for, e.g. a 409 matches ErrConflict.
type Error struct {
	StatusCode int    // HTTP status code
	Detail     string // the server's detail message ("" if it sent none)
	Method     string // request method
	Path       string // request path, e.g. "/lab"

	// Outcome, Reason and EndedAt say why and when a session ended, for
	// a 404 about a session the server still remembers (an hour after
	// its end). Outcome is one of the api.Outcome* values, Reason the
	// server's words, e.g. "expired: no request for 300 s". They are
	// empty otherwise, and always from the original server.
	Outcome string
	Reason  string
	EndedAt time.Time

	// RetryAfter is the server's Retry-After (429 queue full, some 503s):
	// how long to wait before asking again; 0 when it sent none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	switch {
	case e.Reason != "":
		s += " (" + e.Reason + ")"
	case e.Outcome != "":
		s += " (outcome " + e.Outcome + ")"
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return s
}

// Is reports whether target is one of the sentinel errors this answer
// stands for.
func (e *Error) Is(target error) bool {
	general, specific := e.sentinels()
	return target != nil && (target == general || target == specific)
}

// sentinels returns the sentinel of the status code and, where the body
// refines it, a more specific one.
func (e *Error) sentinels() (general, specific error) {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return ErrBadRequest, nil
	case http.StatusUnauthorized:
		return ErrUnauthorized, nil
	case http.StatusForbidden:
		return ErrForbidden, nil
	case http.StatusNotFound:
		if e.Detail == api.DetailNoLab {
			return ErrNoLab, nil
		}
		return ErrNotFound, outcomeSentinel(e.Outcome)
	case http.StatusConflict:
		return ErrConflict, nil
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge, nil
	case http.StatusUnprocessableEntity:
		if e.Method == http.MethodPost && e.Path == "/lab" {
			return ErrInvalidTopology, nil
		}
		return ErrBadRequest, nil
	case http.StatusLocked:
		if e.Detail == api.DetailSessionNotActive {
			return ErrNotActive, nil
		}
		return ErrBusy, nil
	case http.StatusTooManyRequests:
		return ErrQueueFull, nil
	case http.StatusBadGateway:
		return ErrNetlabFailed, nil
	case http.StatusServiceUnavailable:
		if strings.HasPrefix(e.Detail, api.DetailQuarantined) {
			return ErrUnavailable, ErrQuarantined
		}
		return ErrUnavailable, nil
	case http.StatusGatewayTimeout:
		return ErrNetlabTimeout, nil
	}
	return nil, nil
}

// outcomeSentinel is the sentinel of a session outcome (nil for a plain
// close or a shutdown, which ErrNotFound covers).
func outcomeSentinel(outcome string) error {
	switch outcome {
	case api.OutcomeExpired:
		return ErrExpired
	case api.OutcomeEvicted:
		return ErrEvicted
	case api.OutcomeWaitTimeout:
		return ErrWaitTimeout
	case api.OutcomeMaxHold:
		return ErrMaxHold
	}
	return nil
}

// TransportError reports a request that got no answer: the server could
// not be reached, the connection broke, the request timed out or its
// context ended, or the answer could not be read. Err says why; it wraps
// context.Canceled or context.DeadlineExceeded when a context ended.
type TransportError struct {
	Method string // request method
	Path   string // request path, e.g. "/session"
	Err    error
}

func (e *TransportError) Error() string { return fmt.Sprintf("%s %s: %v", e.Method, e.Path, e.Err) }

// Unwrap returns Err.
func (e *TransportError) Unwrap() error { return e.Err }

// newError builds the *Error of an answer with the given status, headers
// and (possibly truncated) body.
func newError(method, path string, code int, h http.Header, body []byte) *Error {
	e := &Error{StatusCode: code, Detail: errorDetail(body), Method: method, Path: path}
	if code == http.StatusNotFound {
		var gone api.SessionGone
		if json.Unmarshal(body, &gone) == nil && gone.Outcome != "" {
			e.Outcome, e.Reason, e.EndedAt = gone.Outcome, gone.Reason, gone.EndedAt
		}
	}
	e.RetryAfter = retryAfter(h.Get("Retry-After"))
	return e
}

// retryAfter reads a Retry-After header: delay seconds, or an HTTP date
// (then the time from now, at least 0). 0 for none or nonsense.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t).Round(time.Second))
	}
	return 0
}

// errorDetail turns an error body into a detail string: the original's
// {"detail": "..."}, its validation list {"detail": [{loc, msg}...]}, or
// the body text itself.
func errorDetail(body []byte) string {
	var plain api.Error
	if err := json.Unmarshal(body, &plain); err == nil && plain.Detail != "" {
		return plain.Detail
	}
	var list api.ValidationError
	if err := json.Unmarshal(body, &list); err == nil && len(list.Detail) > 0 {
		return issuesText(list.Detail)
	}
	return strings.TrimSpace(string(body))
}

// issuesText joins validation issues as "loc: msg; loc: msg".
func issuesText(issues []api.ValidationIssue) string {
	parts := make([]string, 0, len(issues))
	for _, is := range issues {
		if len(is.Loc) > 0 {
			parts = append(parts, strings.Join(is.Loc, " ")+": "+is.Msg)
		} else {
			parts = append(parts, is.Msg)
		}
	}
	return strings.Join(parts, "; ")
}

// rideable reports whether err may go away once a restarting server is
// back (SPEC §11): no answer at all, or a gateway or the server saying it
// cannot serve now (502, 503, 504). Heartbeats and long-polls retry these
// for the ride-through window.
func rideable(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var se *Error
	if errors.As(err, &se) {
		switch se.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return !errors.Is(se, ErrQuarantined)
		}
	}
	return false
}
