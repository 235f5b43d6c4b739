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
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Errors returned by Bundle methods. Callers branch with errors.Is; the
// concrete errors carry the offending name and limit.
var (
	// ErrUnsafePath reports a file name that is not a safe relative path
	// (absolute, "..", "." or empty segments, backslashes, NUL or control
	// characters), a duplicate, or one that clashes with another file as
	// file and directory. The concrete error is a *PathError.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrBadTopologyName reports a topology file name that does not end in
	// .yml or .yaml (any case) or that contains a directory.
	ErrBadTopologyName = errors.New("topology must be a .yml or .yaml file")
	// ErrTooLarge reports an exceeded size or count limit. The concrete
	// error is a *LimitError.
	ErrTooLarge = errors.New("too large")
)

// PathError reports an unsafe or clashing file name.
type PathError struct {
	Path   string // the name as received (quoted with %q when printed)
	Reason string // e.g. "absolute path", "'..' segment", "duplicate"
}

func (e *PathError) Error() string {
	return fmt.Sprintf("unsafe path %q: %s", e.Path, e.Reason)
}

// Is reports whether target is ErrUnsafePath.
func (e *PathError) Is(target error) bool { return target == ErrUnsafePath }

// LimitError reports a file, or the bundle as a whole, over a limit.
type LimitError struct {
	Path  string // the file that crossed the limit ("" for the file count)
	What  string // "topology size", "file size", "total size", "file count"
	Limit int64
}

func (e *LimitError) Error() string {
	if e.What == "file count" {
		return fmt.Sprintf("too many extra files: the limit is %d", e.Limit)
	}
	return fmt.Sprintf("%q: %s over the limit of %s", e.Path, e.What, formatBytes(e.Limit))
}

// Is reports whether target is ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

func formatBytes(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Limits bounds what a Bundle accepts. The zero value of a field means the
// default of DefaultLimits; a negative value is a programming error and
// makes NewBundle panic.
type Limits struct {
	MaxTopologyBytes int64 // topology file size (1 MiB)
	MaxFileBytes     int64 // size of one extra file (32 MiB)
	MaxTotalBytes    int64 // topology plus all extra files (128 MiB)
	MaxFiles         int   // number of extra files (512)
}

// DefaultLimits returns the limits of the spec: 1 MiB topology, 32 MiB per
// extra file, 128 MiB in all, 512 extra files.
func DefaultLimits() Limits {
	return Limits{
		MaxTopologyBytes: 1 << 20,
		MaxFileBytes:     32 << 20,
		MaxTotalBytes:    128 << 20,
		MaxFiles:         512,
	}
}

// ErrNegativeLimit is returned by Limits.Validate for a negative field.
var ErrNegativeLimit = errors.New("negative upload limit")

// Validate reports a negative field (ErrNegativeLimit). Zero fields are
// valid: they mean the default.
func (l Limits) Validate() error {
	if l.MaxTopologyBytes < 0 || l.MaxFileBytes < 0 || l.MaxTotalBytes < 0 || l.MaxFiles < 0 {
		return ErrNegativeLimit
	}
	return nil
}

// WithDefaults returns l with its zero fields set from DefaultLimits. It
// panics on a negative field: check with Validate first.
func (l Limits) WithDefaults() Limits {
	if l.Validate() != nil {
		panic("topology: negative value in Limits")
	}
	d := DefaultLimits()
	if l.MaxTopologyBytes == 0 {
		l.MaxTopologyBytes = d.MaxTopologyBytes
	}
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = d.MaxFiles
	}
	return l
}

// Bounds on path length. Linux refuses longer file names (NAME_MAX), so a
// path beyond them could be accepted here and only fail in WriteTo.
const (
	maxSegmentBytes = 255
	maxPathBytes    = 1024
)

// ValidatePath reports whether p is a safe relative path for a bundle file:
// slash-separated valid UTF-8, no leading "/", no "." or ".." or empty
// segments (so no trailing "/"), no backslash, NUL or other control
// character (C0, DEL or C1), segments of at most 255 bytes and at most
// 1024 bytes in all. The error is a *PathError.
func ValidatePath(p string) error {
	bad := func(reason string) error { return &PathError{Path: p, Reason: reason} }
	switch {
	case p == "":
		return bad("empty path")
	case len(p) > maxPathBytes:
		return bad(fmt.Sprintf("longer than %d bytes", maxPathBytes))
	case !utf8.ValidString(p):
		return bad("invalid UTF-8")
	}
	for _, r := range p {
		switch {
		case r == 0:
			return bad("NUL character")
		case unicode.IsControl(r):
			return bad("control character")
		case r == '\\':
			return bad("backslash")
		}
	}
	if p[0] == '/' {
		return bad("absolute path")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return bad("empty segment")
		case seg == ".":
			return bad("'.' segment")
		case seg == "..":
			return bad("'..' segment")
		case len(seg) > maxSegmentBytes:
			return bad(fmt.Sprintf("segment longer than %d bytes", maxSegmentBytes))
		}
	}
	return nil
}

// checkTopologyName validates the topology's file name.
func checkTopologyName(name string) error {
	if strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("%w without a directory, got %q", ErrBadTopologyName, name)
	}
	if err := ValidatePath(name); err != nil {
		var pe *PathError
		errors.As(err, &pe)
		return fmt.Errorf("%w with a safe name, got %q: %s", ErrBadTopologyName, name, pe.Reason)
	}
	ext := strings.ToLower(filepath.Ext(name))
	if (ext != ".yml" && ext != ".yaml") || len(ext) == len(name) {
		return fmt.Errorf("%w, got %q", ErrBadTopologyName, name)
	}
	return nil
}

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

// NewBundle validates name (ErrBadTopologyName) and the topology size
// (ErrTooLarge), parses the topology (ErrInvalid) and returns a bundle
// holding a copy of it. The zero Limits means DefaultLimits.
func NewBundle(name string, topology []byte, limits Limits) (*Bundle, error) {
	limits = limits.WithDefaults()
	if err := checkTopologyName(name); err != nil {
		return nil, err
	}
	n := int64(len(topology))
	if n > limits.MaxTopologyBytes {
		return nil, &LimitError{Path: name, What: "topology size", Limit: limits.MaxTopologyBytes}
	}
	if n > limits.MaxTotalBytes {
		return nil, &LimitError{Path: name, What: "total size", Limit: limits.MaxTotalBytes}
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
		return &LimitError{What: "file count", Limit: int64(b.limits.MaxFiles)}
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
		return &LimitError{Path: path, What: "file size", Limit: b.limits.MaxFileBytes}
	}
	if n > b.limits.MaxTotalBytes-b.size {
		return &LimitError{Path: path, What: "total size", Limit: b.limits.MaxTotalBytes}
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
		return &LimitError{Path: path, What: "file size", Limit: b.limits.MaxFileBytes}
	case n > allowed:
		return &LimitError{Path: path, What: "total size", Limit: b.limits.MaxTotalBytes}
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
