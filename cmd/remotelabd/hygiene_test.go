package main

// Regression tests for issue 11, findings 8 and 9: HTTP hygiene (header
// size, connection cap, descriptor limit, echoed input) and request logs.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialHealthz opens a connection to addr and sends GET /healthz on it
// (with Connection: close when closing).
func dialHealthz(t *testing.T, addr string, closing bool) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	extra := ""
	if closing {
		extra = "Connection: close\r\n"
	}
	_, err = fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n%s\r\n", addr, extra)
	require.NoError(t, err)
	return conn
}

// pending reports whether c has something to read (data, or the peer's
// close) without waiting for it.
func pending(t *testing.T, c net.Conn) bool {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var n int
	var rerr error
	require.NoError(t, raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}))
	if errors.Is(rerr, syscall.EAGAIN) {
		return false
	}
	require.NoError(t, rerr)
	return n >= 0
}

// TestHugeHeaderBlock431 (issue 11, finding 8): a header block of 64 KiB
// is served; one byte more is refused with 431 instead of being buffered
// (net/http's default is 1 MiB).
func TestHugeHeaderBlock431(t *testing.T) {
	e := newEnv(t)
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
	addr := p.addr()

	// send sends GET /healthz with a header block of exactly size bytes
	// and returns the status code of the answer.
	send := func(size int) int {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, waitTimeout)
		require.NoError(t, err)
		defer conn.Close()
		require.NoError(t, conn.SetDeadline(time.Now().Add(waitTimeout)))
		head := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nX-Filler: ", addr)
		req := head + strings.Repeat("a", size-len(head)-len("\r\n\r\n")) + "\r\n\r\n"
		require.Len(t, req, size)
		// The server may answer (and close) before it read everything:
		// the write's error does not matter, the answer does.
		go func() { _, _ = io.WriteString(conn, req) }()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusNoContent, send(64<<10), "a header block of 64 KiB is served")
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, send(64<<10+1))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, send(1<<20))

	r := do(t, http.MethodGet, "http://"+addr+"/healthz", "", nil, "")
	assert.Equal(t, http.StatusNoContent, r.code, "the server still serves")
}

// TestMaxConnectionsQueuesNewConnections (issue 11, finding 8): with
// --max-connections 32 and 200 connections open, the 33rd and later wait
// in the kernel's backlog (their requests are not answered) until a
// connection closes; then they are served.
func TestMaxConnectionsQueuesNewConnections(t *testing.T) {
	e := newEnv(t)
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--max-connections", "32")
	addr := p.addr()
	assert.Regexp(t, `listening on" .*max_connections=32`, p.out.String())

	// 32 connections are served, then stay open, idle (keep-alive).
	idle := make([]net.Conn, 32)
	for i := range idle {
		idle[i] = dialHealthz(t, addr, false)
		require.NoError(t, idle[i].SetReadDeadline(time.Now().Add(waitTimeout)))
		resp, err := http.ReadResponse(bufio.NewReader(idle[i]), nil)
		require.NoError(t, err, "connection %d", i+1)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	// 168 more send a request each (and ask to close after the answer).
	waiting := make([]net.Conn, 168)
	for i := range waiting {
		waiting[i] = dialHealthz(t, addr, true)
	}
	// At the cap none of them is answered. (An absence can only be
	// checked for a while: answers get 2 s to arrive.)
	require.NoError(t, waiting[0].SetReadDeadline(time.Now().Add(2*time.Second)))
	n, err := waiting[0].Read(make([]byte, 1))
	require.Zero(t, n, "connection 33 was answered beyond the cap")
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "connection 33: %v", err)
	for i, c := range waiting {
		require.False(t, pending(t, c), "connection %d was answered beyond the cap", 33+i)
	}

	// One idle connection closes: the slot goes to the next waiting one,
	// and as each closes after its answer, all are served in turn.
	require.NoError(t, idle[0].Close())
	for i, c := range waiting {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(waitTimeout)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err, "connection %d", 33+i)
		resp.Body.Close()
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
}

// TestDescriptorLimitCapsConnections (issue 11, finding 8): under ulimit
// -n 256 the daemon lowers the connection cap (and says so) so that a
// flood of 300 connections cannot take the descriptors lab work needs:
// the holder's upload over its open connection still starts the lab.
func TestDescriptorLimitCapsConnections(t *testing.T) {
	e, calls := netlabEnv(t)
	e.prelude = "ulimit -n 256"
	p := start(t, e, "--host", "127.0.0.1", "--port", "0")
	addr := p.addr()
	out := p.out.String()
	assert.Regexp(t, logRE("The descriptor limit is below --max-connections; capping connections to keep descriptors for lab work",
		"max_connections=16384", "nofile=256", "cap=16"), out)
	assert.Regexp(t, `listening on" .*max_connections=16\b`, out)

	// The holder's connection is open (and its session active) first.
	holder, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	defer holder.Close()
	require.NoError(t, holder.SetDeadline(time.Now().Add(waitTimeout)))
	rd := bufio.NewReader(holder)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/session", nil)
	require.NoError(t, err)
	require.NoError(t, req.Write(holder))
	resp, err := http.ReadResponse(rd, req)
	require.NoError(t, err)
	var created struct {
		SessionID string `json:"session_id"`
		Status    string
	}
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	response{body: body}.json(t, &created)
	require.Equal(t, "active", created.Status)

	// The flood.
	for i := range 300 {
		c, err := net.DialTimeout("tcp", addr, waitTimeout)
		require.NoError(t, err, "connection %d", i+1)
		defer c.Close()
	}

	form, ctype := labForm(testTopology, true)
	req, err = http.NewRequest(http.MethodPost, "http://"+addr+"/lab", bytes.NewReader(form))
	require.NoError(t, err)
	req.Header.Set("X-Session-ID", created.SessionID)
	req.Header.Set("Content-Type", ctype)
	require.NoError(t, req.Write(holder))
	resp, err = http.ReadResponse(rd, req)
	require.NoError(t, err)
	body, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var res acquired
	response{body: body}.json(t, &res)
	assert.Equal(t, []string{"r1", "r2"}, deviceNames(res.Devices))
	assert.Len(t, callsOf(netlabCalls(t, calls), "up lab.yml"), 1)
	assert.NotContains(t, p.out.String(), "too many open files")
}

// TestHugeNodeNameShortError (issue 11, finding 8): a topology with a
// node name of 1 MiB is 422, and the error echoes a bounded part of it.
func TestHugeNodeNameShortError(t *testing.T) {
	e := newEnv(t)
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--max-topology-size", "2MiB")
	base := p.baseURL()
	id := openSession(t, base)
	name := strings.Repeat("r", 1<<20)
	code, body, err := doLab(base, id, "nodes:\n  - "+name+"\n")
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.LessOrEqual(t, len(body), 400, "%.600s", body)
	assert.Contains(t, string(body), "node name")
	assert.Equal(t, "none", labState(t, base, id))
}

// requestLines returns the request log lines of out.
func requestLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " msg=request ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// exerciseAPI makes 13 requests of a session's life and returns the
// session id.
func exerciseAPI(t *testing.T, base string) string {
	t.Helper()
	id, status := createSession(t, base)
	require.Equal(t, "active", status)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/session/heartbeat", http.StatusNoContent},
		{http.MethodGet, "/session/" + id, http.StatusOK},
		{http.MethodGet, "/session/" + id + "?wait=1s", http.StatusOK},
		{http.MethodGet, "/healthz", http.StatusNoContent},
		{http.MethodGet, "/queue", http.StatusOK},
	} {
		assert.Equal(t, c.code, do(t, c.method, base+c.path, id, nil, "").code, "%s %s", c.method, c.path)
	}
	acquire(t, base, id)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/lab", http.StatusOK},
		{http.MethodGet, "/lab/devices", http.StatusOK},
		{http.MethodGet, "/active-session", http.StatusOK},
		{http.MethodPost, "/lab/release", http.StatusNoContent},
		{http.MethodGet, "/debug/health", http.StatusOK},
		{http.MethodDelete, "/session/" + id, http.StatusNoContent},
	} {
		assert.Equal(t, c.code, do(t, c.method, base+c.path, id, nil, "").code, "%s %s", c.method, c.path)
	}
	return id
}

// TestRequestLogLevels (issue 11, finding 9): one request line per
// request, each with the client's address; session create/delete and lab
// calls at INFO, reads, polls and heartbeats at DEBUG (so a default INFO
// log is not flooded by them).
func TestRequestLogLevels(t *testing.T) {
	clientRE := regexp.MustCompile(` client=127\.0\.0\.1:\d+`)

	t.Run("debug", func(t *testing.T) {
		e := newEnv(t)
		p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--log-level", "debug")
		id := exerciseAPI(t, p.baseURL())
		// A handler logs its request after the answer's last byte may
		// have left: wait for all 13 lines.
		p.waitFor(`(?s)(?:msg=request .*){13}`)
		lines := requestLines(p.out.String())
		assert.Len(t, lines, 13, "one line per request:\n%s", strings.Join(lines, "\n"))
		for _, l := range lines {
			assert.Regexp(t, clientRE, l)
		}
		for _, want := range []string{
			`level=INFO msg=request .*method=POST path=/session status=201`,
			`level=INFO msg=request .*method=POST path=/lab status=200`,
			`level=INFO msg=request .*method=POST path=/lab/release status=204`,
			`level=INFO msg=request .*method=DELETE path=/session/` + id[:8] + ` status=204`,
			`level=DEBUG msg=request .*method=POST path=/session/heartbeat status=204`,
			`level=DEBUG msg=request .*method=GET path=/session/` + id[:8] + ` status=200`,
			`level=DEBUG msg=request .*method=GET path=/lab status=200`,
			`level=DEBUG msg=request .*method=GET path=/queue status=200`,
			`level=DEBUG msg=request .*method=GET path=/healthz status=204`,
		} {
			assert.Regexp(t, want, p.out.String())
		}
		assert.NotContains(t, p.out.String(), id, "session ids are logged shortened")
	})

	t.Run("info", func(t *testing.T) {
		e := newEnv(t)
		p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0")
		id := exerciseAPI(t, p.baseURL())
		p.waitFor(logRE("request", "method=DELETE path=/session/"+id[:8]+" status=204"))
		out := p.out.String()
		lines := requestLines(out)
		require.Len(t, lines, 4, "only the changes are logged at INFO:\n%s", strings.Join(lines, "\n"))
		for i, want := range []string{
			"method=POST path=/session status=201",
			"method=POST path=/lab status=200",
			"method=POST path=/lab/release status=204",
			"method=DELETE path=/session/" + id[:8] + " status=204",
		} {
			assert.Contains(t, lines[i], want)
			assert.Contains(t, lines[i], "level=INFO ")
			assert.Regexp(t, clientRE, lines[i])
		}
		assert.Regexp(t, logRE("Created session", "session="+id[:8], "client=127.0.0.1:"), out)
		assert.Regexp(t, logRE("Starting lab acquisition", "session="+id[:8]), out)
		assert.Regexp(t, logRE("Lab ready for session", "session="+id[:8]), out)
		assert.NotContains(t, out, "level=DEBUG")
	})
}
