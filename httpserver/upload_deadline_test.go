package httpserver_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
)

// These tests run over net.Pipe in a synctest bubble: the upload timeout,
// the session TTL and a client's pauses are all on the bubble's clock.

// pipedRequest is a request whose body the test writes piece by piece.
type pipedRequest struct {
	pw    *io.PipeWriter
	body  []byte // the whole body
	start time.Time
	done  chan resp
}

// startPiped sends method path with body, which the test writes through
// send and trickle; prepare sets the request's headers. The answer
// arrives on done.
func (e *env) startPiped(method, path string, body []byte, prepare func(*http.Request)) *pipedRequest {
	e.t.Helper()
	pr, pw := io.Pipe()
	hr, err := http.NewRequest(method, e.base+path, pr)
	require.NoError(e.t, err)
	prepare(hr)
	u := &pipedRequest{pw: pw, body: body, start: time.Now(), done: make(chan resp, 1)}
	go func() {
		res, err := e.client.Do(hr)
		pr.CloseWithError(io.ErrClosedPipe) // the writer stops when the request is over
		if err != nil {
			u.done <- resp{code: -1, body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		u.done <- resp{code: res.StatusCode, header: res.Header, body: b}
	}()
	return u
}

// startUpload sends POST /lab for session id with the form of parts,
// written through u.send.
func (e *env) startUpload(id string, parts ...part) *pipedRequest {
	e.t.Helper()
	body, ctype := form(parts...)
	return e.startPiped(http.MethodPost, "/lab", body, func(hr *http.Request) {
		hr.Header.Set(api.HeaderSessionID, id)
		hr.Header.Set("Content-Type", ctype)
	})
}

// send writes body[from:to]; an error says the server no longer reads.
func (u *pipedRequest) send(from, to int) error {
	_, err := u.pw.Write(u.body[from:to])
	return err
}

// trickle writes the rest of the body from offset from in n pieces, one
// every interval (the first at once), then ends it.
func (u *pipedRequest) trickle(from, n int, every time.Duration) {
	rest := len(u.body) - from
	for i := range n {
		if i > 0 {
			time.Sleep(every)
		}
		_ = u.send(from+rest*i/n, from+rest*(i+1)/n) // the server may have given up
	}
	_ = u.pw.Close()
}

// bigTopology is a valid topology of about 40 KB, so a body can be cut
// into many pieces.
var bigTopology = topoA + "# " + strings.Repeat("padding ", 5000) + "\n"

// aliveUntil checks that session id is the head just before end and gone
// just after it (end being when its idle TTL runs out).
func aliveUntil(t *testing.T, e *env, id string, end time.Time) {
	t.Helper()
	time.Sleep(time.Until(end) - time.Second)
	synctest.Wait()
	require.Equal(t, id, e.head(), "expired before its TTL ran out after the upload")
	time.Sleep(2 * time.Second)
	synctest.Wait()
	assert.NotEqual(t, id, e.head(), "still there after its TTL ran out")
}

// TestUploadTimesOut: a body that stalls gets 408 after exactly the
// upload timeout, and no lab starts; the session's clock restarts when the
// upload is cut.
func TestUploadTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 90 * time.Second
		e := newEnv(t, overPipe(), withConfig(func(c *httpserver.Config) { c.UploadTimeout = timeout }))
		id := e.createSession().SessionID
		next := e.createSession().SessionID
		u := e.startUpload(id, topo("lab.yml", bigTopology))
		require.NoError(t, u.send(0, len(u.body)/2))

		r := <-u.done
		assert.Equal(t, timeout, time.Since(u.start), "answered after exactly the upload timeout")
		require.Equal(t, http.StatusRequestTimeout, r.code, "%s", r.body)
		assert.True(t, strings.HasPrefix(r.detail(t), api.DetailUploadTimeout+" "), "detail %q", r.detail(t))
		assert.Empty(t, e.runner.Calls(), "no lab work for a cut upload")
		assert.Equal(t, lab.StateNone, e.mgr.Status().State)

		e.send(post("/session/heartbeat", next))
		aliveUntil(t, e, id, time.Now().Add(activeTTL))
		assert.Equal(t, next, e.head())
	})
}

// TestSlowSteadyUpload: a body sent slowly but steadily, for longer than
// the active TTL in all, keeps its session alive until it is complete;
// the session's clock restarts when the upload ends.
func TestSlowSteadyUpload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe(), withConfig(func(c *httpserver.Config) { c.UploadTimeout = 10 * time.Minute }))
		id := e.createSession().SessionID
		u := e.startUpload(id, topo("lab.yml", bigTopology), extra("configs/r1.cfg", bytes.Repeat([]byte("x"), 4000)))
		go u.trickle(0, 45, 10*time.Second) // 440 s

		time.Sleep(activeTTL + 50*time.Second)
		synctest.Wait()
		assert.Equal(t, id, e.head(), "expired while its upload was arriving")

		r := <-u.done
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		assert.Equal(t, 440*time.Second, time.Since(u.start))
		assert.Len(t, e.runner.Calls(), 1)
		aliveUntil(t, e, id, time.Now().Add(activeTTL))
	})
}

// TestUploadStopsSessionExpires: a body that stops arriving (the client
// paused) no longer keeps the session: it expires one TTL after the last
// bytes, the upload ends with the session's end, and the waiter is
// promoted.
func TestUploadStopsSessionExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe(), withConfig(func(c *httpserver.Config) { c.UploadTimeout = 10 * time.Minute }))
		id := e.createSession().SessionID
		next := e.createSession().SessionID
		u := e.startUpload(id, topo("lab.yml", bigTopology))
		require.NoError(t, u.send(0, len(u.body)/3))
		time.Sleep(20 * time.Second)
		synctest.Wait()
		require.NoError(t, u.send(len(u.body)/3, len(u.body)/2)) // the last bytes, at +20 s
		lastBytes := time.Now()
		e.send(post("/session/heartbeat", next))

		r := <-u.done
		waited := time.Since(lastBytes)
		assert.True(t, waited >= activeTTL && waited < activeTTL+time.Second,
			"the upload ended %v after the last bytes, want the active TTL (%v)", waited, activeTTL)
		g := goneBody(t, r)
		assert.Equal(t, api.OutcomeExpired, g.Outcome)
		assert.Equal(t, "expired: no request for 300 s", g.Reason)
		assert.Equal(t, next, e.head(), "the waiter was promoted")
		assert.Empty(t, e.runner.Calls())
		e.mustAcquire(next)
	})
}
