package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// Session is a place in the server's queue that has reached the head: the
// session that may use the lab. It sends heartbeats in the background until
// Close, or until the server ends it (see Err). Its methods are safe for
// concurrent use; the caller must call Close.
type Session struct {
	c   *Client
	id  string
	log *slog.Logger

	stopHeartbeat context.CancelFunc
	heartbeatDone chan struct{}
	closing       atomic.Bool // Close was called: no more calls

	closeMu sync.Mutex
	closed  bool // the server confirmed the session is gone

	endMu sync.Mutex
	end   error // why the session cannot be used any more; nil while it can
	gone  bool  // end is the server's word that the session ended

	done     chan struct{} // closed once Err is not nil
	doneOnce sync.Once
}

// sessionAnswer is the body of POST /session and GET /session/{id}. Epoch
// is a pointer to tell a server that sends it (and supports long-poll)
// from the original one.
type sessionAnswer struct {
	SessionID            string     `json:"session_id"`
	Status               string     `json:"status"`
	Position             int        `json:"position"`
	Epoch                *uint64    `json:"epoch"`
	EstimatedWaitSeconds *float64   `json:"estimated_wait_seconds"`
	WaitDeadline         *time.Time `json:"wait_deadline"`
}

// progress is what Progress shows of an answer.
func (a sessionAnswer) progress() Progress {
	p := Progress{Status: a.Status, Position: a.Position}
	if a.EstimatedWaitSeconds != nil {
		p.EstimatedWait = time.Duration(*a.EstimatedWaitSeconds * float64(time.Second)).Round(time.Second)
		p.HasEstimate = true
	}
	if a.WaitDeadline != nil {
		p.WaitDeadline = *a.WaitDeadline
	}
	return p
}

// Open joins the server's queue and blocks until the new session is
// active, that is until every session queued before it has ended. It
// waits by long-poll, so it returns within milliseconds of its turn
// (against a server without long-poll it polls every poll interval). The
// wait is bounded by ctx and by the session timeout; while the server
// does not answer (a restart), the long-poll is retried for the
// ride-through window.
//
// The session's owner, labels and limits come from the client's defaults
// (see WithOpenDefaults) and opts; they are checked before anything is
// sent (ErrBadRequest). The server may end a waiting session itself: at
// its wait timeout (ErrWaitTimeout), by an admin's eviction (ErrEvicted).
//
// Heartbeats start as soon as the session exists, so a long wait does not
// expire it. If the wait fails or ends, Open deletes the session before it
// returns the error, so it never leaves a slot behind in the queue.
func (c *Client) Open(ctx context.Context, opts ...OpenOption) (*Session, error) {
	oc, err := newOpenConfig(c.cfg.openDefaults, opts)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	body, err := json.Marshal(oc.request())
	if err != nil {
		return nil, fmt.Errorf("open session: encode request: %w", err)
	}
	var created sessionAnswer
	_, err = c.send(ctx, request{
		method:      http.MethodPost,
		path:        "/session",
		body:        bytes.NewReader(body),
		contentType: "application/json",
		timeout:     c.cfg.requestTimeout,
	}, &created)
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	if created.SessionID == "" {
		return nil, fmt.Errorf("open session: POST /session: answer has no session_id")
	}
	s := &Session{
		c:             c,
		id:            created.SessionID,
		log:           c.cfg.logger.With("session", api.ShortID(created.SessionID)),
		heartbeatDone: make(chan struct{}),
		done:          make(chan struct{}),
	}
	hbCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopHeartbeat = stop
	go s.heartbeat(hbCtx)

	if err := s.waitActive(ctx, created, oc.progress); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout(c.cfg.requestTimeout))
		defer cancel()
		if cerr := s.Close(cctx); cerr != nil {
			s.log.Warn("Could not delete the session after a failed open", "err", cerr)
		}
		return nil, fmt.Errorf("open session %s: %w", api.ShortID(s.id), err)
	}
	return s, nil
}

// cleanupTimeout bounds a clean-up call made after the caller's context
// may have ended.
func cleanupTimeout(request time.Duration) time.Duration {
	if request <= 0 {
		return DefaultRequestTimeout
	}
	return request
}

// waitActive waits until the session is active, telling progress (if
// set) on the way.
func (s *Session) waitActive(parent context.Context, st sessionAnswer, progress func(Progress)) error {
	start := time.Now()
	ctx := parent
	if t := s.c.cfg.sessionTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, t)
		defer cancel()
	}
	position := -1
	var shown *Progress
	ride := rider{window: s.c.cfg.rideThrough}
	for {
		// The original's create answer has no status: nothing to show.
		if p := st.progress(); progress != nil && st.Status != "" && (shown == nil || *shown != p) {
			progress(p)
			shown = &p
		}
		if st.Status == api.StatusActive {
			s.log.Info("Session active", "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if st.Position != position {
			position = st.Position
			if position > 0 {
				s.log.Info("Queued", "position", position)
			}
		}
		// A server that sends epochs answers long-polls; the original
		// answers at once, so it is polled at the poll interval. The
		// first status call is made at once either way: the create
		// answer of the original has no status.
		if st.Epoch == nil && st.Status != "" && clock.Sleep(ctx, s.c.cfg.pollInterval) != nil {
			return s.waitEnded(parent, ctx, position)
		}
		next, err := s.status(ctx)
		switch {
		case err == nil:
			if down, failing := ride.failing(time.Now()); failing {
				s.log.Info("Session status answered again", "after", down.Round(time.Millisecond))
			}
			ride.ok()
			st = next
			continue
		case ctx.Err() != nil:
			return s.waitEnded(parent, ctx, position)
		case errors.Is(err, ErrNotFound):
			s.setEnd(err, true)
			return fmt.Errorf("wait for active: %w", err)
		case !rideable(err):
			return fmt.Errorf("wait for active: %w", err)
		}
		wait, ok := ride.failed(time.Now())
		if !ok {
			return fmt.Errorf("wait for active: no answer for %v: %w", s.c.cfg.rideThrough, err)
		}
		s.log.Warn("Session status failed; retrying", "err", err, "in", wait.Round(time.Millisecond))
		if clock.Sleep(ctx, wait) != nil {
			return s.waitEnded(parent, ctx, position)
		}
	}
}

// waitEnded explains why waiting for active stopped: the caller's context
// ended, or the session timeout passed.
func (s *Session) waitEnded(parent, ctx context.Context, position int) error {
	if err := parent.Err(); err != nil {
		return fmt.Errorf("wait for active: still queued at position %d: %w", position, context.Cause(parent))
	}
	return fmt.Errorf("wait for active: still queued at position %d after %v: %w",
		position, s.c.cfg.sessionTimeout, context.Cause(ctx))
}

// status long-polls GET /session/{id}.
func (s *Session) status(ctx context.Context) (sessionAnswer, error) {
	var st sessionAnswer
	q := url.Values{"wait": {longPollWait.String()}}
	timeout := s.c.cfg.requestTimeout
	if timeout > 0 {
		timeout += longPollWait
	}
	_, err := s.c.send(ctx, request{
		method:  http.MethodGet,
		path:    "/session/" + url.PathEscape(s.id),
		query:   q,
		session: s.id,
		timeout: timeout,
	}, &st)
	return st, err
}

// heartbeat tells the server every heartbeat interval that the session is
// alive, until ctx ends or the session ends. While the server does not
// answer, it retries with backoff for the ride-through window, then gives
// up and ends the Session (see Err).
func (s *Session) heartbeat(ctx context.Context) {
	defer close(s.heartbeatDone)
	ride := rider{window: s.c.cfg.rideThrough}
	wait := s.c.cfg.heartbeatInterval
	for {
		if clock.Sleep(ctx, wait) != nil {
			return
		}
		wait = s.c.cfg.heartbeatInterval
		_, err := s.c.send(ctx, request{
			method:  http.MethodPost,
			path:    "/session/heartbeat",
			session: s.id,
			timeout: s.c.cfg.requestTimeout,
		}, nil)
		switch {
		case err == nil:
			if down, failing := ride.failing(time.Now()); failing {
				s.log.Info("Heartbeat answered again", "after", down.Round(time.Millisecond))
			} else {
				s.log.Debug("Heartbeat sent")
			}
			ride.ok()
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrNotFound):
			s.setEnd(err, true)
			s.log.Warn("The server ended the session; heartbeats stop", "err", err)
			return
		case !rideable(err):
			s.log.Warn("Heartbeat failed", "err", err)
			continue
		}
		d, ok := ride.failed(time.Now())
		if !ok {
			s.setEnd(fmt.Errorf("heartbeat: no answer for %v: %w", s.c.cfg.rideThrough, err), false)
			s.log.Error("Heartbeats give up: the server did not answer for the ride-through window",
				"err", err, "window", s.c.cfg.rideThrough)
			return
		}
		s.log.Warn("Heartbeat failed; retrying", "err", err, "in", d.Round(time.Millisecond))
		wait = d
	}
}

// setEnd records why the session ended, unless an earlier end is known.
// gone says the server said so (it need not be told by Close).
func (s *Session) setEnd(err error, gone bool) {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	if s.end == nil {
		s.end = fmt.Errorf("session %s ended: %w", api.ShortID(s.id), err)
		s.gone = gone
	}
	s.doneOnce.Do(func() { close(s.done) })
}

// Done returns a channel that is closed once Err returns an error: the
// server ended the session, heartbeats gave up, or Close was called. A
// program that holds the lab waits on it to learn, within a heartbeat
// interval, that the session it holds is gone.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session is usable, and otherwise why it is
// not, the first cause that became known:
//
//   - the server ended it (it closed, expired, was evicted, or reached
//     its wait timeout or maximum hold): a 404 to a heartbeat, a
//     long-poll or a lab call told the client so. The error is that
//     answer's *Error, matching ErrNotFound and, when the server said
//     why, ErrExpired, ErrEvicted, ErrWaitTimeout or ErrMaxHold; its
//     Reason is the server's.
//   - heartbeats got no answer for the ride-through window (the error
//     wraps the last failure, e.g. a *TransportError).
//   - Close was called: ErrClosed.
//
// Once Err is not nil, every call on the Session but Close returns that
// error at once, without a request. Close is still needed: it stops the
// heartbeats and, unless the server said the session ended, deletes it.
func (s *Session) Err() error {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	switch {
	case s.end != nil:
		return s.end
	case s.closing.Load():
		return ErrClosed
	}
	return nil
}

// endState returns the recorded end of the session (nil if none) and
// whether it is the server's word.
func (s *Session) endState() (gone bool, err error) {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.gone, s.end
}

// ID returns the session id the server assigned.
func (s *Session) ID() string { return s.id }

// String returns the session id shortened for logs.
func (s *Session) String() string { return "session " + api.ShortID(s.id) }

// Close stops the heartbeats and ends the session on the server (DELETE
// /session/{id}), dropping the lab references it holds; the lab itself
// stays up, idle, for the next session. A session the server no longer
// knows (it expired, was evicted...) counts as closed, and when the
// server already said so (see Err) no request is sent. Close is
// idempotent: once it succeeded, later calls return nil without a
// request; if the request failed, a later Close tries again. Every call,
// concurrent ones too, returns only after the background heartbeats have
// stopped. After Close every other method returns ErrClosed, or the
// earlier end that Err reports.
func (s *Session) Close(ctx context.Context) error {
	// Not just the first Close waits: a concurrent one must neither end
	// the session while a heartbeat is in flight nor return before the
	// heartbeat goroutine has.
	s.closing.Store(true)
	s.doneOnce.Do(func() { close(s.done) })
	s.stopHeartbeat()
	<-s.heartbeatDone
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	if gone, end := s.endState(); gone {
		s.log.Info("Session closed (the server had already ended it)", "err", end)
		s.closed = true
		return nil
	}
	_, err := s.c.send(ctx, request{
		method:  http.MethodDelete,
		path:    "/session/" + url.PathEscape(s.id),
		session: s.id,
		timeout: s.c.cfg.requestTimeout,
	}, nil)
	switch {
	case err == nil:
		s.log.Info("Session closed")
	case errors.Is(err, ErrNotFound):
		s.setEnd(err, true)
		s.log.Info("Session closed (the server had already ended it)", "err", err)
	default:
		return fmt.Errorf("close session %s: %w", api.ShortID(s.id), err)
	}
	s.closed = true
	return nil
}

// call sends a lab call for the session, or fails at once with ErrClosed
// or the session's recorded end. A 404 for the session records its end.
func (s *Session) call(ctx context.Context, r request, out any) (int, error) {
	if _, end := s.endState(); end != nil {
		return 0, end
	}
	if s.closing.Load() {
		return 0, ErrClosed
	}
	r.session = s.id
	code, err := s.c.send(ctx, r, out)
	if errors.Is(err, ErrNotFound) {
		s.setEnd(err, true)
	}
	return code, err
}
