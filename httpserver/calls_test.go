package httpserver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
)

// Request builders and answer readers for the tests of the queue views,
// session metadata, admin routes and authentication.

// jsonReq is a request with a JSON body: v encoded, or v itself when it
// is a string (so tests can send broken JSON).
func jsonReq(method, path string, v any) request {
	var body []byte
	switch v := v.(type) {
	case string:
		body = []byte(v)
	case []byte:
		body = v
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			panic(err)
		}
	}
	return request{method: method, path: path, body: body, ctype: "application/json"}
}

// withToken returns req with "Authorization: Bearer token".
func withToken(req request, token string) request {
	return withHeader(req, "Authorization", "Bearer "+token)
}

// withHeader returns req with one more header.
func withHeader(req request, key, value string) request {
	h := make(http.Header)
	for k, v := range req.header {
		h[k] = append([]string(nil), v...)
	}
	h.Add(key, value)
	req.header = h
	return req
}

// open creates a session with the given metadata and returns its answer.
func (e *env) open(meta api.SessionRequest) api.CreateSessionResponse {
	e.t.Helper()
	r := e.send(jsonReq(http.MethodPost, "/session", meta))
	require.Equal(e.t, http.StatusCreated, r.code, "POST /session: %s", r.body)
	var c api.CreateSessionResponse
	r.decode(e.t, &c)
	return c
}

// queueDoc returns GET /queue, decoded strictly, with its raw body.
func (e *env) queueDoc() (api.Queue, []byte) {
	e.t.Helper()
	r := e.get("/queue", "")
	require.Equal(e.t, http.StatusOK, r.code, "GET /queue: %s", r.body)
	var q api.Queue
	strictDecode(e.t, r.body, &q)
	return q, r.body
}

// historyDoc returns GET /history with an optional limit (0: none).
func (e *env) historyDoc(limit int) ([]api.HistoryEntry, []byte) {
	e.t.Helper()
	path := "/history"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	r := e.get(path, "")
	require.Equal(e.t, http.StatusOK, r.code, "GET %s: %s", path, r.body)
	var h []api.HistoryEntry
	strictDecode(e.t, r.body, &h)
	return h, r.body
}

// strictDecode unmarshals body into v, failing on fields v does not have.
func strictDecode(t testing.TB, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "body %s", body)
}

// goneBody checks that r is the 404 of a session that ended recently and
// returns it: the original's detail plus outcome, reason and ended_at,
// and nothing else.
func goneBody(t testing.TB, r resp) api.SessionGone {
	t.Helper()
	require.Equal(t, http.StatusNotFound, r.code, "body %s", r.body)
	var g api.SessionGone
	strictDecode(t, r.body, &g)
	assert.Equal(t, api.DetailSessionNotFound, g.Detail)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(r.body, &fields))
	assert.Len(t, fields, 4, "body %s", r.body)
	return g
}

// plainNotFound checks that r is the original's 404 of an unknown session.
func plainNotFound(t testing.TB, r resp) {
	t.Helper()
	require.Equal(t, http.StatusNotFound, r.code, "body %s", r.body)
	assert.JSONEq(t, `{"detail":"Session not found"}`, string(r.body))
}

// mustField returns the raw JSON of a top-level field of body.
func mustField(t testing.TB, body []byte, name string) json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &fields), "body %s", body)
	v, ok := fields[name]
	require.True(t, ok, "no field %q in %s", name, body)
	return v
}
