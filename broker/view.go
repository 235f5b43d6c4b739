package broker

import (
	"time"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/queue"
)

// View is the whole queue at one moment: what GET /queue, the dashboard,
// the CLI and the metrics show.
type View struct {
	Now time.Time
	// Holder is the active session (nil: none).
	Holder *Session
	// Waiting are the other sessions in queue order (while draining the
	// first of them may be at position 0).
	Waiting []Session
	// Lab is the host's lab.
	Lab lab.Status
	// HoldAverage is the mean of the last holds (HasHoldAverage false
	// before the first ended); Served counts the sessions that held the
	// lab and ended: this run's, plus those the saved state remembered.
	HoldAverage    time.Duration
	HasHoldAverage bool
	Served         int
	// Draining is true while promotions are paused; Quarantine is set
	// while the host is quarantined.
	Draining   bool
	Quarantine *Quarantine
}

// Queue returns the View.
func (b *Broker) Queue() View {
	now := time.Now()
	avg, hasAvg := b.ended.average()
	v := View{
		Now:            now,
		Lab:            b.mgr.Status(),
		HoldAverage:    avg,
		HasHoldAverage: hasAvg,
		Served:         b.ended.servedCount(),
		Draining:       b.q.IsPaused(),
	}
	if q, ok := b.Quarantined(); ok {
		v.Quarantine = &q
	}
	infos := b.q.Snapshot()
	var holderActive time.Duration
	for _, info := range infos {
		s := b.session(info)
		if info.Status == queue.Active {
			holderActive = now.Sub(info.Since)
			v.Holder = &s
			continue
		}
		if hasAvg && v.Holder != nil && !v.Draining {
			s.EstimatedWait, s.HasEstimate = estimate(avg, holderActive, info.Position), true
		}
		v.Waiting = append(v.Waiting, s)
	}
	return v
}

// session describes info without an estimate (Queue computes them all
// from one holder).
func (b *Broker) session(info queue.Info[*session]) Session {
	p := info.Payload
	return Session{
		ID:           info.ID,
		Owner:        p.owner,
		Labels:       p.labels,
		Status:       info.Status,
		Position:     info.Position,
		Epoch:        info.Epoch,
		Created:      info.Joined,
		Promoted:     info.Since,
		LastSeen:     info.LastSeen,
		WaitDeadline: info.WaitDeadline(),
		HoldDeadline: info.HoldDeadline(),
	}
}

// History returns up to limit ended sessions, newest first (at most
// HistoryLen).
func (b *Broker) History(limit int) []Ended { return b.ended.recent(limit) }

// Len returns the number of queued sessions.
func (b *Broker) Len() int { return b.q.Len() }

// Head returns the head session (ErrNotFound when the queue is empty)
// without refreshing it.
func (b *Broker) Head() (Session, error) {
	info, err := b.q.Head()
	if err != nil {
		return Session{}, ErrNotFound
	}
	return b.session(info), nil
}
