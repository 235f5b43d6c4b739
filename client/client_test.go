package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/client"
)

func TestNew(t *testing.T) {
	c, err := client.New("http://lab1:8000/")
	require.NoError(t, err)
	assert.Equal(t, "http://lab1:8000", c.URL())
	assert.Contains(t, c.String(), "http://lab1:8000")

	c, err = client.New("https://lab1/prefix//")
	require.NoError(t, err)
	assert.Equal(t, "https://lab1/prefix", c.URL())
}

func TestNewRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		url  string
		opts []client.Option
		want string
	}{
		"empty":              {url: "", want: "must be absolute"},
		"relative":           {url: "lab1:8000", want: "must be absolute"},
		"other scheme":       {url: "ftp://lab1", want: "must be absolute"},
		"query":              {url: "http://lab1?x=1", want: "query or fragment"},
		"unparsable":         {url: "http://[::1", want: "parse URL"},
		"negative timeout":   {url: "http://lab1", opts: []client.Option{client.WithRequestTimeout(-time.Second)}, want: "request timeout must not be negative"},
		"negative session":   {url: "http://lab1", opts: []client.Option{client.WithSessionTimeout(-1)}, want: "session timeout"},
		"negative acquire":   {url: "http://lab1", opts: []client.Option{client.WithAcquisitionTimeout(-1)}, want: "acquisition timeout"},
		"zero heartbeat":     {url: "http://lab1", opts: []client.Option{client.WithHeartbeatInterval(0)}, want: "heartbeat interval must be positive"},
		"zero poll interval": {url: "http://lab1", opts: []client.Option{client.WithPollInterval(0)}, want: "poll interval must be positive"},
		"nil http client":    {url: "http://lab1", opts: []client.Option{client.WithHTTPClient(nil)}, want: "http client"},
		"nil logger":         {url: "http://lab1", opts: []client.Option{client.WithLogger(nil)}, want: "logger"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := client.New(tc.url, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "new client: ")
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(client.EnvURL, " http://lab1:8000/ ")
	t.Setenv(client.EnvRequestTimeout, "45")
	t.Setenv(client.EnvSessionTimeout, "2.5")
	t.Setenv(client.EnvAcquisitionTimeout, "15m")
	t.Setenv(client.EnvHeartbeatInterval, "1s")
	c, err := client.FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "http://lab1:8000", c.URL())
	assert.Contains(t, c.String(), "request timeout 45s")
	assert.Contains(t, c.String(), "session timeout 2.5s")
	assert.Contains(t, c.String(), "acquisition timeout 15m0s")
	assert.Contains(t, c.String(), "heartbeat every 1s")

	// Options override the environment.
	c, err = client.FromEnv(client.WithRequestTimeout(time.Second))
	require.NoError(t, err)
	assert.Contains(t, c.String(), "request timeout 1s")
}

func TestFromEnvDefaults(t *testing.T) {
	t.Setenv(client.EnvURL, "http://lab1:8000")
	t.Setenv(client.EnvRequestTimeout, "")
	t.Setenv(client.EnvSessionTimeout, "")
	t.Setenv(client.EnvAcquisitionTimeout, "")
	t.Setenv(client.EnvHeartbeatInterval, "")
	c, err := client.FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "remotelab client of http://lab1:8000 (request timeout 30s, session timeout 10m0s, "+
		"acquisition timeout 10m0s, heartbeat every 1m0s)", c.String())
}

func TestFromEnvNoURL(t *testing.T) {
	t.Setenv(client.EnvURL, "  ")
	_, err := client.FromEnv()
	require.ErrorIs(t, err, client.ErrNoURL)
}

func TestFromEnvRejects(t *testing.T) {
	// The reasons are api.ParseDuration's: the client reads durations
	// exactly as the server reads ?wait=.
	for _, tc := range []struct{ name, value, reason string }{
		{client.EnvRequestTimeout, "soon", "want seconds (30, 2.5) or a Go duration (90s, 10m)"},
		{client.EnvSessionTimeout, "-5", "must not be negative"},
		{client.EnvAcquisitionTimeout, "-1m", "must not be negative"},
		{client.EnvRequestTimeout, "1e300", "want seconds"},
		{client.EnvRequestTimeout, "99999999999", "too large"},
		{client.EnvSessionTimeout, "9999999h", "too large"},
		{client.EnvRequestTimeout, "NaN", "want seconds"},
		{client.EnvSessionTimeout, "Inf", "want seconds"},
		{client.EnvHeartbeatInterval, "0", "must be positive"},
		{client.EnvHeartbeatInterval, "0s", "must be positive"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Setenv(client.EnvURL, "http://lab1:8000")
			t.Setenv(tc.name, tc.value)
			_, err := client.FromEnv()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.name)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", tc.value))
			assert.Contains(t, err.Error(), tc.reason)
		})
	}
	t.Run("bad URL", func(t *testing.T) {
		t.Setenv(client.EnvURL, "lab1:8000")
		_, err := client.FromEnv()
		require.Error(t, err)
		assert.Contains(t, err.Error(), client.EnvURL)
	})
}
