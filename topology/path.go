package topology

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors about file names. Callers branch with errors.Is; the concrete
// errors carry the offending name.
var (
	// ErrUnsafePath reports a file name that is not a safe relative path
	// (absolute, "..", "." or empty segments, backslashes, NUL or control
	// characters), a duplicate, or one that clashes with another file as
	// file and directory. The concrete error is a *PathError.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrBadTopologyName reports a topology file name that CheckTopologyName
	// refuses.
	ErrBadTopologyName = errors.New("topology must be a .yml or .yaml file")
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

// CheckTopologyName reports whether name may name a topology file, the one
// rule shared by NewBundle, the server (which answers 400 to a name it
// refuses) and the client (which refuses it before sending anything). A
// topology name is a plain file name:
//
//   - no directory: neither "/" nor a backslash;
//   - a safe path as ValidatePath defines it (valid UTF-8, no NUL or
//     other control character, at most 255 bytes, not "." or "..");
//   - ending in ".yml" or ".yaml" in any case ("LAB.YAML");
//   - with a non-empty stem before that extension, so ".yml" alone is
//     refused while ".hidden.yml" and "my lab.yml" are accepted.
//
// The error wraps ErrBadTopologyName and quotes the name.
func CheckTopologyName(name string) error {
	if strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("%w without a directory, got %q", ErrBadTopologyName, name)
	}
	if err := ValidatePath(name); err != nil {
		var pe *PathError
		errors.As(err, &pe)
		return fmt.Errorf("%w with a safe name, got %q: %s", ErrBadTopologyName, name, pe.Reason)
	}
	ext := strings.ToLower(path.Ext(name))
	if ext != ".yml" && ext != ".yaml" {
		return fmt.Errorf("%w, got %q", ErrBadTopologyName, name)
	}
	if len(ext) == len(name) {
		return fmt.Errorf("%w with a name before the extension, got %q", ErrBadTopologyName, name)
	}
	return nil
}
