package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// The single-instance lock and its metadata live in the temp directory
// under the original's names, so remotelabd and the Python server exclude
// each other on one host.
const (
	lockFileName = "neops_remote_lab_server.lock"
	metaFileName = "neops_remote_lab_server.meta.json"
)

// errAnotherInstance: the single-instance lock is held by a live server.
var errAnotherInstance = errors.New("another Remote Lab Manager instance is already running")

// instanceMeta is the metadata JSON beside the lock, in the original's
// field names: it tells a refused second instance (and an operator) who
// holds the lock.
type instanceMeta struct {
	PID       int     `json:"pid"`
	User      string  `json:"user"`
	Host      string  `json:"host"`
	StartedAt float64 `json:"started_at"` // Unix seconds
	Port      int     `json:"port"`
	HostBind  string  `json:"host_bind"`
	LogLevel  string  `json:"log_level"`
	LogConfig string  `json:"log_config"`
	Version   string  `json:"version"`
	CWD       string  `json:"cwd"`
	Cmd       string  `json:"cmd"`
}

// foreignMeta is metadata as found on disk, read leniently: the Python
// server may have written it (pid as a string, say).
type foreignMeta struct {
	PID       any    `json:"pid"`
	User      string `json:"user"`
	Host      string `json:"host"`
	StartedAt any    `json:"started_at"`
	Port      any    `json:"port"`
	HostBind  string `json:"host_bind"`
	LogLevel  any    `json:"log_level"`
	LogConfig any    `json:"log_config"`
	Version   any    `json:"version"`
	CWD       string `json:"cwd"`
	Cmd       string `json:"cmd"`
}

// pid returns the recorded pid, or 0 if there is none usable.
func (m foreignMeta) pid() int {
	switch v := m.PID.(type) {
	case float64:
		if v == math.Trunc(v) && v > 0 && v < math.MaxInt32 {
			return int(v)
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// started returns the start time in local time, or "unknown".
func (m foreignMeta) started() string {
	if v, ok := m.StartedAt.(float64); ok && v > 0 {
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)).Format("2006-01-02 15:04:05 MST")
	}
	return "unknown"
}

// attrs are the details a refused instance logs about the running one.
func (m foreignMeta) attrs() []any {
	return []any{
		"pid", m.pid(),
		"user", m.User + "@" + m.Host,
		"version", fmt.Sprint(orNone(m.Version)),
		"bind", fmt.Sprintf("%s:%v", m.HostBind, orNone(m.Port)),
		"started", m.started(),
		"log_level", fmt.Sprint(orNone(m.LogLevel)),
		"log_config", fmt.Sprint(orNone(m.LogConfig)),
		"cwd", m.CWD,
		"cmd", m.Cmd,
	}
}

// orNone returns v for printing: "none" when it is null or empty, whole
// JSON numbers without a fraction.
func orNone(v any) any {
	if v == nil || v == "" {
		return "none"
	}
	if f, ok := v.(float64); ok && f == math.Trunc(f) {
		return int64(f)
	}
	return v
}

// instance is this process's hold on the single-instance lock.
type instance struct {
	lock     *flock.Flock
	metaPath string

	mu    sync.Mutex
	meta  instanceMeta // what writeMeta wrote last
	wrote bool         // the metadata file is ours to remove
}

// lockInstance takes the single-instance lock lockName in dir without
// waiting (metadata beside it in metaName). If a live server holds it, it
// logs that server's details and returns errAnotherInstance. Metadata of
// a dead holder is removed and the lock tried once more (the original's
// stale-state recovery).
func lockInstance(dir, lockName, metaName string, log *slog.Logger) (*instance, error) {
	in := &instance{metaPath: filepath.Join(dir, metaName)}
	lockPath := filepath.Join(dir, lockName)
	in.lock = flock.New(lockPath, flock.SetPermissions(0o644))
	ok, err := in.lock.TryLock()
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		// Another user's lock file in a sticky /tmp cannot be opened
		// with O_CREATE (fs.protected_regular), nor any file of a
		// read-only file system; an existing one can be without.
		in.lock = flock.New(lockPath, flock.SetFlag(os.O_RDONLY))
		var rerr error
		if ok, rerr = in.lock.TryLock(); !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr // else: no file to open read-only, the first error says why
		}
	}
	if err != nil {
		return nil, fmt.Errorf("take single-instance lock %s: %w", lockPath, err)
	}
	if ok {
		if m, err := readMeta(in.metaPath); err == nil {
			// The holder died without cleaning up (kill -9, power
			// loss): the kernel freed the lock, the file stayed.
			log.Warn("Found instance metadata of a previous run that did not shut down cleanly; replacing it",
				append([]any{"meta", in.metaPath}, m.attrs()...)...)
		}
		return in, nil
	}

	log.Error("Another Remote Lab Manager instance is already running.", "lock", lockPath)
	m, err := readMeta(in.metaPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("Failed to read instance metadata", "meta", in.metaPath, "err", err)
		}
		log.Error("No metadata file found for the existing instance", "meta", in.metaPath,
			"hint", "the holder may be starting up; find it with: fuser -v "+lockPath)
		return nil, errAnotherInstance
	}
	pid := m.pid()
	if pidAlive(pid) {
		log.Error("Running instance details", m.attrs()...)
		return nil, errAnotherInstance
	}
	log.Warn("Stale instance metadata detected – cleaning up...", "pid", pid, "meta", in.metaPath)
	if err := os.Remove(in.metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("Failed to remove stale instance metadata", "meta", in.metaPath, "err", err)
	}
	ok, err = in.lock.TryLock()
	if err != nil || !ok {
		log.Error("Lock still held but metadata was stale – another process likely took the lock.",
			"lock", lockPath, "hint", "find the holder with: fuser -v "+lockPath)
		return nil, errAnotherInstance
	}
	log.Info("Recovered from stale state – proceeding to start server.")
	return in, nil
}

// readMeta reads the metadata file.
func readMeta(path string) (foreignMeta, error) {
	var m foreignMeta
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode %s: %w", path, err)
	}
	return m, nil
}

// writeMeta writes (or rewrites) the metadata file atomically, readable by
// everyone so another user's refused instance can say who runs.
func (in *instance) writeMeta(m instanceMeta) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.writeMetaLocked(m)
}

// updatePort rewrites the metadata with the port actually listened on
// (for --port 0).
func (in *instance) updatePort(port int) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.wrote {
		return nil
	}
	m := in.meta
	m.Port = port
	return in.writeMetaLocked(m)
}

func (in *instance) writeMetaLocked(m instanceMeta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode instance metadata: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(in.metaPath), filepath.Base(in.metaPath)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write instance metadata: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write instance metadata: %w", err)
	}
	if err := os.Rename(tmp.Name(), in.metaPath); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write instance metadata: %w", err)
	}
	in.meta, in.wrote = m, true
	return nil
}

// release removes the metadata this process wrote and releases the lock.
// The lock file itself stays: removing it would let a new server lock a
// fresh file while an old one still holds the unlinked one.
func (in *instance) release() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var errs []error
	if in.wrote {
		if err := os.Remove(in.metaPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove instance metadata: %w", err))
		}
		in.wrote = false
	}
	if err := in.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("release single-instance lock: %w", err))
	}
	return errors.Join(errs...)
}

// pidAlive reports whether a process with this pid exists. Our own pid
// counts as dead: it was recorded by an earlier process that had it (pid
// 1 in a restarted container), since we do not hold the lock.
func pidAlive(pid int) bool {
	if pid <= 0 || pid == os.Getpid() {
		return false
	}
	return aliveFromSignalErr(syscall.Kill(pid, 0))
}

// aliveFromSignalErr interprets kill(pid, 0): EPERM means the process
// exists but belongs to another user, so it is alive (the original
// counted it dead and deleted a live server's metadata). Only ESRCH
// proves it gone.
func aliveFromSignalErr(err error) bool {
	return !errors.Is(err, syscall.ESRCH)
}

// newInstanceMeta describes this process.
func newInstanceMeta(cfg Config, logLevel string, argv []string) instanceMeta {
	m := instanceMeta{
		PID:       os.Getpid(),
		StartedAt: float64(time.Now().UnixNano()) / 1e9,
		Port:      cfg.Port,
		HostBind:  cfg.Host,
		LogLevel:  logLevel,
		LogConfig: cfg.LogConfig,
		Version:   version(),
		Cmd:       joinArgs(argv),
	}
	if u, err := user.Current(); err == nil {
		m.User = u.Username
	} else {
		m.User = strconv.Itoa(os.Getuid())
	}
	m.Host, _ = os.Hostname()
	m.CWD, _ = os.Getwd()
	return m
}
