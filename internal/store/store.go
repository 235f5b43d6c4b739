// Package store keeps remotelabd's state in one bbolt file (state.db): the
// queue (sessions, the epoch counter, whether promotions are paused), the
// memory of ended sessions, the quarantine and the lab record. It
// implements broker.Store and, through LabRecords, lab.RecordStore.
//
// Changes are buffered in order and written by one goroutine in group
// commits: everything handed over while a commit runs goes into the next
// one, so many clients waiting for their change to be durable (Sync) share
// one fsync. A commit that fails (a full disk) keeps its changes, in
// order, and is retried with backoff, or at once when a new change
// arrives; meanwhile Err reports the failure and Sync returns it. The
// changes buffered while commits fail are bounded (maxBacklog): beyond
// that the store gives up saving until a restart.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
)

// Bucket and key names of the file. formatVersion changes only with an
// incompatible layout; a file of another version is moved aside. The ended
// bucket is keyed by a big-endian sequence number, consecutive and oldest
// first.
var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketEnded    = []byte("ended")

	keyVersion    = []byte("version")
	keyEpoch      = []byte("epoch")
	keyPaused     = []byte("paused")
	keyQuarantine = []byte("quarantine")
	keyLab        = []byte("lab")
)

const formatVersion = "1"

// Retry and backlog bounds of failing commits.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
	// maxBacklog bounds the changes kept while commits fail; beyond it
	// the store gives up saving (the file is then stale until a restart
	// writes afresh).
	maxBacklog = 1 << 17
	// labSaveTimeout bounds how long a lab record save waits to be
	// durable.
	labSaveTimeout = 30 * time.Second
)

// ErrClosed is returned by Sync (and the lab record's Save and Delete)
// for changes Close left unsaved: those handed over after Close, and
// those its last commit failed to write (then together with that
// commit's error).
var ErrClosed = errors.New("state store closed")

// op is one buffered change.
type op func(tx *bolt.Tx) error

// Store is remotelabd's state file. It is safe for concurrent use; the
// caller must Close it.
type Store struct {
	db  *bolt.DB
	log *slog.Logger

	// Changes are numbered in call order from 1: 1..committed are
	// durable; the next ones are the batch a commit is writing (if any),
	// then pending. Changes refused after Close or giving up are counted
	// in appended but never saved: Sync reports them.
	mu         sync.Mutex
	pending    []op
	appended   uint64        // changes handed over (including refused ones)
	committed  uint64        // changes durable
	attempted  uint64        // changes the last commit attempt covered
	err        error         // the last commit's error; nil once one succeeds
	gaveUp     bool          // the backlog overflowed: nothing more is saved
	closed     bool          // Close was called: changes are refused
	stopped    bool          // the writer has returned: nothing more is committed
	labJSON    []byte        // the lab record last handed over; nil: none
	changed    chan struct{} // closed after every commit attempt
	kick       chan struct{} // 1-buffered: there is something to commit
	done       chan struct{} // the writer has returned
	maxBacklog int           // maxBacklog; lowered by tests
	// failCommit, set by tests, is called in every commit; an error
	// fails the commit.
	failCommit func() error
}

var _ broker.Store = (*Store)(nil)

// Unavailable returns a Store that saves nothing and reports err, for a
// server that runs on although its state file cannot be opened. Its
// Close does nothing.
func Unavailable(err error) *Store {
	s := &Store{err: err, gaveUp: true, changed: make(chan struct{}), done: make(chan struct{})}
	close(s.done)
	return s
}

func (s *Store) start() {
	s.changed = make(chan struct{})
	s.kick = make(chan struct{}, 1)
	s.done = make(chan struct{})
	s.maxBacklog = maxBacklog
	go s.writer()
}

// append buffers a change and wakes the writer. A refused change (after
// Close, or once the store gave up) is counted, so that Sync reports it.
func (s *Store) append(o op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appended++
	if s.gaveUp || s.closed {
		return
	}
	if len(s.pending) >= s.maxBacklog {
		s.gaveUp = true
		s.pending = nil
		gaveUp := fmt.Errorf("gave up saving after %d unsaved changes; the state file is stale until a restart", s.maxBacklog)
		if s.err != nil {
			gaveUp = fmt.Errorf("%w: %w", gaveUp, s.err)
		}
		s.err = gaveUp
		s.log.Error("State store gave up saving", "err", s.err)
		return
	}
	s.pending = append(s.pending, o)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// writer commits the buffered changes in batches until Close. A failed
// commit is retried after a backoff, or at once when a new change (or
// Close) arrives, so that a freed disk is used by the next change.
func (s *Store) writer() {
	defer close(s.done)
	backoff := retryFirst
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closed {
			s.mu.Unlock()
			<-s.kick
			s.mu.Lock()
		}
		if len(s.pending) == 0 {
			s.stopLocked()
			s.mu.Unlock()
			return
		}
		batch, hook := s.pending, s.failCommit
		s.pending = nil
		s.mu.Unlock()

		err := s.commit(batch, hook)

		s.mu.Lock()
		upto := s.committed + uint64(len(batch))
		s.attempted = upto
		switch {
		case err == nil:
			s.committed = upto
			if s.err != nil && !s.gaveUp {
				s.log.Info("State store saves again")
				s.err = nil
			}
			backoff = retryFirst
		case s.gaveUp:
			// The backlog overflowed meanwhile: this batch is dropped too.
		default:
			if s.err == nil {
				s.log.Error("Cannot save the state; retrying", "err", err, "changes", len(batch))
			}
			s.err = fmt.Errorf("save state: %w", err)
			// Keep the batch, in order, ahead of newer changes.
			s.pending = append(batch, s.pending...)
		}
		closed := s.closed
		if err != nil && closed {
			s.stopped = true // Close does not wait out a failing disk
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()

		if err != nil {
			if closed {
				return
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.kick:
				t.Stop()
			}
			backoff = min(2*backoff, retryMax)
		}
	}
}

// stopLocked records that the writer returns and wakes Sync callers.
func (s *Store) stopLocked() {
	s.stopped = true
	close(s.changed)
	s.changed = make(chan struct{})
}

// commit writes a batch in one transaction (one fsync).
func (s *Store) commit(batch []op, hook func() error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if hook != nil {
			if err := hook(); err != nil {
				return err
			}
		}
		for _, o := range batch {
			if err := o(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

// Sync blocks until every change handed over before the call is durable.
// It returns early with the error of a failed commit that covered them
// (they stay buffered and are retried), with ErrClosed if Close stopped
// the store before they were saved, or with ctx's error.
func (s *Store) Sync(ctx context.Context) error {
	s.mu.Lock()
	target := s.appended
	for {
		switch {
		case s.committed >= target:
			s.mu.Unlock()
			return nil
		case s.stopped:
			err := s.err
			s.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrClosed, err)
			}
			return ErrClosed
		case s.gaveUp || (s.err != nil && s.attempted >= target):
			err := s.err
			s.mu.Unlock()
			return err
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
}

// Err reports a store that currently fails to save.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close commits what is buffered and closes the file. It blocks until a
// commit in progress ends and for one more attempt at most: with a failing
// disk it returns the commit's error, without waiting for a retry, and the
// buffered changes are lost. Changes handed over later are refused (Sync
// reports ErrClosed). Later calls return nil at once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	kick := s.kick
	s.mu.Unlock()
	if kick == nil { // Unavailable
		return nil
	}
	select {
	case kick <- struct{}{}:
	default:
	}
	<-s.done
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if cerr := s.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close state store: %w", cerr))
	}
	return err
}

// PutSession implements broker.Store.
func (s *Store) PutSession(ss broker.SavedSession) {
	data := mustJSON(ss)
	s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(ss.ID), data) })
}

// DeleteSession implements broker.Store.
func (s *Store) DeleteSession(id string) {
	s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(id)) })
}

// PutEpoch implements broker.Store.
func (s *Store) PutEpoch(epoch uint64) {
	s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEpoch, u64(epoch)) })
}

// PutPaused implements broker.Store.
func (s *Store) PutPaused(paused bool) {
	v := []byte{0}
	if paused {
		v[0] = 1
	}
	s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyPaused, v) })
}

// PutQuarantine implements broker.Store.
func (s *Store) PutQuarantine(q *broker.Quarantine) {
	if q == nil {
		s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyQuarantine) })
		return
	}
	data := mustJSON(q)
	s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyQuarantine, data) })
}

// AddEnded implements broker.Store: it keeps the last
// broker.EndedMemory ends.
func (s *Store) AddEnded(e broker.Ended) {
	data := mustJSON(e)
	s.append(func(tx *bolt.Tx) error { return addEnded(tx.Bucket(bucketEnded), data) })
}

// addEnded stores an end under the number after the newest and drops the
// one that falls out of the memory. The number is read in the
// transaction, so a commit that fails and is retried numbers it again
// from what is on disk.
func addEnded(b *bolt.Bucket, data []byte) error {
	b.FillPercent = 0.9 // appends only: fill pages instead of splitting them in half
	seq := uint64(1)
	if k, _ := b.Cursor().Last(); k != nil {
		if len(k) != 8 {
			return fmt.Errorf("%w (bad ended session key %x)", errFormat, k)
		}
		seq = binary.BigEndian.Uint64(k) + 1
	}
	if err := b.Put(u64(seq), data); err != nil {
		return err
	}
	if seq <= broker.EndedMemory {
		return nil
	}
	return b.Delete(u64(seq - broker.EndedMemory))
}

// LabRecords returns the lab record half of the store, for
// lab.Config.Records: Load gives the record last handed to Save (at
// first, the one the file held when it was opened); Save and Delete block
// until the change is durable (a record must be on disk before `netlab
// up` runs, so a crash can be recovered), at most labSaveTimeout, and
// return the error of a failed commit.
func (s *Store) LabRecords() lab.RecordStore { return labRecords{s} }

type labRecords struct{ s *Store }

func (r labRecords) Load() (*lab.Record, error) {
	r.s.mu.Lock()
	data := r.s.labJSON
	r.s.mu.Unlock()
	if data == nil {
		return nil, nil
	}
	var rec lab.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("load lab record: %w", err)
	}
	return &rec, nil
}

func (r labRecords) Save(rec lab.Record) error {
	data := mustJSON(rec)
	r.s.mu.Lock()
	r.s.labJSON = data
	r.s.mu.Unlock()
	r.s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyLab, data) })
	if err := r.sync(); err != nil {
		return fmt.Errorf("save lab record: %w", err)
	}
	return nil
}

func (r labRecords) Delete() error {
	r.s.mu.Lock()
	r.s.labJSON = nil
	r.s.mu.Unlock()
	r.s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyLab) })
	if err := r.sync(); err != nil {
		return fmt.Errorf("delete lab record: %w", err)
	}
	return nil
}

func (r labRecords) sync() error {
	ctx, cancel := context.WithTimeout(context.Background(), labSaveTimeout)
	defer cancel()
	return r.s.Sync(ctx)
}

// mustJSON encodes a value of the store's own types, which always
// encode.
func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic("store: encode: " + err.Error())
	}
	return data
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
