package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Record is what a Manager persists about the host's lab, so that a
// restarted process can adopt it or clean it up.
type Record struct {
	Dir         string         `json:"dir"`
	Fingerprint string         `json:"fingerprint"`
	Topology    string         `json:"topology"`
	State       State          `json:"state"` // starting, running, idle, stopping or dirty
	StartedAt   time.Time      `json:"started_at"`
	Holders     map[string]int `json:"holders,omitempty"`   // references per holder
	Devices     []Device       `json:"devices,omitempty"`   // as Runner.Up reported them
	Processes   []Process      `json:"processes,omitempty"` // runner commands running now
}

// Process identifies a process group a Runner started (netlab runs each
// command in its own group), so a restarted daemon can kill one a crash
// left behind. ProcessOf fills it in.
type Process struct {
	PGID      int    `json:"pgid"`
	StartTime uint64 `json:"start_time"` // the group leader's start time (clock ticks since boot, /proc/<pid>/stat field 22); 0 if unknown
	BootID    string `json:"boot_id"`    // /proc/sys/kernel/random/boot_id; "" if unknown
}

// RecordStore keeps the Manager's Record. Save and Delete are called
// serialised (never concurrently), always with the latest state, and
// without the Manager's state mutex held. Load returns (nil, nil) when
// there is none.
type RecordStore interface {
	Load() (*Record, error)
	Save(Record) error
	Delete() error
}

// recordName is the file FileRecords keeps the record in.
const recordName = "lab.json"

// FileRecords returns a RecordStore keeping the record as JSON in
// dir/lab.json (written to a temporary file, synced, renamed over the old
// one, directory synced), the default when Config.StateDir is set. dir is
// created when the first record is saved.
func FileRecords(dir string) RecordStore { return fileRecords{dir: dir} }

type fileRecords struct{ dir string }

func (s fileRecords) path() string { return filepath.Join(s.dir, recordName) }

func (s fileRecords) Load() (*Record, error) {
	data, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load lab record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("load lab record %s: %w", s.path(), err)
	}
	return &rec, nil
}

func (s fileRecords) Save(rec Record) error {
	data, err := json.Marshal(rec) // compact: Device.Raw round-trips byte for byte
	if err != nil {
		return fmt.Errorf("save lab record: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("save lab record: %w", err)
	}
	f, err := os.CreateTemp(s.dir, "."+recordName+".*")
	if err != nil {
		return fmt.Errorf("save lab record: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path())
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("save lab record: %w", err)
	}
	return s.syncDir()
}

func (s fileRecords) Delete() error {
	if err := os.Remove(s.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete lab record: %w", err)
	}
	return s.syncDir()
}

// syncDir makes a rename or removal in dir durable.
func (s fileRecords) syncDir() error {
	d, err := os.Open(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", s.dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.dir, err)
	}
	return nil
}

// recordLocked describes the lab as a Record; false when there is no lab.
func (m *Manager) recordLocked() (Record, bool) {
	l := m.labLocked()
	if l == nil {
		return Record{}, false
	}
	rec := Record{
		Dir:         l.dir,
		Fingerprint: l.fp,
		Topology:    l.topoName,
		State:       m.state,
		StartedAt:   l.started,
		Devices:     cloneDevices(l.devices),
		Processes:   append([]Process(nil), m.procs...),
	}
	if len(l.holders) > 0 {
		rec.Holders = make(map[string]int, len(l.holders))
		for h, n := range l.holders {
			rec.Holders[h] = n
		}
	}
	return rec, true
}

// syncRecord stores the record if version ver (see notifyLocked) is not
// stored yet: it saves the latest state, or deletes the record when there
// is no lab (which happens only after a successful teardown). Calls are
// serialised, and each stores the state as it is when its turn comes, so
// the store never goes back to an older state. A failure is logged and
// reported as EventRecordError; the next change retries. Call it without
// mu.
func (m *Manager) syncRecord(ver uint64) {
	if m.records == nil {
		return
	}
	m.recMu.Lock()
	if m.recSaved >= ver {
		m.recMu.Unlock()
		return
	}
	m.mu.Lock()
	rec, ok := m.recordLocked()
	latest := m.recVer
	m.mu.Unlock()
	var err error
	if ok {
		err = m.records.Save(rec)
	} else {
		err = m.records.Delete()
	}
	if err == nil {
		m.recSaved = latest
	}
	m.recMu.Unlock()
	if err != nil {
		m.log.Error("Cannot store the lab record", "err", err)
		m.emit(Event{Kind: EventRecordError, Err: err})
	}
}
