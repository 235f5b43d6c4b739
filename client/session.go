package client

import (
	"context"
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
// Close. Its methods are safe for concurrent use; the caller must call
// Close.
type Session struct {
	c   *Client
	id  string
	log *slog.Logger

	stopHeartbeat context.CancelFunc
	heartbeatDone chan struct{}
	closing       atomic.Bool // Close was called: no more calls

	closeMu sync.Mutex
	closed  bool // the server confirmed the session is gone
}

// sessionAnswer is the body of POST /session and GET /session/{id}. Epoch
// is a pointer to tell a server that sends it (and supports long-poll)
// from the original one.
type sessionAnswer struct {
	SessionID string  `json:"session_id"`
	Status    string  `json:"status"`
	Position  int     `json:"position"`
	Epoch     *uint64 `json:"epoch"`
}

// Open joins the server's queue and blocks until the new session is
// active, that is until every session queued before it has ended. It
// waits by long-poll, so it returns within milliseconds of its turn
// (against a server without long-poll it polls every poll interval). The
// wait is bounded by ctx and by the session timeout.
//
// Heartbeats start as soon as the session exists, so a long wait does not
// expire it. If the wait fails or ends, Open deletes the session before it
// returns the error, so it never leaves a slot behind in the queue.
func (c *Client) Open(ctx context.Context) (*Session, error) {
	var created sessionAnswer
	_, err := c.send(ctx, request{method: http.MethodPost, path: "/session", timeout: c.cfg.requestTimeout}, &created)
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
	}
	hbCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopHeartbeat = stop
	go s.heartbeat(hbCtx)

	if err := s.waitActive(ctx, created); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout(c.cfg.requestTimeout))
		defer cancel()
		if cerr := s.Close(cctx); cerr != nil {
			s.log.Warn("could not delete the session after a failed open", "err", cerr)
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

// waitActive waits until the session is active.
func (s *Session) waitActive(parent context.Context, st sessionAnswer) error {
	start := time.Now()
	ctx := parent
	if t := s.c.cfg.sessionTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, t)
		defer cancel()
	}
	position := -1
	failures := 0
	for {
		if st.Status == api.StatusActive {
			s.log.Info(fmt.Sprintf("session active after %.1fs", time.Since(start).Seconds()))
			return nil
		}
		if st.Position != position {
			position = st.Position
			if position > 0 {
				s.log.Info(fmt.Sprintf("queued at position %d", position))
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
			failures = 0
			st = next
		case ctx.Err() != nil:
			return s.waitEnded(parent, ctx, position)
		case retryable(err) && failures < 10:
			failures++
			backoff := min(time.Second<<failures, 30*time.Second)
			s.log.Warn("session status failed; retrying", "err", err, "in", backoff)
			if clock.Sleep(ctx, backoff) != nil {
				return s.waitEnded(parent, ctx, position)
			}
		default:
			return fmt.Errorf("wait for active: %w", err)
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
// alive, until ctx ends or the server no longer knows the session.
func (s *Session) heartbeat(ctx context.Context) {
	defer close(s.heartbeatDone)
	t := time.NewTicker(s.c.cfg.heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := s.c.send(ctx, request{
			method:  http.MethodPost,
			path:    "/session/heartbeat",
			session: s.id,
			timeout: s.c.cfg.requestTimeout,
		}, nil)
		switch {
		case err == nil:
			s.log.Debug("heartbeat sent")
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrNotFound):
			s.log.Warn("the server no longer knows the session; heartbeats stop", "err", err)
			return
		default:
			s.log.Warn("heartbeat failed", "err", err)
		}
	}
}

// ID returns the session id the server assigned.
func (s *Session) ID() string { return s.id }

// String returns the session id shortened for logs.
func (s *Session) String() string { return "session " + api.ShortID(s.id) }

// Close stops the heartbeats and ends the session on the server (DELETE
// /session/{id}), dropping the lab references it holds; the lab itself
// stays up, idle, for the next session. A session the server no longer
// knows (it expired) counts as closed. Close is idempotent: once it
// succeeded, later calls return nil without a request; if the request
// failed, a later Close tries again. Every call, concurrent ones too,
// returns only after the background heartbeats have stopped. After Close
// every other method returns ErrClosed.
func (s *Session) Close(ctx context.Context) error {
	// Not just the first Close waits: a concurrent one must neither end
	// the session while a heartbeat is in flight nor return before the
	// heartbeat goroutine has.
	s.closing.Store(true)
	s.stopHeartbeat()
	<-s.heartbeatDone
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
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
		s.log.Info("session closed")
	case errors.Is(err, ErrNotFound):
		s.log.Info("session closed (the server had already ended it)")
	default:
		return fmt.Errorf("close session %s: %w", api.ShortID(s.id), err)
	}
	s.closed = true
	return nil
}

// call sends a lab call for the session, or fails with ErrClosed.
func (s *Session) call(ctx context.Context, r request, out any) (int, error) {
	if s.closing.Load() {
		return 0, ErrClosed
	}
	r.session = s.id
	return s.c.send(ctx, r, out)
}
