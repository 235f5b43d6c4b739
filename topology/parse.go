package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// defaultMaxNodeName is Netlab's default limit on node name length.
// A topology may raise it with `defaults.const.MAX_NODE_ID_LENGTH`, as
// Netlab allows.
const defaultMaxNodeName = 16

// Parse parses and validates a Netlab topology. file is the topology's file
// name, used only in error messages. The topology must be a single YAML
// document holding a mapping with `nodes` as a mapping or a list of names
// (or of mappings with a `name`); node names must be identifiers (a letter
// or underscore, then letters, digits, underscores or hyphens) of at most
// 16 characters, or `defaults.const.MAX_NODE_ID_LENGTH` when the topology
// sets it (an unquoted yes/no/on/off is refused: Netlab's YAML 1.1 parser
// reads it as a boolean); `links`, when present, must be a list whose entries name known
// nodes. Keys may be written nested or dotted (`defaults.device: frr`),
// and YAML aliases and merge keys are understood. Duplicate keys in the
// mappings Parse reads, and duplicate node names, are errors. Every failure
// is a *ParseError carrying the YAML line and column when they are known.
func Parse(file string, data []byte) (*Topology, error) {
	p := &parser{file: file, budget: 4*len(data) + 4096}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	return p.topology(root)
}

// parser holds the state of one Parse call.
type parser struct {
	file string
	// budget bounds the mapping pairs and list entries Parse visits. YAML
	// aliases let a small document name the same large mapping many times;
	// without a bound a 1 MiB upload could keep Parse busy for minutes.
	// Every entry of an alias-free document is visited at most a few times,
	// so a budget proportional to the input never rejects a real topology.
	budget  int
	maxName int
}

func (p *parser) errAt(n *yaml.Node, format string, args ...any) *ParseError {
	e := &ParseError{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

func (p *parser) spend(n *yaml.Node, cost int) error {
	p.budget -= cost
	if p.budget < 0 {
		return p.errAt(n, "topology uses too many aliases or merge keys")
	}
	return nil
}

// yamlLine matches yaml.v3's "yaml: line N: message" errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes data into its single YAML document's root node.
func (p *parser) document(data []byte) (root *yaml.Node, err error) {
	// yaml.v3 is third-party code fed with uploads; a panic in it must
	// not take the server down, so it becomes an ordinary parse error.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &ParseError{File: p.file, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{File: p.file, Line: 1, Column: 1, Msg: "topology is empty"}
		}
		return nil, p.yamlError(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, p.errAt(&next, "topology must be a single YAML document")
	case !errors.Is(err, io.EOF):
		return nil, p.yamlError(err, data)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &ParseError{File: p.file, Line: 1, Column: 1, Msg: "topology is empty"}
	}
	return doc.Content[0], nil
}

// yamlError turns a yaml.v3 syntax error into a *ParseError, keeping the
// line number yaml.v3 puts into its text (it reports no column). Where
// yaml.v3 gives none, the line is found another way: yaml.v3 leaves it
// out for a syntax error on the first line; a character YAML does not
// allow (a control character, invalid UTF-8) and an unknown alias are
// looked up in data.
func (p *parser) yamlError(err error, data []byte) *ParseError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			return &ParseError{File: p.file, Line: line, Msg: "invalid YAML: " + m[2]}
		}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	e := &ParseError{File: p.file, Msg: "invalid YAML: " + msg}
	switch {
	case slices.Contains(readerErrors, msg):
		e.Line, e.Column = unreadable(data)
	case strings.HasPrefix(msg, "unknown anchor '"):
		alias, _, _ := strings.Cut(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
		e.Line, e.Column = aliasAt(data, alias)
	default:
		e.Line = 1
	}
	return e
}

// readerErrors are yaml.v3's messages for characters YAML does not allow.
var readerErrors = []string{
	"control characters are not allowed", "invalid leading UTF-8 octet",
	"incomplete UTF-8 octet sequence", "invalid trailing UTF-8 octet",
	"invalid Unicode character",
}

// aliasAt returns the line and column of the first use of alias name in
// data ("*name" ending where an alias ends, not in a comment), or 0, 0.
func aliasAt(data []byte, name string) (line, column int) {
	re := regexp.MustCompile(`\*` + regexp.QuoteMeta(name) + `(?:[\s,\]}]|$)`)
	for _, loc := range re.FindAllIndex(data, -1) {
		start := bytes.LastIndexByte(data[:loc[0]], '\n') + 1
		prefix := data[start:loc[0]]
		if bytes.HasPrefix(bytes.TrimLeft(prefix, " \t"), []byte("#")) ||
			bytes.Contains(prefix, []byte(" #")) || bytes.Contains(prefix, []byte("\t#")) {
			continue // in a comment
		}
		return bytes.Count(data[:start], []byte{'\n'}) + 1, utf8.RuneCount(prefix) + 1
	}
	return 0, 0
}

// unreadable finds the first character of UTF-8 data that YAML does not
// allow (YAML 1.2 §5.1: control characters other than tab, line feed
// and carriage return, surrogates, U+FFFE and U+FFFF, invalid UTF-8) and
// returns its line and column (in characters), both from 1, or 0, 0.
func unreadable(data []byte) (line, column int) {
	line, column = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, column
		case r == '\n':
			line, column = line+1, 1
			i += size
			continue
		case r == '\t', r == '\r', r >= 0x20 && r <= 0x7E, r == 0x85,
			r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000:
		default:
			return line, column
		}
		column++
		i += size
	}
	return 0, 0
}

func (p *parser) topology(root *yaml.Node) (*Topology, error) {
	root = deref(root)
	if root.Kind != yaml.MappingNode {
		return nil, p.errAt(root, "topology must be a mapping, found %s", kindName(root))
	}
	top, err := p.pairs(root, "key")
	if err != nil {
		return nil, err
	}
	t := &Topology{}
	if t.Name, err = p.optString(top, "name", "name"); err != nil {
		return nil, err
	}
	if t.Provider, err = p.optString(top, "provider", "provider"); err != nil {
		return nil, err
	}
	if d := find(top, "defaults"); d != nil {
		if v := deref(d.v); !isNull(v) && v.Kind != yaml.MappingNode {
			return nil, p.errAt(v, "defaults must be a mapping, found %s", kindName(v))
		}
	}
	if t.DefaultDevice, err = p.optString(top, "defaults.device", "defaults.device"); err != nil {
		return nil, err
	}
	if p.maxName, err = p.maxNameLength(top); err != nil {
		return nil, err
	}
	if t.Nodes, err = p.nodes(root, top, t.DefaultDevice); err != nil {
		return nil, err
	}
	if t.Links, err = p.links(top, t.Nodes); err != nil {
		return nil, err
	}
	return t, nil
}

func (p *parser) maxNameLength(top []pair) (int, error) {
	const key = "defaults.const.MAX_NODE_ID_LENGTH"
	pr, err := p.lookup(top, key)
	if err != nil || pr == nil {
		return defaultMaxNodeName, err
	}
	v := deref(pr.v)
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		if n, err := strconv.Atoi(v.Value); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, p.errAt(v, "%s must be a positive integer", key)
}

func (p *parser) nodes(root *yaml.Node, top []pair, defaultDevice string) ([]Node, error) {
	np := find(top, "nodes")
	if np == nil {
		return nil, p.errAt(root, "nodes is missing")
	}
	v := deref(np.v)
	var nodes []Node
	seen := make(map[string]*yaml.Node)
	add := func(name string, nameNode *yaml.Node, attrs []pair) error {
		if first, dup := seen[name]; dup {
			return p.errAt(nameNode, "duplicate node name %q (first at line %d)", name, first.Line)
		}
		seen[name] = nameNode
		device, err := p.optString(attrs, "device", "nodes."+name+".device")
		if err != nil {
			return err
		}
		if device == "" {
			device = defaultDevice
		}
		nodes = append(nodes, Node{Name: name, Device: device})
		return nil
	}
	switch {
	case isNull(v):
		return nil, p.errAt(v, "nodes is empty")
	case v.Kind == yaml.MappingNode:
		ps, err := p.pairs(v, "node name")
		if err != nil {
			return nil, err
		}
		for _, pr := range ps {
			name, err := p.nodeName(pr.k)
			if err != nil {
				return nil, err
			}
			val := deref(pr.v)
			var attrs []pair
			switch {
			case isNull(val):
			case val.Kind == yaml.MappingNode:
				if attrs, err = p.pairs(val, "key"); err != nil {
					return nil, err
				}
			default:
				return nil, p.errAt(val, "node %q must be a mapping, found %s", name, kindName(val))
			}
			if err := add(name, pr.k, attrs); err != nil {
				return nil, err
			}
		}
	case v.Kind == yaml.SequenceNode:
		if err := p.spend(v, len(v.Content)); err != nil {
			return nil, err
		}
		for i, e := range v.Content {
			e = deref(e)
			switch {
			case e.Kind == yaml.ScalarNode && !isNull(e):
				name, err := p.nodeName(e)
				if err != nil {
					return nil, err
				}
				if err := add(name, e, nil); err != nil {
					return nil, err
				}
			case e.Kind == yaml.MappingNode:
				attrs, err := p.pairs(e, "key")
				if err != nil {
					return nil, err
				}
				np := find(attrs, "name")
				if np == nil {
					return nil, p.errAt(e, "nodes[%d] has no name", i)
				}
				name, err := p.nodeName(np.v)
				if err != nil {
					return nil, err
				}
				if err := add(name, deref(np.v), attrs); err != nil {
					return nil, err
				}
			default:
				return nil, p.errAt(e, "nodes[%d] must be a node name or a mapping, found %s", i, kindName(e))
			}
		}
	default:
		return nil, p.errAt(v, "nodes must be a mapping or a list")
	}
	if len(nodes) == 0 {
		return nil, p.errAt(v, "nodes is empty")
	}
	return nodes, nil
}

// nodeName returns the node name n holds, checked against Netlab's rules.
func (p *parser) nodeName(n *yaml.Node) (string, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		return "", p.errAt(n, "node name must be a string, found %s", kindName(n))
	}
	switch {
	case isNull(n):
		return "", p.errAt(n, "node name is empty")
	case n.ShortTag() == "!!bool" || yaml11Bool(n):
		// Netlab reads YAML with PyYAML, a YAML 1.1 parser, where a
		// plain yes/no/on/off is a boolean rather than a name.
		return "", p.errAt(n, "node name %s is a boolean in YAML 1.1, as Netlab reads it; quote it", n.Value)
	}
	name := n.Value
	if !isIdentifier(name) {
		return "", p.errAt(n, "invalid node name %q: use a letter or underscore, then letters, digits, underscores or hyphens", name)
	}
	if len(name) > p.maxName {
		return "", p.errAt(n, "node name %q is longer than %d characters", name, p.maxName)
	}
	return name, nil
}

func (p *parser) links(top []pair, nodes []Node) ([]Link, error) {
	lp := find(top, "links")
	if lp == nil {
		return nil, nil
	}
	v := deref(lp.v)
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errAt(v, "links must be a list, found %s", kindName(v))
	}
	if err := p.spend(v, len(v.Content)); err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
	}
	links := make([]Link, 0, len(v.Content))
	for i, e := range v.Content {
		e = deref(e)
		where := fmt.Sprintf("links[%d]", i)
		var names []string
		var err error
		switch {
		case isString(e):
			// Netlab splits a link string on every hyphen, so a node
			// whose name has a hyphen cannot appear in this form.
			names = strings.Split(e.Value, "-")
			for _, name := range names {
				if !known[name] {
					return nil, p.errAt(e, "%s: unknown node %q in %q%s", where, name, e.Value, hyphenHint(e.Value, nodes))
				}
			}
		case e.Kind == yaml.SequenceNode:
			names, err = p.linkNodes(e, where, known)
		case e.Kind == yaml.MappingNode:
			names, err = p.linkMapping(e, where, known)
		default:
			err = p.errAt(e, "%s must be a string, a list or a mapping, found %s", where, kindName(e))
		}
		if err != nil {
			return nil, err
		}
		links = append(links, Link{Nodes: names})
	}
	return links, nil
}

// linkNodes reads a link given as a list of node names or of interface
// mappings with a `node` key.
func (p *parser) linkNodes(seq *yaml.Node, where string, known map[string]bool) ([]string, error) {
	if err := p.spend(seq, len(seq.Content)); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(seq.Content))
	for j, it := range seq.Content {
		it = deref(it)
		var nameNode *yaml.Node
		switch {
		case it.Kind == yaml.ScalarNode && !isNull(it):
			nameNode = it
		case it.Kind == yaml.MappingNode:
			ps, err := p.pairs(it, "key")
			if err != nil {
				return nil, err
			}
			np := find(ps, "node")
			if np == nil {
				return nil, p.errAt(it, "%s[%d] has no node", where, j)
			}
			nameNode = deref(np.v)
		default:
			return nil, p.errAt(it, "%s[%d] must be a node name or a mapping, found %s", where, j, kindName(it))
		}
		if !isString(nameNode) || !known[nameNode.Value] {
			return nil, p.errAt(nameNode, "%s: unknown node %q", where, nameNode.Value)
		}
		names = append(names, nameNode.Value)
	}
	return names, nil
}

// linkMapping reads a link given as a mapping: node names as keys (with
// interface attributes as values) mixed with link attributes, or a mapping
// with an `interfaces` list.
func (p *parser) linkMapping(m *yaml.Node, where string, known map[string]bool) ([]string, error) {
	ps, err := p.pairs(m, "key")
	if err != nil {
		return nil, err
	}
	if ip := find(ps, "interfaces"); ip != nil {
		iv := deref(ip.v)
		if iv.Kind != yaml.SequenceNode {
			return nil, p.errAt(iv, "%s.interfaces must be a list, found %s", where, kindName(iv))
		}
		return p.linkNodes(iv, where+".interfaces", known)
	}
	var names []string
	for _, pr := range ps {
		k := deref(pr.k)
		if !isString(k) || !known[k.Value] {
			continue // a link attribute; Netlab checks those
		}
		if v := deref(pr.v); !isNull(v) && v.Kind != yaml.MappingNode {
			return nil, p.errAt(v, "%s.%s must be a mapping, found %s", where, k.Value, kindName(v))
		}
		names = append(names, k.Value)
	}
	return names, nil
}

// hyphenHint explains an unknown node in a link string that names a node
// whose name contains a hyphen.
func hyphenHint(link string, nodes []Node) string {
	for _, n := range nodes {
		if strings.Contains(n.Name, "-") && strings.Contains(link, n.Name) {
			return "; write links to nodes with a hyphen in their name as a list"
		}
	}
	return ""
}

// optString returns the string at key (nested or dotted), "" when the key
// is absent or null; display names the key in errors.
func (p *parser) optString(ps []pair, key, display string) (string, error) {
	pr, err := p.lookup(ps, key)
	if err != nil || pr == nil {
		return "", err
	}
	v := deref(pr.v)
	switch {
	case isNull(v):
		return "", nil
	case isString(v):
		return v.Value, nil
	}
	return "", p.errAt(v, "%s must be a string, found %s", display, kindName(v))
}

// pair is one key/value entry of a YAML mapping.
type pair struct{ k, v *yaml.Node }

// find returns the pair whose key is the string key, or nil.
func find(ps []pair, key string) *pair {
	for i := range ps {
		if k := deref(ps[i].k); isString(k) && k.Value == key {
			return &ps[i]
		}
	}
	return nil
}

// lookup finds a possibly dotted key the way Netlab's data model does: a
// literal key "a.b" first, otherwise "b" inside the mapping at "a".
func (p *parser) lookup(ps []pair, key string) (*pair, error) {
	if pr := find(ps, key); pr != nil {
		return pr, nil
	}
	first, rest, ok := strings.Cut(key, ".")
	if !ok {
		return nil, nil
	}
	pr := find(ps, first)
	if pr == nil {
		return nil, nil
	}
	v := deref(pr.v)
	if v.Kind != yaml.MappingNode {
		return nil, nil
	}
	sub, err := p.pairs(v, "key")
	if err != nil {
		return nil, err
	}
	return p.lookup(sub, rest)
}

// maxMergeDepth bounds merge keys within merged mappings; it also stops a
// merge that refers to its own mapping.
const maxMergeDepth = 16

// pairs returns the entries of mapping m with merge keys (`<<`) expanded
// as YAML 1.1 defines them: merged entries come first, an explicit key
// overrides a merged one, an earlier merged mapping overrides a later one.
// A key written twice is an error; what names keys in the message.
func (p *parser) pairs(m *yaml.Node, what string) ([]pair, error) {
	return p.pairsDepth(m, what, 0)
}

func (p *parser) pairsDepth(m *yaml.Node, what string, depth int) ([]pair, error) {
	if depth > maxMergeDepth {
		return nil, p.errAt(m, "merge keys nested too deeply")
	}
	if err := p.spend(m, len(m.Content)/2); err != nil {
		return nil, err
	}
	var merged, explicit []pair
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMerge(k) {
			ps, err := p.merge(deref(v), what, depth)
			if err != nil {
				return nil, err
			}
			merged = append(merged, ps...)
			continue
		}
		if id, ok := keyID(k); ok {
			if first, dup := seen[id]; dup {
				return nil, p.errAt(k, "duplicate %s %q (first at line %d)", what, deref(k).Value, first.Line)
			}
			seen[id] = k
		}
		explicit = append(explicit, pair{k, v})
	}
	if merged == nil {
		return explicit, nil
	}
	out := make([]pair, 0, len(merged)+len(explicit))
	index := make(map[string]int)
	for _, pr := range merged {
		if id, ok := keyID(pr.k); ok {
			if _, dup := index[id]; dup {
				continue
			}
			index[id] = len(out)
		}
		out = append(out, pr)
	}
	for _, pr := range explicit {
		if id, ok := keyID(pr.k); ok {
			if i, dup := index[id]; dup {
				out[i] = pr
				continue
			}
		}
		out = append(out, pr)
	}
	return out, nil
}

func (p *parser) merge(v *yaml.Node, what string, depth int) ([]pair, error) {
	switch v.Kind {
	case yaml.MappingNode:
		return p.pairsDepth(v, what, depth+1)
	case yaml.SequenceNode:
		if err := p.spend(v, len(v.Content)); err != nil {
			return nil, err
		}
		var out []pair
		for _, s := range v.Content {
			s = deref(s)
			if s.Kind != yaml.MappingNode {
				return nil, p.errAt(s, "merge key value must be a mapping or a list of mappings, found %s", kindName(s))
			}
			ps, err := p.pairsDepth(s, what, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ps...)
		}
		return out, nil
	}
	return nil, p.errAt(v, "merge key value must be a mapping or a list of mappings, found %s", kindName(v))
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// keyID identifies a scalar key for duplicate detection.
func keyID(k *yaml.Node) (string, bool) {
	k = deref(k)
	if k.Kind != yaml.ScalarNode {
		return "", false
	}
	return k.ShortTag() + "\x00" + k.Value, true
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isString reports whether n is a string scalar both for yaml.v3 and for
// the YAML 1.1 parser Netlab uses.
func isString(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && !yaml11Bool(n)
}

// yaml11Bool reports whether n is a plain scalar that YAML 1.1 (PyYAML,
// hence Netlab) reads as a boolean although YAML 1.2 reads a string.
func yaml11Bool(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Style != 0 {
		return false
	}
	switch n.Value {
	case "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		case "!!str":
			if yaml11Bool(n) {
				return "a boolean"
			}
			return "a string"
		}
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!") + " value"
}

// isIdentifier reports whether s is a Netlab identifier: an ASCII letter
// or underscore, then ASCII letters, digits, underscores or hyphens.
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && (c == '-' || '0' <= c && c <= '9'):
		default:
			return false
		}
	}
	return true
}
