package httpserver_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

func TestNewRejectsBadConfig(t *testing.T) {
	b, err := broker.New(broker.Config{Lab: lab.Config{Runner: &remotelabtest.FakeRunner{}, WorkRoot: t.TempDir(), LockPath: "-"}})
	require.NoError(t, err)
	_, err = b.Start(context.Background())
	require.NoError(t, err)
	defer b.Close(t.Context())
	for name, cfg := range map[string]httpserver.Config{
		"no broker":       {},
		"negative wait":   {Broker: b, MaxWait: -1},
		"negative upload": {Broker: b, UploadTimeout: -1},
		"negative limit":  {Broker: b, Limits: topology.Limits{MaxFiles: -1}},
		"negative topo":   {Broker: b, Limits: topology.Limits{MaxTopologyBytes: -1}},
	} {
		s, err := httpserver.New(cfg)
		assert.Error(t, err, name)
		assert.Nil(t, s, name)
	}
	s, err := httpserver.New(httpserver.Config{Broker: b})
	require.NoError(t, err)
	s.Close()
	s.Close() // idempotent
}
