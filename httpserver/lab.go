package httpserver

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
)

// labSession returns the session a /lab* request names: no header is 422,
// another owner's session 403 (with authentication on). These answers
// come before the request's body and query are looked at, so they take
// precedence over validation errors, as in the original.
func (s *Server) labSession(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.Header.Get(api.HeaderSessionID)
	if id == "" {
		invalid(missing("header", api.HeaderSessionID)).write(w)
		return "", false
	}
	return id, s.ownSession(w, r, id)
}

// gate checks the session of a /lab* request and refreshes it: besides
// labSession's answers, an unknown session is 404, a waiting one 423.
func (s *Server) gate(w http.ResponseWriter, r *http.Request) bool {
	id, ok := s.labSession(w, r)
	if !ok {
		return false
	}
	if _, err := s.b.Gate(id); err != nil {
		s.sessionError(w, err)
		return false
	}
	return true
}

// begin gates a lab operation and starts it (409 while another operation
// of the session runs). The caller must End the operation.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (*broker.Op, bool) {
	id, ok := s.labSession(w, r)
	if !ok {
		return nil, false
	}
	op, err := s.b.Begin(id)
	if err != nil {
		s.sessionError(w, err)
		return nil, false
	}
	return op, true
}

// acquireLab handles POST /lab. The whole upload is read (under the
// upload timeout) before any lab work starts.
func (s *Server) acquireLab(w http.ResponseWriter, r *http.Request) {
	op, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer op.End()
	if err := op.CanAcquire(); err != nil {
		// Refused before the upload is read, not after.
		s.labError(w, r, "acquire lab", err)
		return
	}
	b, reuse, rerr := s.readUpload(w, r, op)
	if rerr != nil && rerr.gone {
		err := op.Err()
		if err == nil {
			err = broker.ErrNotFound
		}
		s.sessionError(w, err)
		return
	}
	if rerr != nil {
		rerr.write(w)
		return
	}
	defer b.Close()
	id := r.Header.Get(api.HeaderSessionID)
	s.log.Info("Starting lab acquisition", "session", api.ShortID(id), "topology", b.TopologyName(),
		"reuse", reuse, "fingerprint", api.ShortID(b.Fingerprint()), "files", len(b.Paths()), "bytes", b.Size())
	res, err := op.Acquire(r.Context(), b, reuse)
	if err != nil {
		s.labError(w, r, "acquire lab", err)
		return
	}
	s.log.Info("Lab ready for session", "session", api.ShortID(id), "reused", res.Reused, "devices", len(res.Devices))
	writeJSON(w, http.StatusOK, api.AcquireResponse{Reused: res.Reused, Devices: devices(res.Devices)})
}

// labError answers an error of a lab operation.
func (s *Server) labError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var re *lab.RunnerError
	var qe *broker.QuarantineError
	id := api.ShortID(r.Header.Get(api.HeaderSessionID))
	switch {
	case errors.Is(err, broker.ErrNotFound), errors.Is(err, broker.ErrNotActive),
		errors.Is(err, broker.ErrOperationRunning):
		s.sessionError(w, err)
	case errors.As(err, &qe):
		writeError(w, http.StatusServiceUnavailable, api.DetailQuarantined+": "+qe.Reason)
	case errors.Is(err, lab.ErrBusy):
		// The answer keeps the original's words; the log says why.
		s.log.Info("Lab busy", "op", op, "session", id, "why", err.Error())
		writeError(w, http.StatusLocked, api.DetailLabBusy)
	case errors.Is(err, lab.ErrConflict):
		writeError(w, http.StatusConflict, api.DetailLabConflict)
	case errors.Is(err, lab.ErrInUse):
		writeError(w, http.StatusConflict, api.DetailLabInUse)
	case errors.Is(err, lab.ErrNoLab):
		writeError(w, http.StatusNotFound, api.DetailNoLab)
	case errors.Is(err, lab.ErrLockUnavailable):
		s.log.Error("Lab lock file unusable", "op", op, "session", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, lab.ErrClosed), errors.Is(err, broker.ErrClosed),
		s.draining.Load() && errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, api.DetailShuttingDown)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads the answer.
		s.log.Info("Lab operation abandoned by its client", "op", op, "session", id)
		writeError(w, http.StatusServiceUnavailable, op+": the request was cancelled")
	case errors.As(err, &re) && errors.Is(re, context.DeadlineExceeded):
		s.log.Error("Lab operation timed out", "op", op, "session", id, "err", err)
		writeError(w, http.StatusGatewayTimeout, re.Error())
	case errors.As(err, &re):
		s.log.Error("Lab operation failed", "op", op, "session", id, "err", err)
		writeError(w, http.StatusBadGateway, re.Error())
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Error("Lab operation timed out", "op", op, "session", id, "err", err)
		writeError(w, http.StatusGatewayTimeout, op+": "+err.Error())
	default:
		s.log.Error("Lab operation failed", "op", op, "session", id, "err", err)
		writeError(w, http.StatusInternalServerError, op+": "+err.Error())
	}
}

// labStatus handles GET /lab.
func (s *Server) labStatus(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r) {
		return
	}
	st := s.b.Manager().Status()
	var topo *string
	if st.Dir != "" && st.TopologyName != "" {
		p := filepath.Join(st.Dir, st.TopologyName)
		topo = &p
	}
	writeJSON(w, http.StatusOK, api.LabStatus{
		Running:     st.State == lab.StateRunning || st.State == lab.StateIdle,
		Topology:    topo,
		RefCount:    st.RefCount,
		Devices:     devices(st.Devices),
		Fingerprint: st.Fingerprint,
		State:       string(st.State),
	})
}

// labDevices handles GET /lab/devices.
func (s *Server) labDevices(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r) {
		return
	}
	devs, err := s.b.Manager().Devices()
	if err != nil {
		s.labError(w, r, "list devices", err)
		return
	}
	writeJSON(w, http.StatusOK, devices(devs))
}

// releaseLab handles POST /lab/release: it drops one of the caller's own
// references (none held is a no-op).
func (s *Server) releaseLab(w http.ResponseWriter, r *http.Request) {
	op, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer op.End()
	if err := op.Release(); err != nil {
		s.labError(w, r, "release lab", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// destroyLab handles DELETE /lab[?force=BOOL]: 204 without a lab, 202 once
// the lab is torn down. force is parsed before the operation lock is
// taken, so a bad value answers 422 even while another operation runs.
func (s *Server) destroyLab(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r) {
		return
	}
	force := true
	if v, ok := r.URL.Query()["force"]; ok {
		if force, ok = api.ParseBool(v[0]); !ok {
			invalid(badBool(api.Clip(v[0]), "query", "force")).write(w)
			return
		}
	}
	op, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer op.End()
	s.log.Info("Session requested lab teardown", "session", api.ShortID(r.Header.Get(api.HeaderSessionID)), "force", force)
	// A client that goes away does not cut the teardown short: that
	// would leave the lab dirty.
	torn, err := op.Destroy(context.WithoutCancel(r.Context()), force)
	s.teardownAnswer(w, r, torn, err)
}

// teardownAnswer answers a teardown: 202 once the lab is torn down, 204
// when there was none.
func (s *Server) teardownAnswer(w http.ResponseWriter, r *http.Request, torn bool, err error) {
	switch {
	case err != nil:
		s.labError(w, r, "destroy lab", err)
	case torn:
		w.WriteHeader(http.StatusAccepted)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// devices converts lab devices to wire devices; never nil.
func devices(ds []lab.Device) []api.Device {
	out := make([]api.Device, len(ds))
	for i, d := range ds {
		out[i] = api.Device{Name: d.Name, Raw: d.Raw}
	}
	return out
}
