package broker_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/broker"
)

// TestLimitOwner: the per-owner limit counts Meta.LimitOwner when it is
// set (whatever owner the session states), also after a restart, and a
// session that leaves frees its share.
func TestLimitOwner(t *testing.T) {
	st := newMemStore()
	limit := func(c *broker.Config) { c.MaxSessionsPerOwner = 2 }
	e := newEnv(t, nil, withStore(st), limit)
	join := func(e *env, owner string) (broker.Session, error) {
		return e.b.Join(broker.Meta{Owner: owner, LimitOwner: "10.0.0.7"})
	}
	a, err := join(e, "alice")
	require.NoError(t, err)
	assert.Equal(t, "alice", a.Owner)
	_, err = join(e, "bob")
	require.NoError(t, err)
	_, err = join(e, "carol")
	var full *broker.FullError
	require.ErrorAs(t, err, &full)
	assert.Equal(t, "10.0.0.7", full.Owner)
	e.join("alice") // counted as alice: another share

	e.close()
	e2 := newEnv(t, nil, withStore(st), limit)
	_, err = join(e2, "dave")
	require.ErrorAs(t, err, &full, "the share survives a restart")
	require.NoError(t, e2.b.Leave(a.ID))
	_, err = join(e2, "dave")
	assert.NoError(t, err, "a session that left frees its share")
	assert.Equal(t, 3, e2.b.Len())
}
