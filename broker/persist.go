package broker

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/remotelab-go/remotelab/queue"
)

// Store keeps what the Broker must not lose in a restart. The Broker calls
// the Put, Delete and Add methods in the order its changes happen, some of
// them with the queue's lock held: they must only buffer the change and
// return at once, and must apply the changes in call order. Sync makes
// everything handed over so far durable; the Broker calls it before a
// change is announced (an answer, a promotion), so batching several
// callers' changes into one commit is the Store's business.
type Store interface {
	PutSession(SavedSession)
	DeleteSession(id string)
	// PutEpoch records the last lease epoch handed out.
	PutEpoch(epoch uint64)
	// PutPaused records whether promotions are paused (draining).
	PutPaused(paused bool)
	// AddEnded records a session end; the Store keeps the last
	// EndedMemory of them.
	AddEnded(Ended)
	// PutQuarantine records the quarantine; nil lifts it.
	PutQuarantine(*Quarantine)
	// Sync blocks until every change handed over before the call is
	// durable, or ctx ends. Its error (also for an earlier failed commit)
	// says the state is not being saved.
	Sync(ctx context.Context) error
	// Err reports a store that currently fails to save (nil when fine).
	Err() error
}

// SavedSession is a session as a Store keeps it. Heartbeat times are not
// kept: a restored session gets a full TTL.
type SavedSession struct {
	ID     string            `json:"id"`
	Seq    uint64            `json:"seq"` // join order
	Owner  string            `json:"owner"`
	Labels map[string]string `json:"labels,omitempty"`
	// LimitOwner is whom the per-owner limit counts it against, when
	// that is not Owner (see Meta.LimitOwner).
	LimitOwner string `json:"limit_owner,omitempty"`
	// Created is when it joined; Promoted when it became active (zero
	// while waiting) under lease Epoch.
	Created  time.Time `json:"created_at"`
	Promoted time.Time `json:"promoted_at,omitzero"`
	Epoch    uint64    `json:"epoch,omitempty"`
	// WaitTimeout and MaxHold are its limits.
	WaitTimeout time.Duration `json:"wait_timeout,omitempty"`
	MaxHold     time.Duration `json:"max_hold,omitempty"`
	// Lab is what it last acquired.
	Lab *LabUse `json:"lab,omitempty"`
}

// Quarantine describes a quarantined host.
type Quarantine struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// State is what a Store loaded: the Broker's state at the end of the
// previous run.
type State struct {
	Sessions   []SavedSession // in any order; Start sorts them by Seq
	LastEpoch  uint64
	Paused     bool
	Ended      []Ended // oldest first
	Quarantine *Quarantine
}

// saved describes a queued session for the Store.
func saved(info queue.Info[*session]) SavedSession {
	p := info.Payload
	ss := SavedSession{
		ID: info.ID, Seq: p.seq, Owner: p.owner, Labels: p.labels,
		Created: info.Joined, Promoted: info.Since, Epoch: info.Epoch,
		WaitTimeout: info.WaitTimeout, MaxHold: info.MaxHold,
		Lab: p.labUse(),
	}
	if p.limitOwner != p.owner {
		ss.LimitOwner = p.limitOwner
	}
	return ss
}

// restore builds the queue from st (nil: an empty queue).
func (b *Broker) restore(st *State) {
	cfg := queue.Config[*session]{
		ActiveTTL:  b.cfg.ActiveTTL,
		WaitingTTL: b.cfg.WaitingTTL,
		OnRemove:   b.onRemove,
		OnPromote:  b.onPromote,
		Journal:    b.journal,
	}
	if st != nil {
		sessions := slices.Clone(st.Sessions)
		slices.SortFunc(sessions, func(a, c SavedSession) int { return cmp.Compare(a.Seq, c.Seq) })
		seen := make(map[string]bool, len(sessions))
		for _, s := range sessions {
			if s.ID == "" || seen[s.ID] {
				continue // a damaged store: the queue would skip it too
			}
			seen[s.ID] = true
			p := newSession(s.Seq, s.Owner, s.LimitOwner, s.Labels)
			// Counted before the queue starts: its first sweep may
			// already end sessions whose deadlines passed meanwhile.
			b.admission.add(p.limitOwner)
			if s.Lab != nil {
				l := *s.Lab
				p.lab = &l
			}
			cfg.Restore = append(cfg.Restore, queue.Restored[*session]{
				ID: s.ID, Payload: p, Joined: s.Created, Epoch: s.Epoch, Since: s.Promoted,
				WaitTimeout: s.WaitTimeout, MaxHold: s.MaxHold,
			})
			b.seq.Store(max(b.seq.Load(), s.Seq))
		}
		cfg.LastEpoch = st.LastEpoch
		cfg.Paused = st.Paused
		for _, e := range st.Ended {
			b.ended.add(e)
		}
		if q := st.Quarantine; q != nil {
			b.health.restore(*q)
		}
		if len(sessions) > 0 {
			b.log.Info("Restored the saved queue", "sessions", len(sessions), "last_epoch", st.LastEpoch,
				"paused", st.Paused)
		}
	}
	b.q = queue.New(cfg)
}
