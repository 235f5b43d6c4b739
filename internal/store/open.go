package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
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
// the state it holds (empty for a new file, never nil). A file that cannot
// be read as a remotelab state (corrupt, another format or version, one
// that makes bbolt panic) is renamed aside to path.corrupt-<UTC time> —
// never deleted — with an ERROR log line, and Open starts afresh: the
// server never refuses to start because of its own state. A file that
// cannot be opened at all (permissions, a read-only directory, a full
// disk, bbolt's lock held for openTimeout) is an error and nothing is
// moved; the caller may run on without saving (Unavailable). log may be
// nil.
func Open(path string, log *slog.Logger) (*Store, *broker.State, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, st, err := open(path, log)
	if err == nil || unopenable(err) {
		return s, st, err
	}
	aside := asideName(path, time.Now())
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, nil, fmt.Errorf("open state: %w (and moving it aside failed: %w)", err, rerr)
	}
	log.Error("The state file cannot be read; moved it aside and starting with an empty queue",
		"path", path, "moved_to", aside, "err", err)
	return open(path, log)
}

// asideName names the place a corrupt file at path is moved to, one that
// does not exist yet (a rename would replace it).
func asideName(path string, now time.Time) string {
	base := fmt.Sprintf("%s.corrupt-%s", path, now.UTC().Format("20060102T150405Z"))
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); err != nil {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// unopenable tells an error of the file system (which moving the file
// aside would not cure) from a file that is not a readable state.
func unopenable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, bolt.ErrTimeout)
}

// open opens and loads the file once. bbolt trusts the pages it reads and
// panics (or faults, past the end of a truncated file) on a damaged one;
// both become a "damaged file" error. When bbolt.Open itself panics its memory map
// stays behind, but the file (and its lock) is closed.
func open(path string, log *slog.Logger) (s *Store, st *broker.State, err error) {
	var (
		db   *bolt.DB
		file *os.File
	)
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("open state %s: damaged file: %v", path, v)
		}
		if err == nil {
			return
		}
		s, st = nil, nil
		if db != nil {
			_ = db.Close()
		} else if file != nil {
			_ = file.Close()
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: openTimeout,
		OpenFile: func(name string, flag int, perm fs.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open state %s: %w", path, err)
	}
	var fresh bool
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		fresh, err = checkLayout(tx)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if fresh {
		if err := db.Update(createLayout); err != nil {
			return nil, nil, fmt.Errorf("open state %s: %w", path, err)
		}
		// The file is new: make its directory entry durable too.
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, nil, fmt.Errorf("open state %s: %w", path, err)
		}
	}
	s = &Store{db: db, log: log}
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		st, s.labJSON, err = load(tx)
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

// checkLayout checks the version and buckets of a file; fresh is true for
// a file without any bucket.
func checkLayout(tx *bolt.Tx) (fresh bool, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if names := bucketNames(tx); len(names) > 0 {
			return false, fmt.Errorf("%w (buckets %q)", errFormat, names)
		}
		return true, nil
	}
	if v := meta.Get(keyVersion); string(v) != formatVersion {
		return false, fmt.Errorf("%w (found version %q)", errFormat, v)
	}
	for _, name := range [][]byte{bucketSessions, bucketEnded} {
		if tx.Bucket(name) == nil {
			return false, fmt.Errorf("%w (bucket %s missing)", errFormat, name)
		}
	}
	return false, nil
}

// createLayout creates the buckets of a new file.
func createLayout(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketSessions, bucketEnded} {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, []byte(formatVersion))
}

func bucketNames(tx *bolt.Tx) []string {
	var names []string
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, string(name))
		return nil
	})
	return names
}

// syncDir makes a new or renamed entry of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load reads the state and the lab record's JSON (nil: none).
func load(tx *bolt.Tx) (*broker.State, []byte, error) {
	meta := tx.Bucket(bucketMeta)
	st := &broker.State{}
	if v := meta.Get(keyEpoch); v != nil {
		if len(v) != 8 {
			return nil, nil, fmt.Errorf("%w (bad epoch)", errFormat)
		}
		st.LastEpoch = binary.BigEndian.Uint64(v)
	}
	if v := meta.Get(keyPaused); v != nil {
		if len(v) != 1 || v[0] > 1 {
			return nil, nil, fmt.Errorf("%w (bad paused flag)", errFormat)
		}
		st.Paused = v[0] == 1
	}
	if v := meta.Get(keyQuarantine); v != nil {
		st.Quarantine = &broker.Quarantine{}
		if err := json.Unmarshal(v, st.Quarantine); err != nil {
			return nil, nil, fmt.Errorf("quarantine: %w", err)
		}
	}
	var labJSON []byte
	if v := meta.Get(keyLab); v != nil {
		if err := json.Unmarshal(v, new(lab.Record)); err != nil {
			return nil, nil, fmt.Errorf("lab record: %w", err)
		}
		labJSON = bytes.Clone(v) // v lives only as long as tx
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
		return nil, nil, err
	}
	err = tx.Bucket(bucketEnded).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w (bad ended session key %x)", errFormat, k)
		}
		var e broker.Ended
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("ended session %x: %w", k, err)
		}
		st.Ended = append(st.Ended, e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(st.Ended) > broker.EndedMemory {
		st.Ended = st.Ended[len(st.Ended)-broker.EndedMemory:]
	}
	return st, labJSON, nil
}
