package broker

import (
	"sync"
	"time"
)

// endedLog remembers the last EndedMemory ended sessions: History lists the
// newest of them, a call naming one that ended within EndedMemoryAge learns
// why (EndedError), and the holds among them make the wait estimate.
type endedLog struct {
	mu    sync.Mutex
	list  []Ended           // oldest first
	first uint64            // the number of list[0]; numbers grow by one per end
	byID  map[string]uint64 // session id → number
	// holds are the last EstimateWindow hold durations, a ring.
	holds  [EstimateWindow]time.Duration
	nHolds int
	served int // ended sessions that held the lab
}

// add records an end.
func (l *endedLog) add(e Ended) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byID[e.ID] = l.first + uint64(len(l.list))
	l.list = append(l.list, e)
	if held, ok := e.Held(); ok {
		l.holds[l.served%EstimateWindow] = held
		l.served++
		l.nHolds = min(l.nHolds+1, EstimateWindow)
	}
	// Trim in batches, so the copy is amortised over many adds.
	if len(l.list) >= EndedMemory+EndedMemory/4 {
		drop := len(l.list) - EndedMemory
		for _, old := range l.list[:drop] {
			if l.byID[old.ID] < l.first+uint64(drop) {
				delete(l.byID, old.ID)
			}
		}
		l.list = append([]Ended(nil), l.list[drop:]...)
		l.first += uint64(drop)
	}
}

// find returns the end of session id if it ended within EndedMemoryAge of
// now.
func (l *endedLog) find(id string, now time.Time) (Ended, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.byID[id]
	if !ok || n < l.first {
		return Ended{}, false
	}
	e := l.list[n-l.first]
	if now.Sub(e.EndedAt) > EndedMemoryAge {
		return Ended{}, false
	}
	return e, true
}

// recent returns up to limit ends, newest first (at most HistoryLen).
func (l *endedLog) recent(limit int) []Ended {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit = min(limit, HistoryLen, len(l.list))
	out := make([]Ended, 0, max(limit, 0))
	for i := len(l.list) - 1; len(out) < limit; i-- {
		out = append(out, l.list[i])
	}
	return out
}

// average returns the mean of the last EstimateWindow holds; ok is false
// before the first hold ended.
func (l *endedLog) average() (avg time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nHolds == 0 {
		return 0, false
	}
	var sum time.Duration
	for _, h := range l.holds[:l.nHolds] {
		sum += h
	}
	return sum / time.Duration(l.nHolds), true
}

// servedCount returns how many remembered ends had held the lab.
func (l *endedLog) servedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served
}
