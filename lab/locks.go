package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockRetry is how often a patient operation retries the lock file.
const lockRetry = 50 * time.Millisecond

// lockFileMode is the lock file's mode: any user may open it, so a daemon
// or fixture run as root never locks out a later one run as a service user.
const lockFileMode = 0o666

// locks is what one lab operation holds: the Manager's operation lock
// (in-process exclusion) and the cross-process lock file, always taken in
// that order. Its zero value (with m set) holds nothing.
type locks struct {
	m    *Manager
	op   bool // the operation lock is held
	file bool // the lock file is held (or disabled)
}

// lockOp takes the operation lock, waiting until ctx ends for the lab work
// that holds it. Unless patient it answers ErrBusy as soon as that work is
// itself waiting for the lock file, which another process holds and may
// hold indefinitely.
func (lk *locks) lockOp(ctx context.Context, patient bool) error {
	m := lk.m
	for {
		m.mu.Lock()
		blocked, changed := m.fileWait, m.changed
		m.mu.Unlock()
		if blocked && !patient {
			return fmt.Errorf("%w: lock file %s is held by another process", ErrBusy, m.lock.Path())
		}
		select {
		case m.op <- struct{}{}:
			lk.op = true
			return nil
		case <-changed: // look at fileWait again
		case <-ctx.Done():
			return m.waitErr(ctx, "another lab operation to finish")
		}
	}
}

// lockFile takes the cross-process lock file: at once (ErrBusy when
// another process holds it) or, when patient, waiting until ctx ends. The
// operation lock must be held. A file that cannot be opened is
// ErrLockUnavailable.
func (lk *locks) lockFile(ctx context.Context, patient bool) error {
	m := lk.m
	if m.lock == nil {
		lk.file = true
		return nil
	}
	if err := m.openLockFile(); err != nil {
		return err
	}
	ok, err := m.lock.TryLock()
	if err != nil {
		return m.lockFileErr(err)
	}
	if !ok && !patient {
		return fmt.Errorf("%w: lock file %s is held by another process", ErrBusy, m.lock.Path())
	}
	if !ok {
		m.log.Info("Waiting for the lab lock file, which another process holds", "path", m.lock.Path())
		start := time.Now()
		m.setFileWait(true)
		_, err = m.lock.TryLockContext(ctx, lockRetry)
		m.setFileWait(false)
		if err == nil {
			m.log.Info("Lab lock file taken", "path", m.lock.Path(), "waited", time.Since(start).Round(time.Millisecond))
		}
		if err != nil {
			if ctx.Err() != nil {
				return m.waitErr(ctx, "lock file "+m.lock.Path()+" held by another process")
			}
			return m.lockFileErr(err)
		}
	}
	lk.file = true
	return nil
}

// unlock releases what lk holds.
func (lk *locks) unlock() {
	m := lk.m
	if lk.file && m.lock != nil {
		if err := m.lock.Unlock(); err != nil {
			m.log.Warn("Cannot unlock the lab lock file", "path", m.lock.Path(), "err", err)
		}
	}
	lk.file = false
	if lk.op {
		lk.op = false
		m.unlockOp()
	}
}

// setFileWait records whether the holder of the operation lock waits for
// the lock file, and wakes impatient waiters so they can give up.
func (m *Manager) setFileWait(waiting bool) {
	m.mu.Lock()
	m.fileWait = waiting
	m.wakeLocked()
	m.mu.Unlock()
}

// unlockOp releases the operation lock. If the idle timer fired while it
// was held, the idle lab's fate was left to this operation: it is torn
// down now unless it was taken again meanwhile.
func (m *Manager) unlockOp() {
	m.mu.Lock()
	due := m.idleDue && m.state == StateIdle && !m.closed
	m.idleDue = false
	g := m.gen
	if due {
		m.ops.Add(1) // Close waits for the expiry goroutine too
	}
	m.mu.Unlock()
	<-m.op
	if due {
		go func() {
			defer m.ops.Done()
			m.expireIdle(g)
		}()
	}
}

// CheckLock reports whether the cross-process lock file can be used: nil,
// or an error wrapping ErrLockUnavailable that names the file. It creates
// a missing file (mode 0666) but does not take the lock, so it answers at
// once even while lab work runs. A readiness probe calls it.
func (m *Manager) CheckLock() error {
	if m.lock == nil {
		return nil
	}
	return m.openLockFile()
}

// openLockFile makes sure the lock file exists and can be opened the way
// the lock opens it. A file this process creates or owns gets mode 0666
// whatever the umask; someone else's file keeps its mode.
func (m *Manager) openLockFile() error {
	f, err := os.OpenFile(m.lock.Path(), os.O_RDONLY|os.O_CREATE, lockFileMode)
	if err != nil {
		return m.lockFileErr(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Mode().Perm() == lockFileMode || !ownedByUs(fi) {
		return nil
	}
	if err := f.Chmod(lockFileMode); err != nil {
		m.log.Warn("Cannot make the lab lock file usable by every user", "path", m.lock.Path(), "err", err)
	}
	return nil
}

// lockFileErr explains a failure to open or lock the lock file, naming it.
func (m *Manager) lockFileErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err // the path comes next
	}
	return fmt.Errorf("%w: %s: %w", ErrLockUnavailable, m.lock.Path(), err)
}

// waitErr explains why a wait ended: ErrClosed when the Manager closed,
// otherwise ctx's error and what was waited for.
func (m *Manager) waitErr(ctx context.Context, what string) error {
	err := m.ctxErr(ctx)
	if err == ErrClosed {
		return err
	}
	return fmt.Errorf("wait for %s: %w", what, err)
}

// ctxErr is why ctx ended: ErrClosed when Close cancelled it.
func (m *Manager) ctxErr(ctx context.Context) error {
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}
