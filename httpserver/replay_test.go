package httpserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pyClient replays, byte for byte where it matters, what the original
// Python RemoteLabClient (requests + urllib3) sends, and accepts only the
// status codes it accepts (reference/original-client.md).
type pyClient struct {
	t       *testing.T
	e       *env
	session string
}

func (c *pyClient) do(method, path, ctype string, body []byte, accept ...int) (int, []byte) {
	c.t.Helper()
	hr, err := http.NewRequest(method, c.e.base+path, bytes.NewReader(body))
	require.NoError(c.t, err)
	hr.ContentLength = int64(len(body)) // requests sends Content-Length: 0 on empty POSTs
	hr.Header.Set("User-Agent", "RemoteLabClient/1.0")
	hr.Header.Set("Accept-Encoding", "gzip, deflate")
	hr.Header.Set("Accept", "*/*")
	hr.Header.Set("Connection", "keep-alive")
	if c.session != "" {
		hr.Header.Set("X-Session-ID", c.session)
	}
	if ctype != "" {
		hr.Header.Set("Content-Type", ctype)
	}
	res, err := c.e.client.Do(hr)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	require.True(c.t, slices.Contains(accept, res.StatusCode),
		"%s %s: the Python client does not accept %d (%s)", method, path, res.StatusCode, b)
	return res.StatusCode, b
}

// open is RemoteLabClient.__init__ up to the first status poll.
func (c *pyClient) open() (position int) {
	code, b := c.do(http.MethodPost, "/session", "", nil, 200, 201, 202, 204)
	require.Equal(c.t, http.StatusCreated, code)
	var r struct {
		SessionID string `json:"session_id"`
		Position  int    `json:"position"`
	}
	require.NoError(c.t, json.Unmarshal(b, &r))
	require.NotEmpty(c.t, r.SessionID)
	c.session = r.SessionID
	return r.Position
}

// poll is one iteration of the constructor's wait loop.
func (c *pyClient) poll() string {
	_, b := c.do(http.MethodGet, "/session/"+c.session, "", nil, 200)
	var r struct {
		Status string `json:"status"`
	}
	require.NoError(c.t, json.Unmarshal(b, &r))
	return r.Status
}

// acquire is RemoteLabClient.acquire: multipart as urllib3 encodes it,
// data fields first, then the file.
func (c *pyClient) acquire(basename, topology string, reuse bool) []map[string]any {
	boundary := strings.ReplaceAll(uuid.NewString(), "-", "")
	var body bytes.Buffer
	fmt.Fprintf(&body, "--%s\r\nContent-Disposition: form-data; name=\"reuse\"\r\n\r\n%t\r\n", boundary, reuse)
	fmt.Fprintf(&body, "--%s\r\nContent-Disposition: form-data; name=\"topology\"; filename=\"%s\"\r\n"+
		"Content-Type: application/x-yaml\r\n\r\n%s\r\n", boundary, basename, topology)
	fmt.Fprintf(&body, "--%s--\r\n", boundary)
	_, b := c.do(http.MethodPost, "/lab", "multipart/form-data; boundary="+boundary, body.Bytes(), 200)
	var r struct {
		Devices []map[string]any `json:"devices"`
	}
	require.NoError(c.t, json.Unmarshal(b, &r))
	for _, d := range r.Devices {
		require.IsType(c.t, "", d["name"])
		require.IsType(c.t, map[string]any{}, d["raw"])
	}
	return r.Devices
}

func (c *pyClient) release() int {
	code, _ := c.do(http.MethodPost, "/lab/release", "", nil, 204, 404)
	return code
}

func (c *pyClient) destroy(force bool) int {
	code, _ := c.do(http.MethodDelete, fmt.Sprintf("/lab?force=%t", force), "", nil, 202, 204)
	return code
}

func (c *pyClient) close() int {
	code, _ := c.do(http.MethodDelete, "/session/"+c.session, "", nil, 204, 404)
	return code
}

// TestReplayPythonClient runs the original client's whole life cycle, as
// its pytest fixture drives it, for two clients sharing the server.
func TestReplayPythonClient(t *testing.T) {
	e := newEnv(t)
	a := &pyClient{t: t, e: e}
	b := &pyClient{t: t, e: e}
	assert.Equal(t, 0, a.open())
	assert.Equal(t, "active", a.poll())
	assert.Equal(t, 1, b.open())
	assert.Equal(t, "waiting", b.poll())

	// remote_lab_fixture(reuse_lab=False) twice, then reuse_lab=True.
	devs := a.acquire("simple_frr.yml", topoA, false)
	require.Len(t, devs, 2)
	assert.Equal(t, "r1", devs[0]["name"])
	assert.Equal(t, 204, a.release())
	assert.Len(t, a.acquire("simple_frr.yml", topoA, false), 2)
	assert.Equal(t, 204, a.release())
	assert.Len(t, a.acquire("simple_frr.yml", topoA, true), 2)
	assert.Equal(t, 204, a.release())
	assert.Equal(t, 202, a.destroy(true))
	assert.Equal(t, 204, a.destroy(true))
	assert.Equal(t, 404, a.release())
	assert.Equal(t, 204, a.close())
	assert.Equal(t, 404, a.close()) // atexit after an explicit close

	assert.Equal(t, "active", b.poll())
	assert.Len(t, b.acquire("other.yaml", topoB, true), 3)
	assert.Equal(t, 409, func() int { // destroy(force=False) swallows errors
		code, _ := b.do(http.MethodDelete, "/lab?force=false", "", nil, 409)
		return code
	}())
	assert.Equal(t, 204, b.release())
	assert.Equal(t, 202, b.destroy(false))
	assert.Equal(t, 204, b.close())
	assert.Zero(t, e.b.Len())
}
