package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
)

// maxEvictBody bounds the body of an eviction.
const maxEvictBody = 16 << 10

// actor names the caller of an admin route: its token's name, or "local".
func (s *Server) actor(r *http.Request) string {
	id, _ := s.identity(r)
	if id.Name == "" {
		return localActor
	}
	return id.Name
}

// evict handles POST /admin/sessions/{id}/evict {"reason": "..."}: the
// session (full id or unique 8+ character prefix) ends with outcome
// evicted; the evicted client learns the reason on its next call.
func (s *Server) evict(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data, rerr := readSmallBody(w, r, "Eviction request", maxEvictBody)
	if rerr != nil {
		rerr.write(w)
		return
	}
	var req api.EvictRequest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.Reason) == "" {
		invalid(api.ValidationIssue{Type: api.IssueMissing, Loc: []string{"body", "reason"},
			Msg: `A JSON body {"reason": "..."} saying why is required`}).write(w)
		return
	}
	if !api.ValidText(req.Reason, api.MaxLabelValueLen) {
		invalid(api.ValidationIssue{Type: api.IssueValue, Loc: []string{"body", "reason"},
			Msg: "reason must be printable text of at most 256 characters", Input: api.Clip(req.Reason)}).write(w)
		return
	}
	e, err := s.b.Evict(id, s.actor(r), req.Reason)
	switch {
	case errors.Is(err, broker.ErrShortPrefix):
		invalid(api.ValidationIssue{Type: api.IssueValue, Loc: []string{"path", "id"},
			Msg: "Give the full session id or its first 8 characters (as /queue shows them)", Input: api.Clip(id)}).write(w)
	case errors.Is(err, broker.ErrAmbiguous):
		writeError(w, http.StatusConflict, api.Clip(err.Error()))
	case err != nil:
		s.sessionError(w, err)
	default:
		noteSession(w, e.ID)
		w.WriteHeader(http.StatusNoContent)
	}
}

// adminDestroyLab handles DELETE /admin/lab: the lab goes now, whoever
// holds it. 202 once torn down, 204 when there was none.
func (s *Server) adminDestroyLab(w http.ResponseWriter, r *http.Request) {
	torn, err := s.b.DestroyLab(context.WithoutCancel(r.Context()), s.actor(r))
	s.teardownAnswer(w, r, torn, err)
}

// drain handles POST /admin/drain.
func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	s.b.Drain(s.actor(r))
	w.WriteHeader(http.StatusNoContent)
}

// resume handles POST /admin/resume.
func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	s.b.Resume(s.actor(r))
	w.WriteHeader(http.StatusNoContent)
}

// unquarantine handles POST /admin/unquarantine: 200 {"lifted": BOOL},
// false when the host was not quarantined.
func (s *Server) unquarantine(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Unquarantine{Lifted: s.b.Unquarantine(s.actor(r))})
}

// audit handles GET /admin/audit?limit=N: the last N entries, oldest first.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, defaultAuditLimit, 10000)
	if !ok {
		return
	}
	out := []api.AuditEntry{}
	if s.auditLog != nil {
		entries, err := s.auditLog.Tail(limit)
		if err != nil {
			s.log.Error("Cannot read the audit log", "err", err)
			writeError(w, http.StatusInternalServerError, "Cannot read the audit log: "+err.Error())
			return
		}
		for _, a := range entries {
			out = append(out, api.AuditEntry{Time: a.Time.UTC().Round(time.Millisecond), Actor: a.Actor,
				Action: a.Action, Session: a.Session, Owner: a.Owner, Reason: a.Reason})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
