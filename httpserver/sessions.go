package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/queue"
)

// createSession handles POST /session.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, api.DetailShuttingDown)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	info, err := s.q.Join(&session{ctx: ctx, cancel: cancel})
	if err != nil {
		cancel()
		if errors.Is(err, queue.ErrClosed) {
			writeError(w, http.StatusServiceUnavailable, api.DetailShuttingDown)
			return
		}
		panic(fmt.Sprintf("join queue: %v", err))
	}
	noteSession(w, info.ID)
	s.log.Info(fmt.Sprintf("Created session %s at queue position %d", api.ShortID(info.ID), info.Position))
	writeJSON(w, http.StatusCreated, api.CreateSessionResponse{
		SessionID: info.ID,
		Position:  info.Position,
		Status:    info.Status.String(),
		Epoch:     info.Epoch,
	})
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
	if v, ok := r.URL.Query()["wait"]; ok {
		d, err := api.ParseDuration(v[0])
		if err != nil {
			invalid(api.ValidationIssue{
				Type:  api.IssueDurationParsing,
				Loc:   []string{"query", "wait"},
				Msg:   "Input should be a valid duration (Go syntax such as 30s, or seconds)",
				Input: v[0],
			}).write(w)
			return
		}
		wait = min(d, s.maxWait)
	}
	info, err := s.q.Touch(id)
	if err != nil {
		writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
		return
	}
	if wait > 0 && info.Status != queue.Active {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		stop := context.AfterFunc(s.drained, cancel)
		info, err = s.q.Wait(ctx, id, info)
		stop()
		cancel()
		if err == nil {
			info, err = s.q.Touch(id)
		}
		if err != nil {
			writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
			return
		}
	}
	writeJSON(w, http.StatusOK, api.SessionStatus{
		Status:   info.Status.String(),
		Position: info.Position,
		Epoch:    info.Epoch,
	})
}

// deleteSession handles DELETE /session/{id}.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if h := r.Header.Get(api.HeaderSessionID); h != "" && h != id {
		writeError(w, http.StatusForbidden, api.DetailWrongSession)
		return
	}
	if _, err := s.q.Leave(id); err != nil {
		writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
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
	if _, err := s.q.Touch(id); err != nil {
		writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
		return
	}
	s.log.Debug(fmt.Sprintf("Heartbeat for session %s", api.ShortID(id)))
	w.WriteHeader(http.StatusNoContent)
}

// activeSession handles GET /active-session. It is read-only: unlike the
// original it refreshes nobody, so a monitor cannot keep a crashed
// client's session alive.
func (s *Server) activeSession(w http.ResponseWriter, r *http.Request) {
	info, err := s.q.Head()
	if err != nil {
		writeError(w, http.StatusNotFound, api.DetailNoActiveSession)
		return
	}
	writeJSON(w, http.StatusOK, api.ActiveSession{
		Status:    info.Status.String(),
		Position:  0,
		SessionID: info.ID,
	})
}

// healthz handles GET /healthz.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

// debugHealth handles GET /debug/health.
func (s *Server) debugHealth(w http.ResponseWriter, r *http.Request) {
	n := s.q.Len()
	h := api.Health{
		Status:      "ok",
		Timestamp:   float64(time.Now().UnixMicro()) / 1e6,
		Uptime:      time.Since(s.started).Seconds(),
		Sessions:    n,
		QueueLength: n,
	}
	if head, err := s.q.Head(); err == nil {
		h.Active = &api.HealthSession{
			Session:   api.ShortID(head.ID),
			Epoch:     head.Epoch,
			ActiveFor: time.Since(head.Since).Seconds(),
			IdleFor:   time.Since(head.LastSeen).Seconds(),
		}
		h.Waiting = max(n-1, 0)
	}
	st := s.mgr.Status()
	h.Lab = api.HealthLab{State: string(st.State), Topology: st.TopologyName}
	if !st.Since.IsZero() {
		h.Lab.StateFor = time.Since(st.Since).Seconds()
	}
	for holder, refs := range st.Holders {
		if h.Lab.Holders == nil {
			h.Lab.Holders = make(map[string]int)
		}
		h.Lab.Holders[api.ShortID(holder)] = refs
	}
	writeJSON(w, http.StatusOK, h)
}
