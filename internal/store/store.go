// Package store keeps remotelabd's state in one bbolt file (state.db): the
// queue (sessions, the epoch counter, whether promotions are paused), the
// memory of ended sessions, the quarantine and the lab record. It
// implements broker.Store and, through LabRecords, lab.RecordStore.
//
// Changes are buffered in order and written by one goroutine in group
// commits: everything handed over while a commit runs goes into the next
// one, so many clients waiting for their change to be durable (Sync) share
// one fsync. A commit that fails (a full disk) is retried with backoff;
// meanwhile Err reports it and Sync returns it.
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
// incompatible layout; a file of another version is moved aside.
var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketEnded    = []byte("ended")

	keyVersion    = []byte("version")
	keyEpoch      = []byte("epoch")
	keyPaused     = []byte("paused")
	keyQuarantine = []byte("quarantine")
	keyLab        = []byte("lab")
	keyEndedSeq   = []byte("ended_seq")
)

const formatVersion = "1"

// Retry and backlog bounds of failing commits.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
	// maxBacklog bounds the changes kept while commits fail; beyond it
	// the store gives up saving (the file is then stale until a restart
	// writes afresh).
	maxBacklog = 1 << 20
	// labSaveTimeout bounds how long a lab record save waits to be
	// durable.
	labSaveTimeout = 30 * time.Second
	// trimEvery is how many ends are added between trims of the ended
	// sessions to broker.EndedMemory.
	trimEvery = 500
)

// op is one buffered change.
type op func(tx *bolt.Tx) error

// Store is remotelabd's state file. It is safe for concurrent use; the
// caller must Close it.
type Store struct {
	db  *bolt.DB
	log *slog.Logger

	mu        sync.Mutex
	lab       *lab.Record // the lab record, as last loaded or saved
	pending   []op
	appended  uint64        // changes handed over
	committed uint64        // changes durable
	attempted uint64        // changes the last commit attempt covered
	err       error         // the last commit's error; nil once one succeeds
	gaveUp    bool          // the backlog overflowed: nothing more is saved
	closed    bool          // Close was called
	changed   chan struct{} // closed after every commit attempt
	kick      chan struct{} // 1-buffered: there is something to commit
	done      chan struct{} // the writer has returned
	endedSeq  uint64        // number of the last ended session stored (writer only)
}

var _ broker.Store = (*Store)(nil)

// Unavailable returns a Store that saves nothing and reports err, for a
// server that runs on although its state file cannot be opened.
func Unavailable(err error) *Store {
	s := &Store{err: err, gaveUp: true, changed: make(chan struct{}), done: make(chan struct{})}
	close(s.done)
	return s
}

func (s *Store) start() {
	s.changed = make(chan struct{})
	s.kick = make(chan struct{}, 1)
	s.done = make(chan struct{})
	go s.writer()
}

// append buffers a change and wakes the writer.
func (s *Store) append(o op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gaveUp || s.closed {
		return
	}
	if len(s.pending) >= maxBacklog {
		s.gaveUp = true
		s.pending = nil
		s.err = fmt.Errorf("gave up saving after %d unsaved changes (last error: %v); the state file is stale until a restart", maxBacklog, s.err)
		s.log.Error("State store gave up saving", "err", s.err)
		return
	}
	s.pending = append(s.pending, o)
	s.appended++
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// writer commits the buffered changes in batches until Close.
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
		if len(s.pending) == 0 && s.closed {
			s.mu.Unlock()
			return
		}
		batch, upto := s.pending, s.appended
		s.pending = nil
		s.mu.Unlock()

		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, o := range batch {
				if err := o(tx); err != nil {
					return err
				}
			}
			return nil
		})

		s.mu.Lock()
		s.attempted = upto
		if err == nil {
			s.committed = upto
			if s.err != nil {
				s.log.Info("State store saves again")
			}
			s.err = nil
			backoff = retryFirst
		} else {
			if s.err == nil {
				s.log.Error("Cannot save the state; retrying", "err", err, "changes", len(batch))
			}
			s.err = fmt.Errorf("save state: %w", err)
			// Keep the batch, in order, ahead of newer changes.
			s.pending = append(batch, s.pending...)
		}
		closed := s.closed
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()

		if err != nil {
			if closed {
				return // Close does not wait out a failing disk
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.kick: // new changes, or Close: try again now
				t.Stop()
			}
			backoff = min(2*backoff, retryMax)
		}
	}
}

// Sync blocks until every change handed over before the call is durable,
// a commit covering them failed (its error is returned), or ctx ends.
func (s *Store) Sync(ctx context.Context) error {
	s.mu.Lock()
	target := s.appended
	for {
		if s.committed >= target {
			s.mu.Unlock()
			return nil
		}
		if s.gaveUp || (s.err != nil && s.attempted >= target) {
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

// Close commits what is buffered (one attempt) and closes the file.
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
	s.append(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEnded)
		s.endedSeq++
		if err := b.Put(u64(s.endedSeq), data); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyEndedSeq, u64(s.endedSeq)); err != nil {
			return err
		}
		// Trim now and then, oldest first.
		if s.endedSeq%trimEvery != 0 {
			return nil
		}
		n := b.Stats().KeyN
		c := b.Cursor()
		for k, _ := c.First(); k != nil && n > broker.EndedMemory; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return nil
	})
}

// LabRecords returns the lab record half of the store, for
// lab.Config.Records: Load gives the record the file held when it was
// opened; Save and Delete return once the change is durable (a record must
// be on disk before `netlab up` runs, so a crash can be recovered).
func (s *Store) LabRecords() lab.RecordStore { return labRecords{s} }

type labRecords struct{ s *Store }

func (r labRecords) Load() (*lab.Record, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.s.lab == nil {
		return nil, nil
	}
	var rec lab.Record
	if err := json.Unmarshal(mustJSON(r.s.lab), &rec); err != nil { // a deep copy
		return nil, fmt.Errorf("load lab record: %w", err)
	}
	return &rec, nil
}

func (r labRecords) Save(rec lab.Record) error {
	data := mustJSON(rec)
	r.s.mu.Lock()
	r.s.lab = &rec
	r.s.mu.Unlock()
	r.s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyLab, data) })
	return r.sync()
}

func (r labRecords) Delete() error {
	r.s.mu.Lock()
	r.s.lab = nil
	r.s.mu.Unlock()
	r.s.append(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyLab) })
	return r.sync()
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
