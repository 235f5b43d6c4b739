package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// Against the real server: the session's metadata shows in the queue and
// the history, and a closed session's outcome is "closed".
func TestServerSessionMetadata(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	s, err := c.Open(ctx, client.WithOwner("alice@ci-3"), client.WithLabels(map[string]string{"job": "https://ci/42"}),
		client.WithMaxHold(time.Hour))
	require.NoError(t, err)

	q, err := c.Queue(ctx)
	require.NoError(t, err)
	require.NotNil(t, q.Holder)
	assert.Equal(t, s.ID()[:8], q.Holder.ID)
	assert.Equal(t, "alice@ci-3", q.Holder.Owner)
	assert.Equal(t, map[string]string{"job": "https://ci/42"}, q.Holder.Labels)
	require.NotNil(t, q.Holder.HoldDeadline)
	assert.WithinDuration(t, time.Now().Add(time.Hour), *q.Holder.HoldDeadline, time.Minute)

	require.NoError(t, s.Close(ctx))
	h, err := c.History(ctx, 10)
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.Equal(t, "alice@ci-3", h[0].Owner)
	assert.Equal(t, api.OutcomeClosed, h[0].Outcome)

	// New's default owner is user@hostname.
	s, err = c.Open(ctx)
	require.NoError(t, err)
	defer s.Close(ctx)
	q, err = c.Queue(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.DefaultOwner(), q.Holder.Owner)
}

// An admin's eviction over the admin route reaches the evicted client on
// its next call, with the reason; the next session is promoted.
func TestServerEviction(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	s1, err := c.Open(ctx)
	require.NoError(t, err)
	defer s1.Close(ctx)
	_, _, err = s1.Acquire(ctx, "testdata/lab.yml")
	require.NoError(t, err)

	opened := make(chan error, 1)
	var s2 *client.Session
	go func() {
		var err error
		s2, err = c.Open(ctx)
		opened <- err
	}()
	require.Eventually(t, func() bool { q, _ := c.Queue(ctx); return len(q.Waiting) == 1 }, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, c.Admin().Evict(ctx, s1.ID()[:8], "maintenance window"))
	require.NoError(t, <-opened, "the next session is promoted")
	defer s2.Close(ctx)

	_, err = s1.Status(ctx)
	require.ErrorIs(t, err, client.ErrEvicted)
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "evicted by local: maintenance window", se.Reason)
	require.ErrorIs(t, s1.Err(), client.ErrEvicted)

	// The test server keeps no audit log: the route answers an empty one.
	audit, err := c.Admin().Audit(ctx, 10)
	require.NoError(t, err)
	assert.Empty(t, audit)

	err = c.Admin().Evict(ctx, "ffffffff", "nobody")
	require.ErrorIs(t, err, client.ErrNotFound)
}

// Heartbeats alone learn that the server ended the session.
func TestServerHeartbeatLearnsEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		s, err := srv.Client(client.WithHeartbeatInterval(10 * time.Second)).Open(context.Background())
		require.NoError(t, err)
		_, err = srv.Broker().Evict(s.ID(), "admin", "host reboot")
		require.NoError(t, err)
		require.NoError(t, s.Err(), "not known before the next heartbeat")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.ErrorIs(t, s.Err(), client.ErrEvicted)
		assert.Contains(t, s.Err().Error(), "evicted by admin: host reboot")
		require.NoError(t, s.Close(context.Background()))
	})
}

// The server's wait timeout fails Open with ErrWaitTimeout.
func TestServerWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		holder, err := srv.Client().Open(context.Background())
		require.NoError(t, err)
		defer holder.Close(context.Background())
		start := time.Now()
		_, err = srv.Client().Open(context.Background(), client.WithWaitTimeout(90*time.Second))
		require.ErrorIs(t, err, client.ErrWaitTimeout)
		assert.Contains(t, err.Error(), "still waiting after 90 s")
		assert.Equal(t, 90*time.Second, time.Since(start).Round(time.Second))
	})
}

// Drain makes the server not ready, with a reason; Resume undoes it.
func TestServerReadyDrainResume(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c := srv.Client()
	ctx := t.Context()
	ready, reason, err := c.Ready(ctx)
	require.NoError(t, err)
	assert.True(t, ready)
	assert.Empty(t, reason)

	require.NoError(t, c.Admin().Drain(ctx))
	ready, reason, err = c.Ready(ctx)
	require.NoError(t, err)
	assert.False(t, ready)
	assert.Contains(t, reason, "drain")
	q, err := c.Queue(ctx)
	require.NoError(t, err)
	assert.True(t, q.Draining)

	require.NoError(t, c.Admin().Resume(ctx))
	ready, _, err = c.Ready(ctx)
	require.NoError(t, err)
	assert.True(t, ready)

	torn, err := c.Admin().DestroyLab(ctx)
	require.NoError(t, err)
	assert.False(t, torn, "no lab")
	require.NoError(t, c.Admin().Unquarantine(ctx))
}

// Watch sees the queue change as sessions come and go.
func TestServerWatch(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c := srv.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var s *client.Session
	var steps []string
	done := errors.New("done")
	err := c.Watch(ctx, func(q api.Queue) error {
		switch {
		case len(steps) == 0 && q.Holder == nil:
			steps = append(steps, "empty")
			var err error
			s, err = c.Open(ctx, client.WithOwner("watched"))
			return err
		case len(steps) == 1 && q.Holder != nil:
			steps = append(steps, "held by "+q.Holder.Owner)
			return s.Close(ctx)
		case len(steps) == 2 && q.Holder == nil:
			steps = append(steps, fmt.Sprintf("served %d", q.Stats.SessionsServed))
			return done
		}
		return nil
	})
	require.ErrorIs(t, err, done)
	assert.Equal(t, []string{"empty", "held by watched", "served 1"}, steps)
}

// Against a server with authentication the token decides: no token is
// ErrUnauthorized, a viewer's token reads but may not queue
// (ErrForbidden), a user's token queues under the token's name.
func TestServerAuth(t *testing.T) {
	viewer, user := "rlab_viewer-token", "rlab_user-token"
	table, err := auth.Parse([]byte("tokens:\n" + auth.Entry("vera", auth.Viewer, viewer) + auth.Entry("uma", auth.User, user)))
	require.NoError(t, err)
	srv := remotelabtest.NewServer(t, remotelabtest.WithAuth(table))
	ctx := t.Context()

	_, err = srv.Client().Queue(ctx)
	require.ErrorIs(t, err, client.ErrUnauthorized)
	_, err = srv.Client(client.WithToken("rlab_unknown")).Open(ctx)
	require.ErrorIs(t, err, client.ErrUnauthorized)

	_, err = srv.Client(client.WithToken(viewer)).Queue(ctx)
	require.NoError(t, err)
	_, err = srv.Client(client.WithToken(viewer)).Open(ctx)
	require.ErrorIs(t, err, client.ErrForbidden)
	require.ErrorIs(t, srv.Client(client.WithToken(user)).Admin().Drain(ctx), client.ErrForbidden)

	s, err := srv.Client(client.WithToken(user)).Open(ctx, client.WithOwner("ignored"))
	require.NoError(t, err)
	defer s.Close(ctx)
	q, err := srv.Client(client.WithToken(viewer)).Queue(ctx)
	require.NoError(t, err)
	assert.Equal(t, "uma", q.Holder.Owner)
}
