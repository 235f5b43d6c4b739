package httpserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// readyz returns GET /readyz's code and body; /healthz must answer 204
// whatever /readyz says.
func (e *env) readyz(t *testing.T) (int, string) {
	t.Helper()
	require.Equal(t, http.StatusNoContent, e.get("/healthz", "").code)
	r := e.get("/readyz", "")
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	return r.code, string(r.body)
}

// notReady is the /readyz body of a host that is not ready.
func notReady(reason string) string {
	return fmt.Sprintf(`{"ready":false,"reason":%q}`, reason)
}

// TestReadyz: ready, then each reason a host is not: draining,
// quarantined, shutting down.
func TestReadyz(t *testing.T) {
	var failDown atomic.Bool
	runner := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if failDown.Load() {
			return errors.New("clab destroy exited 1")
		}
		return nil
	}}
	e := newEnv(t, withRunner(runner), withBroker(func(c *broker.Config) { c.QuarantineAfter = 1 }))
	code, body := e.readyz(t)
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"ready":true}`, body)

	require.Equal(t, http.StatusNoContent, e.send(post("/admin/drain", "")).code)
	code, body = e.readyz(t)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, notReady("draining: promotions are paused (POST /admin/resume ends it)"), body)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/resume", "")).code)
	code, _ = e.readyz(t)
	assert.Equal(t, http.StatusOK, code)

	id := e.createSession().SessionID
	e.mustAcquire(id)
	failDown.Store(true)
	r := e.send(del("/admin/lab", ""))
	require.Equal(t, http.StatusBadGateway, r.code, "%s", r.body)
	code, body = e.readyz(t)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, notReady("quarantined: 1 lab teardowns failed in a row, the last with: down lab: clab destroy exited 1"), body)
	require.Equal(t, http.StatusNoContent, e.send(post("/admin/unquarantine", "")).code)
	code, _ = e.readyz(t)
	assert.Equal(t, http.StatusOK, code)

	e.srv.Drain()
	code, body = e.readyz(t)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, notReady("shutting down"), body)
}

// TestReadyzProbe: a runner probe that fails makes the host not ready
// from the first probe on, and ready again at the first probe after it
// recovers.
func TestReadyzProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var broken atomic.Bool
		broken.Store(true)
		var probes atomic.Int32
		e := newEnv(t, overPipe(), withBroker(func(c *broker.Config) {
			c.ProbeInterval = 10 * time.Second
			c.Probe = func(ctx context.Context) error {
				probes.Add(1)
				if broken.Load() {
					return errors.New("netlab version: exit status 127")
				}
				return nil
			}
		}))
		synctest.Wait() // the first probe ran
		require.Equal(t, int32(1), probes.Load())
		code, body := e.readyz(t)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.JSONEq(t, notReady("lab runner unusable: netlab version: exit status 127"), body)

		broken.Store(false)
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		code, _ = e.readyz(t)
		assert.Equal(t, http.StatusServiceUnavailable, code, "ready before the next probe")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		code, body = e.readyz(t)
		assert.Equal(t, http.StatusOK, code, "%s", body)
		assert.Equal(t, int32(2), probes.Load())

		broken.Store(true)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		code, _ = e.readyz(t)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Contains(t, e.logs.String(), `msg="Lab host not ready" runner="netlab version: exit status 127" lock_file=ok`)
	})
}

// TestReadyzLockFile: a lab lock file that cannot be opened makes the
// host not ready, and POST /lab a 503 that names the file (SPEC §8).
func TestReadyzLockFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "missing")
		lock := filepath.Join(dir, "netlab_pytest.lock")
		e := newEnv(t, overPipe(), withBroker(func(c *broker.Config) {
			c.Lab.LockPath = lock
			c.ProbeInterval = 10 * time.Second
		}))
		synctest.Wait()
		code, body := e.readyz(t)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Contains(t, body, lock)

		id := e.createSession().SessionID
		r := e.acquire(id, topo("lab.yml", topoA))
		require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
		assert.Contains(t, r.detail(t), lock)
		assert.Empty(t, e.runner.Calls())

		require.NoError(t, os.Mkdir(dir, 0o755))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		code, body = e.readyz(t)
		assert.Equal(t, http.StatusOK, code, "%s", body)
		e.mustAcquire(id)
		assert.Equal(t, api.StatusActive, e.status(id).Status)
	})
}
