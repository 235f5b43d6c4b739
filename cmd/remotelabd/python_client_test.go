package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/auth"
)

// pythonWithRequests finds a Python 3 that can import requests (Debian's
// python3-requests is enough): /usr/bin/python3 first, then python3 on
// PATH. Without one the test skips, unless REMOTELAB_PYTHON_REQUIRED=1 (CI).
func pythonWithRequests(t *testing.T) string {
	t.Helper()
	for _, cand := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(cand)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import requests, urllib3").Run() == nil {
			return path
		}
	}
	msg := "no python3 with the requests module (Debian: apt-get install python3-requests)"
	if os.Getenv("REMOTELAB_PYTHON_REQUIRED") == "1" {
		t.Fatal(msg + "; REMOTELAB_PYTHON_REQUIRED=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

// TestUnchangedPythonClientWithAuth runs a stand-in of the unchanged Python
// RemoteLabClient (testdata/python) against remotelabd with --auth-file: it
// authenticates only through ~/.netrc, as the original does through
// requests, and must open, acquire, release, destroy and close; another
// user's token is refused on its session.
func TestUnchangedPythonClientWithAuth(t *testing.T) {
	py := pythonWithRequests(t)
	e := newEnv(t)
	alice, err := auth.NewToken()
	require.NoError(t, err)
	bob, err := auth.NewToken()
	require.NoError(t, err)
	authFile := filepath.Join(t.TempDir(), "auth.yml")
	require.NoError(t, os.WriteFile(authFile,
		[]byte("tokens:\n"+auth.Entry("alice", auth.User, alice)+auth.Entry("bob", auth.User, bob)), 0o600))
	p := start(t, e, "--runner", "sim", "--host", "127.0.0.1", "--port", "0", "--auth-file", authFile)
	base := p.baseURL()

	home := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(home, ".netrc"),
		[]byte("machine 127.0.0.1\n  login alice\n  password "+alice+"\n"), 0o600))
	topo := filepath.Join(t.TempDir(), "lab.yml")
	require.NoError(t, os.WriteFile(topo, []byte(testTopology), 0o644))

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "check_auth.py", base, topo, bob)
	cmd.Dir = filepath.Join("testdata", "python")
	cmd.Env = append(os.Environ(), "HOME="+home, "PYTHONDONTWRITEBYTECODE=1", "NO_PROXY=*", "no_proxy=*")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("python client:\n%s", out.String())
	require.NoError(t, err)
	assert.Contains(t, out.String(), "all checks passed")
	// The session belongs to the .netrc user.
	p.waitFor(`msg=request .*method=POST path=/session status=201 .*caller=alice`)
}
