package topology

import (
	"errors"
	"io"
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

func (e *PathError) Error() string { panic("unimplemented") }

// Is reports whether target is ErrUnsafePath.
func (e *PathError) Is(target error) bool { return target == ErrUnsafePath }

// LimitError reports a file, or the bundle as a whole, over a limit.
type LimitError struct {
	Path  string // the file that crossed the limit ("" for the file count)
	What  string // "topology size", "file size", "total size", "file count"
	Limit int64
}

func (e *LimitError) Error() string { panic("unimplemented") }

// Is reports whether target is ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// Limits bounds what a Bundle accepts. The zero value of a field means the
// default of DefaultLimits.
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

// ValidatePath reports whether p is a safe relative path for a bundle file:
// slash-separated, no leading "/", no "." or ".." or empty segments, no
// backslash, NUL or other control character. The error is a *PathError.
func ValidatePath(p string) error { panic("unimplemented") }

// Bundle is a topology plus extra files, each at a safe relative path. Extra
// files added from a reader are spooled to a private temporary directory,
// so a bundle of any size costs little memory; call Close to remove it.
//
// A Bundle is built by one goroutine; once built it is safe for concurrent
// reads (Fingerprint, WriteTo, accessors).
type Bundle struct {
	// implementation defined
}

// NewBundle validates name (ErrBadTopologyName) and the topology size
// (ErrTooLarge), parses the topology (ErrInvalid) and returns a bundle
// holding it. The zero Limits means DefaultLimits.
func NewBundle(name string, topology []byte, limits Limits) (*Bundle, error) {
	panic("unimplemented")
}

// AddFile adds an extra file held in memory. It fails with ErrUnsafePath or
// ErrTooLarge and then leaves the bundle unchanged.
func (b *Bundle) AddFile(path string, data []byte) error { panic("unimplemented") }

// AddFileFrom streams an extra file from r into the bundle's spool
// directory, never holding it whole in memory, and stops reading as soon
// as a limit is crossed (ErrTooLarge). On any error the bundle is
// unchanged and nothing of the file remains on disk.
func (b *Bundle) AddFileFrom(path string, r io.Reader) error { panic("unimplemented") }

// TopologyName returns the topology's file name, e.g. "lab.yml".
func (b *Bundle) TopologyName() string { panic("unimplemented") }

// TopologyBytes returns the topology file's bytes. The caller must not
// modify them.
func (b *Bundle) TopologyBytes() []byte { panic("unimplemented") }

// Topology returns the parsed topology.
func (b *Bundle) Topology() *Topology { panic("unimplemented") }

// Paths returns the extra files' relative paths in sorted order.
func (b *Bundle) Paths() []string { panic("unimplemented") }

// Size returns the total size in bytes of the topology and extra files.
func (b *Bundle) Size() int64 { panic("unimplemented") }

// Fingerprint returns the bundle's content identity as a lowercase hex
// SHA-256. It covers the topology bytes and every extra file's path and
// bytes in sorted path order, each framed with its length, so no two
// different bundles share a fingerprint by concatenation. The topology's
// file name is not part of it.
func (b *Bundle) Fingerprint() string { panic("unimplemented") }

// WriteTo writes the topology and extra files into dir, which must exist,
// in their relative layout (files 0644, directories 0755). It never follows
// or creates symlinks and never writes outside dir: a pre-existing symlink
// in the way is an error.
func (b *Bundle) WriteTo(dir string) error { panic("unimplemented") }

// Close removes the spool directory. It is safe to call more than once; the
// bundle must not be used afterwards.
func (b *Bundle) Close() error { panic("unimplemented") }
