package main

// HTTP and fake-netlab helpers of the end-to-end tests.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

var httpClient = &http.Client{Timeout: waitTimeout}

const testTopology = `provider: clab
defaults:
  device: frr
nodes:
  r1:
  r2:
`

type response struct {
	code   int
	body   []byte
	header http.Header
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body %s", r.body)
}

// detail returns the "detail" of a JSON error body.
func (r response) detail(t *testing.T) string {
	t.Helper()
	var e struct{ Detail string }
	r.json(t, &e)
	return e.Detail
}

func do(t *testing.T, method, url, session string, body io.Reader, contentType string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if session != "" {
		req.Header.Set("X-Session-ID", session)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, b, resp.Header}
}

// labForm returns a POST /lab body with topo as the topology file, and
// its content type.
func labForm(topo string, reuse bool) ([]byte, string) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("topology", "lab.yml")
	io.WriteString(fw, topo)
	if reuse {
		w.WriteField("reuse", "true")
	} else {
		w.WriteField("reuse", "false")
	}
	w.Close()
	return body.Bytes(), w.FormDataContentType()
}

// doLab posts a topology to POST /lab without failing the test on a
// transport error (the server may stop meanwhile).
func doLab(base, session, topo string) (int, []byte, error) {
	body, ctype := labForm(topo, true)
	req, err := http.NewRequest(http.MethodPost, base+"/lab", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Session-ID", session)
	req.Header.Set("Content-Type", ctype)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// createSession creates a session and returns its id and status.
func createSession(t *testing.T, base string) (string, string) {
	t.Helper()
	r := do(t, http.MethodPost, base+"/session", "", nil, "")
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	var created struct {
		SessionID string `json:"session_id"`
		Status    string `json:"status"`
	}
	r.json(t, &created)
	require.NotEmpty(t, created.SessionID)
	return created.SessionID, created.Status
}

// waitActive waits (long-poll, which answers when the status changes)
// until session id is active.
func waitActive(t *testing.T, base, id string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		r := do(t, http.MethodGet, base+"/session/"+id+"?wait=10s", "", nil, "")
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		var st struct{ Status string }
		r.json(t, &st)
		if st.Status == "active" {
			return
		}
	}
	t.Fatalf("session %s never became active", id)
}

// openSession creates a session and waits until it is active.
func openSession(t *testing.T, base string) string {
	t.Helper()
	id, status := createSession(t, base)
	if status != "active" {
		waitActive(t, base, id)
	}
	return id
}

// sessionStatus returns the status of session id ("" and the response
// when it is not found).
func sessionStatus(t *testing.T, base, id string) (string, response) {
	t.Helper()
	r := do(t, http.MethodGet, base+"/session/"+id, "", nil, "")
	if r.code != http.StatusOK {
		return "", r
	}
	var st struct{ Status string }
	r.json(t, &st)
	return st.Status, r
}

type device struct {
	Name string         `json:"name"`
	Raw  map[string]any `json:"raw"`
}

type acquired struct {
	Reused  bool     `json:"reused"`
	Devices []device `json:"devices"`
}

// acquire posts the test topology (reuse=true) and returns the answer.
func acquire(t *testing.T, base, session string) acquired {
	t.Helper()
	code, body, err := doLab(base, session, testTopology)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var res acquired
	require.NoError(t, json.Unmarshal(body, &res))
	return res
}

func deviceNames(devs []device) []string {
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	return names
}

// labState returns GET /lab's state, asked as session id.
func labState(t *testing.T, base, id string) string {
	t.Helper()
	r := do(t, http.MethodGet, base+"/lab", id, nil, "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	var st struct{ State string }
	r.json(t, &st)
	return st.State
}

// rawRequest writes a request on a new TCP connection and reads the
// answer (bounded by waitTimeout).
func rawRequest(t *testing.T, addr string, req *http.Request) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitTimeout)))
	require.NoError(t, req.Write(conn))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, b, resp.Header}
}

func readMetaFile(t *testing.T, path string) instanceMeta {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m instanceMeta
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

// waitFile waits until the file at path contains want. A file offers no
// event to wait on, so it polls, bounded by a deadline.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it has:\n%s", path, want, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- the fake netlab --------------------------------------------------------

// netlabEnv is newEnv with the fake netlab built and its calls recorded.
func netlabEnv(t *testing.T, extra ...string) (*env, string) {
	t.Helper()
	e := newEnv(t)
	needFake(t)
	calls := filepath.Join(t.TempDir(), "netlab-calls")
	e.extra = append([]string{"FAKE_NETLAB_CALLS=" + calls}, extra...)
	return e, calls
}

// netlabStatus reads the fake netlab's status file ($HOME/.netlab/status.yaml):
// instance id → its entry.
func netlabStatus(t *testing.T, e *env) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(netlabStatusPath(e))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var st map[string]map[string]any
	require.NoError(t, yaml.Unmarshal(data, &st))
	return st
}

func netlabStatusPath(e *env) string { return filepath.Join(e.home, ".netlab", "status.yaml") }

// netlabCalls returns the recorded netlab invocations as "<cwd>\t<args>"
// (none when the file does not exist).
func netlabCalls(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func hasCall(calls []string, dir, args string) bool {
	for _, c := range calls {
		if c == dir+"\t"+args {
			return true
		}
	}
	return false
}

// callsOf returns the directories of the calls with these args.
func callsOf(calls []string, args string) []string {
	var dirs []string
	for _, c := range calls {
		if dir, a, _ := strings.Cut(c, "\t"); a == args {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}
