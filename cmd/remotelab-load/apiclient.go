package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// apiClient speaks the raw HTTP API (api wire types), so the harness
// measures the server and not a client library. It keeps connections
// alive and can spread them over several loopback source addresses
// (127.0.0.1, 127.0.0.2, ...) to stay clear of ephemeral-port limits.
type apiClient struct {
	base string
	tr   *http.Transport
	hc   *http.Client
	// authz, if set, is sent as the Authorization header of every
	// request (a Bearer token or HTTP Basic).
	authz string
}

// newAPIClient returns a client for base that keeps up to conns idle
// connections, dialled from sources loopback addresses in turn.
func newAPIClient(base string, conns, sources int) *apiClient {
	var next atomic.Uint32
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		MaxIdleConns:        0, // no limit
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if sources <= 1 {
				return d.DialContext(ctx, network, addr)
			}
			n := next.Add(1)%uint32(sources) + 1
			dd := *d
			dd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}
			return dd.DialContext(ctx, network, addr)
		},
	}
	return &apiClient{base: base, tr: tr, hc: &http.Client{Transport: tr}}
}

// Close closes idle connections.
func (c *apiClient) Close() { c.tr.CloseIdleConnections() }

// httpError is a non-success answer.
type httpError struct {
	Code   int
	Detail string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Detail) }

// statusOf returns the HTTP status of an *httpError, or 0.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}

// do sends a request and decodes a want-status answer into out (if not
// nil). Any other status is an *httpError with the body's detail.
func (c *apiClient) do(ctx context.Context, method, path, sid string, body io.Reader, ctype string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if sid != "" {
		req.Header.Set(api.HeaderSessionID, sid)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.authz != "" {
		req.Header.Set("Authorization", c.authz)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20)) // GET /queue of 10 000 sessions: 3 MiB
	if err != nil {
		return fmt.Errorf("read %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return &httpError{Code: resp.StatusCode, Detail: detailOf(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// detailOf extracts {"detail": ...} from an error body, whatever its shape.
func detailOf(b []byte) string {
	var e struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Detail) > 0 {
		var s string
		if json.Unmarshal(e.Detail, &s) == nil {
			return s
		}
		return string(e.Detail)
	}
	return strings.TrimSpace(string(b[:min(len(b), 200)]))
}

func (c *apiClient) create(ctx context.Context) (api.CreateSessionResponse, error) {
	var v api.CreateSessionResponse
	err := c.do(ctx, http.MethodPost, "/session", "", nil, "", http.StatusCreated, &v)
	return v, err
}

// createWith is POST /session with a JSON body (owner, labels, limits).
func (c *apiClient) createWith(ctx context.Context, sr api.SessionRequest) (api.CreateSessionResponse, error) {
	b, err := json.Marshal(sr)
	if err != nil {
		return api.CreateSessionResponse{}, err
	}
	var v api.CreateSessionResponse
	err = c.do(ctx, http.MethodPost, "/session", "", bytes.NewReader(b), "application/json", http.StatusCreated, &v)
	return v, err
}

// queue is GET /queue.
func (c *apiClient) queue(ctx context.Context) (api.Queue, error) {
	var v api.Queue
	err := c.do(ctx, http.MethodGet, "/queue", "", nil, "", http.StatusOK, &v)
	return v, err
}

// queueSize is GET /queue that also returns the body's size in bytes.
func (c *apiClient) queueSize(ctx context.Context) (api.Queue, int, error) {
	var v api.Queue
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/queue", "", nil, "", http.StatusOK, &raw); err != nil {
		return v, 0, err
	}
	return v, len(raw), json.Unmarshal(raw, &v)
}

// evict is POST /admin/sessions/{id}/evict (id: a full id or a unique
// prefix of at least 8 characters; loopback callers without
// authentication are admins).
func (c *apiClient) evict(ctx context.Context, id, reason string) error {
	b, _ := json.Marshal(api.EvictRequest{Reason: reason})
	return c.do(ctx, http.MethodPost, "/admin/sessions/"+id+"/evict", "", bytes.NewReader(b), "application/json", http.StatusNoContent, nil)
}

// status is GET /session/{id}, with ?wait= when wait > 0.
func (c *apiClient) status(ctx context.Context, sid string, wait time.Duration) (api.SessionStatus, error) {
	p := "/session/" + sid
	if wait > 0 {
		p += "?wait=" + wait.String()
	}
	var v api.SessionStatus
	err := c.do(ctx, http.MethodGet, p, sid, nil, "", http.StatusOK, &v)
	return v, err
}

// statusTraced is status whose request calls wrote once it is on the wire.
func (c *apiClient) statusTraced(ctx context.Context, sid string, wait time.Duration, wrote func()) (api.SessionStatus, error) {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote() },
	})
	return c.status(ctx, sid, wait)
}

func (c *apiClient) leave(ctx context.Context, sid string) error {
	return c.do(ctx, http.MethodDelete, "/session/"+sid, sid, nil, "", http.StatusNoContent, nil)
}

func (c *apiClient) heartbeat(ctx context.Context, sid string) error {
	return c.do(ctx, http.MethodPost, "/session/heartbeat", sid, nil, "", http.StatusNoContent, nil)
}

func (c *apiClient) release(ctx context.Context, sid string) error {
	return c.do(ctx, http.MethodPost, "/lab/release", sid, nil, "", http.StatusNoContent, nil)
}

func (c *apiClient) labStatus(ctx context.Context, sid string) (api.LabStatus, error) {
	var v api.LabStatus
	err := c.do(ctx, http.MethodGet, "/lab", sid, nil, "", http.StatusOK, &v)
	return v, err
}

func (c *apiClient) health(ctx context.Context) (api.Health, error) {
	var v api.Health
	err := c.do(ctx, http.MethodGet, "/debug/health", "", nil, "", http.StatusOK, &v)
	return v, err
}

// acquire is POST /lab with a prepared multipart body.
func (c *apiClient) acquire(ctx context.Context, sid string, u upload) (api.AcquireResponse, error) {
	body, ctype := u.body()
	var v api.AcquireResponse
	err := c.do(ctx, http.MethodPost, "/lab", sid, body, ctype, http.StatusOK, &v)
	return v, err
}

// waitActive long-polls GET /session/{id}?wait= until the session is
// active or ctx ends. from is the session's create answer: a session
// created active is not polled (a long-poll on an active session answers
// only when something changes).
func (c *apiClient) waitActive(ctx context.Context, from api.CreateSessionResponse, wait time.Duration) (api.SessionStatus, error) {
	if from.Status == api.StatusActive {
		return api.SessionStatus{Status: from.Status, Position: from.Position, SessionDetails: from.SessionDetails}, nil
	}
	for {
		st, err := c.status(ctx, from.SessionID, wait)
		if err != nil || st.Status == api.StatusActive {
			return st, err
		}
	}
}

// file is one extra file of an upload.
type file struct {
	Name string
	Data []byte
	Size int64 // if Data is nil: Size bytes of filler, streamed
}

// upload is a POST /lab form.
type upload struct {
	TopoName string // default "topology.yml"
	Topo     []byte
	Reuse    string // "" leaves the part out
	Extras   []file
	Raw      []byte // if set, sent as-is with RawType instead of a form
	RawType  string
}

// body returns the request body and its content type. Forms with a
// streamed file are produced by a goroutine through a pipe, which ends
// when the transport closes the body.
func (u upload) body() (io.Reader, string) {
	if u.Raw != nil {
		return bytes.NewReader(u.Raw), u.RawType
	}
	streamed := false
	for _, f := range u.Extras {
		streamed = streamed || f.Data == nil
	}
	if !streamed {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		u.write(mw)
		return &buf, mw.FormDataContentType()
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() { pw.CloseWithError(u.write(mw)) }()
	return pr, mw.FormDataContentType()
}

// write writes the form and closes mw.
func (u upload) write(mw *multipart.Writer) error {
	name := u.TopoName
	if name == "" {
		name = "topology.yml"
	}
	if u.Topo != nil {
		w, err := mw.CreateFormFile(api.PartTopology, name)
		if err != nil {
			return err
		}
		if _, err := w.Write(u.Topo); err != nil {
			return err
		}
	}
	if u.Reuse != "" {
		if err := mw.WriteField(api.PartReuse, u.Reuse); err != nil {
			return err
		}
	}
	for _, f := range u.Extras {
		w, err := mw.CreateFormFile(api.PartExtraFiles, f.Name)
		if err != nil {
			return err
		}
		if f.Data != nil {
			_, err = w.Write(f.Data)
		} else {
			_, err = io.CopyN(w, filler{}, f.Size)
		}
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

// filler is an endless reader of 'x'.
type filler struct{}

func (filler) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// topologyYAML returns a valid topology of n nodes; tag goes into a
// comment, so different tags give different fingerprints.
func topologyYAML(n int, tag string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\nprovider: clab\ndefaults.device: frr\nnodes: [", tag)
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "r%d", i)
	}
	b.WriteString("]\n")
	return []byte(b.String())
}
