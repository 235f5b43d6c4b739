package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"gopkg.in/yaml.v3"
)

// The status file, ~/.netlab/status.yaml: one entry per lab instance,
// keyed by instance id ("default", or the integer multilab id), locked
// with status.yaml.lock like Netlab's filelock.

// pyTime is a timestamp that YAML-encodes like a Python datetime
// ("2026-03-14 17:00:05.123456+00:00").
type pyTime struct{ time.Time }

const pyTimeLayout = "2006-01-02 15:04:05.000000-07:00"

func (t pyTime) String() string { return t.UTC().Format(pyTimeLayout) }

func (t pyTime) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: t.String()}, nil
}

func (t *pyTime) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.Parse(pyTimeLayout, n.Value)
	if err != nil {
		v, err = time.Parse(time.RFC3339Nano, n.Value)
	}
	if err != nil {
		return fmt.Errorf("parse timestamp %q: %w", n.Value, err)
	}
	t.Time = v
	return nil
}

// instance is one lab instance in the status file (§3.2 schema).
type instance struct {
	Dir       string   `yaml:"dir" json:"dir"`
	Providers []string `yaml:"providers" json:"providers"`
	Status    string   `yaml:"status" json:"status"`
	Name      string   `yaml:"name" json:"name"`
	Log       []string `yaml:"log" json:"log"`
	Timestamp pyTime   `yaml:"timestamp" json:"-"`
}

// instanceKey is an instance id: "default" or a multilab integer.
type instanceKey struct {
	id    string
	isInt bool
}

// statusFile is the decoded status file, in file order.
type statusFile struct {
	keys []instanceKey
	m    map[string]*instance
}

func (s *statusFile) get(id string) *instance { return s.m[id] }

func (s *statusFile) set(k instanceKey, in *instance) {
	if _, ok := s.m[k.id]; !ok {
		s.keys = append(s.keys, k)
	}
	s.m[k.id] = in
}

func (s *statusFile) remove(id string) {
	delete(s.m, id)
	for i, k := range s.keys {
		if k.id == id {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			break
		}
	}
}

func statusPath() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/"
	}
	return filepath.Join(home, ".netlab", "status.yaml")
}

func readStatus(path string) (*statusFile, error) {
	s := &statusFile{m: map[string]*instance{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return s, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return s, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		var in instance
		if err := v.Decode(&in); err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		s.set(instanceKey{id: k.Value, isInt: k.Tag == "!!int"}, &in)
	}
	return s, nil
}

func writeStatus(path string, s *statusFile) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range s.keys {
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: k.id, Tag: "!!str"}
		if k.isInt {
			key.Tag = "!!int"
		}
		var val yaml.Node
		if err := val.Encode(s.m[k.id]); err != nil {
			return err
		}
		root.Content = append(root.Content, key, &val)
	}
	var buf bytes.Buffer
	if len(s.keys) > 0 {
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(root); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
	} else {
		buf.WriteString("{}\n")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// errStatusLock: the status file could not be locked in time.
var errStatusLock = errors.New("cannot lock lab status file")

// withStatus runs fn with the status file locked; when fn returns
// save=true the file is written back.
func withStatus(fn func(s *statusFile) (save bool, err error)) error {
	path := statusPath()
	if injected("statuslock") {
		return fatal("netlab", "Cannot lock lab status file "+path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fatal("netlab", fmt.Sprintf("Cannot create %s: %v", filepath.Dir(path), err))
	}
	lock := flock.New(path + ".lock")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ok, err := lock.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		return fatal("netlab", "Cannot lock lab status file "+path)
	}
	defer func() { _ = lock.Unlock() }()

	s, err := readStatus(path)
	if err != nil {
		return fatal("netlab", fmt.Sprintf("Cannot read lab status file %s: %v", path, err))
	}
	save, err := fn(s)
	if err != nil {
		return err
	}
	if save {
		if err := writeStatus(path, s); err != nil {
			return fatal("netlab", fmt.Sprintf("Cannot write lab status file %s: %v", path, err))
		}
	}
	return nil
}

// readStatusUnlocked reads the status file for display.
func readStatusUnlocked() (*statusFile, error) {
	if injected("statuslock") {
		return nil, fatal("netlab", "Cannot lock lab status file "+statusPath())
	}
	s, err := readStatus(statusPath())
	if err != nil {
		return nil, fatal("netlab", fmt.Sprintf("Cannot read lab status file: %v", err))
	}
	return s, nil
}

// logStatus sets an instance's status and appends a log line.
func (in *instance) logStatus(status, line string) {
	now := time.Now()
	if status != "" {
		in.Status = status
	}
	if line == "" {
		line = status
	}
	in.Log = append(in.Log, now.Format("2006-01-02T15:04:05.000000")+": "+line)
	in.Timestamp = pyTime{now.UTC()}
}

// updateInstance changes the status of instance id (if it is recorded)
// under the status lock.
func updateInstance(id, status, line string) error {
	return withStatus(func(s *statusFile) (bool, error) {
		in := s.get(id)
		if in == nil {
			return false, nil
		}
		in.logStatus(status, line)
		return true, nil
	})
}

// started reports whether a lab instance counts as started: its status
// is "started", or (Netlab's fuzzy check) a log line mentions "started".
func (in *instance) started() bool {
	if in.Status == "started" {
		return true
	}
	for _, l := range in.Log {
		if bytes.Contains([]byte(l), []byte("started")) {
			return true
		}
	}
	return false
}
