package topology

import (
	"errors"
	"fmt"
)

// ErrTooLarge reports an exceeded size or count limit. The concrete error
// is a *LimitError.
var ErrTooLarge = errors.New("too large")

// LimitKind says which of the Limits a LimitError crossed. The zero value
// names no limit.
type LimitKind int

// The limits of Limits, one kind each.
const (
	LimitTopologySize LimitKind = iota + 1 // Limits.MaxTopologyBytes
	LimitFileSize                          // Limits.MaxFileBytes
	LimitTotalSize                         // Limits.MaxTotalBytes
	LimitFileCount                         // Limits.MaxFiles
)

// String names the kind for messages, e.g. "file size".
func (k LimitKind) String() string {
	switch k {
	case LimitTopologySize:
		return "topology size"
	case LimitFileSize:
		return "file size"
	case LimitTotalSize:
		return "total size"
	case LimitFileCount:
		return "file count"
	}
	return fmt.Sprintf("LimitKind(%d)", int(k))
}

// LimitError reports a file, or the bundle as a whole, over a limit.
type LimitError struct {
	Path  string    // the file that crossed the limit ("" for LimitFileCount)
	Kind  LimitKind // which limit
	Limit int64     // its value: bytes, or files for LimitFileCount
}

func (e *LimitError) Error() string {
	if e.Kind == LimitFileCount {
		return fmt.Sprintf("too many extra files: the limit is %d", e.Limit)
	}
	return fmt.Sprintf("%q: %s over the limit of %s", e.Path, e.Kind, formatBytes(e.Limit))
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
