package auth

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// File is an auth file that can be reloaded (on SIGHUP): Lookup always
// answers from one complete table, the one the last successful Load or
// Reload read. Its methods are safe for concurrent use. Make one with
// Load; the zero File knows no token and cannot reload.
type File struct {
	path   string
	table  atomic.Pointer[Table]
	reload sync.Mutex // one Reload at a time, so the newest read wins
}

// Load reads and parses the auth file at path. It fails on a missing,
// unreadable or invalid file. A file with an empty tokens list loads (and
// then refuses every caller); the caller should warn about it, which
// File.Table().Len() tells.
func Load(path string) (*File, error) {
	t, err := readTable(path)
	if err != nil {
		return nil, fmt.Errorf("load auth file: %w", err)
	}
	f := &File{path: path}
	f.table.Store(t)
	return f, nil
}

// Reload reads the file again and, if it is valid, answers all later
// lookups from it. On error it keeps the previous table and returns the
// error, wrapped as "reload auth file: ..."; the caller logs it. Reload
// blocks while another Reload runs; lookups never wait for it.
func (f *File) Reload() error {
	f.reload.Lock()
	defer f.reload.Unlock()
	t, err := readTable(f.path)
	if err != nil {
		return fmt.Errorf("reload auth file: %w", err)
	}
	f.table.Store(t)
	return nil
}

// Lookup returns the identity of token in the current table, or false
// when the token is unknown or empty. See Table.Lookup.
func (f *File) Lookup(token string) (Identity, bool) {
	return f.table.Load().Lookup(token)
}

// Table returns the current table: the one the last successful Load or
// Reload read (nil for the zero File). It does not change when the file
// is reloaded later.
func (f *File) Table() *Table {
	return f.table.Load()
}

// Path returns the path of the auth file, as given to Load.
func (f *File) Path() string {
	return f.path
}

// readTable reads and parses the auth file at path; errors name the path.
func readTable(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError: "open PATH: no such file or directory"
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
