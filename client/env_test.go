package client_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
)

// ciVars are the variables CI job detection reads.
var ciVars = []string{"GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "CI_JOB_URL", "BUILD_URL"}

// cleanEnv unsets the session and CI variables for the test.
func cleanEnv(t *testing.T) {
	for _, k := range append([]string{client.EnvOwner, client.EnvLabels, client.EnvWaitTimeout, client.EnvToken}, ciVars...) {
		t.Setenv(k, "")
	}
	t.Setenv(client.EnvURL, "http://lab.invalid")
}

// The environment's session defaults and token reach POST /session.
func TestFromEnvSessionDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		want  api.SessionRequest
		token string
	}{
		{name: "nothing set", want: api.SessionRequest{Owner: client.DefaultOwner()}},
		{name: "owner", env: map[string]string{client.EnvOwner: " bob@laptop "}, want: api.SessionRequest{Owner: "bob@laptop"}},
		{name: "labels", env: map[string]string{client.EnvLabels: "suite=ospf, team = net ,,url=http://x/?a=b"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), Labels: map[string]string{"suite": "ospf", "team": "net", "url": "http://x/?a=b"}}},
		{name: "wait timeout seconds", env: map[string]string{client.EnvWaitTimeout: "90"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), WaitTimeout: ptr(90.0)}},
		{name: "wait timeout duration", env: map[string]string{client.EnvWaitTimeout: "1m30s"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), WaitTimeout: ptr(90.0)}},
		{name: "wait timeout zero is none", env: map[string]string{client.EnvWaitTimeout: "0"},
			want: api.SessionRequest{Owner: client.DefaultOwner()}},
		{name: "github", env: map[string]string{"GITHUB_SERVER_URL": "https://github.com/", "GITHUB_REPOSITORY": "acme/net", "GITHUB_RUN_ID": "42"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), Labels: map[string]string{"job": "https://github.com/acme/net/actions/runs/42"}}},
		{name: "github incomplete", env: map[string]string{"GITHUB_SERVER_URL": "https://github.com", "GITHUB_RUN_ID": "42"},
			want: api.SessionRequest{Owner: client.DefaultOwner()}},
		{name: "gitlab", env: map[string]string{"CI_JOB_URL": "https://gitlab.example/acme/net/-/jobs/7"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), Labels: map[string]string{"job": "https://gitlab.example/acme/net/-/jobs/7"}}},
		{name: "jenkins", env: map[string]string{"BUILD_URL": "https://jenkins.example/job/net/9/"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), Labels: map[string]string{"job": "https://jenkins.example/job/net/9/"}}},
		{name: "explicit job wins", env: map[string]string{"BUILD_URL": "https://jenkins.example/job/net/9/", client.EnvLabels: "job=mine"},
			want: api.SessionRequest{Owner: client.DefaultOwner(), Labels: map[string]string{"job": "mine"}}},
		{name: "overlong job left out", env: map[string]string{"CI_JOB_URL": "https://ci/" + strings.Repeat("x", 300)},
			want: api.SessionRequest{Owner: client.DefaultOwner()}},
		{name: "token", env: map[string]string{client.EnvToken: " rlab_abc "}, token: "rlab_abc",
			want: api.SessionRequest{Owner: client.DefaultOwner()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := newFakeSessions(0)
			c, err := client.FromEnv(client.WithHTTPClient(&http.Client{Transport: pipeTransport{f.handler()}}))
			require.NoError(t, err)
			s, err := c.Open(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.Close(t.Context()))
			got, h := f.requestBody(t)
			assert.Equal(t, tc.want, got)
			if tc.token == "" {
				assert.Empty(t, h.Values("Authorization"))
			} else {
				assert.Equal(t, "Bearer "+tc.token, h.Get("Authorization"))
			}
		})
	}
}

// Open options override the environment's defaults; labels add to them.
func TestFromEnvOpenOverrides(t *testing.T) {
	cleanEnv(t)
	t.Setenv(client.EnvOwner, "env-owner")
	t.Setenv(client.EnvLabels, "a=1,b=2")
	t.Setenv(client.EnvWaitTimeout, "60")
	f := newFakeSessions(0)
	c, err := client.FromEnv(client.WithHTTPClient(&http.Client{Transport: pipeTransport{f.handler()}}))
	require.NoError(t, err)
	s, err := c.Open(t.Context(), client.WithOwner("cli"), client.WithLabels(map[string]string{"b": "3"}), client.WithWaitTimeout(0))
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	got, _ := f.requestBody(t)
	assert.Equal(t, api.SessionRequest{Owner: "cli", Labels: map[string]string{"a": "1", "b": "3"}}, got)
}

func TestFromEnvRejectsSessionDefaults(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{client.EnvLabels, "novalue", `label "novalue": want key=value`},
		{client.EnvLabels, "=v", `label "=v": empty key`},
		{client.EnvLabels, "a=1,a=2", `label "a" given twice`},
		{client.EnvLabels, "bad key=1", "label keys are 1 to 63 characters"},
		{client.EnvLabels, "k=" + strings.Repeat("v", 257), "label values must be at most 256"},
		{client.EnvLabels, manyLabelsText(17), "at most 16 labels"},
		{client.EnvOwner, strings.Repeat("o", 129), "want at most 128 printable characters"},
		{client.EnvOwner, "a\x01b", "want at most 128 printable characters"},
		{client.EnvWaitTimeout, "soon", "want seconds"},
		{client.EnvWaitTimeout, "-5", "must not be negative"},
		{client.EnvToken, "two words", "token must be printable ASCII"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			cleanEnv(t)
			t.Setenv(tc.name, tc.value)
			_, err := client.FromEnv()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "client from env: "+tc.name)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("CI job fills the 17th label", func(t *testing.T) {
		cleanEnv(t)
		t.Setenv(client.EnvLabels, manyLabelsText(16))
		t.Setenv("BUILD_URL", "https://jenkins/1")
		_, err := client.FromEnv()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "at most 16 labels, got 17")
	})
}

func manyLabelsText(n int) string {
	var parts []string
	for k := range manyLabels(n) {
		parts = append(parts, k+"=v")
	}
	return strings.Join(parts, ",")
}

func TestParseLabels(t *testing.T) {
	got, err := client.ParseLabels("")
	require.NoError(t, err)
	assert.Nil(t, got)
	got, err = client.ParseLabels("k=a=b")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"k": "a=b"}, got)
	got, err = client.ParseLabels("empty=")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"empty": ""}, got)
}

func TestCIJob(t *testing.T) {
	for _, k := range ciVars {
		t.Setenv(k, "")
	}
	assert.Empty(t, client.CIJob())
	t.Setenv("BUILD_URL", "https://j/1")
	t.Setenv("CI_JOB_URL", "https://g/2")
	assert.Equal(t, "https://g/2", client.CIJob(), "GitLab before Jenkins")
	t.Setenv("GITHUB_SERVER_URL", "https://github.com")
	t.Setenv("GITHUB_REPOSITORY", "o/r")
	t.Setenv("GITHUB_RUN_ID", "3")
	assert.Equal(t, "https://github.com/o/r/actions/runs/3", client.CIJob(), "GitHub first")
}

func TestDefaultOwner(t *testing.T) {
	o := client.DefaultOwner()
	user, host, ok := strings.Cut(o, "@")
	require.True(t, ok, o)
	assert.NotEmpty(t, user)
	assert.NotEmpty(t, host)
	assert.True(t, api.ValidText(o, api.MaxOwnerLen), o)
}

// The wait timeout from the environment reaches the request's seconds
// exactly, also for fractions.
func TestFromEnvWaitTimeoutFraction(t *testing.T) {
	cleanEnv(t)
	t.Setenv(client.EnvWaitTimeout, "2.5")
	opts, err := client.OpenOptionsFromEnv()
	require.NoError(t, err)
	f := newFakeSessions(0)
	c := pipeClient(t, f.handler(), nil, client.WithOpenDefaults(opts...))
	s, err := c.Open(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	got, _ := f.requestBody(t)
	assert.Equal(t, ptr((2500 * time.Millisecond).Seconds()), got.WaitTimeout)
}
