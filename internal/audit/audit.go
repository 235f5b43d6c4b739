// Package audit keeps remotelabd's audit log: one JSON line per admin
// action and per abnormal session end, appended to a file and synced to
// disk before the action is answered.
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/remotelab-go/remotelab/broker"
)

// FileName is the audit log's name in the state directory.
const FileName = "audit.jsonl"

// Log is an append-only JSON-lines file. It implements broker.Auditor. It
// is safe for concurrent use; the caller must Close it.
type Log struct {
	path   string
	mu     sync.Mutex
	f      *os.File // nil until opened
	closed bool
}

var _ broker.Auditor = (*Log)(nil)

// Open opens (creating it, mode 0640) the audit log at path for appending.
// It always returns a Log: when the file cannot be opened now, err says
// why and every Record tries again, so that an operator who fixes the
// directory's owner or mode needs no restart.
func Open(path string) (*Log, error) {
	l := &Log{path: path}
	return l, l.openLocked()
}

// openLocked opens the file; l.mu is held, or l is not shared yet.
func (l *Log) openLocked() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	l.f = f
	return nil
}

// Path returns the file's path.
func (l *Log) Path() string { return l.path }

// Record appends a as one line and syncs the file before it returns. It
// opens the file first if Open could not.
func (l *Log) Record(a broker.Audit) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	data = append(data, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("record audit entry: %w", fs.ErrClosed)
	}
	if l.f == nil {
		if err := l.openLocked(); err != nil {
			return fmt.Errorf("record audit entry: %w", err)
		}
	}
	if _, err := l.f.Write(data); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	return nil
}

// tailChunk is how much of the file's end Tail reads at a time.
const tailChunk = 64 << 10

// Tail returns up to n of the last entries, oldest first. Lines that do not
// parse (a torn last line after a crash) are skipped.
func (l *Log) Tail(n int) ([]broker.Audit, error) {
	f, err := os.Open(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	// Read chunks backwards until n+1 newlines are in hand (or the start).
	var buf []byte
	for off := size; off > 0 && bytes.Count(buf, []byte{'\n'}) <= n; {
		step := min(int64(tailChunk), off)
		off -= step
		chunk := make([]byte, step)
		if _, err := f.ReadAt(chunk, off); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		buf = append(chunk, buf...)
	}
	var out []broker.Audit
	sc := bufio.NewScanner(bytes.NewReader(buf))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e broker.Audit
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Action == "" {
			continue
		}
		out = append(out, e)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// Close closes the file; Record fails afterwards.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
