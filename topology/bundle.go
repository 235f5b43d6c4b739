package topology

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"sync"
)

// Bundle is a topology plus extra files, each at a safe relative path. Extra
// files added from a reader are spooled to a private temporary directory,
// so a bundle of any size costs little memory; call Close to remove it.
//
// A Bundle is built by one goroutine; once built it is safe for concurrent
// reads (Fingerprint, WriteTo, accessors).
type Bundle struct {
	name    string
	topo    []byte
	topoSum [sha256.Size]byte
	parsed  *Topology
	limits  Limits

	files map[string]*entry // extra files by path
	dirs  map[string]string // directory prefix → first file beneath it
	size  int64             // topology plus extra files
	spool string            // spool directory; "" until needed

	mu sync.Mutex // guards fp
	fp string     // cached Fingerprint; "" until computed
}

// entry is one extra file: in memory (data) or spooled (spool != "").
type entry struct {
	data  []byte
	spool string
	size  int64
	sum   [sha256.Size]byte
}

func (e *entry) open() (io.ReadCloser, error) {
	if e.spool != "" {
		return os.Open(e.spool)
	}
	return io.NopCloser(bytes.NewReader(e.data)), nil
}

// NewBundle checks name with CheckTopologyName (ErrBadTopologyName) and
// the topology size (ErrTooLarge), parses the topology (ErrInvalid) and
// returns a bundle holding a copy of it. The zero Limits means DefaultLimits.
func NewBundle(name string, topology []byte, limits Limits) (*Bundle, error) {
	limits = limits.WithDefaults()
	if err := CheckTopologyName(name); err != nil {
		return nil, err
	}
	n := int64(len(topology))
	if n > limits.MaxTopologyBytes {
		return nil, &LimitError{Path: name, Kind: LimitTopologySize, Limit: limits.MaxTopologyBytes}
	}
	if n > limits.MaxTotalBytes {
		return nil, &LimitError{Path: name, Kind: LimitTotalSize, Limit: limits.MaxTotalBytes}
	}
	t, err := Parse(name, topology)
	if err != nil {
		return nil, err
	}
	return &Bundle{
		name:    name,
		topo:    bytes.Clone(topology),
		topoSum: sha256.Sum256(topology),
		parsed:  t,
		limits:  limits,
		files:   make(map[string]*entry),
		dirs:    make(map[string]string),
		size:    n,
	}, nil
}

// checkAdd validates a new file's path against the path rules, the files
// already present and the file count.
func (b *Bundle) checkAdd(p string) error {
	if b.files == nil {
		panic("topology: Bundle used without NewBundle")
	}
	if err := ValidatePath(p); err != nil {
		return err
	}
	switch _, dup := b.files[p]; {
	case dup:
		return &PathError{Path: p, Reason: "duplicate"}
	case p == b.name:
		return &PathError{Path: p, Reason: "clashes with the topology file"}
	}
	if f, ok := b.dirs[p]; ok {
		return &PathError{Path: p, Reason: fmt.Sprintf("clashes with directory %q of %q", p, f)}
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		d := p[:i]
		if _, ok := b.files[d]; ok || d == b.name {
			return &PathError{Path: p, Reason: fmt.Sprintf("clashes with file %q", d)}
		}
	}
	if len(b.files) >= b.limits.MaxFiles {
		return &LimitError{Kind: LimitFileCount, Limit: int64(b.limits.MaxFiles)}
	}
	return nil
}

// add records a checked file.
func (b *Bundle) add(p string, e *entry) {
	b.files[p] = e
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			if _, ok := b.dirs[p[:i]]; !ok {
				b.dirs[p[:i]] = p
			}
		}
	}
	b.size += e.size
	b.mu.Lock()
	b.fp = ""
	b.mu.Unlock()
}

// AddFile adds a copy of an extra file held in memory. It fails with
// ErrUnsafePath or ErrTooLarge and then leaves the bundle unchanged.
func (b *Bundle) AddFile(path string, data []byte) error {
	if err := b.checkAdd(path); err != nil {
		return err
	}
	n := int64(len(data))
	if n > b.limits.MaxFileBytes {
		return &LimitError{Path: path, Kind: LimitFileSize, Limit: b.limits.MaxFileBytes}
	}
	if n > b.limits.MaxTotalBytes-b.size {
		return &LimitError{Path: path, Kind: LimitTotalSize, Limit: b.limits.MaxTotalBytes}
	}
	b.add(path, &entry{data: bytes.Clone(data), size: n, sum: sha256.Sum256(data)})
	return nil
}

// AddFileFrom streams an extra file from r into the bundle's spool
// directory, never holding it whole in memory, and stops reading as soon
// as a limit is crossed (ErrTooLarge): it reads at most one byte more than
// the file may hold. On any error the bundle is unchanged and nothing of
// the file remains on disk.
func (b *Bundle) AddFileFrom(path string, r io.Reader) (err error) {
	if err := b.checkAdd(path); err != nil {
		return err
	}
	allowed := min(b.limits.MaxFileBytes, b.limits.MaxTotalBytes-b.size)
	if b.spool == "" {
		dir, mkErr := os.MkdirTemp("", "remotelab-spool-")
		if mkErr != nil {
			return fmt.Errorf("spool %q: %w", path, mkErr)
		}
		b.spool = dir
		defer func() {
			if err != nil { // leave no empty spool directory behind
				_ = os.Remove(dir)
				b.spool = ""
			}
		}()
	}
	f, err := os.CreateTemp(b.spool, "file-")
	if err != nil {
		return fmt.Errorf("spool %q: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	limit := allowed
	if limit < math.MaxInt64 {
		limit++ // one byte more tells "at the limit" from "over it"
	}
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit))
	if closeErr := f.Close(); err == nil && closeErr != nil {
		return fmt.Errorf("spool %q: %w", path, closeErr)
	}
	switch {
	case err != nil:
		return fmt.Errorf("spool %q: %w", path, err)
	case n > b.limits.MaxFileBytes:
		return &LimitError{Path: path, Kind: LimitFileSize, Limit: b.limits.MaxFileBytes}
	case n > allowed:
		return &LimitError{Path: path, Kind: LimitTotalSize, Limit: b.limits.MaxTotalBytes}
	}
	e := &entry{spool: f.Name(), size: n}
	h.Sum(e.sum[:0])
	b.add(path, e)
	return nil
}

// TopologyName returns the topology's file name, e.g. "lab.yml".
func (b *Bundle) TopologyName() string { return b.name }

// TopologyBytes returns the topology file's bytes. The caller must not
// modify them.
func (b *Bundle) TopologyBytes() []byte { return b.topo }

// Topology returns the parsed topology.
func (b *Bundle) Topology() *Topology { return b.parsed }

// Paths returns the extra files' relative paths in sorted order.
func (b *Bundle) Paths() []string {
	paths := make([]string, 0, len(b.files))
	for p := range b.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// Size returns the total size in bytes of the topology and extra files.
func (b *Bundle) Size() int64 { return b.size }

// fingerprintTag opens the fingerprint's input; a new framing gets a new
// tag, so fingerprints of different framings never meet.
const fingerprintTag = "remotelab bundle fingerprint v1\n"

// Fingerprint returns the bundle's content identity as a lowercase hex
// SHA-256. It covers the topology bytes and every extra file's path and
// bytes in sorted path order, each framed with its length, so no two
// different bundles share a fingerprint by concatenation. The topology's
// file name is not part of it.
//
// Exactly, with u64(x) an unsigned 64-bit big-endian integer and H the
// SHA-256 digest (32 bytes), the fingerprint is H of
//
//	"remotelab bundle fingerprint v1\n"
//	u64(len(topology)) H(topology)
//	u64(number of extra files)
//	for each extra file, by path in byte-wise ascending order:
//	    u64(len(path)) path u64(len(content)) H(content)
//
// Every field has a fixed length or is preceded by its length, so the
// input decodes in exactly one way. The result is computed once and
// cached until the bundle changes.
func (b *Bundle) Fingerprint() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fp != "" {
		return b.fp
	}
	h := sha256.New()
	var num [8]byte
	putUint := func(v uint64) {
		binary.BigEndian.PutUint64(num[:], v)
		h.Write(num[:])
	}
	io.WriteString(h, fingerprintTag)
	putUint(uint64(len(b.topo)))
	h.Write(b.topoSum[:])
	paths := b.Paths()
	putUint(uint64(len(paths)))
	for _, p := range paths {
		e := b.files[p]
		putUint(uint64(len(p)))
		io.WriteString(h, p)
		putUint(uint64(e.size))
		h.Write(e.sum[:])
	}
	b.fp = hex.EncodeToString(h.Sum(nil))
	return b.fp
}

// WriteTo writes the topology and extra files into dir, which must exist,
// in their relative layout (files 0644, directories 0755, whatever the
// umask). It never follows or creates symlinks and never writes outside
// dir: a pre-existing symlink in the way is an error, and so is an
// existing file at one of the bundle's paths (dir is meant to be fresh;
// existing directories are used as they are). On error WriteTo removes
// what it created.
func (b *Bundle) WriteTo(dir string) (err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	defer root.Close()
	var created []string // in creation order, for cleaning up
	defer func() {
		if err != nil {
			for _, name := range slices.Backward(created) {
				_ = root.Remove(name)
			}
		}
	}()
	made := make(map[string]bool)
	mkdirs := func(p string) error {
		for i := 0; i < len(p); i++ {
			if p[i] != '/' || made[p[:i]] {
				continue
			}
			d := p[:i]
			switch err := root.Mkdir(d, 0o755); {
			case err == nil:
				created = append(created, d)
				if err := root.Chmod(d, 0o755); err != nil {
					return err
				}
			case errors.Is(err, fs.ErrExist):
				// Parents were checked before, so Lstat sees d itself.
				fi, err := root.Lstat(d)
				if err != nil {
					return err
				}
				if !fi.IsDir() {
					return fmt.Errorf("%s exists and is not a directory (%s)", d, fi.Mode().Type())
				}
			default:
				return err
			}
			made[d] = true
		}
		return nil
	}
	write := func(name string, src io.Reader) error {
		// O_EXCL refuses any existing name, symlinks included, without
		// following it.
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		created = append(created, name)
		err = f.Chmod(0o644)
		if err == nil {
			_, err = io.Copy(f, src)
		}
		if closeErr := f.Close(); err == nil {
			err = closeErr
		}
		return err
	}
	if err := write(b.name, bytes.NewReader(b.topo)); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	for _, p := range b.Paths() {
		if err := mkdirs(p); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
		src, err := b.files[p].open()
		if err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
		err = write(p, src)
		src.Close()
		if err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
	}
	return nil
}

// Close removes the spool directory. It is safe to call more than once; the
// bundle must not be used afterwards.
func (b *Bundle) Close() error {
	if b.spool == "" {
		return nil
	}
	err := os.RemoveAll(b.spool)
	b.spool = ""
	if err != nil {
		return fmt.Errorf("remove spool: %w", err)
	}
	return nil
}
