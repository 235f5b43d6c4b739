package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
)

// Queue returns the server's view of the queue (GET /queue): the holder,
// the waiting sessions in order, the lab, and the figures behind the wait
// estimates. Session ids in it are shortened to 8 characters. It blocks
// for one request, bounded by ctx and the request timeout.
func (c *Client) Queue(ctx context.Context) (api.Queue, error) {
	var q api.Queue
	if _, err := c.send(ctx, request{method: http.MethodGet, path: "/queue", timeout: c.cfg.requestTimeout}, &q); err != nil {
		return api.Queue{}, fmt.Errorf("queue: %w", err)
	}
	return q, nil
}

// History returns up to limit finished sessions, newest first (GET
// /history). limit 0 asks for the server's default (50); the server
// keeps the last 1000, and a limit above that is ErrBadRequest. It blocks
// for one request, bounded by ctx and the request timeout.
func (c *Client) History(ctx context.Context, limit int) ([]api.HistoryEntry, error) {
	var h []api.HistoryEntry
	if err := c.list(ctx, "/history", limit, &h); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return h, nil
}

// list GETs a list route with an optional ?limit=.
func (c *Client) list(ctx context.Context, path string, limit int, out any) error {
	if limit < 0 {
		return fmt.Errorf("%w: limit must not be negative, got %d", ErrBadRequest, limit)
	}
	r := request{method: http.MethodGet, path: path, timeout: c.cfg.requestTimeout}
	if limit > 0 {
		r.query = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	_, err := c.send(ctx, r, out)
	return err
}

// Ready asks the server whether it can serve sessions now (GET /readyz).
// A server that is draining, quarantined, shutting down, or whose lab
// runner is unusable answers not ready, with the reason; err is then nil.
// err reports a server that could not be asked (a *TransportError) or
// gave another answer (an *Error, e.g. from a server without /readyz).
// It blocks for one request, bounded by ctx and the request timeout.
func (c *Client) Ready(ctx context.Context) (ready bool, reason string, err error) {
	var r api.Ready
	code, err := c.send(ctx, request{
		method:  http.MethodGet,
		path:    "/readyz",
		timeout: c.cfg.requestTimeout,
		alsoOK:  []int{http.StatusServiceUnavailable},
	}, &r)
	if err != nil {
		return false, "", fmt.Errorf("ready: %w", err)
	}
	if code == http.StatusServiceUnavailable && r.Ready {
		return false, "", fmt.Errorf("ready: GET /readyz: 503 with a body that says ready")
	}
	return r.Ready, r.Reason, nil
}

// Watch calls fn with the server's queue view (the document of Queue) at
// once and after every change, as the server's event stream (GET
// /events) tells them, at most 4 a second. It blocks until ctx ends, and
// then returns context.Cause(ctx), or until fn returns an error, which it
// returns as is. fn is called from Watch's goroutine, one call at a
// time; a slow fn makes the server skip documents, never queue them.
//
// A stream that breaks or cannot be opened (no answer, 502, 503, 504) is
// reopened with backoff, from 1 s doubling up to 30 s, for as long as
// ctx lasts; fn then gets the current document again. Other error answers
// (401, 403, a server without /events) end Watch with the error.
func (c *Client) Watch(ctx context.Context, fn func(api.Queue) error) error {
	var b backoff
	for {
		got, err := c.watchOnce(ctx, fn)
		var fnErr callbackError
		switch {
		case errors.As(err, &fnErr):
			return fnErr.err
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case err != nil && !rideable(err):
			return fmt.Errorf("watch: %w", err)
		}
		if got {
			b.reset()
		}
		wait := b.wait()
		c.cfg.logger.Warn("Event stream ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		if clock.Sleep(ctx, wait) != nil {
			return context.Cause(ctx)
		}
	}
}

// callbackError carries an error of Watch's callback out of watchOnce.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// errStreamEnded is the error of an event stream the server closed.
var errStreamEnded = errors.New("the server closed the event stream")

// watchOnce reads one event stream until it ends. got says whether it
// delivered at least one document. A stream that ends is a
// *TransportError, so that it counts as rideable.
func (c *Client) watchOnce(ctx context.Context, fn func(api.Queue) error) (got bool, err error) {
	const path = "/events"
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, accept: "text/event-stream"})
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return false, newError(http.MethodGet, path, resp.StatusCode, resp.Header, body)
	}
	err = readEvents(resp.Body, func(ev event) error {
		if ev.name != "queue" {
			return nil // a kind of event this client does not know
		}
		var q api.Queue
		if err := json.Unmarshal(ev.data, &q); err != nil {
			return streamError{fmt.Errorf("decode queue event: %w", err)}
		}
		got = true
		if err := fn(q); err != nil {
			return callbackError{err}
		}
		return nil
	})
	var fnErr callbackError
	var bad streamError
	switch {
	case errors.As(err, &fnErr):
		return got, fnErr
	case errors.As(err, &bad):
		return got, fmt.Errorf("GET %s: %w", path, bad.err)
	case err == nil:
		err = errStreamEnded
	}
	return got, &TransportError{Method: http.MethodGet, Path: path, Err: err}
}

// streamError is an event stream this client cannot read (a document
// that does not decode, an event beyond maxEvent): reconnecting would not
// help.
type streamError struct{ err error }

func (e streamError) Error() string { return e.err.Error() }
