// Package topology parses and validates Netlab topologies and packs them,
// together with the extra files a lab needs, into a [Bundle].
//
// A Bundle is the unit the rest of remotelab works with: it has a content
// [Bundle.Fingerprint] that identifies a lab (the same topology with
// different extra files is a different lab), it enforces the upload path
// rules and size limits, and it can write itself into a fresh working
// directory where Netlab runs.
//
// The package has no HTTP, no globals and no side effects on import.
package topology
