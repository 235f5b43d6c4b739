package client_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

// TestTopologyNameClientAgreesWithServer: the client refuses, before
// sending anything, exactly the topology names the server answers 400
// "Topology must be a .yml or .yaml file" to, and sends every other one.
// The server sees each name byte for byte (RFC 2231 encoding), whatever
// it holds.
func TestTopologyNameClientAgreesWithServer(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c, rec := recordingClient(srv)
	s := open(t, c)
	names := []string{
		"lab.yml", "lab.yaml", "LAB.YML", "x.YaMl", ".hidden.yml", "my lab.yml", "a.b.yml", "..yml",
		"ü.yml", `"quoted".yml`, "a;b=c.yml", "C:lab.yml", "lab%2F.yml", strings.Repeat("x", 251) + ".yml",
		".yml", ".YAML", "lab.txt", "lab", "lab.yml.bak", "lab.yml ", "labyml", "", ".", "..",
		"x/lab.yml", "/lab.yml", "lab.yml/", `x\lab.yml`, "../lab.yml", `..\lab.yml`,
		"lab\x00.yml", "lab\n.yml", "lab\r.yml", "lab\x7f.yml", "lab\u0085.yml", "lab\xff.yml",
		strings.Repeat("x", 252) + ".yml",
	}
	for _, name := range names {
		clientErr := func() error {
			before := rec.count(http.MethodPost, "/lab")
			_, _, err := s.AcquireBytes(t.Context(), name, []byte(topoA))
			if err != nil && rec.count(http.MethodPost, "/lab") != before {
				t.Errorf("client sent %q before refusing it", name)
			}
			return err
		}()
		code, detail := postTopologyName(t, srv, s.ID(), name)
		refused := topology.CheckTopologyName(name) != nil
		if refused {
			assert.ErrorIs(t, clientErr, client.ErrBadRequest, "%q", name)
			assert.ErrorIs(t, clientErr, topology.ErrBadTopologyName, "%q", name)
			assert.Equal(t, http.StatusBadRequest, code, "server's answer to %q", name)
			assert.Equal(t, api.DetailBadTopologyName, detail, "server's answer to %q", name)
		} else {
			assert.NoError(t, clientErr, "%q", name)
			assert.Equal(t, http.StatusOK, code, "server's answer to %q: %s", name, detail)
		}
		require.NoError(t, s.Release(t.Context())) // both references, if any
		require.NoError(t, s.Release(t.Context()))
	}
}

// postTopologyName sends POST /lab with topoA under the file name name,
// in a filename* parameter (RFC 2231: UTF-8, percent-encoded), so that
// any byte reaches the server. It returns the status code and the detail
// of an error answer.
func postTopologyName(t *testing.T, srv *remotelabtest.Server, session, name string) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="topology"; filename*=UTF-8''`+percentEncode(name))
	h.Set("Content-Type", "application/x-yaml")
	pw, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, err = io.WriteString(pw, topoA)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/lab", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set(api.HeaderSessionID, session)
	resp, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	var e api.Error
	require.NoError(t, json.Unmarshal(b, &e), "error answer %s", b)
	return resp.StatusCode, e.Detail
}

// percentEncode escapes every byte but ASCII letters, digits, '.', '-'
// and '_' (RFC 2231 ext-value).
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
