// Package api holds the wire types of the remotelab HTTP API, shared by
// httpserver and client. Field names and shapes are those of the original
// Python service (neops-remote-lab), so its client works unchanged; fields
// it did not have are extra and optional.
package api

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// HeaderSessionID names the session a request acts for.
const HeaderSessionID = "X-Session-ID"

// Session statuses on the wire.
const (
	StatusWaiting = "waiting"
	StatusActive  = "active"
)

// Form parts of POST /lab.
const (
	PartTopology   = "topology"
	PartReuse      = "reuse"
	PartExtraFiles = "extra_files"
)

// Details of the errors clients branch on (the original's strings).
const (
	DetailSessionNotFound  = "Session not found"
	DetailSessionNotActive = "Session is not active"
	DetailNoActiveSession  = "No active session"
	DetailLabBusy          = "Lab currently busy"
	DetailNoLab            = "No lab running"
	DetailLabInUse         = "Lab still in use"
	DetailBadTopologyName  = "Topology must be a .yml or .yaml file"
	DetailShuttingDown     = "Server shutting down"
	DetailWrongSession     = "X-Session-ID names another session"
	DetailOperationRunning = "Another lab operation of this session is running"
	// DetailLabConflict answers 409 to POST /lab when the session still
	// holds the running lab and asks for another one or a fresh start.
	DetailLabConflict = "This session still holds the running lab; release it first " +
		"(POST /lab/release) before asking for a different lab or a fresh start (reuse=false)"
	// DetailWrongOwner answers 403 to a caller acting on another
	// owner's session (authentication on).
	DetailWrongOwner = "Session belongs to another owner"
	// DetailUnauthorized answers 401 to a request without a token.
	DetailUnauthorized = "Not authenticated: send a token (Authorization: Bearer <token>, or HTTP Basic with the token as password)"
	// DetailUnknownToken answers 401 to a token the server does not know
	// (mistyped, revoked, or from another server's auth file).
	DetailUnknownToken = "Not authenticated: unknown or revoked token"
	// DetailRoleTooLow is the format of the 403 for a role too low: the
	// caller's role, then the role the route needs.
	DetailRoleTooLow = "Role %s may not do this (needs %s)"
	// DetailAdminLoopbackOnly answers 403 to an admin route called from
	// another host while authentication is off.
	DetailAdminLoopbackOnly = "Admin routes answer only loopback callers while authentication is off (start remotelabd with --auth-file)"
	// DetailQueueFull answers 429 to POST /session.
	DetailQueueFull = "Queue full"
	// DetailQuarantined starts the 503 of POST /lab on a quarantined host.
	DetailQuarantined = "Lab host quarantined"
	// DetailUploadTimeout starts the 408 of an upload that did not arrive
	// in time.
	DetailUploadTimeout = "Upload timed out"
	// DetailInternalError answers 500 (a server bug, logged with its stack).
	DetailInternalError = "Internal Server Error"
	// DetailNotFound and DetailMethodNotAllowed answer unknown routes and
	// known routes called with the wrong method.
	DetailNotFound         = "Not Found"
	DetailMethodNotAllowed = "Method Not Allowed"
)

// Types of ValidationIssue, in the original's (Pydantic) vocabulary.
const (
	IssueMissing         = "missing"          // a required header, field or part is absent
	IssueBoolParsing     = "bool_parsing"     // a boolean field did not parse
	IssueDurationParsing = "duration_parsing" // a duration field did not parse
	IssueValue           = "value_error"      // a field is out of its bounds
	IssueJSON            = "json_invalid"     // a JSON body did not parse
)

// CreateSessionResponse is the body of 201 POST /session: the original's
// session_id and position, then the session's status and limits.
type CreateSessionResponse struct {
	SessionID string `json:"session_id"`
	Position  int    `json:"position"`
	Status    string `json:"status"`
	SessionDetails
}

// SessionStatus is the body of GET /session/{id}: the original's status
// and position, then the rest of the session's details.
type SessionStatus struct {
	Status   string `json:"status"`
	Position int    `json:"position"`
	SessionDetails
}

// SessionDetails are the fields remotelab adds to a session's answers.
type SessionDetails struct {
	// Epoch is the session's lease epoch while active, 0 while waiting.
	Epoch uint64 `json:"epoch"`
	// Owner is who the session is for.
	Owner string `json:"owner,omitempty"`
	// EstimatedWaitSeconds estimates the wait for the lab (SPEC §10);
	// null while active or before the first hold ended.
	EstimatedWaitSeconds *float64 `json:"estimated_wait_seconds,omitempty"`
	// WaitDeadline and HoldDeadline are when the session's wait_timeout
	// and max_hold end it.
	WaitDeadline *time.Time `json:"wait_deadline,omitempty"`
	HoldDeadline *time.Time `json:"hold_deadline,omitempty"`
}

// ActiveSession is the body of GET /active-session.
type ActiveSession struct {
	Status    string `json:"status"`
	Position  int    `json:"position"`
	SessionID string `json:"session_id"`
}

// Device is one lab node: its name and Netlab's data about it.
type Device struct {
	Name string          `json:"name"`
	Raw  json.RawMessage `json:"raw"`
}

// AcquireResponse is the body of 200 POST /lab.
type AcquireResponse struct {
	// Reused is true exactly when the server did not start the lab for
	// this request.
	Reused  bool     `json:"reused"`
	Devices []Device `json:"devices"`
}

// LabStatus is the body of GET /lab.
type LabStatus struct {
	Running      bool     `json:"running"`
	Topology     *string  `json:"topology"`
	RefCount     int      `json:"ref_count"`
	Devices      []Device `json:"devices"`
	NetlabStatus *string  `json:"netlab_status"`
	Fingerprint  string   `json:"fingerprint,omitempty"`
	State        string   `json:"state"`
}

// Health is the body of GET /debug/health.
type Health struct {
	Status      string  `json:"status"`
	Timestamp   float64 `json:"timestamp"`
	Uptime      float64 `json:"uptime"`
	Sessions    int     `json:"sessions"`
	QueueLength int     `json:"queue_length"`

	// The fields below are remotelab's: who holds the lab, since when,
	// and how many wait. Session ids are shortened to 8 characters.

	// Active is the head session; nil when the queue is empty.
	Active *HealthSession `json:"active,omitempty"`
	// Waiting is the number of sessions queued behind Active.
	Waiting int `json:"waiting"`
	// Lab is the host's lab.
	Lab HealthLab `json:"lab"`
}

// HealthSession describes the active session in Health.
type HealthSession struct {
	Session   string  `json:"session"`    // first 8 characters of its id
	Epoch     uint64  `json:"epoch"`      // its lease epoch
	ActiveFor float64 `json:"active_for"` // seconds since its promotion
	IdleFor   float64 `json:"idle_for"`   // seconds since its last request
}

// HealthLab describes the lab in Health.
type HealthLab struct {
	State    string         `json:"state"`              // none, starting, running, idle, stopping, dirty
	Topology string         `json:"topology,omitempty"` // topology file name
	Holders  map[string]int `json:"holders,omitempty"`  // references per session (8-character ids)
	StateFor float64        `json:"state_for"`          // seconds in the current state
}

// Error is the body of every error response except request validation
// errors: {"detail": "..."}.
type Error struct {
	Detail string `json:"detail"`
}

// ValidationError is the body of 422 request validation errors, in the
// original's (FastAPI) list shape.
type ValidationError struct {
	Detail []ValidationIssue `json:"detail"`
}

// ValidationIssue is one entry of a ValidationError.
type ValidationIssue struct {
	Type  string   `json:"type"`  // "missing", "bool_parsing", ...
	Loc   []string `json:"loc"`   // e.g. ["header", "X-Session-ID"]
	Msg   string   `json:"msg"`   // e.g. "Field required"
	Input any      `json:"input"` // the offending value, or null
}

// ParseBool parses a boolean form field or query value as SPEC §4 allows:
// true/false, 1/0, yes/no, on/off, in any case, surrounding spaces
// ignored. ok is false for anything else (the server answers 422).
func ParseBool(s string) (v, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// The two spellings ParseDuration accepts. A string of the right shape
// that time.ParseDuration still refuses is out of time.Duration's range.
var (
	plainSeconds = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
	goDuration   = regexp.MustCompile(`^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)
)

// ParseDuration parses a duration as the API and the client's environment
// take it: plain non-negative seconds in decimal ("30", "2.5", ".5") or a
// Go duration ("90s", "1m30s", "10m"). Negative values, signs,
// exponents, hexadecimal, NaN, Inf, surrounding spaces and values beyond
// time.Duration's range (about 292 years) are errors that say which rule
// was broken. It does not cap the result: callers apply
// their own bounds (the server caps a long-poll wait at its MaxWait).
func ParseDuration(s string) (time.Duration, error) {
	fail := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("parse duration %q: %s", s, why)
	}
	text := s
	switch {
	case plainSeconds.MatchString(s):
		text = s + "s" // decimal seconds, converted exactly
	case goDuration.MatchString(s):
	case strings.HasPrefix(s, "-") &&
		(plainSeconds.MatchString(s[1:]) || goDuration.MatchString(s[1:])):
		return fail("must not be negative")
	default:
		return fail("want seconds (30, 2.5) or a Go duration (90s, 10m)")
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return fail(fmt.Sprintf("too large (the limit is %v)", time.Duration(1<<63-1)))
	}
	return d, nil
}

// ShortIDLen is how many characters of a session id logs show.
const ShortIDLen = 8

// ShortID returns the first ShortIDLen characters of a session id, as
// server and client logs show it, so their lines can be matched up.
func ShortID(id string) string {
	if len(id) > ShortIDLen {
		return id[:ShortIDLen]
	}
	return id
}
