package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Table is one loaded auth file; immutable, safe for concurrent use.
type Table struct {
	entries []entry
}

// entry is one token of a Table.
type entry struct {
	sum [sha256.Size]byte
	id  Identity
}

// Lookup returns the identity of token, or false when the table does not
// know it (an empty token is never known). It hashes the token once and
// compares the hash with every entry's in constant time, so the time it
// takes does not tell how close a guess came to a known hash.
func (t *Table) Lookup(token string) (Identity, bool) {
	if t == nil || token == "" {
		return Identity{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.entries {
		eq := subtle.ConstantTimeCompare(sum[:], t.entries[i].sum[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Identity{}, false
	}
	return t.entries[found].id, true
}

// Len returns the number of tokens in the table. An auth file may list
// none; then every caller is refused, and the server should say so.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// entryKeys are the keys an entry of the tokens list may have.
var entryKeys = []string{"name", "role", "sha256"}

// emptySum is the hash of the empty token, which no entry may have.
var emptySum = sha256.Sum256(nil)

// Parse parses and checks an auth file's content: a single YAML document
// holding a mapping whose only key is `tokens`, a list of entries with
// exactly the keys name, role and sha256. The list may be empty (`[]`, or
// no value at all); the caller should warn that every caller will be
// refused. Names must pass
// CheckName and be unique; roles are viewer, user or admin in any case;
// sha256 is 64 hex digits in any case, unique across entries, and not the
// hash of the empty token. Errors give the YAML line where it is known
// and, for an entry, its number (counted from 1) and name.
func Parse(data []byte) (t *Table, err error) {
	// yaml.v3 is third-party code; a panic in it on a broken file must not
	// take down a server reloading on SIGHUP.
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("invalid YAML: %v", r)
		}
	}()
	root, err := document(data)
	if err != nil {
		return nil, err
	}
	list, err := tokensList(root)
	if err != nil {
		return nil, err
	}
	t = &Table{entries: make([]entry, 0, len(list))}
	for i, n := range list {
		e, err := parseEntry(n, i+1)
		if err != nil {
			return nil, err
		}
		if err := t.checkUnique(e, n, i+1); err != nil {
			return nil, err
		}
		t.entries = append(t.entries, e)
	}
	return t, nil
}

// document decodes data's single YAML document and returns its root node.
func document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("auth file is empty: it needs a tokens list")
		}
		return nil, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, fmt.Errorf("line %d: auth file must be a single YAML document", next.Line)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) != 1 {
		return nil, errors.New("auth file is empty: it needs a tokens list")
	}
	return doc.Content[0], nil
}

// tokensList checks the root mapping and returns the tokens list's items.
// A `tokens:` with no value is an empty list.
func tokensList(root *yaml.Node) ([]*yaml.Node, error) {
	root = deref(root)
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: auth file must be a mapping with a tokens list, found %s", root.Line, kindName(root))
	}
	var tokens *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case k.Value != "tokens":
			return nil, fmt.Errorf("line %d: unknown key %q (the only key is tokens)", k.Line, k.Value)
		case tokens != nil:
			return nil, fmt.Errorf("line %d: key tokens appears twice", k.Line)
		}
		tokens = deref(v)
	}
	switch {
	case tokens == nil:
		return nil, fmt.Errorf("line %d: auth file has no tokens list", root.Line)
	case isNull(tokens):
		return nil, nil
	case tokens.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf("line %d: tokens must be a list, found %s", tokens.Line, kindName(tokens))
	}
	return tokens.Content, nil
}

// parseEntry checks the entry node n, the num-th of the tokens list.
func parseEntry(n *yaml.Node, num int) (entry, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return entry{}, fmt.Errorf("line %d: tokens entry %d must be a mapping with name, role and sha256, found %s", n.Line, num, kindName(n))
	}
	values := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		values[k.Value] = v // checked below, once the name is known
	}
	name := scalar(values["name"])
	errf := func(at *yaml.Node, format string, args ...any) error {
		if at == nil {
			at = n
		}
		where := fmt.Sprintf("line %d: tokens entry %d", at.Line, num)
		if name != "" {
			where += fmt.Sprintf(" (%q)", name)
		}
		return fmt.Errorf("%s: "+format, append([]any{where}, args...)...)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case !slices.Contains(entryKeys, k.Value):
			return entry{}, errf(k, "unknown key %q (known: %s)", k.Value, strings.Join(entryKeys, ", "))
		case seen[k.Value]:
			return entry{}, errf(k, "key %s appears twice", k.Value)
		}
		seen[k.Value] = true
	}
	for _, key := range entryKeys {
		v := values[key]
		switch {
		case v == nil || isNull(v):
			return entry{}, errf(v, "%s is missing", key)
		case v.Kind != yaml.ScalarNode:
			return entry{}, errf(v, "%s must be a string, found %s", key, kindName(v))
		}
	}
	if err := CheckName(name); err != nil {
		return entry{}, errf(values["name"], "%w", err)
	}
	role, err := ParseRole(values["role"].Value)
	if err != nil {
		return entry{}, errf(values["role"], "%w", err)
	}
	e := entry{id: Identity{Name: name, Role: role}}
	hexSum := values["sha256"].Value
	if n := utf8.RuneCountInString(hexSum); n != 2*sha256.Size {
		return entry{}, errf(values["sha256"], "sha256 must be %d hex digits, found %d characters", 2*sha256.Size, n)
	}
	sum, err := hex.DecodeString(hexSum) // any case
	if err != nil {
		return entry{}, errf(values["sha256"], "sha256 must be %d hex digits: %w", 2*sha256.Size, err)
	}
	e.sum = [sha256.Size]byte(sum) // 64 hex digits decode to exactly 32 bytes
	if e.sum == emptySum {
		return entry{}, errf(values["sha256"], "sha256 is the hash of the empty token")
	}
	return e, nil
}

// checkUnique fails when e, from the entry node n (the num-th), repeats a
// name or a hash of an entry already in t.
func (t *Table) checkUnique(e entry, n *yaml.Node, num int) error {
	for j, prev := range t.entries {
		switch {
		case prev.id.Name == e.id.Name:
			return fmt.Errorf("line %d: tokens entry %d (%q): name already used by entry %d", n.Line, num, e.id.Name, j+1)
		case prev.sum == e.sum:
			return fmt.Errorf("line %d: tokens entry %d (%q): sha256 already used by entry %d (%q): every token needs its own entry", n.Line, num, e.id.Name, j+1, prev.id.Name)
		}
	}
	return nil
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// scalar returns n's value when it is a non-null scalar, else "".
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		return ""
	}
	return n.Value
}

// kindName names n's kind for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}
