package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
)

// caller is the active session a /lab* request acts for.
type caller struct {
	id    string
	sess  *session
	epoch uint64 // the lease the request started under
}

// gate checks the session of a /lab* request and refreshes it: no header
// is 422, an unknown session 404, a waiting one 423. It runs before the
// request's body and query are looked at, so these errors take precedence
// over validation errors, as in the original.
func (s *Server) gate(w http.ResponseWriter, r *http.Request) (caller, bool) {
	id := r.Header.Get(api.HeaderSessionID)
	if id == "" {
		invalid(missing("header", api.HeaderSessionID)).write(w)
		return caller{}, false
	}
	noteSession(w, id)
	info, err := s.q.Touch(id)
	if err != nil {
		s.log.Warn(fmt.Sprintf("Session %s not found", api.ShortID(id)), "path", r.URL.Path)
		writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
		return caller{}, false
	}
	if info.Status != queue.Active {
		s.log.Warn(fmt.Sprintf("Session %s not active (status=%s)", api.ShortID(id), info.Status),
			"path", r.URL.Path)
		writeError(w, http.StatusLocked, api.DetailSessionNotActive)
		return caller{}, false
	}
	return caller{id: id, sess: info.Payload, epoch: info.Epoch}, true
}

// beginOp starts a lab operation of c: it takes the session's operation
// lock (409 if another operation of the session runs) and pins the
// session so it cannot expire while the operation runs. end undoes both
// and restarts the session's idle clock.
func (s *Server) beginOp(w http.ResponseWriter, c caller) (end func(), ok bool) {
	if !c.sess.op.TryLock() {
		writeError(w, http.StatusConflict, api.DetailOperationRunning)
		return nil, false
	}
	unpin, err := s.q.Pin(c.id)
	if err != nil {
		c.sess.op.Unlock()
		writeError(w, http.StatusNotFound, api.DetailSessionNotFound)
		return nil, false
	}
	return func() {
		unpin()
		c.sess.op.Unlock()
	}, true
}

// opContext returns the context of a lab operation: it ends with the
// request and when the session leaves the queue.
func opContext(r *http.Request, c caller) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(c.sess.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// acquireLab handles POST /lab.
func (s *Server) acquireLab(w http.ResponseWriter, r *http.Request) {
	c, ok := s.gate(w, r)
	if !ok {
		return
	}
	end, ok := s.beginOp(w, c)
	if !ok {
		return
	}
	defer end()
	res, rerr := s.acquire(w, r, c)
	if rerr != nil {
		rerr.write(w)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// acquire reads the upload and acquires the lab for c. It returns only
// after the bundle is closed, so no spooled file outlives the answer.
func (s *Server) acquire(w http.ResponseWriter, r *http.Request, c caller) (api.AcquireResponse, *reqError) {
	b, reuse, rerr := s.readUpload(w, r)
	if rerr != nil {
		return api.AcquireResponse{}, rerr
	}
	defer b.Close()
	s.log.Info(fmt.Sprintf("Starting lab acquisition for session %s (topology=%s, reuse=%t)",
		api.ShortID(c.id), b.TopologyName(), reuse),
		"fingerprint", api.ShortID(b.Fingerprint()), "files", len(b.Paths()), "bytes", b.Size())
	if !s.q.Holds(c.id, c.epoch) {
		return api.AcquireResponse{}, fail(http.StatusNotFound, api.DetailSessionNotFound)
	}
	ctx, cancel := opContext(r, c)
	defer cancel()
	res, err := s.mgr.TryAcquire(ctx, c.id, b, reuse)
	if !s.q.Holds(c.id, c.epoch) {
		// The session ended while the lab started: whatever it got
		// belongs to nobody now.
		s.mgr.ReleaseAll(c.id)
		s.log.Warn(fmt.Sprintf("Session %s ended during lab acquisition; its references were dropped", api.ShortID(c.id)))
		return api.AcquireResponse{}, fail(http.StatusNotFound, api.DetailSessionNotFound)
	}
	if err != nil {
		return api.AcquireResponse{}, s.labError(c, "acquire lab", err)
	}
	s.log.Info(fmt.Sprintf("Lab ready for session %s (reused=%t, %d devices)", api.ShortID(c.id), res.Reused, len(res.Devices)))
	return api.AcquireResponse{Reused: res.Reused, Devices: devices(res.Devices)}, nil
}

// labError maps a lab.Manager error to an answer.
func (s *Server) labError(c caller, op string, err error) *reqError {
	var re *lab.RunnerError
	switch {
	case errors.Is(err, lab.ErrBusy):
		return fail(http.StatusLocked, api.DetailLabBusy)
	case errors.Is(err, lab.ErrConflict):
		return fail(http.StatusConflict, api.DetailLabConflict)
	case errors.Is(err, lab.ErrInUse):
		return fail(http.StatusConflict, api.DetailLabInUse)
	case errors.Is(err, lab.ErrNoLab):
		return fail(http.StatusNotFound, api.DetailNoLab)
	case errors.Is(err, lab.ErrClosed):
		return fail(http.StatusServiceUnavailable, api.DetailShuttingDown)
	case errors.As(err, &re) && errors.Is(re, context.DeadlineExceeded):
		s.log.Error(fmt.Sprintf("%s for session %s timed out: %v", op, api.ShortID(c.id), err))
		return fail(http.StatusGatewayTimeout, re.Error())
	case errors.As(err, &re):
		s.log.Error(fmt.Sprintf("%s for session %s failed: %v", op, api.ShortID(c.id), err))
		return fail(http.StatusBadGateway, re.Error())
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Error(fmt.Sprintf("%s for session %s timed out: %v", op, api.ShortID(c.id), err))
		return errorf(http.StatusGatewayTimeout, "%s: %v", op, err)
	}
	s.log.Error(fmt.Sprintf("%s for session %s failed: %v", op, api.ShortID(c.id), err))
	return errorf(http.StatusInternalServerError, "%s: %v", op, err)
}

// labStatus handles GET /lab.
func (s *Server) labStatus(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.gate(w, r); !ok {
		return
	}
	st := s.mgr.Status()
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
	c, ok := s.gate(w, r)
	if !ok {
		return
	}
	devs, err := s.mgr.Devices()
	if err != nil {
		s.labError(c, "list devices", err).write(w)
		return
	}
	writeJSON(w, http.StatusOK, devices(devs))
}

// releaseLab handles POST /lab/release: it drops one of the caller's own
// references (none held is a no-op).
func (s *Server) releaseLab(w http.ResponseWriter, r *http.Request) {
	c, ok := s.gate(w, r)
	if !ok {
		return
	}
	end, ok := s.beginOp(w, c)
	if !ok {
		return
	}
	defer end()
	if err := s.mgr.Release(c.id); err != nil {
		s.labError(c, "release lab", err).write(w)
		return
	}
	s.log.Info(fmt.Sprintf("Session %s released a lab reference", api.ShortID(c.id)))
	w.WriteHeader(http.StatusNoContent)
}

// destroyLab handles DELETE /lab[?force=BOOL]: 204 without a lab, 202 once
// the lab is torn down.
func (s *Server) destroyLab(w http.ResponseWriter, r *http.Request) {
	c, ok := s.gate(w, r)
	if !ok {
		return
	}
	force := true
	if v, ok := r.URL.Query()["force"]; ok {
		if force, ok = api.ParseBool(v[0]); !ok {
			invalid(badBool(v[0], "query", "force")).write(w)
			return
		}
	}
	end, ok := s.beginOp(w, c)
	if !ok {
		return
	}
	defer end()
	s.log.Info(fmt.Sprintf("Session %s requested lab teardown (force=%t)", api.ShortID(c.id), force))
	ctx, cancel := opContext(r, c)
	defer cancel()
	torn, err := s.mgr.Destroy(ctx, force)
	switch {
	case err != nil:
		s.labError(c, "destroy lab", err).write(w)
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
