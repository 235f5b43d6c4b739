package client_test

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// syncBuffer is a bytes.Buffer for a logger written from several
// goroutines (the heartbeats log too).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// An eviction by full id logs the session id shortened to 8 characters,
// as every log line does: a full id is a credential without auth.
func TestEvictLogsTheShortID(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	var logs syncBuffer
	c := srv.Client(client.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := t.Context()
	s, err := c.Open(ctx)
	require.NoError(t, err)
	defer s.Close(ctx)
	require.NoError(t, c.Admin().Evict(ctx, s.ID(), "maintenance"))
	assert.Contains(t, logs.String(), `msg="Session evicted" session=`+s.ID()[:8]+" ")
	assert.NotContains(t, logs.String(), s.ID())
}
