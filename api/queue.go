package api

import (
	"fmt"
	"math"
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of the session metadata in a SessionRequest.
const (
	MaxOwnerLen      = 128 // characters of an owner
	MaxLabels        = 16  // labels of one session
	MaxLabelValueLen = 256 // characters of a label value
	// MaxLimitSeconds bounds wait_timeout and max_hold: a year.
	MaxLimitSeconds = 365 * 24 * 3600
)

// labelKey is the rule of a label key.
var labelKey = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`)

// SessionRequest is the optional JSON body of POST /session. Without a
// body a session gets no labels, no limits of its own and, as owner, the
// client's address (or its token's name when authentication is on).
type SessionRequest struct {
	// Owner says who the session is for, e.g. "alice@ci-runner-3".
	Owner string `json:"owner,omitempty"`
	// Labels are free key/value pairs, e.g. {"job": "https://ci/1234"}.
	Labels map[string]string `json:"labels,omitempty"`
	// WaitTimeout, in seconds, ends the session (outcome wait_timeout)
	// if it is still waiting that long after it was created.
	WaitTimeout *float64 `json:"wait_timeout,omitempty"`
	// MaxHold, in seconds, ends the session (outcome max_hold) once it
	// has held the lab that long; the server caps it at its --max-hold.
	MaxHold *float64 `json:"max_hold,omitempty"`
}

// Validate checks the bounds of SPEC §9 and §10 and returns one issue per
// violation (none when the request is valid). Echoed input is clipped.
func (r SessionRequest) Validate() []ValidationIssue {
	var issues []ValidationIssue
	bad := func(msg string, input any, loc ...string) {
		issues = append(issues, ValidationIssue{
			Type: IssueValue, Loc: append([]string{"body"}, loc...), Msg: msg, Input: input,
		})
	}
	if n := utf8.RuneCountInString(r.Owner); n > MaxOwnerLen {
		bad(fmt.Sprintf("owner must be at most %d characters, got %d", MaxOwnerLen, n), Clip(r.Owner), "owner")
	} else if !printable(r.Owner) {
		bad("owner must be printable text", Clip(r.Owner), "owner")
	}
	if len(r.Labels) > MaxLabels {
		bad(fmt.Sprintf("at most %d labels, got %d", MaxLabels, len(r.Labels)), nil, "labels")
	}
	for k, v := range r.Labels {
		if !labelKey.MatchString(k) {
			bad("label keys are 1 to 63 characters of A-Z a-z 0-9 _ . -", Clip(k), "labels")
			continue
		}
		if n := utf8.RuneCountInString(v); n > MaxLabelValueLen {
			bad(fmt.Sprintf("label values must be at most %d characters, got %d", MaxLabelValueLen, n), Clip(v), "labels", k)
		} else if !printable(v) {
			bad("label values must be printable text", Clip(v), "labels", k)
		}
	}
	for _, l := range []struct {
		name string
		v    *float64
	}{{"wait_timeout", r.WaitTimeout}, {"max_hold", r.MaxHold}} {
		if l.v == nil {
			continue
		}
		if v := *l.v; math.IsNaN(v) || v <= 0 || v > MaxLimitSeconds {
			bad(fmt.Sprintf("%s must be a number of seconds above 0 and at most %d", l.name, MaxLimitSeconds), v, l.name)
		}
	}
	return issues
}

// ValidText reports whether s is printable text (valid UTF-8, no control
// characters) of at most maxRunes characters.
func ValidText(s string, maxRunes int) bool {
	return utf8.RuneCountInString(s) <= maxRunes && printable(s)
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// Seconds converts seconds on the wire to a duration (0 for nil).
func Seconds(v *float64) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v * float64(time.Second))
}

// MaxEchoLen is how many characters of client input an error detail
// repeats at most.
const MaxEchoLen = 200

// Clip shortens client input that an error repeats to MaxEchoLen
// characters, marking the cut with "…".
func Clip(s string) string {
	if utf8.RuneCountInString(s) <= MaxEchoLen {
		return s
	}
	r := []rune(s)
	return string(r[:MaxEchoLen]) + "…"
}

// Session outcomes: why a session ended.
const (
	OutcomeClosed      = "closed"       // its client ended it (DELETE /session/{id})
	OutcomeExpired     = "expired"      // no request for longer than its TTL
	OutcomeEvicted     = "evicted"      // an admin ended it
	OutcomeWaitTimeout = "wait_timeout" // still waiting at its wait_timeout
	OutcomeMaxHold     = "max_hold"     // held the lab for its whole max_hold
	OutcomeShutdown    = "shutdown"     // the server stopped without keeping its queue
)

// SessionGone is the 404 body for a session that ended recently: the
// original's detail ("Session not found") plus why and when it ended.
type SessionGone struct {
	Detail  string    `json:"detail"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason"`
	EndedAt time.Time `json:"ended_at"`
}

// Queue is the body of GET /queue and the data of every /events message.
type Queue struct {
	ServerTime time.Time      `json:"server_time"`
	Holder     *QueueSession  `json:"holder"`
	Waiting    []QueueSession `json:"waiting"`
	Lab        QueueLab       `json:"lab"`
	Stats      QueueStats     `json:"stats"`
	// Draining is true while an admin holds promotions (POST
	// /admin/drain).
	Draining bool `json:"draining"`
	// Quarantine is set while the host is quarantined (SPEC §11).
	Quarantine *Quarantine `json:"quarantine"`
}

// QueueSession is one session in Queue. Its id is shortened to 8
// characters: without authentication a full id is a credential.
type QueueSession struct {
	ID                   string            `json:"id"`
	Owner                string            `json:"owner"`
	Labels               map[string]string `json:"labels"`
	Status               string            `json:"status"`
	Position             int               `json:"position"`
	Epoch                *uint64           `json:"epoch"`
	CreatedAt            time.Time         `json:"created_at"`
	WaitingSeconds       float64           `json:"waiting_seconds"`
	ActiveSeconds        *float64          `json:"active_seconds"`
	IdleSeconds          float64           `json:"idle_seconds"`
	EstimatedWaitSeconds *float64          `json:"estimated_wait_seconds"`
	WaitDeadline         *time.Time        `json:"wait_deadline"`
	HoldDeadline         *time.Time        `json:"hold_deadline"`
}

// QueueLab describes the host's lab in Queue.
type QueueLab struct {
	State       string        `json:"state"` // none, starting, running, idle, stopping, dirty
	Topology    *string       `json:"topology"`
	Fingerprint *string       `json:"fingerprint"`
	Holders     int           `json:"holders"`
	Since       *time.Time    `json:"since"`
	Operation   *LabOperation `json:"operation"`
}

// LabOperation is the netlab step running now.
type LabOperation struct {
	Kind           string  `json:"kind"` // up, inspect or down
	RunningSeconds float64 `json:"running_seconds"`
	LastOutput     *string `json:"last_output"`
}

// QueueStats are the figures behind the wait estimates.
type QueueStats struct {
	// HoldSecondsAvg is the mean of the last 20 holds; null before the
	// first hold ended.
	HoldSecondsAvg *float64 `json:"hold_seconds_avg"`
	// SessionsServed counts the sessions that held the lab and ended.
	SessionsServed int `json:"sessions_served"`
}

// Quarantine describes a quarantined host.
type Quarantine struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// HistoryEntry is one finished session in GET /history.
type HistoryEntry struct {
	ID            string            `json:"id"`
	Owner         string            `json:"owner"`
	Labels        map[string]string `json:"labels"`
	CreatedAt     time.Time         `json:"created_at"`
	EndedAt       time.Time         `json:"ended_at"`
	WaitedSeconds float64           `json:"waited_seconds"`
	HeldSeconds   *float64          `json:"held_seconds"`
	Outcome       string            `json:"outcome"`
	Reason        string            `json:"reason"`
	Lab           *HistoryLab       `json:"lab"`
}

// HistoryLab is the last lab a finished session acquired.
type HistoryLab struct {
	Topology    string `json:"topology"`
	Fingerprint string `json:"fingerprint"`
	Reused      bool   `json:"reused"`
}

// Ready is the body of GET /readyz.
type Ready struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// EvictRequest is the body of POST /admin/sessions/{id}/evict.
type EvictRequest struct {
	Reason string `json:"reason"`
}

// Unquarantine is the body of POST /admin/unquarantine.
type Unquarantine struct {
	// Lifted is false when the host was not quarantined.
	Lifted bool `json:"lifted"`
}

// AuditEntry is one line of the audit log (GET /admin/audit).
type AuditEntry struct {
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Session string    `json:"session,omitempty"`
	Owner   string    `json:"owner,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}
