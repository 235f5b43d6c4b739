package broker

import (
	"sync"
	"time"
)

// endedLog remembers the last EndedMemory ended sessions: History lists the
// newest of them, a call naming one that ended within EndedMemoryAge learns
// why (EndedError), and the holds among them make the wait estimate.
type endedLog struct {
	mu   sync.Mutex
	ring []Ended // at most EndedMemory; end n is ring[n%EndedMemory]
	// byID maps a session id to its end's number: ends are numbered from
	// 0 in order, and end n lives in ring[n%EndedMemory] while n >= total-EndedMemory.
	byID  map[string]uint64
	total uint64 // ends recorded
	// holds are the last EstimateWindow hold durations, a ring indexed
	// by served.
	holds  [EstimateWindow]time.Duration
	served int // remembered ends (this run's and the saved state's) that held the lab
}

// add records an end, forgetting the oldest one when EndedMemory are
// remembered.
func (l *endedLog) add(e Ended) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < EndedMemory {
		l.ring = append(l.ring, e)
	} else {
		old := l.at(l.total)
		if l.byID[old.ID] == l.total-EndedMemory {
			delete(l.byID, old.ID)
		}
		l.ring[l.total%EndedMemory] = e
	}
	l.byID[e.ID] = l.total
	l.total++
	if held, ok := e.Held(); ok {
		l.holds[l.served%EstimateWindow] = held
		l.served++
	}
}

// at returns end number n; the caller checks that it is remembered.
func (l *endedLog) at(n uint64) Ended { return l.ring[n%EndedMemory] }

// find returns the end of session id if it ended within EndedMemoryAge of
// now.
func (l *endedLog) find(id string, now time.Time) (Ended, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.byID[id]
	if !ok || l.total-n > uint64(len(l.ring)) {
		return Ended{}, false
	}
	e := l.at(n)
	if now.Sub(e.EndedAt) > EndedMemoryAge {
		return Ended{}, false
	}
	return e, true
}

// recent returns up to limit ends, newest first (at most HistoryLen).
func (l *endedLog) recent(limit int) []Ended {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit = max(min(limit, HistoryLen, len(l.ring)), 0)
	out := make([]Ended, 0, limit)
	for n := l.total; len(out) < limit; n-- {
		out = append(out, l.at(n-1))
	}
	return out
}

// average returns the mean of the last EstimateWindow holds; ok is false
// before the first hold ended.
func (l *endedLog) average() (avg time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(l.served, EstimateWindow)
	if n == 0 {
		return 0, false
	}
	var sum time.Duration
	for _, h := range l.holds[:n] {
		sum += h
	}
	return sum / time.Duration(n), true
}

// servedCount returns how many ended sessions had held the lab: this
// run's, plus those the saved state remembered.
func (l *endedLog) servedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.served
}
