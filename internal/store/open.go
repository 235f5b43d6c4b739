package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
)

// openTimeout bounds the wait for bbolt's own file lock (the daemon's
// state directory lock already keeps other daemons away).
const openTimeout = 5 * time.Second

// Open opens the state file at path (creating it, mode 0600) and loads
// the state it holds (nil for a new file). A file that cannot be read as a
// remotelab state (corrupt, another format or version) is renamed aside
// to path.corrupt-<UTC time> — never deleted — with an ERROR log line, and
// Open starts afresh: the server never refuses to start because of its own
// state. A file that cannot be opened at all (permissions, a read-only
// directory, a full disk) is an error; the caller may run on without
// saving (Unavailable).
func Open(path string, log *slog.Logger) (*Store, *broker.State, error) {
	s, st, err := open(path, log)
	if err == nil || unopenable(err) {
		return s, st, err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, nil, fmt.Errorf("open state: %w (and moving it aside failed: %v)", err, rerr)
	}
	log.Error("The state file cannot be read; moved it aside and starting with an empty queue",
		"path", path, "moved_to", aside, "err", err)
	return open(path, log)
}

// unopenable tells an error of the file system (which moving the file
// aside would not cure) from a file that is not a readable state.
func unopenable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, bolt.ErrTimeout)
}

// open opens and loads the file once.
func open(path string, log *slog.Logger) (s *Store, st *broker.State, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, nil, fmt.Errorf("open state %s: %w", path, err)
	}
	defer func() {
		// bbolt may panic on a damaged file; treat it as unreadable.
		if v := recover(); v != nil {
			err = fmt.Errorf("open state %s: damaged file: %v", path, v)
		}
		if err != nil {
			_ = db.Close()
			s, st = nil, nil
		}
	}()
	s = &Store{db: db, log: log}
	if err := db.Update(func(tx *bolt.Tx) error { return s.init(tx) }); err != nil {
		return nil, nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		st, err = s.load(tx)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s.start()
	return s, st, nil
}

// errFormat: the file is a bbolt file but not remotelab's state of this
// version.
var errFormat = errors.New("not a remotelab state file of format " + formatVersion)

// init creates the buckets of a new file and checks the version of an old
// one.
func (s *Store) init(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if len(bucketNames(tx)) > 0 {
			return errFormat
		}
		for _, name := range [][]byte{bucketMeta, bucketSessions, bucketEnded} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(formatVersion))
	}
	if v := meta.Get(keyVersion); string(v) != formatVersion {
		return fmt.Errorf("%w (found version %q)", errFormat, v)
	}
	for _, name := range [][]byte{bucketSessions, bucketEnded} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w (bucket %s missing)", errFormat, name)
		}
	}
	return nil
}

func bucketNames(tx *bolt.Tx) []string {
	var names []string
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, string(name))
		return nil
	})
	return names
}

// load reads the state; nil for a file without any.
func (s *Store) load(tx *bolt.Tx) (*broker.State, error) {
	meta := tx.Bucket(bucketMeta)
	st := &broker.State{}
	if v := meta.Get(keyEpoch); v != nil {
		if len(v) != 8 {
			return nil, fmt.Errorf("%w (bad epoch)", errFormat)
		}
		st.LastEpoch = binary.BigEndian.Uint64(v)
	}
	if v := meta.Get(keyEndedSeq); len(v) == 8 {
		s.endedSeq = binary.BigEndian.Uint64(v)
	}
	st.Paused = len(meta.Get(keyPaused)) == 1 && meta.Get(keyPaused)[0] == 1
	if v := meta.Get(keyQuarantine); v != nil {
		st.Quarantine = &broker.Quarantine{}
		if err := json.Unmarshal(v, st.Quarantine); err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
	}
	if v := meta.Get(keyLab); v != nil {
		s.lab = &lab.Record{}
		if err := json.Unmarshal(v, s.lab); err != nil {
			return nil, fmt.Errorf("lab record: %w", err)
		}
	}
	err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		var ss broker.SavedSession
		if err := json.Unmarshal(v, &ss); err != nil {
			return fmt.Errorf("session %q: %w", k, err)
		}
		if ss.ID != string(k) {
			return fmt.Errorf("session %q: saved under another id", k)
		}
		st.Sessions = append(st.Sessions, ss)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketEnded).ForEach(func(k, v []byte) error {
		var e broker.Ended
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("ended session %x: %w", k, err)
		}
		st.Ended = append(st.Ended, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(st.Ended) > broker.EndedMemory {
		st.Ended = st.Ended[len(st.Ended)-broker.EndedMemory:]
	}
	return st, nil
}
