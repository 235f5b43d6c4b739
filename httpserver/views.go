package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
)

// History limits of GET /history.
const (
	defaultHistoryLimit = 50
	defaultAuditLimit   = 100
)

// activeSession handles GET /active-session. It is read-only: unlike the
// original it refreshes nobody, so a monitor cannot keep a crashed
// client's session alive.
func (s *Server) activeSession(w http.ResponseWriter, r *http.Request) {
	head, err := s.b.Head()
	if err != nil || head.Status != queue.Active {
		writeError(w, http.StatusNotFound, api.DetailNoActiveSession)
		return
	}
	writeJSON(w, http.StatusOK, api.ActiveSession{
		Status:    head.Status.String(),
		Position:  0,
		SessionID: head.ID,
	})
}

// debugHealth handles GET /debug/health.
func (s *Server) debugHealth(w http.ResponseWriter, r *http.Request) {
	v := s.b.Queue()
	n := len(v.Waiting)
	if v.Holder != nil {
		n++
	}
	h := api.Health{
		Status:      "ok",
		Timestamp:   float64(v.Now.UnixMicro()) / 1e6,
		Uptime:      time.Since(s.started).Seconds(),
		Sessions:    n,
		QueueLength: n,
		Waiting:     len(v.Waiting),
	}
	if hd := v.Holder; hd != nil {
		h.Active = &api.HealthSession{
			Session:   api.ShortID(hd.ID),
			Epoch:     hd.Epoch,
			ActiveFor: v.Now.Sub(hd.Promoted).Seconds(),
			IdleFor:   v.Now.Sub(hd.LastSeen).Seconds(),
		}
	}
	st := v.Lab
	h.Lab = api.HealthLab{State: string(st.State), Topology: st.TopologyName}
	if !st.Since.IsZero() {
		h.Lab.StateFor = v.Now.Sub(st.Since).Seconds()
	}
	for holder, refs := range st.Holders {
		if h.Lab.Holders == nil {
			h.Lab.Holders = make(map[string]int)
		}
		h.Lab.Holders[api.ShortID(holder)] = refs
	}
	writeJSON(w, http.StatusOK, h)
}

// queueView handles GET /queue.
func (s *Server) queueView(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, queueDoc(s.b.Queue()))
}

// queueDoc is the wire form of a broker.View.
func queueDoc(v broker.View) api.Queue {
	doc := api.Queue{
		ServerTime: v.Now.UTC().Round(time.Millisecond),
		Waiting:    make([]api.QueueSession, 0, len(v.Waiting)),
		Lab:        labDoc(v.Lab, v.Now),
		Stats:      api.QueueStats{SessionsServed: v.Served},
		Draining:   v.Draining,
	}
	if v.Holder != nil {
		h := queueSession(*v.Holder, v.Now)
		doc.Holder = &h
	}
	for _, sess := range v.Waiting {
		doc.Waiting = append(doc.Waiting, queueSession(sess, v.Now))
	}
	if v.HasHoldAverage {
		avg := v.HoldAverage.Seconds()
		doc.Stats.HoldSecondsAvg = &avg
	}
	if q := v.Quarantine; q != nil {
		doc.Quarantine = &api.Quarantine{Since: q.Since.UTC().Round(time.Millisecond), Reason: q.Reason}
	}
	return doc
}

// queueSession is the wire form of a session in /queue: short id only.
func queueSession(sess broker.Session, now time.Time) api.QueueSession {
	q := api.QueueSession{
		ID:           api.ShortID(sess.ID),
		Owner:        sess.Owner,
		Labels:       sess.Labels,
		Status:       sess.Status.String(),
		Position:     sess.Position,
		CreatedAt:    sess.Created.UTC().Round(time.Millisecond),
		IdleSeconds:  now.Sub(sess.LastSeen).Seconds(),
		WaitDeadline: timePtr(sess.WaitDeadline),
		HoldDeadline: timePtr(sess.HoldDeadline),
	}
	if q.Labels == nil {
		q.Labels = map[string]string{}
	}
	if sess.Status == queue.Active {
		epoch := sess.Epoch
		active := now.Sub(sess.Promoted).Seconds()
		q.Epoch, q.ActiveSeconds = &epoch, &active
		q.WaitingSeconds = sess.Promoted.Sub(sess.Created).Seconds()
	} else {
		q.WaitingSeconds = now.Sub(sess.Created).Seconds()
	}
	if sess.HasEstimate {
		est := sess.EstimatedWait.Seconds()
		q.EstimatedWaitSeconds = &est
	}
	return q
}

// labDoc is the wire form of the lab in /queue.
func labDoc(st lab.Status, now time.Time) api.QueueLab {
	l := api.QueueLab{State: string(st.State), Holders: len(st.Holders)}
	if st.TopologyName != "" {
		t := st.TopologyName
		l.Topology = &t
	}
	if st.Fingerprint != "" {
		f := st.Fingerprint
		l.Fingerprint = &f
	}
	if st.State != lab.StateNone {
		l.Since = timePtr(st.Since)
	}
	if op := st.Operation; op != nil {
		l.Operation = &api.LabOperation{Kind: op.Kind, RunningSeconds: now.Sub(op.Started).Seconds()}
		if op.LastOutput != "" {
			out := op.LastOutput
			l.Operation.LastOutput = &out
		}
	}
	return l
}

// history handles GET /history?limit=N.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r, defaultHistoryLimit, broker.HistoryLen)
	if !ok {
		return
	}
	ended := s.b.History(limit)
	out := make([]api.HistoryEntry, 0, len(ended))
	for _, e := range ended {
		out = append(out, historyEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// historyEntry is the wire form of an ended session.
func historyEntry(e broker.Ended) api.HistoryEntry {
	h := api.HistoryEntry{
		ID:            api.ShortID(e.ID),
		Owner:         e.Owner,
		Labels:        e.Labels,
		CreatedAt:     e.Created.UTC().Round(time.Millisecond),
		EndedAt:       e.EndedAt.UTC().Round(time.Millisecond),
		WaitedSeconds: e.Waited().Seconds(),
		Outcome:       e.Outcome,
		Reason:        e.Reason,
	}
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	if held, ok := e.Held(); ok {
		v := held.Seconds()
		h.HeldSeconds = &v
	}
	if l := e.Lab; l != nil {
		h.Lab = &api.HistoryLab{Topology: l.Topology, Fingerprint: l.Fingerprint, Reused: l.Reused}
	}
	return h
}

// limitParam reads ?limit=N: def when absent, 422 unless 1..most.
func limitParam(w http.ResponseWriter, r *http.Request, def, most int) (int, bool) {
	v, ok := r.URL.Query()["limit"]
	if !ok {
		return def, true
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 || n > most {
		invalid(api.ValidationIssue{
			Type:  api.IssueValue,
			Loc:   []string{"query", "limit"},
			Msg:   "Input should be a whole number from 1 to " + strconv.Itoa(most),
			Input: api.Clip(v[0]),
		}).write(w)
		return 0, false
	}
	return n, true
}
