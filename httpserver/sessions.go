package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/queue"
)

// maxSessionBody bounds the JSON body of POST /session.
const maxSessionBody = 64 << 10

// createSession handles POST /session, with an optional JSON body of
// owner, labels and limits (no body: the original's behaviour).
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	req, rerr := readSessionRequest(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	owner, limitOwner := req.Owner, ""
	if id, on := s.identity(r); on {
		owner = id.Name // with authentication the token says who
	} else {
		// Without it the stated owner is the client's word: the
		// per-owner limit counts the client's address.
		limitOwner = clientHost(r.RemoteAddr)
		if owner == "" {
			owner = limitOwner
		}
	}
	sess, err := s.b.Join(broker.Meta{
		Owner:       owner,
		LimitOwner:  limitOwner,
		Labels:      req.Labels,
		WaitTimeout: api.Seconds(req.WaitTimeout),
		MaxHold:     api.Seconds(req.MaxHold),
		Client:      r.RemoteAddr,
	})
	var full *broker.FullError
	switch {
	case errors.As(err, &full):
		w.Header().Set("Retry-After", strconv.Itoa(int(full.RetryAfter.Round(time.Second).Seconds())))
		detail := api.DetailQueueFull
		if full.Owner != "" {
			detail += ": too many sessions of this owner (limit " + strconv.Itoa(full.Limit) + ")"
		}
		writeError(w, http.StatusTooManyRequests, detail)
		return
	case errors.Is(err, broker.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, api.DetailShuttingDown)
		return
	case err != nil:
		panic("join queue: " + err.Error())
	}
	noteSession(w, sess.ID)
	writeJSON(w, http.StatusCreated, api.CreateSessionResponse{
		SessionID:      sess.ID,
		Position:       sess.Position,
		Status:         sess.Status.String(),
		SessionDetails: details(sess),
	})
}

// readSessionRequest reads the optional JSON body of POST /session. A body
// that is not JSON by its Content-Type is ignored, as the original ignored
// every body.
func readSessionRequest(w http.ResponseWriter, r *http.Request) (api.SessionRequest, *reqError) {
	var req api.SessionRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		return req, nil
	}
	data, rerr := readSmallBody(w, r, "Session request", maxSessionBody)
	if rerr != nil || len(data) == 0 {
		return req, rerr
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] != '{' {
		// encoding/json would take null for an empty request.
		return req, invalid(api.ValidationIssue{Type: api.IssueJSON, Loc: []string{"body"},
			Msg: "Invalid JSON session request: the body must be a JSON object"})
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, invalid(api.ValidationIssue{Type: api.IssueJSON, Loc: []string{"body"},
			Msg: api.Clip("Invalid JSON session request: " + err.Error()), Input: nil})
	}
	if dec.More() {
		return req, invalid(api.ValidationIssue{Type: api.IssueJSON, Loc: []string{"body"},
			Msg: "Invalid JSON session request: more than one JSON value"})
	}
	if issues := req.Validate(); len(issues) > 0 {
		return req, invalid(issues...)
	}
	return req, nil
}

// details are the extra fields of a session answer.
func details(sess broker.Session) api.SessionDetails {
	d := api.SessionDetails{Epoch: sess.Epoch, Owner: sess.Owner}
	if sess.HasEstimate {
		v := sess.EstimatedWait.Seconds()
		d.EstimatedWaitSeconds = &v
	}
	d.WaitDeadline = timePtr(sess.WaitDeadline)
	d.HoldDeadline = timePtr(sess.HoldDeadline)
	return d
}

// timePtr returns &t in UTC, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	// A new variable, not &t: the address of the parameter would move it
	// to the heap on every call, nil answers included.
	u := t.UTC().Round(time.Millisecond)
	return &u
}

// sessionStatus handles GET /session/{id}[?wait=D]. It refreshes the
// session; with wait it answers as soon as the status or position changes,
// or when the wait (capped at MaxWait) elapses. An active session is
// answered at once: there is nothing further to wait for, and the client
// may have been promoted between two polls, a change this request cannot
// see.
func (s *Server) sessionStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var wait time.Duration
	// Most polls have no query: do not build an empty map for them.
	if v, ok := query(r)["wait"]; ok {
		d, err := api.ParseDuration(v[0])
		if err != nil {
			invalid(api.ValidationIssue{
				Type:  api.IssueDurationParsing,
				Loc:   []string{"query", "wait"},
				Msg:   "Input should be a valid duration (Go syntax such as 30s, or seconds)",
				Input: api.Clip(v[0]),
			}).write(w)
			return
		}
		wait = min(d, s.maxWait)
	}
	if !s.ownSession(w, r, id) {
		return
	}
	sess, err := s.b.Touch(id)
	if err != nil {
		s.sessionError(w, err)
		return
	}
	if wait > 0 && sess.Status != queue.Active {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		stop := context.AfterFunc(s.drained, cancel)
		sess, err = s.b.Wait(ctx, id, sess)
		stop()
		cancel()
		if err != nil {
			s.sessionError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, api.SessionStatus{
		Status:         sess.Status.String(),
		Position:       sess.Position,
		SessionDetails: details(sess),
	})
}

// query returns the request's query parameters, nil when it has none.
func query(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return r.URL.Query()
}

// deleteSession handles DELETE /session/{id}.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if h := r.Header.Get(api.HeaderSessionID); h != "" && h != id {
		writeError(w, http.StatusForbidden, api.DetailWrongSession)
		return
	}
	if !s.ownSession(w, r, id) {
		return
	}
	if err := s.b.Leave(id); err != nil {
		s.sessionError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// heartbeat handles POST /session/heartbeat.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(api.HeaderSessionID)
	if id == "" {
		invalid(missing("header", api.HeaderSessionID)).write(w)
		return
	}
	if !s.ownSession(w, r, id) {
		return
	}
	if err := s.b.Refresh(id); err != nil {
		s.sessionError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ownSession checks, with authentication on, that the caller owns session
// id or is an admin (403 otherwise). An unknown session passes: the
// handler answers its 404.
func (s *Server) ownSession(w http.ResponseWriter, r *http.Request, id string) bool {
	noteSession(w, id)
	caller, on := s.identity(r)
	if !on || caller.Role.Allows(auth.Admin) {
		return true
	}
	sess, err := s.b.Session(id)
	if err != nil || sess.Owner == caller.Name {
		return true
	}
	writeError(w, http.StatusForbidden, api.DetailWrongOwner)
	return false
}

// sessionError answers an error of the Broker about a session: 404 (with
// the outcome of a session that ended recently), 423 for a waiting one,
// 409 for a busy one, 503 when closing.
func (s *Server) sessionError(w http.ResponseWriter, err error) {
	var ended *broker.EndedError
	switch {
	case errors.As(err, &ended):
		e := ended.Session
		writeJSON(w, http.StatusNotFound, api.SessionGone{
			Detail:  api.DetailSessionNotFound,
			Outcome: e.Outcome,
			Reason:  e.Reason,
			EndedAt: e.EndedAt.UTC().Round(time.Millisecond),
		})
	case errors.Is(err, broker.ErrNotFound):
		writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
	case errors.Is(err, broker.ErrNotActive):
		writeError(w, http.StatusLocked, api.DetailSessionNotActive)
	case errors.Is(err, broker.ErrOperationRunning):
		writeError(w, http.StatusConflict, api.DetailOperationRunning)
	case errors.Is(err, broker.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, api.DetailShuttingDown)
	default:
		panic("session error: " + err.Error())
	}
}
