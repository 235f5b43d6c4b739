package client_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/testutil"
)

// times returns when each request to route came, relative to start.
func (j *journal) times(route string, start time.Time) []time.Duration {
	var out []time.Duration
	for _, r := range j.of(route) {
		out = append(out, r.At.Sub(start))
	}
	return out
}

// Heartbeats ride through a restart: while the server answers 503 or
// drops connections they retry with backoff, and once it is back they
// carry on at their interval. The session never notices.
func TestHeartbeatsRideThroughRestart(t *testing.T) {
	for _, mode := range []string{unavailable, gateway, dropped} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSessions(0)
				logs := &testutil.Buffer{}
				start := time.Now()
				s, err := pipeClient(t, f.handler(), logs).Open(context.Background())
				require.NoError(t, err)
				defer s.Close(context.Background())

				time.Sleep(30 * time.Second)
				f.setOutage(mode)
				time.Sleep(2*time.Minute + 30*time.Second) // down until 3 min
				f.setOutage(up)
				time.Sleep(5 * time.Minute)
				synctest.Wait()

				require.NoError(t, s.Err())
				hb := f.times("POST /session/heartbeat", start)
				// 60 s: the first failure; retries after 1, 2, 4, 8, 16,
				// 30, 30 s (each up to a tenth longer) until one gets
				// through after 180 s; then every 60 s again.
				require.GreaterOrEqual(t, len(hb), 9+4, "%v", hb)
				assert.Equal(t, time.Minute, hb[0])
				gaps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
				for i, g := range gaps {
					got := hb[i+1] - hb[i]
					assert.True(t, got >= g && got <= g+g/10, "retry %d after %v, want %v (+10%%)", i+1, got, g)
				}
				var back int // the first heartbeat after the outage
				for i, at := range hb {
					if at > 3*time.Minute {
						back = i
						break
					}
				}
				require.NotZero(t, back)
				assert.LessOrEqual(t, hb[back], 3*time.Minute+33*time.Second)
				for i := back + 1; i < len(hb); i++ {
					assert.Equal(t, time.Minute, hb[i]-hb[i-1], "heartbeat %d", i)
				}
				assert.Contains(t, logs.String(), "Heartbeat failed; retrying")
				assert.Contains(t, logs.String(), "Heartbeat answered again")
				_, err = s.Status(context.Background())
				require.NoError(t, err)
			})
		})
	}
}

// Past the ride-through window heartbeats give up: Err says so, and later
// calls fail at once with that error, without a request.
func TestHeartbeatsGiveUpAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(0)
		logs := &testutil.Buffer{}
		start := time.Now()
		s, err := pipeClient(t, f.handler(), logs, client.WithRideThrough(2*time.Minute)).Open(context.Background())
		require.NoError(t, err)
		f.setOutage(dropped)
		time.Sleep(10 * time.Minute)
		synctest.Wait()

		hb := f.times("POST /session/heartbeat", start)
		require.NotEmpty(t, hb)
		assert.Equal(t, time.Minute, hb[0], "the first failure")
		assert.Equal(t, 3*time.Minute, hb[len(hb)-1], "the last try ends the window")
		err = s.Err()
		require.Error(t, err)
		var te *client.TransportError
		require.ErrorAs(t, err, &te)
		assert.Contains(t, err.Error(), "heartbeat: no answer for 2m0s")
		assert.Contains(t, logs.String(), "Heartbeats give up")

		n := len(f.all())
		_, err = s.Status(context.Background())
		require.ErrorIs(t, err, s.Err())
		_, _, err = s.Acquire(context.Background(), "testdata/lab.yml")
		require.ErrorIs(t, err, s.Err())
		assert.Len(t, f.all(), n, "calls after the end send nothing")

		// Close still tries to delete the session: the server may be back.
		require.Error(t, s.Close(context.Background()))
		f.setOutage(up)
		require.NoError(t, s.Close(context.Background()))
		assert.Len(t, f.of("DELETE /session/"+fakeID), 2)
	})
}

// WithRideThrough(0) turns the retries off: the first failure ends it.
func TestRideThroughOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(0)
		s, err := pipeClient(t, f.handler(), nil, client.WithRideThrough(0)).Open(context.Background())
		require.NoError(t, err)
		f.setOutage(unavailable)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		assert.Len(t, f.of("POST /session/heartbeat"), 1)
		require.ErrorIs(t, s.Err(), client.ErrUnavailable)
		f.setOutage(up)
		require.NoError(t, s.Close(context.Background()))
	})
}

// The wait in the queue rides through a restart too: the long-poll
// retries while the server is away and carries on once it is back.
func TestLongPollRidesThroughRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(1)
		logs := &testutil.Buffer{}
		c := pipeClient(t, f.handler(), logs)
		time.AfterFunc(10*time.Second, func() { f.setOutage(unavailable) })
		time.AfterFunc(70*time.Second, func() { f.setOutage(dropped) })
		time.AfterFunc(130*time.Second, func() { f.setOutage(up) })
		time.AfterFunc(200*time.Second, func() { f.set(0, nil) })
		start := time.Now()
		s, err := c.Open(context.Background())
		require.NoError(t, err)
		defer s.Close(context.Background())
		assert.Equal(t, 200*time.Second, time.Since(start), "promoted at once after the restart")
		assert.Contains(t, logs.String(), "Session status failed; retrying")
		assert.Contains(t, logs.String(), "Session status answered again")
		require.NoError(t, s.Err())
	})
}

// A server that comes back without the session (it ended while the
// server was away, or the server lost its state) fails the wait with the
// server's reason.
func TestLongPollSessionGoneAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(1)
		c := pipeClient(t, f.handler(), nil)
		time.AfterFunc(10*time.Second, func() { f.setOutage(dropped) })
		time.AfterFunc(100*time.Second, func() {
			f.end(api.OutcomeExpired, "expired: no request for 600 s")
			f.setOutage(up)
		})
		start := time.Now()
		_, err := c.Open(context.Background())
		require.ErrorIs(t, err, client.ErrExpired)
		require.ErrorIs(t, err, client.ErrNotFound)
		assert.Contains(t, err.Error(), "expired: no request for 600 s")
		assert.Less(t, time.Since(start), 100*time.Second+33*time.Second)
		assert.Empty(t, f.of("DELETE /session/"+fakeID), "the server said it ended: nothing to delete")
	})
}

// Past the window the wait fails with the last error, and Open deletes
// its session (here: the server is back just in time for that).
func TestLongPollGivesUpAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(1)
		c := pipeClient(t, f.handler(), nil, client.WithRideThrough(time.Minute))
		f.setOutage(gateway)
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Open(context.Background())
			errc <- err
		}()
		// POST /session failed at once: nothing to ride through.
		err := <-errc
		require.ErrorIs(t, err, client.ErrNetlabFailed) // a 502, whoever said it
		assert.Zero(t, time.Since(start))

		f.setOutage(up)
		time.AfterFunc(5*time.Second, func() { f.setOutage(gateway) })
		start = time.Now()
		go func() {
			_, err := c.Open(context.Background())
			errc <- err
		}()
		err = <-errc
		require.Error(t, err)
		// The long-poll under way when the outage began ends at 30 s; the
		// next fails, and the window ends a minute later.
		assert.Equal(t, 90*time.Second, time.Since(start))
		assert.Contains(t, err.Error(), "wait for active: no answer for 1m0s")
		assert.Contains(t, err.Error(), "502 Bad Gateway")
		assert.Len(t, f.of("DELETE /session/"+fakeID), 1, "Open tried to delete its session")
	})
}

// A heartbeat that learns the session ended stops the heartbeats and ends
// the Session with the server's reason: later calls fail at once, and
// Close has nothing to delete.
func TestHeartbeatLearnsEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(0)
		s, err := pipeClient(t, f.handler(), nil).Open(context.Background())
		require.NoError(t, err)
		require.NoError(t, s.Err())
		time.Sleep(90 * time.Second)
		f.end(api.OutcomeEvicted, "evicted by alice: maintenance")
		select {
		case <-s.Done():
			t.Fatal("Done before the end is known")
		default:
		}
		ended := time.Now()
		<-s.Done()
		assert.Equal(t, 30*time.Second, time.Since(ended), "the next heartbeat learns it")
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		assert.Len(t, f.of("POST /session/heartbeat"), 2, "the second heartbeat learns of the end")

		err = s.Err()
		require.ErrorIs(t, err, client.ErrEvicted)
		require.ErrorIs(t, err, client.ErrNotFound)
		var se *client.Error
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "evicted by alice: maintenance", se.Reason)
		assert.Equal(t, api.OutcomeEvicted, se.Outcome)
		assert.Contains(t, err.Error(), "session sess-000 ended: ")

		n := len(f.all())
		_, err = s.Devices(context.Background())
		require.ErrorIs(t, err, client.ErrEvicted)
		assert.Contains(t, err.Error(), "evicted by alice: maintenance")
		require.NoError(t, s.Release(context.Background()), "references went with the session")
		require.NoError(t, s.Close(context.Background()))
		assert.Len(t, f.all(), n)
		require.ErrorIs(t, s.Err(), client.ErrEvicted, "Close keeps the first cause")
	})
}

// A lab call that gets the 404 ends the Session the same way.
func TestLabCallLearnsEnd(t *testing.T) {
	f := newFakeSessions(0)
	s, err := pipeClient(t, f.handler(), nil).Open(t.Context())
	require.NoError(t, err)
	f.end(api.OutcomeMaxHold, "max_hold: held the lab for 60 s")
	_, err = s.Status(t.Context())
	require.ErrorIs(t, err, client.ErrMaxHold)
	require.ErrorIs(t, s.Err(), client.ErrMaxHold)
	require.NoError(t, s.Close(t.Context()))
	assert.Empty(t, f.of("DELETE /session/"+fakeID))

	// After a plain Close, Err is ErrClosed and Done is closed.
	f = newFakeSessions(0)
	s, err = pipeClient(t, f.handler(), nil).Open(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	require.ErrorIs(t, s.Err(), client.ErrClosed)
	<-s.Done()
}
