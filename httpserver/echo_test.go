package httpserver_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/topology"
)

// maxErrorBody is what an error answer may take at most, whatever the
// client sent: SPEC §8 lets a detail echo 200 characters of input.
const maxErrorBody = 700

// TestErrorsEchoLittle: huge client input in a topology, a query value, a
// part's file name or a JSON body comes back as at most 200 characters
// of it, so the answer stays a few hundred bytes.
func TestErrorsEchoLittle(t *testing.T) {
	const mib = 1 << 20
	huge := func(n int) string { return "n" + strings.Repeat("x", n-1) }
	name := huge(mib) // a valid identifier, 1 MiB long
	big := withConfig(func(c *httpserver.Config) {
		c.Limits = topology.Limits{MaxTopologyBytes: 4 * mib}
	})
	for _, tc := range []struct {
		name string
		opts []envOpt
		req  func(id string) request
		code int
	}{
		{
			name: "node name of 1 MiB",
			opts: []envOpt{big},
			req:  func(id string) request { return acquireReq(id, topo("lab.yml", "nodes: ["+name+"]\n")) },
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "node name just under the default topology limit",
			req: func(id string) request {
				return acquireReq(id, topo("lab.yml", "nodes:\n  "+huge(mib-64)+": {}\n"))
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "invalid node name of 1 MiB",
			opts: []envOpt{big},
			req:  func(id string) request { return acquireReq(id, topo("lab.yml", "nodes: [\"-"+name+"\"]\n")) },
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "duplicate node name of 1 MiB",
			opts: []envOpt{big},
			req: func(id string) request {
				return acquireReq(id, topo("lab.yml", "nodes: ["+name+", "+name+"]\n"))
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "link to an unknown node of 1 MiB",
			opts: []envOpt{big},
			req: func(id string) request {
				return acquireReq(id, topo("lab.yml", "nodes: [r1]\nlinks: [r1-"+name+"]\n"))
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "YAML error in a line of 1 MiB",
			req:  func(id string) request { return acquireReq(id, topo("lab.yml", "nodes: ["+huge(mib-64)+"\n")) },
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "topology file name of 200 KiB",
			req:  func(id string) request { return acquireReq(id, topo(huge(200<<10)+".txt", topoA)) },
			code: http.StatusBadRequest,
		},
		{
			name: "unsafe extra file name of 200 KiB",
			req: func(id string) request {
				return acquireReq(id, topo("lab.yml", topoA), extra("../"+huge(200<<10), []byte("x")))
			},
			code: http.StatusBadRequest,
		},
		{
			name: "extra file name of 200 KiB",
			req: func(id string) request {
				return acquireReq(id, topo("lab.yml", topoA), extra(huge(200<<10), []byte("x")))
			},
			code: http.StatusBadRequest,
		},
		{
			name: "reuse of 200 KiB",
			req: func(id string) request {
				return acquireReq(id, topo("lab.yml", topoA), field(api.PartReuse, huge(200<<10)))
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "wait of 200 KiB",
			req:  func(id string) request { return get("/session/"+id+"?wait="+huge(200<<10), "") },
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "force of 200 KiB",
			req:  func(id string) request { return del("/lab?force="+huge(200<<10), id) },
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "history limit of 200 KiB",
			req:  func(string) request { return get("/history?limit="+strings.Repeat("9", 200<<10), "") },
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "owner of 60 KiB",
			req: func(string) request {
				return jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: huge(60 << 10)})
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "label value of 60 KiB",
			req: func(string) request {
				return jsonReq(http.MethodPost, "/session", api.SessionRequest{Labels: map[string]string{"k": huge(60 << 10)}})
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "label key of 60 KiB",
			req: func(string) request {
				return jsonReq(http.MethodPost, "/session", api.SessionRequest{Labels: map[string]string{huge(60 << 10): "v"}})
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "JSON error in a string of 60 KiB",
			req: func(string) request {
				return jsonReq(http.MethodPost, "/session", `{"owner":"`+huge(60<<10)+`", "owner": 5}`)
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "unknown JSON field of 60 KiB",
			req: func(string) request {
				return jsonReq(http.MethodPost, "/session", `{"`+huge(60<<10)+`": 1}`)
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "eviction reason of 10 KiB",
			req: func(id string) request {
				return jsonReq(http.MethodPost, "/admin/sessions/"+id+"/evict", api.EvictRequest{Reason: huge(10 << 10)})
			},
			code: http.StatusUnprocessableEntity,
		},
		{
			name: "unknown session of 200 KiB",
			req:  func(string) request { return get("/session/"+huge(200<<10), "") },
			code: http.StatusNotFound,
		},
		{
			name: "unknown route of 200 KiB",
			req:  func(string) request { return get("/"+url.PathEscape(huge(200<<10)), "") },
			code: http.StatusNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.opts...)
			id := e.createSession().SessionID
			r := e.send(tc.req(id))
			require.Equal(t, tc.code, r.code, "body %.300s", r.body)
			assert.LessOrEqual(t, len(r.body), maxErrorBody, "body %.1000s", r.body)
			assert.True(t, json.Valid(r.body), "body %.300s", r.body)
			assert.Less(t, len(e.logs.String()), 64<<10, "the logs repeat the input")
			assert.Empty(t, e.runner.Calls())
		})
	}
}
