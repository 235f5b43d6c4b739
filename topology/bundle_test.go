package topology_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/topology"
)

const topo = "provider: clab\ndefaults.device: frr\nnodes: [r1, r2]\nlinks: [r1-r2]\n"

// newBundle returns a bundle of topo, closed when the test ends.
func newBundle(t testing.TB, name string, limits topology.Limits) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle(name, []byte(topo), limits)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	return b
}

// privateTmp points TMPDIR at a fresh directory, so the test can see the
// spool directories bundles create.
func privateTmp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// spoolFiles lists every file below the spool directories in tmp.
func spoolFiles(t *testing.T, tmp string) (dirs, files []string) {
	t.Helper()
	entries, err := os.ReadDir(tmp)
	require.NoError(t, err)
	for _, e := range entries {
		require.True(t, strings.HasPrefix(e.Name(), "remotelab-spool-"), "unexpected %s in TMPDIR", e.Name())
		dirs = append(dirs, e.Name())
		inner, err := os.ReadDir(filepath.Join(tmp, e.Name()))
		require.NoError(t, err)
		for _, f := range inner {
			files = append(files, filepath.Join(e.Name(), f.Name()))
		}
	}
	return dirs, files
}

// state is what a failed Add must leave unchanged.
type state struct {
	paths []string
	size  int64
	fp    string
}

func stateOf(b *topology.Bundle) state {
	return state{b.Paths(), b.Size(), b.Fingerprint()}
}

func TestNewBundle(t *testing.T) {
	in := []byte(topo)
	b, err := topology.NewBundle("Lab.YAML", in, topology.Limits{})
	require.NoError(t, err)
	defer b.Close()
	in[0] = 'X' // NewBundle keeps a copy
	assert.Equal(t, "Lab.YAML", b.TopologyName())
	assert.Equal(t, topo, string(b.TopologyBytes()))
	assert.Equal(t, []string{"r1", "r2"}, b.Topology().NodeNames())
	assert.Equal(t, "clab", b.Topology().Provider)
	assert.Empty(t, b.Paths())
	assert.Equal(t, int64(len(topo)), b.Size())
	assert.Regexp(t, "^[0-9a-f]{64}$", b.Fingerprint())
}

func TestNewBundleInvalidTopology(t *testing.T) {
	_, err := topology.NewBundle("lab.yml", []byte("nodes: 7\n"), topology.Limits{})
	require.ErrorIs(t, err, topology.ErrInvalid)
	assert.EqualError(t, err, "lab.yml:1:8: nodes must be a mapping or a list")
}

// TestAddRejectsUnsafePath checks every path rule through both Add methods,
// and that a rejected file leaves the bundle and the disk unchanged.
func TestAddRejectsUnsafePath(t *testing.T) {
	tmp := privateTmp(t)
	b := newBundle(t, "lab.yml", topology.Limits{})
	require.NoError(t, b.AddFile("keep", []byte("k")))
	before := stateOf(b)
	for _, tt := range pathTests {
		if tt.reason == "" {
			continue
		}
		err := b.AddFile(tt.path, []byte("x"))
		assert.ErrorIs(t, err, topology.ErrUnsafePath, "AddFile %q", tt.path)
		read := &countingReader{}
		err = b.AddFileFrom(tt.path, read)
		assert.ErrorIs(t, err, topology.ErrUnsafePath, "AddFileFrom %q", tt.path)
		assert.Zero(t, read.n, "AddFileFrom read a file it rejected by name")
	}
	assert.Equal(t, before, stateOf(b))
	dirs, files := spoolFiles(t, tmp)
	assert.Empty(t, dirs)
	assert.Empty(t, files)
}

func TestAddDuplicatesAndClashes(t *testing.T) {
	tests := []struct {
		name   string
		first  string
		second string
		reason string // "" when both are accepted
	}{
		{"duplicate", "a/b", "a/b", "duplicate"},
		{"topology name", "x", "lab.yml", "clashes with the topology file"},
		{"under topology name", "x", "lab.yml/x", `clashes with file "lab.yml"`},
		{"file then dir", "a", "a/b", `clashes with file "a"`},
		{"dir then file", "a/b", "a", `clashes with directory "a" of "a/b"`},
		{"deep file then dir", "a/b", "a/b/c/d", `clashes with file "a/b"`},
		{"deep dir then file", "a/b/c/d", "a/b/c", `clashes with directory "a/b/c" of "a/b/c/d"`},
		{"prefix but not a dir", "a", "ab/c", ""},
		{"prefix with dot", "a", "a.b", ""},
		{"siblings", "a/b", "a/c", ""},
		{"case differs", "A", "a", ""},
	}
	for _, tt := range tests {
		for _, spooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spooled=%v", tt.name, spooled), func(t *testing.T) {
				b := newBundle(t, "lab.yml", topology.Limits{})
				require.NoError(t, b.AddFile(tt.first, []byte("1")))
				before := stateOf(b)
				var err error
				if spooled {
					err = b.AddFileFrom(tt.second, strings.NewReader("2"))
				} else {
					err = b.AddFile(tt.second, []byte("2"))
				}
				if tt.reason == "" {
					require.NoError(t, err)
					assert.Equal(t, slices.Sorted(slices.Values([]string{tt.first, tt.second})), b.Paths())
					return
				}
				require.ErrorIs(t, err, topology.ErrUnsafePath)
				var pe *topology.PathError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, tt.second, pe.Path)
				assert.Equal(t, tt.reason, pe.Reason)
				assert.Equal(t, before, stateOf(b))
			})
		}
	}
}

// countingReader yields endless 'x' bytes and counts what was read.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestAddFileFromReadError(t *testing.T) {
	tmp := privateTmp(t)
	b := newBundle(t, "lab.yml", topology.Limits{})
	before := stateOf(b)
	boom := errors.New("connection reset")
	err := b.AddFileFrom("a", &failingReader{data: []byte("partial"), err: boom})
	require.ErrorIs(t, err, boom)
	assert.EqualError(t, err, `spool "a": connection reset`)
	assert.Equal(t, before, stateOf(b))
	dirs, files := spoolFiles(t, tmp)
	assert.Empty(t, dirs, "spool directory of a failed first add left behind")
	assert.Empty(t, files)

	// The next add works and creates the spool directory afresh.
	require.NoError(t, b.AddFileFrom("a", strings.NewReader("whole")))
	dirs, files = spoolFiles(t, tmp)
	assert.Len(t, dirs, 1)
	assert.Len(t, files, 1)

	// A later failure keeps the directory (it holds "a") but not its file.
	err = b.AddFileFrom("b", &failingReader{data: []byte("x"), err: boom})
	require.ErrorIs(t, err, boom)
	_, after := spoolFiles(t, tmp)
	assert.Equal(t, files, after)
}

func TestClose(t *testing.T) {
	tmp := privateTmp(t)
	b, err := topology.NewBundle("lab.yml", []byte(topo), topology.Limits{})
	require.NoError(t, err)
	require.NoError(t, b.AddFile("mem", []byte("m")))
	dirs, _ := spoolFiles(t, tmp)
	assert.Empty(t, dirs, "AddFile must not spool")
	require.NoError(t, b.AddFileFrom("s1", strings.NewReader("one")))
	require.NoError(t, b.AddFileFrom("d/s2", strings.NewReader("two")))
	dirs, files := spoolFiles(t, tmp)
	require.Len(t, dirs, 1)
	assert.Len(t, files, 2)
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(tmp, f))
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "spool files are private")
	}
	fi, err := os.Stat(filepath.Join(tmp, dirs[0]))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "spool directory is private")

	require.NoError(t, b.Close())
	dirs, _ = spoolFiles(t, tmp)
	assert.Empty(t, dirs)
	require.NoError(t, b.Close(), "second Close")

	nospool, err := topology.NewBundle("lab.yml", []byte(topo), topology.Limits{})
	require.NoError(t, err)
	assert.NoError(t, nospool.Close())
}

// build returns a bundle with the given files, each added in memory or
// spooled in turn.
func build(t testing.TB, name, topoText string, files ...string) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle(name, []byte(topoText), topology.Limits{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	for i := 0; i < len(files); i += 2 {
		if i%4 == 0 {
			require.NoError(t, b.AddFile(files[i], []byte(files[i+1])))
		} else {
			require.NoError(t, b.AddFileFrom(files[i], strings.NewReader(files[i+1])))
		}
	}
	return b
}

func TestFingerprint(t *testing.T) {
	base := build(t, "lab.yml", topo, "a", "bc", "d/e", "f")
	fp := base.Fingerprint()
	assert.Regexp(t, "^[0-9a-f]{64}$", fp)
	assert.Equal(t, fp, base.Fingerprint(), "stable")

	same := []struct {
		name string
		b    *topology.Bundle
	}{
		{"same content", build(t, "lab.yml", topo, "a", "bc", "d/e", "f")},
		{"topology name irrelevant", build(t, "other.YAML", topo, "a", "bc", "d/e", "f")},
		{"order of adding irrelevant", build(t, "lab.yml", topo, "d/e", "f", "a", "bc")},
	}
	for _, s := range same {
		assert.Equal(t, fp, s.b.Fingerprint(), s.name)
	}
	// build alternates AddFile and AddFileFrom, so these two hold each
	// file the other way; how a file was added does not matter.
	assert.Equal(t,
		build(t, "lab.yml", topo, "x", "", "a", "bc", "d/e", "f").Fingerprint(),
		build(t, "lab.yml", topo, "a", "bc", "x", "", "d/e", "f").Fingerprint(),
		"memory or spooled irrelevant")

	different := []struct {
		name string
		b    *topology.Bundle
	}{
		{"topology byte changed", build(t, "lab.yml", strings.Replace(topo, "frr", "frx", 1), "a", "bc", "d/e", "f")},
		{"topology byte appended", build(t, "lab.yml", topo+"\n", "a", "bc", "d/e", "f")},
		{"file byte changed", build(t, "lab.yml", topo, "a", "bd", "d/e", "f")},
		{"file byte appended", build(t, "lab.yml", topo, "a", "bc", "d/e", "f\x00")},
		{"path renamed", build(t, "lab.yml", topo, "b", "bc", "d/e", "f")},
		{"path moved to dir", build(t, "lab.yml", topo, "d/a", "bc", "d/e", "f")},
		{"byte moved from content to path", build(t, "lab.yml", topo, "ab", "c", "d/e", "f")},
		{"contents swapped", build(t, "lab.yml", topo, "a", "f", "d/e", "bc")},
		{"empty file added", build(t, "lab.yml", topo, "a", "bc", "d/e", "f", "z", "")},
		{"file dropped", build(t, "lab.yml", topo, "a", "bc")},
	}
	seen := map[string]string{fp: "base"}
	for _, d := range different {
		got := d.b.Fingerprint()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: same fingerprint as %s", d.name, prev)
		}
		seen[got] = d.name
	}
}

func TestFingerprintBytesBetweenTopologyAndFile(t *testing.T) {
	// No extra file versus one empty extra file named like the topology's
	// tail: the framing keeps them apart.
	a := build(t, "lab.yml", topo)
	b := build(t, "lab.yml", topo, "x", "")
	assert.NotEqual(t, a.Fingerprint(), b.Fingerprint())
}

func TestFingerprintChangesWhenFileAdded(t *testing.T) {
	b := build(t, "lab.yml", topo)
	before := b.Fingerprint()
	require.NoError(t, b.AddFile("a", nil))
	assert.NotEqual(t, before, b.Fingerprint(), "cached fingerprint not refreshed")
}

// TestFingerprintFraming recomputes the fingerprint exactly as the doc
// comment of Bundle.Fingerprint describes it.
func TestFingerprintFraming(t *testing.T) {
	files := map[string]string{"b/c": "second", "a": "first", "b.txt": "third"}
	b := build(t, "lab.yml", topo)
	for p, c := range files {
		require.NoError(t, b.AddFile(p, []byte(c)))
	}
	h := sha256.New()
	u64 := func(v int) { h.Write(binary.BigEndian.AppendUint64(nil, uint64(v))) }
	digest := func(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }
	h.Write([]byte("remotelab bundle fingerprint v1\n"))
	u64(len(topo))
	h.Write(digest(topo))
	u64(len(files))
	for _, p := range []string{"a", "b.txt", "b/c"} { // byte-wise order
		u64(len(p))
		h.Write([]byte(p))
		u64(len(files[p]))
		h.Write(digest(files[p]))
	}
	assert.Equal(t, hex.EncodeToString(h.Sum(nil)), b.Fingerprint())
}

func TestConcurrentReads(t *testing.T) {
	b := build(t, "lab.yml", topo, "a", "1", "d/b", "2", "d/c", "3")
	want := build(t, "lab.yml", topo, "a", "1", "d/b", "2", "d/c", "3").Fingerprint()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			assert.Equal(t, want, b.Fingerprint())
			assert.NoError(t, b.WriteTo(t.TempDir()))
			assert.Equal(t, []string{"a", "d/b", "d/c"}, b.Paths())
		})
	}
	wg.Wait()
}

// tree lists everything below dir: path → mode, and file contents.
func tree(t *testing.T, dir string) (modes map[string]fs.FileMode, contents map[string]string) {
	t.Helper()
	modes = map[string]fs.FileMode{}
	contents = map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		modes[rel] = fi.Mode()
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			contents[rel] = string(data)
		}
		return nil
	})
	require.NoError(t, err)
	return modes, contents
}

func TestWriteTo(t *testing.T) {
	// A restrictive umask must not change the modes WriteTo sets.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	b := build(t, "lab.yml", topo,
		"a.txt", "A",
		"configs/r1.cfg", "hostname r1\n",
		"configs/deep/x/y.bin", string([]byte{0, 1, 2}),
		"empty", "",
		"a/b", "under a",
	)
	dir := t.TempDir()
	require.NoError(t, b.WriteTo(dir))
	modes, contents := tree(t, dir)
	assert.Equal(t, map[string]fs.FileMode{
		"lab.yml":              0o644,
		"a.txt":                0o644,
		"a":                    fs.ModeDir | 0o755,
		"a/b":                  0o644,
		"configs":              fs.ModeDir | 0o755,
		"configs/r1.cfg":       0o644,
		"configs/deep":         fs.ModeDir | 0o755,
		"configs/deep/x":       fs.ModeDir | 0o755,
		"configs/deep/x/y.bin": 0o644,
		"empty":                0o644,
	}, modes)
	assert.Equal(t, map[string]string{
		"lab.yml":              topo,
		"a.txt":                "A",
		"a/b":                  "under a",
		"configs/r1.cfg":       "hostname r1\n",
		"configs/deep/x/y.bin": "\x00\x01\x02",
		"empty":                "",
	}, contents)
}

func TestWriteToExistingDirectory(t *testing.T) {
	b := build(t, "lab.yml", topo, "configs/r1.cfg", "x")
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "configs"), 0o700))
	require.NoError(t, b.WriteTo(dir))
	fi, err := os.Stat(filepath.Join(dir, "configs"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "an existing directory is left as it is")
}

func TestWriteToMissingDir(t *testing.T) {
	b := build(t, "lab.yml", topo)
	err := b.WriteTo(filepath.Join(t.TempDir(), "nope"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestWriteToRefusesWhatIsInTheWay(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, outside string) // prepares dir
	}{
		{"symlink dir to outside", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "configs")))
		}},
		{"symlink dir to inside", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "real"), 0o755))
			require.NoError(t, os.Symlink("real", filepath.Join(dir, "configs")))
		}},
		{"dangling symlink at a file", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.Mkdir(filepath.Join(dir, "configs"), 0o755))
			require.NoError(t, os.Symlink(filepath.Join(outside, "r1.cfg"), filepath.Join(dir, "configs", "r1.cfg")))
		}},
		{"symlink at the topology", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.Symlink(filepath.Join(outside, "lab.yml"), filepath.Join(dir, "lab.yml")))
		}},
		{"symlink at a file to an existing outside file", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0o644))
			require.NoError(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "z.txt")))
		}},
		{"symlink at a file to a file inside", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "other"), []byte("keep"), 0o644))
			require.NoError(t, os.Symlink("other", filepath.Join(dir, "z.txt")))
		}},
		{"regular file at a directory", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "configs"), nil, 0o644))
		}},
		{"existing file", func(t *testing.T, dir, outside string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "z.txt"), []byte("old"), 0o644))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := build(t, "lab.yml", topo, "a.txt", "A", "configs/r1.cfg", "secret", "z.txt", "Z")
			dir, outside := t.TempDir(), t.TempDir()
			tt.setup(t, dir, outside)
			beforeDir, beforeDirContents := tree(t, dir)
			beforeOut, beforeOutContents := tree(t, outside)

			require.Error(t, b.WriteTo(dir))

			afterOut, afterOutContents := tree(t, outside)
			assert.Equal(t, beforeOut, afterOut, "wrote outside dir")
			assert.Equal(t, beforeOutContents, afterOutContents, "wrote outside dir")
			afterDir, afterDirContents := tree(t, dir)
			assert.Equal(t, beforeDir, afterDir, "a failed WriteTo must remove what it created")
			assert.Equal(t, beforeDirContents, afterDirContents)
		})
	}
}

// BenchmarkFingerprint builds a bundle holding 1 MiB of extra files (16
// files of 64 KiB) and fingerprints it; the cost is hashing the content
// while adding it, in memory or through the spool directory.
func BenchmarkFingerprint(b *testing.B) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16)
	for _, spooled := range []bool{false, true} {
		b.Run(fmt.Sprintf("spooled=%v", spooled), func(b *testing.B) {
			b.SetBytes(16 * int64(len(content)))
			b.ReportAllocs()
			for b.Loop() {
				bundle, err := topology.NewBundle("lab.yml", []byte(topo), topology.Limits{})
				if err != nil {
					b.Fatal(err)
				}
				for i := range 16 {
					name := fmt.Sprintf("dir/file%02d.bin", i)
					if spooled {
						err = bundle.AddFileFrom(name, bytes.NewReader(content))
					} else {
						err = bundle.AddFile(name, content)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if len(bundle.Fingerprint()) != 64 {
					b.Fatal("bad fingerprint")
				}
				if err := bundle.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
