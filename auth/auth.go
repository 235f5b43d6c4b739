// Package auth authenticates remotelab callers by token: an auth file maps
// the SHA-256 of each token to a name (shown as the session owner) and a
// role. Tokens themselves are never stored.
//
// The auth file (SPEC §10) looks like this:
//
//	tokens:
//	  - name: alice        # owner name shown everywhere
//	    role: user         # viewer | user | admin
//	    sha256: 3b0c…      # hex SHA-256 of the token
//
// Because the file holds only hashes of tokens made of 32 random bytes
// (see NewToken), reading it does not reveal a token, and the package does
// not check its file mode: who may read it is the operator's decision.
// Whoever can write it can grant themselves any role, though, so it should
// be writable by the operator only.
//
// Parse checks a file's content into an immutable Table; Load and
// File.Reload read one from disk and swap it in atomically, so a server can
// reload on SIGHUP while requests are being authenticated.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Role is what a caller may do. Roles are ordered: each one allows what
// the one below it allows. The zero Role is no role and allows nothing.
type Role int

const (
	// Viewer reads: the queue, history, events, health and metrics.
	Viewer Role = iota + 1
	// User also creates sessions and acts on the sessions it owns.
	User
	// Admin acts on any session and on the /admin routes.
	Admin
)

// roleNames are the spellings of the roles, indexed by Role.
var roleNames = [...]string{Viewer: "viewer", User: "user", Admin: "admin"}

// ParseRole parses a role name: "viewer", "user" or "admin", in any case.
func ParseRole(s string) (Role, error) {
	for r := Viewer; r <= Admin; r++ {
		if strings.EqualFold(s, roleNames[r]) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q (want viewer, user or admin)", s)
}

// String returns the role's name as the auth file spells it ("user"), or
// "Role(N)" for a value that is no role.
func (r Role) String() string {
	if !r.valid() {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// Allows reports whether a caller with role r may do what needs role need:
// Admin allows everything, User allows User and Viewer, Viewer only Viewer.
// It is false when either r or need is no role (the zero Role of a failed
// Lookup allows nothing).
func (r Role) Allows(need Role) bool {
	return r.valid() && need.valid() && r >= need
}

func (r Role) valid() bool { return r >= Viewer && r <= Admin }

// Identity is who a token belongs to.
type Identity struct {
	// Name is the token's owner name, shown as the owner of the sessions
	// it creates.
	Name string
	// Role is what the token's holder may do.
	Role Role
}

// MaxNameLen is the longest owner name, in characters, that an auth file
// may give a token.
const MaxNameLen = 128

// CheckName reports whether name may name a token: non-empty, valid UTF-8,
// printable characters only (the ASCII space is the only space allowed),
// no leading or trailing space, and at most MaxNameLen characters. Parse
// applies it to every entry; `remotelab token new` applies it to --name.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("name is empty")
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	case utf8.RuneCountInString(name) > MaxNameLen:
		return fmt.Errorf("name is longer than %d characters", MaxNameLen)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("name %q has leading or trailing spaces", name)
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("name %q has the unprintable character %U", name, c)
		}
	}
	return nil
}

// TokenPrefix starts every token NewToken makes, so a leaked token is easy
// to recognise (and to search for in logs and repositories).
const TokenPrefix = "rlab_"

// tokenBytes is how many random bytes a token carries.
const tokenBytes = 32

// NewToken returns a new random token: TokenPrefix followed by 32 bytes
// from crypto/rand in unpadded base64url (48 characters in all). The error
// is crypto/rand's; since Go 1.24 it never fails.
func NewToken() (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Hash returns the lowercase hex SHA-256 of token, as the auth file's
// sha256 field holds it.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// fileEntry is one entry of the auth file, as Entry writes it.
type fileEntry struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`
	SHA256 string `yaml:"sha256"`
}

// Entry returns the auth file entry for a new token, as an item of the
// tokens list indented to paste below `tokens:`, ending in a newline. The
// name is quoted where YAML needs it, so Parse reads it back unchanged.
// Entry panics if name fails CheckName, role is no role or token is
// empty: the caller checks user input first.
func Entry(name string, role Role, token string) string {
	if err := CheckName(name); err != nil {
		panic("auth.Entry: " + err.Error())
	}
	if !role.valid() {
		panic("auth.Entry: invalid role " + role.String())
	}
	if token == "" {
		panic("auth.Entry: empty token")
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode([]fileEntry{{Name: name, Role: role.String(), SHA256: Hash(token)}}); err != nil {
		panic("auth.Entry: encode: " + err.Error()) // strings only: cannot fail
	}
	if err := enc.Close(); err != nil {
		panic("auth.Entry: encode: " + err.Error())
	}
	lines := strings.SplitAfter(b.String(), "\n")
	var out strings.Builder
	for _, l := range lines {
		if l != "" {
			out.WriteString("  " + l)
		}
	}
	return out.String()
}
