package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The memory of ended sessions holds at most EndedMemory of them and
// forgets the oldest first; an id that ended twice (a restored store)
// maps to its latest end.
func TestEndedLogRemembersAtMostEndedMemory(t *testing.T) {
	l := endedLog{byID: map[string]uint64{}}
	now := time.Now()
	for i := range EndedMemory + 5 {
		l.add(Ended{ID: fmt.Sprint("s", i), EndedAt: now, Promoted: now.Add(-time.Second)})
	}
	assert.Len(t, l.ring, EndedMemory)
	assert.LessOrEqual(t, len(l.byID), EndedMemory)
	for i := range 5 {
		_, ok := l.find(fmt.Sprint("s", i), now)
		assert.False(t, ok, "s%d was forgotten", i)
	}
	e, ok := l.find("s5", now)
	require.True(t, ok)
	assert.Equal(t, "s5", e.ID)
	e, ok = l.find(fmt.Sprint("s", EndedMemory+4), now)
	require.True(t, ok)

	recent := l.recent(HistoryLen + 1)
	require.Len(t, recent, HistoryLen)
	assert.Equal(t, fmt.Sprint("s", EndedMemory+4), recent[0].ID, "newest first")
	assert.Equal(t, fmt.Sprint("s", EndedMemory+5-HistoryLen), recent[HistoryLen-1].ID)
	assert.Equal(t, EndedMemory+5, l.servedCount())

	l.add(Ended{ID: "s5", EndedAt: now.Add(time.Minute), Outcome: "again"})
	e, ok = l.find("s5", now.Add(time.Minute))
	require.True(t, ok)
	assert.Equal(t, "again", e.Outcome, "the latest end of an id")
	_, ok = l.find("s5", now.Add(time.Minute+EndedMemoryAge+time.Second))
	assert.False(t, ok, "forgotten after EndedMemoryAge")
}
