package main

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/auth"
)

// writeAtomically replaces the file at path, so a reader never sees half
// of it.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// createAs creates a session with token (Bearer) and returns the status
// code.
func createAs(t *testing.T, base, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/session", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSIGHUPReloadsAuthFile: SIGHUP re-reads --auth-file: a token added
// becomes valid; a broken file is refused with an error in the log and
// the previous tokens stay in force.
func TestSIGHUPReloadsAuthFile(t *testing.T) {
	alice, err := auth.NewToken()
	require.NoError(t, err)
	bob, err := auth.NewToken()
	require.NoError(t, err)
	authFile := filepath.Join(t.TempDir(), "auth.yml")
	writeAtomically(t, authFile, "tokens:\n"+auth.Entry("alice", auth.User, alice))

	e := newEnv(t)
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--auth-file", authFile)
	base := p.baseURL()
	assert.Regexp(t, logRE("Authentication is on", "auth_file="+authFile, "tokens=1"), p.out.String())
	assert.Equal(t, http.StatusCreated, createAs(t, base, alice))
	assert.Equal(t, http.StatusUnauthorized, createAs(t, base, bob))

	writeAtomically(t, authFile, "tokens:\n"+auth.Entry("alice", auth.User, alice)+auth.Entry("bob", auth.User, bob))
	mark := p.mark()
	p.signal(syscall.SIGHUP)
	p.waitFrom(mark, logRE("Auth file reloaded", "auth_file="+authFile, "tokens=2"))
	assert.Equal(t, http.StatusCreated, createAs(t, base, bob), "the added token is valid")

	writeAtomically(t, authFile, "tokens:\n  - name: carol\n    role: superuser\n")
	mark = p.mark()
	p.signal(syscall.SIGHUP)
	p.waitFrom(mark, `level=ERROR `+logRE("Auth file not reloaded; the previous tokens stay in force", "auth_file="+authFile))
	assert.Equal(t, http.StatusCreated, createAs(t, base, bob), "the previous tokens stay")
	assert.Equal(t, http.StatusCreated, createAs(t, base, alice))

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.waitExit(), "SIGHUP does not stop the server")
}
