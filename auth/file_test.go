package auth_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/auth"
)

// Two valid auth files: in fileB alice is an admin and bob exists.
var (
	fileA = fill("tokens:\n  - {name: alice, role: user, sha256: %A}\n")
	fileB = fill("tokens:\n  - {name: alice, role: admin, sha256: %A}\n  - {name: bob, role: viewer, sha256: %B}\n")
)

// writeFile writes data to path, failing the test on error.
func writeFile(t testing.TB, path, data string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	writeFile(t, path, fileB)
	f, err := auth.Load(path)
	require.NoError(t, err)
	assert.Equal(t, path, f.Path())
	assert.Equal(t, 2, f.Table().Len())
	id, ok := f.Lookup(tokBob)
	require.True(t, ok)
	assert.Equal(t, auth.Identity{Name: "bob", Role: auth.Viewer}, id)
	_, ok = f.Lookup(tokCarol)
	assert.False(t, ok)
	_, ok = f.Lookup("")
	assert.False(t, ok)
}

func TestLoadEmptyList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	writeFile(t, path, "tokens: []\n")
	f, err := auth.Load(path)
	require.NoError(t, err)
	assert.Equal(t, 0, f.Table().Len())
	_, ok := f.Lookup(tokAlice)
	assert.False(t, ok)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	_, err := auth.Load(missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "load auth file: ")
	assert.Contains(t, err.Error(), missing)

	_, err = auth.Load(dir)
	require.Error(t, err, "a directory is no auth file")

	broken := filepath.Join(dir, "broken.yaml")
	writeFile(t, broken, "tokens:\n  - {name: alice, role: root, sha256: "+hashA+"}\n")
	_, err = auth.Load(broken)
	require.Error(t, err)
	assert.Equal(t, "load auth file: "+broken+`: line 2: tokens entry 1 ("alice"): unknown role "root" (want viewer, user or admin)`, err.Error())
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	writeFile(t, path, fileA)
	f, err := auth.Load(path)
	require.NoError(t, err)
	before := f.Table()

	writeFile(t, path, fileB)
	require.NoError(t, f.Reload())
	id, ok := f.Lookup(tokAlice)
	require.True(t, ok)
	assert.Equal(t, auth.Admin, id.Role, "Reload takes the new role")
	_, ok = f.Lookup(tokBob)
	assert.True(t, ok, "Reload adds tokens")
	assert.Equal(t, 2, f.Table().Len())

	// A table taken before the reload is a snapshot and does not change.
	assert.Equal(t, 1, before.Len())
	id, ok = before.Lookup(tokAlice)
	require.True(t, ok)
	assert.Equal(t, auth.User, id.Role)

	writeFile(t, path, fileA)
	require.NoError(t, f.Reload())
	_, ok = f.Lookup(tokBob)
	assert.False(t, ok, "Reload removes tokens")
}

func TestReloadKeepsTableOnError(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, path string)
		want  string
	}{
		{"invalid file", func(t *testing.T, path string) {
			writeFile(t, path, fill("tokens:\n  - {name: alice, role: admin, sha256: %A}\n  - {name: alice, role: user, sha256: %B}\n"))
		}, "name already used by entry 1"},
		{"not YAML", func(t *testing.T, path string) { writeFile(t, path, "tokens: [\n") }, "invalid YAML"},
		{"empty file", func(t *testing.T, path string) { writeFile(t, path, "") }, "auth file is empty"},
		{"file removed", func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) }, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth.yaml")
			writeFile(t, path, fileB)
			f, err := auth.Load(path)
			require.NoError(t, err)
			before := f.Table()

			tt.spoil(t, path)
			err = f.Reload()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "reload auth file: ")
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), tt.want)

			assert.Same(t, before, f.Table(), "the previous table stays")
			id, ok := f.Lookup(tokBob)
			require.True(t, ok)
			assert.Equal(t, auth.Identity{Name: "bob", Role: auth.Viewer}, id)

			// Once the file is fixed, Reload takes it.
			writeFile(t, path, fileA)
			require.NoError(t, f.Reload())
			_, ok = f.Lookup(tokBob)
			assert.False(t, ok)
		})
	}
}

func TestZeroFile(t *testing.T) {
	var f auth.File
	_, ok := f.Lookup(tokAlice)
	assert.False(t, ok)
	assert.Nil(t, f.Table())
	assert.Equal(t, 0, f.Table().Len())
	assert.Error(t, f.Reload())
}

// replaceFile replaces the file at path with one holding data in one step,
// so a concurrent reader sees either the old or the new file.
func replaceFile(t testing.TB, path, data string) {
	t.Helper()
	tmp := path + ".new"
	writeFile(t, tmp, data)
	require.NoError(t, os.Rename(tmp, path))
}

// TestLookupDuringReload looks tokens up from many goroutines while the
// file flips between fileA, fileB and a broken file and is reloaded, by
// the test and by a second reloader at once. Every answer must come from
// one whole table: alice is a user exactly when bob is unknown.
func TestLookupDuringReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	writeFile(t, path, fileA)
	f, err := auth.Load(path)
	require.NoError(t, err)

	const readers, reloads = 4, 150
	var (
		wg        sync.WaitGroup
		done      = make(chan struct{})
		mu        sync.Mutex
		seenRoles = map[auth.Role]int{}
	)
	for range readers {
		wg.Go(func() {
			local := map[auth.Role]int{}
			defer func() {
				mu.Lock()
				for r, n := range local {
					seenRoles[r] += n
				}
				mu.Unlock()
			}()
			for {
				select {
				case <-done:
					return
				default:
				}
				table := f.Table()
				alice, okA := table.Lookup(tokAlice)
				bob, okB := table.Lookup(tokBob)
				if !okA {
					t.Error("alice unknown")
					return
				}
				switch {
				case alice.Role == auth.User && !okB && table.Len() == 1:
				case alice.Role == auth.Admin && okB && bob == auth.Identity{Name: "bob", Role: auth.Viewer} && table.Len() == 2:
				default:
					t.Errorf("mixed table: alice %v, bob %v %v, len %d", alice, bob, okB, table.Len())
					return
				}
				// File.Lookup may see a different table than the snapshot,
				// but always a whole one.
				if id, ok := f.Lookup(tokAlice); !ok || id.Name != "alice" {
					t.Errorf("File.Lookup(alice) = %v, %v", id, ok)
					return
				}
				local[alice.Role]++
			}
		})
	}
	wg.Go(func() { // errors expected: the file is broken a third of the time
		for {
			select {
			case <-done:
				return
			default:
				_ = f.Reload()
			}
		}
	})
	for i := range reloads {
		switch i % 3 {
		case 0:
			replaceFile(t, path, fileB)
			require.NoError(t, f.Reload())
		case 1:
			replaceFile(t, path, "tokens:\n  - {name: alice}\n")
			require.Error(t, f.Reload())
		case 2:
			replaceFile(t, path, fileA)
			require.NoError(t, f.Reload())
		}
	}
	close(done)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, seenRoles[auth.User]+seenRoles[auth.Admin], "readers ran")
}
