package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/remotelab-go/remotelab/api"
)

// Sentinel errors. Errors returned by this package match at most one of
// the server-answer sentinels with errors.Is; server answers are *Error
// values and transport failures *TransportError values (errors.As).
var (
	// ErrNotFound: the server does not know the session. It was closed,
	// or it expired because neither heartbeats nor calls reached the
	// server for longer than its TTL (404 "Session not found").
	ErrNotFound = errors.New("session not found")
	// ErrNotActive: the session is still waiting in the queue (423
	// "Session is not active"). Acquire retries it.
	ErrNotActive = errors.New("session not active")
	// ErrBusy: the lab cannot be given to this session now (423 "Lab
	// currently busy"), e.g. another lab operation is running on the host.
	// Acquire retries it.
	ErrBusy = errors.New("lab busy")
	// ErrConflict: the session still holds a different lab (or asked for a
	// fresh start of the one it holds), or Destroy without force found the
	// lab in use, or another lab call of the same session is still running
	// (409; the detail says which). Acquire does not retry it: in the first
	// two cases only a Release can help.
	ErrConflict = errors.New("lab conflict")
	// ErrTooLarge: the upload exceeds the server's limits (413).
	ErrTooLarge = errors.New("upload too large")
	// ErrInvalidTopology: the topology is not valid YAML or not a valid
	// Netlab topology (422 from POST /lab, or found before uploading).
	ErrInvalidTopology = errors.New("invalid topology")
	// ErrBadRequest: a bad topology file name or an unsafe extra file path
	// (400, or found before uploading), or another request the server
	// rejected as malformed (422 outside POST /lab).
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
	// ErrUnavailable: the server is shutting down (503).
	ErrUnavailable = errors.New("server unavailable")
	// ErrClosed: the Session was closed by this client; no request was
	// sent.
	ErrClosed = errors.New("session closed")
	// ErrNoURL: FromEnv found no REMOTE_LAB_URL.
	ErrNoURL = errors.New("REMOTE_LAB_URL is not set")
)

// Error is an error answer of the server: any status code of 300 or more.
// It matches (errors.Is) the sentinel that its status code and detail
// stand for, e.g. a 409 matches ErrConflict.
type Error struct {
	StatusCode int    // HTTP status code
	Detail     string // the server's detail message ("" if it sent none)
	Method     string // request method
	Path       string // request path, e.g. "/lab"
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is reports whether target is the sentinel error this answer stands for.
func (e *Error) Is(target error) bool {
	s := e.sentinel()
	return s != nil && s == target
}

func (e *Error) sentinel() error {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusNotFound:
		if e.Detail == api.DetailNoLab {
			return ErrNoLab
		}
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusUnprocessableEntity:
		if e.Method == http.MethodPost && e.Path == "/lab" {
			return ErrInvalidTopology
		}
		return ErrBadRequest
	case http.StatusLocked:
		if e.Detail == api.DetailSessionNotActive {
			return ErrNotActive
		}
		return ErrBusy
	case http.StatusBadGateway:
		return ErrNetlabFailed
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	case http.StatusGatewayTimeout:
		return ErrNetlabTimeout
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
		parts := make([]string, 0, len(list.Detail))
		for _, is := range list.Detail {
			if len(is.Loc) > 0 {
				parts = append(parts, strings.Join(is.Loc, " ")+": "+is.Msg)
			} else {
				parts = append(parts, is.Msg)
			}
		}
		return strings.Join(parts, "; ")
	}
	return strings.TrimSpace(string(body))
}

// retryable reports whether err may go away by itself: no answer at all,
// or an answer that says the server or a gateway is in trouble.
func retryable(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var se *Error
	if errors.As(err, &se) {
		switch se.StatusCode {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
	}
	return false
}
