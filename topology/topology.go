package topology

import (
	"errors"
	"fmt"
)

// ErrInvalid is matched (with errors.Is) by every error that reports a
// topology that is not valid YAML or not a valid Netlab topology. The
// concrete error is a *ParseError.
var ErrInvalid = errors.New("invalid topology")

// ParseError reports where and why a topology is invalid. Its Error method
// reads like a compiler message: "topology.yml:3:5: nodes must be a mapping
// or a list". Line and Column are 1-based; 0 means unknown.
type ParseError struct {
	File   string // topology file name as given to Parse
	Line   int
	Column int
	Msg    string
}

func (e *ParseError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

// Is reports whether target is ErrInvalid.
func (e *ParseError) Is(target error) bool { return target == ErrInvalid }

// Topology is the part of a Netlab topology remotelab understands. Netlab
// owns the full schema; everything not listed here is passed through to it
// untouched.
type Topology struct {
	// Name is the topology's `name:` attribute, or "" when not set.
	Name string
	// Provider is the `provider:` attribute, or "" when not set (Netlab
	// then defaults to libvirt).
	Provider string
	// DefaultDevice is `defaults.device` (nested or dotted form), or "".
	DefaultDevice string
	// Nodes in definition order (Netlab assigns node ids in this order).
	Nodes []Node
	// Links in definition order, each as the node names it connects.
	Links []Link
}

// Node is one lab node.
type Node struct {
	Name string
	// Device is the node's `device:`, falling back to the topology's
	// DefaultDevice; "" when neither is set.
	Device string
}

// Link is one entry of `links:`.
type Link struct {
	// Nodes are the node names the link attaches, in the order written.
	Nodes []string
}

// NodeNames returns the node names in definition order.
func (t *Topology) NodeNames() []string {
	names := make([]string, len(t.Nodes))
	for i, n := range t.Nodes {
		names[i] = n.Name
	}
	return names
}
