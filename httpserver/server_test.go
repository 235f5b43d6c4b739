package httpserver_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

func TestNewRejectsBadConfig(t *testing.T) {
	mgr, err := lab.NewManager(lab.Config{Runner: &remotelabtest.FakeRunner{}, WorkRoot: t.TempDir(), LockPath: "-"})
	require.NoError(t, err)
	defer mgr.Close(t.Context())
	for name, cfg := range map[string]httpserver.Config{
		"no manager":       {},
		"negative TTL":     {Manager: mgr, ActiveTTL: -time.Second},
		"negative wait":    {Manager: mgr, MaxWait: -1},
		"negative limit":   {Manager: mgr, Limits: topology.Limits{MaxFiles: -1}},
		"negative topo":    {Manager: mgr, Limits: topology.Limits{MaxTopologyBytes: -1}},
		"negative waiting": {Manager: mgr, WaitingTTL: -time.Second},
	} {
		s, err := httpserver.New(cfg)
		assert.Error(t, err, name)
		assert.Nil(t, s, name)
	}
	s, err := httpserver.New(httpserver.Config{Manager: mgr})
	require.NoError(t, err)
	assert.Zero(t, s.Sessions())
	s.Close()
	s.Close() // idempotent
}
