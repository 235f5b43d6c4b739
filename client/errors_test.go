package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
)

// allSentinels are the sentinels an answer may match.
var allSentinels = []error{
	client.ErrBadRequest, client.ErrNotFound, client.ErrNoLab, client.ErrConflict,
	client.ErrTooLarge, client.ErrInvalidTopology, client.ErrBusy, client.ErrNotActive,
	client.ErrNetlabFailed, client.ErrUnavailable, client.ErrNetlabTimeout, client.ErrClosed,
	client.ErrExpired, client.ErrEvicted, client.ErrWaitTimeout, client.ErrMaxHold,
	client.ErrUnauthorized, client.ErrForbidden, client.ErrQueueFull, client.ErrQuarantined,
}

// Every status code and body maps to its sentinels, and only to them;
// the pairs the package doc lists match together.
func TestErrorMapping(t *testing.T) {
	ended := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	gone := func(outcome, reason string) string {
		return fmt.Sprintf(`{"detail":"Session not found","outcome":%q,"reason":%q,"ended_at":"2025-03-01T12:00:00Z"}`, outcome, reason)
	}
	for _, tc := range []struct {
		name    string
		method  string // default GET
		path    string // default /lab
		code    int
		header  map[string]string
		body    string
		is      []error
		want    client.Error // StatusCode, Method and Path filled in
		message string       // the end of Error()
	}{
		// The original server's answers.
		{name: "bad name", code: 400, body: `{"detail":"Topology must be a .yml or .yaml file"}`, is: []error{client.ErrBadRequest},
			want: client.Error{Detail: "Topology must be a .yml or .yaml file"}},
		{name: "not found", code: 404, body: `{"detail":"Session not found"}`, is: []error{client.ErrNotFound},
			want: client.Error{Detail: "Session not found"}, message: "404 Not Found: Session not found"},
		{name: "no lab", code: 404, body: `{"detail":"No lab running"}`, is: []error{client.ErrNoLab},
			want: client.Error{Detail: "No lab running"}},
		{name: "conflict", code: 409, body: `{"detail":"Lab still in use"}`, is: []error{client.ErrConflict},
			want: client.Error{Detail: "Lab still in use"}},
		{name: "too large", code: 413, body: `{"detail":"file too large"}`, is: []error{client.ErrTooLarge},
			want: client.Error{Detail: "file too large"}},
		{name: "validation", code: 422, body: `{"detail":[{"type":"missing","loc":["header","X-Session-ID"],"msg":"Field required","input":null}]}`,
			is: []error{client.ErrBadRequest}, want: client.Error{Detail: "header X-Session-ID: Field required"}},
		{name: "invalid topology", method: "POST", code: 422, body: `{"detail":"lab.yml:1:1: no nodes"}`,
			is: []error{client.ErrInvalidTopology}, want: client.Error{Detail: "lab.yml:1:1: no nodes"}},
		{name: "busy", code: 423, body: `{"detail":"Lab currently busy"}`, is: []error{client.ErrBusy},
			want: client.Error{Detail: "Lab currently busy"}},
		{name: "not active", code: 423, body: `{"detail":"Session is not active"}`, is: []error{client.ErrNotActive},
			want: client.Error{Detail: "Session is not active"}},
		{name: "internal", code: 500, body: `Internal Server Error`, want: client.Error{Detail: "Internal Server Error"}},
		{name: "netlab failed", code: 502, body: `{"detail":"up lab: exit status 1"}`, is: []error{client.ErrNetlabFailed},
			want: client.Error{Detail: "up lab: exit status 1"}},
		{name: "shutting down", code: 503, body: `{"detail":"Server shutting down"}`, is: []error{client.ErrUnavailable},
			want: client.Error{Detail: "Server shutting down"}},
		{name: "netlab timeout", code: 504, body: `{"detail":"up lab: deadline"}`, is: []error{client.ErrNetlabTimeout},
			want: client.Error{Detail: "up lab: deadline"}},
		{name: "teapot", code: 418, body: ``},

		// remotelabd's answers.
		{name: "expired", code: 404, body: gone("expired", "expired: no request for 300 s"),
			is:      []error{client.ErrNotFound, client.ErrExpired},
			want:    client.Error{Detail: "Session not found", Outcome: "expired", Reason: "expired: no request for 300 s", EndedAt: ended},
			message: "404 Not Found: Session not found (expired: no request for 300 s)"},
		{name: "evicted", code: 404, body: gone("evicted", "evicted by alice: maintenance"),
			is:      []error{client.ErrNotFound, client.ErrEvicted},
			want:    client.Error{Detail: "Session not found", Outcome: "evicted", Reason: "evicted by alice: maintenance", EndedAt: ended},
			message: "Session not found (evicted by alice: maintenance)"},
		{name: "wait timeout", code: 404, body: gone("wait_timeout", "wait_timeout: still waiting after 60 s"),
			is:   []error{client.ErrNotFound, client.ErrWaitTimeout},
			want: client.Error{Detail: "Session not found", Outcome: "wait_timeout", Reason: "wait_timeout: still waiting after 60 s", EndedAt: ended}},
		{name: "max hold", code: 404, body: gone("max_hold", "max_hold: held the lab for 3600 s"),
			is:   []error{client.ErrNotFound, client.ErrMaxHold},
			want: client.Error{Detail: "Session not found", Outcome: "max_hold", Reason: "max_hold: held the lab for 3600 s", EndedAt: ended}},
		{name: "closed", code: 404, body: gone("closed", "closed by its client"), is: []error{client.ErrNotFound},
			want: client.Error{Detail: "Session not found", Outcome: "closed", Reason: "closed by its client", EndedAt: ended}},
		{name: "shutdown", code: 404, body: gone("shutdown", ""), is: []error{client.ErrNotFound},
			want:    client.Error{Detail: "Session not found", Outcome: "shutdown", EndedAt: ended},
			message: "Session not found (outcome shutdown)"},
		{name: "unauthorized", code: 401, header: map[string]string{"WWW-Authenticate": `Bearer realm="remotelab"`},
			body: `{"detail":"Not authenticated"}`, is: []error{client.ErrUnauthorized},
			want: client.Error{Detail: "Not authenticated"}, message: "401 Unauthorized: Not authenticated"},
		{name: "other owner", code: 403, body: `{"detail":"Session belongs to another owner"}`, is: []error{client.ErrForbidden},
			want: client.Error{Detail: "Session belongs to another owner"}},
		{name: "role too low", code: 403, body: `{"detail":"Role viewer may not do this (needs admin)"}`, is: []error{client.ErrForbidden},
			want: client.Error{Detail: "Role viewer may not do this (needs admin)"}},
		{name: "queue full", method: "POST", path: "/session", code: 429, header: map[string]string{"Retry-After": "120"},
			body: `{"detail":"Queue full"}`, is: []error{client.ErrQueueFull},
			want:    client.Error{Detail: "Queue full", RetryAfter: 2 * time.Minute},
			message: "429 Too Many Requests: Queue full (retry after 2m0s)"},
		{name: "queue full without retry-after", code: 429, body: `{"detail":"Queue full"}`, is: []error{client.ErrQueueFull},
			want: client.Error{Detail: "Queue full"}},
		{name: "quarantined", method: "POST", code: 503, body: `{"detail":"Lab host quarantined: netlab down: exit status 1"}`,
			is:      []error{client.ErrUnavailable, client.ErrQuarantined},
			want:    client.Error{Detail: "Lab host quarantined: netlab down: exit status 1"},
			message: "503 Service Unavailable: Lab host quarantined: netlab down: exit status 1"},
		{name: "garbage retry-after", code: 503, header: map[string]string{"Retry-After": "soon"}, body: `{"detail":"Server shutting down"}`,
			is: []error{client.ErrUnavailable}, want: client.Error{Detail: "Server shutting down"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := client.New(srv.URL)
			require.NoError(t, err)
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodGet
			}
			if path == "" {
				path = "/lab"
			}
			err = client.Send(t.Context(), c, method, path)
			var se *client.Error
			require.ErrorAs(t, err, &se)
			want := tc.want
			want.StatusCode, want.Method, want.Path = tc.code, method, path
			assert.Equal(t, want, *se)
			for _, sentinel := range allSentinels {
				assert.Equal(t, containsErr(tc.is, sentinel), errors.Is(err, sentinel), "errors.Is(%v)", sentinel)
			}
			if tc.message != "" {
				assert.Contains(t, se.Error(), tc.message)
			}
		})
	}
}

func containsErr(list []error, e error) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

func TestErrorText(t *testing.T) {
	e := &client.Error{StatusCode: 409, Detail: "Lab still in use", Method: "DELETE", Path: "/lab"}
	assert.Equal(t, "DELETE /lab: 409 Conflict: Lab still in use", e.Error())
	e = &client.Error{StatusCode: 500, Method: "GET", Path: "/lab"}
	assert.Equal(t, "GET /lab: 500 Internal Server Error", e.Error())
	e = &client.Error{StatusCode: 404, Detail: "Session not found", Method: "POST", Path: "/lab",
		Outcome: "evicted", Reason: "evicted by local: maintenance"}
	assert.Equal(t, "POST /lab: 404 Not Found: Session not found (evicted by local: maintenance)", e.Error())
	te := &client.TransportError{Method: "GET", Path: "/lab", Err: context.DeadlineExceeded}
	assert.Equal(t, "GET /lab: context deadline exceeded", te.Error())
	assert.ErrorIs(t, te, context.DeadlineExceeded)
}

// Retry-After may be an HTTP date too.
func TestRetryAfterDate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		writeJSON(w, http.StatusTooManyRequests, api.Error{Detail: api.DetailQueueFull})
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	require.NoError(t, err)
	var se *client.Error
	require.ErrorAs(t, client.Send(t.Context(), c, "POST", "/session"), &se)
	// The date has whole seconds: 89 to 90 s are left.
	assert.InDelta(t, 90, se.RetryAfter.Seconds(), 1.5)
}
