package client_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
)

func ptr[T any](v T) *T { return &v }

// Each Open option lands in the JSON body of POST /session.
func TestOpenOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		defaults []client.OpenOption
		opts     []client.OpenOption
		want     api.SessionRequest
	}{
		{name: "default owner", want: api.SessionRequest{Owner: client.DefaultOwner()}},
		{name: "owner", opts: []client.OpenOption{client.WithOwner("alice@ci-3")}, want: api.SessionRequest{Owner: "alice@ci-3"}},
		{name: "no owner", opts: []client.OpenOption{client.WithOwner("")}, want: api.SessionRequest{}},
		{name: "labels", opts: []client.OpenOption{client.WithOwner("a"), client.WithLabels(map[string]string{"suite": "ospf", "job": "j1"})},
			want: api.SessionRequest{Owner: "a", Labels: map[string]string{"suite": "ospf", "job": "j1"}}},
		{name: "labels merge, later wins",
			defaults: []client.OpenOption{client.WithLabels(map[string]string{"job": "ci/1", "team": "net"})},
			opts:     []client.OpenOption{client.WithOwner("a"), client.WithLabels(map[string]string{"team": "core", "x": "1"})},
			want:     api.SessionRequest{Owner: "a", Labels: map[string]string{"job": "ci/1", "team": "core", "x": "1"}}},
		{name: "wait timeout", opts: []client.OpenOption{client.WithOwner("a"), client.WithWaitTimeout(90 * time.Second)},
			want: api.SessionRequest{Owner: "a", WaitTimeout: ptr(90.0)}},
		{name: "max hold", opts: []client.OpenOption{client.WithOwner("a"), client.WithMaxHold(1500 * time.Millisecond)},
			want: api.SessionRequest{Owner: "a", MaxHold: ptr(1.5)}},
		{name: "zero clears a default", defaults: []client.OpenOption{client.WithWaitTimeout(time.Minute), client.WithOwner("d")},
			opts: []client.OpenOption{client.WithWaitTimeout(0)}, want: api.SessionRequest{Owner: "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSessions(0)
			c := pipeClient(t, f.handler(), nil, client.WithOpenDefaults(tc.defaults...))
			s, err := c.Open(t.Context(), tc.opts...)
			require.NoError(t, err)
			require.NoError(t, s.Close(t.Context()))
			got, h := f.requestBody(t)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, "application/json", h.Get("Content-Type"))
		})
	}
}

// Invalid session metadata fails before anything is sent, with the
// server's own words.
func TestOpenRejectsInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []client.OpenOption
		want string
	}{
		{"long owner", []client.OpenOption{client.WithOwner(strings.Repeat("x", 129))}, "owner must be at most 128 characters"},
		{"control in owner", []client.OpenOption{client.WithOwner("a\nb")}, "owner must be printable"},
		{"bad key", []client.OpenOption{client.WithLabels(map[string]string{"a b": "1"})}, "label keys are 1 to 63 characters"},
		{"long value", []client.OpenOption{client.WithLabels(map[string]string{"k": strings.Repeat("v", 257)})}, "label values must be at most 256"},
		{"too many labels", []client.OpenOption{client.WithLabels(manyLabels(17))}, "at most 16 labels"},
		{"negative wait", []client.OpenOption{client.WithWaitTimeout(-time.Second)}, "wait timeout must not be negative"},
		{"negative hold", []client.OpenOption{client.WithMaxHold(-time.Second)}, "max hold must not be negative"},
		{"year-long hold", []client.OpenOption{client.WithMaxHold(400 * 24 * time.Hour)}, "max_hold must be a number of seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSessions(0)
			_, err := pipeClient(t, f.handler(), nil).Open(t.Context(), tc.opts...)
			require.ErrorIs(t, err, client.ErrBadRequest)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "open session: ")
			assert.Empty(t, f.all(), "nothing may be sent")
		})
	}
}

func manyLabels(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[string(rune('a'+i))] = "v"
	}
	return m
}

// Invalid defaults are found by New.
func TestNewRejectsInvalidOpenDefaults(t *testing.T) {
	_, err := client.New("http://lab1", client.WithOpenDefaults(client.WithOwner(strings.Repeat("x", 200))))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "new client: session defaults: bad request: body owner: owner must be at most 128")
}

// OnProgress hears the first status, every change while waiting, and the
// promotion.
func TestOnProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(3)
		f.estimate = ptr(250.4)
		c := pipeClient(t, f.handler(), nil)
		var got []client.Progress
		done := make(chan error, 1)
		var s *client.Session
		go func() {
			var err error
			s, err = c.Open(context.Background(), client.OnProgress(func(p client.Progress) { got = append(got, p) }))
			done <- err
		}()
		synctest.Wait()
		time.Sleep(45 * time.Second) // one long-poll times out with no change: no call
		synctest.Wait()
		f.set(2, ptr(120.0))
		synctest.Wait()
		f.set(1, nil)
		synctest.Wait()
		f.set(0, nil)
		require.NoError(t, <-done)
		require.NoError(t, s.Close(context.Background()))
		assert.Equal(t, []client.Progress{
			{Status: "waiting", Position: 3, EstimatedWait: 250 * time.Second, HasEstimate: true},
			{Status: "waiting", Position: 2, EstimatedWait: 120 * time.Second, HasEstimate: true},
			{Status: "waiting", Position: 1},
			{Status: "active", Position: 0},
		}, got)
	})
}

// The wait deadline the server sets reaches OnProgress; the server ending
// the waiting session at its deadline fails Open with ErrWaitTimeout and
// the server's reason.
func TestOpenWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Date(2025, 3, 1, 12, 1, 0, 0, time.UTC)
		f := newFakeSessions(1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/session" {
				writeJSON(w, http.StatusCreated, api.CreateSessionResponse{SessionID: fakeID, Position: 1, Status: "waiting",
					SessionDetails: api.SessionDetails{WaitDeadline: &deadline}})
				return
			}
			f.serve(w, r)
		})
		c := pipeClient(t, f.wrap(h), nil)
		var got []client.Progress
		time.AfterFunc(time.Minute, func() { f.end(api.OutcomeWaitTimeout, "wait_timeout: still waiting after 60 s") })
		start := time.Now()
		_, err := c.Open(context.Background(), client.WithWaitTimeout(time.Minute),
			client.OnProgress(func(p client.Progress) { got = append(got, p) }))
		assert.Equal(t, time.Minute, time.Since(start))
		require.ErrorIs(t, err, client.ErrWaitTimeout)
		require.ErrorIs(t, err, client.ErrNotFound)
		assert.Contains(t, err.Error(), "wait_timeout: still waiting after 60 s")
		require.NotEmpty(t, got)
		assert.Equal(t, deadline, got[0].WaitDeadline)
		assert.Empty(t, f.of("DELETE /session/"+fakeID), "the server ended it: nothing to delete")
	})
}

// A full queue is ErrQueueFull with the server's Retry-After.
func TestOpenQueueFull(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, api.Error{Detail: "Queue full: too many sessions of this owner (limit 2)"})
	})
	_, err := pipeClient(t, h, nil).Open(t.Context())
	require.ErrorIs(t, err, client.ErrQueueFull)
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 30*time.Second, se.RetryAfter)
	assert.Contains(t, err.Error(), "too many sessions of this owner (limit 2) (retry after 30s)")
}

// The token goes with every request as a bearer token; without one no
// Authorization header is sent.
func TestToken(t *testing.T) {
	f := newFakeSessions(0)
	c := pipeClient(t, f.handler(), nil, client.WithToken("rlab_secret"))
	assert.NotContains(t, c.String(), "rlab_secret")
	assert.Contains(t, c.String(), "with token")
	s, err := c.Open(t.Context())
	require.NoError(t, err)
	_, err = s.Status(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	reqs := f.all()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		assert.Equal(t, "Bearer rlab_secret", r.Header.Get("Authorization"), r.Method+" "+r.Path)
	}

	f = newFakeSessions(0)
	s, err = pipeClient(t, f.handler(), nil).Open(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	for _, r := range f.all() {
		assert.Empty(t, r.Header.Values("Authorization"))
	}
}

func TestTokenRejected(t *testing.T) {
	for _, tok := range []string{"a b", "tab\there", "new\nline", "ünïcode"} {
		_, err := client.New("http://lab1", client.WithToken(tok))
		require.Error(t, err, "%q", tok)
		assert.Contains(t, err.Error(), "token must be printable ASCII without spaces")
		assert.NotContains(t, err.Error(), tok)
	}
}

func TestRideThroughOption(t *testing.T) {
	c, err := client.New("http://lab1", client.WithRideThrough(time.Minute))
	require.NoError(t, err)
	assert.Contains(t, c.String(), "ride-through 1m0s")
	_, err = client.New("http://lab1", client.WithRideThrough(-time.Second))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ride-through window must not be negative")
}

// CheckAcquire finds what Acquire would refuse, without a request.
func TestCheckAcquire(t *testing.T) {
	require.NoError(t, client.CheckAcquire("testdata/lab.yml", client.ExtraFiles("testdata/configs")))
	err := client.CheckAcquire("testdata/missing.yml")
	require.ErrorIs(t, err, os.ErrNotExist)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("nodes: 5\n"), 0o644))
	err = client.CheckAcquire(bad)
	require.ErrorIs(t, err, client.ErrInvalidTopology)
	assert.Contains(t, err.Error(), "bad.yml:1:8: nodes must be a mapping or a list")
	txt := filepath.Join(dir, "lab.txt")
	require.NoError(t, os.WriteFile(txt, []byte("nodes: [a]\n"), 0o644))
	require.ErrorIs(t, client.CheckAcquire(txt), client.ErrBadRequest)
	err = client.CheckAcquire("testdata/lab.yml", client.ExtraFiles(filepath.Join(dir, "nope")))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorIs(t, client.CheckAcquire("testdata/lab.yml", client.ExtraBytes("../x", nil)), client.ErrBadRequest)
}
