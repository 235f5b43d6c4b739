package topology_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/topology"
)

func nodes(device string, names ...string) []topology.Node {
	out := make([]topology.Node, len(names))
	for i, n := range names {
		out[i] = topology.Node{Name: n, Device: device}
	}
	return out
}

func link(names ...string) topology.Link { return topology.Link{Nodes: names} }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want topology.Topology
	}{
		{
			name: "minimal clab, dotted default device",
			in:   "provider: clab\ndefaults.device: frr\nnodes: [r1, r2]\nlinks: [r1-r2]\n",
			want: topology.Topology{
				Provider: "clab", DefaultDevice: "frr",
				Nodes: nodes("frr", "r1", "r2"),
				Links: []topology.Link{link("r1", "r2")},
			},
		},
		{
			name: "nested defaults, nodes mapping, every link form",
			in: `---
name: lab1
provider: clab
defaults:
  device: eos
nodes:
  r1:
  r2:
    device: frr
  h-1: {device: linux}
  _x:
links:
- r1-r2
- r1-r2-_x
- [r1, h-1]
- [r1, {node: r2, ipv4: true}]
- r1:
  r2:
    ipv4: 10.0.0.1/30
  mtu: 1500
  type: p2p
- interfaces: [r2, {node: h-1}]
- mtu: 9000
`,
			want: topology.Topology{
				Name: "lab1", Provider: "clab", DefaultDevice: "eos",
				Nodes: []topology.Node{{"r1", "eos"}, {"r2", "frr"}, {"h-1", "linux"}, {"_x", "eos"}},
				Links: []topology.Link{
					link("r1", "r2"), link("r1", "r2", "_x"), link("r1", "h-1"),
					link("r1", "r2"), link("r1", "r2"), link("r2", "h-1"), {},
				},
			},
		},
		{
			name: "nodes as list of mappings and names",
			in:   "nodes:\n- name: a\n  device: vyos\n- b\n- {name: c}\n",
			want: topology.Topology{Nodes: []topology.Node{{"a", "vyos"}, {"b", ""}, {"c", ""}}},
		},
		{
			name: "no device anywhere, null links",
			in:   "nodes: {r1: }\nlinks:\n",
			want: topology.Topology{Nodes: nodes("", "r1")},
		},
		{
			name: "literal dotted key wins over nested, as in Netlab",
			in:   "defaults:\n  device: eos\ndefaults.device: frr\nnodes: [r1]\n",
			want: topology.Topology{DefaultDevice: "frr", Nodes: nodes("frr", "r1")},
		},
		{
			name: "dotted key inside nested mapping",
			in:   "defaults: {device.x: 1, device: iosv}\nnodes: [r1]\n",
			want: topology.Topology{DefaultDevice: "iosv", Nodes: nodes("iosv", "r1")},
		},
		{
			name: "anchors, aliases and merge keys",
			in: `nodes:
  r1: &base {device: frr, mtu: 1500}
  r2: *base
  r3:
    <<: *base
    device: eos
  r4: {<<: [{device: vyos}, *base]}
links: &l [r1-r2]
`,
			want: topology.Topology{
				Nodes: []topology.Node{{"r1", "frr"}, {"r2", "frr"}, {"r3", "eos"}, {"r4", "vyos"}},
				Links: []topology.Link{link("r1", "r2")},
			},
		},
		{
			name: "merge key in nodes mapping keeps merged nodes first",
			in:   "nodes:\n  <<: {a: {device: x}, b: }\n  c:\n  a: {device: y}\n",
			want: topology.Topology{Nodes: []topology.Node{{"a", "y"}, {"b", ""}, {"c", ""}}},
		},
		{
			name: "quoted yes/no names are strings",
			in:   "nodes: ['on', \"no\"]\n",
			want: topology.Topology{Nodes: nodes("", "on", "no")},
		},
		{
			name: "16 character name",
			in:   "nodes: [abcdefghijklmnop]\n",
			want: topology.Topology{Nodes: nodes("", "abcdefghijklmnop")},
		},
		{
			name: "MAX_NODE_ID_LENGTH raises the name limit",
			in:   "defaults.const.MAX_NODE_ID_LENGTH: 24\nnodes: [abcdefghijklmnopqrstuvwx]\n",
			want: topology.Topology{Nodes: nodes("", "abcdefghijklmnopqrstuvwx")},
		},
		{
			name: "unknown keys and node attributes pass through",
			in:   "module: [ospf]\nbgp.as: 65000\nnodes:\n  r1: {module: [bgp], clab.kind: x}\n",
			want: topology.Topology{Nodes: nodes("", "r1")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := topology.Parse("topology.yml", []byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestParseNodeNames(t *testing.T) {
	got, err := topology.Parse("t.yml", []byte("nodes: {b: , a: , c: }"))
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "a", "c"}, got.NodeNames(), "definition order")
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		line, col int
		msg       string
	}{
		{"empty", "", 1, 1, "topology is empty"},
		{"only comments", "# nothing\n\n", 1, 1, "topology is empty"},
		{"explicit null document", "---\n", 2, 1, "topology must be a mapping, found null"},
		{"root list", "- r1\n", 1, 1, "topology must be a mapping, found a list"},
		{"root string", "hello\n", 1, 1, "topology must be a mapping, found a string"},
		{"two documents", "nodes: [r1]\n---\nnodes: [r2]\n", 2, 1, "topology must be a single YAML document"},
		{"nodes missing", "provider: clab\nname: x\n", 1, 1, "nodes is missing"},
		{"nodes null", "provider: clab\nnodes:\n", 2, 7, "nodes is empty"},
		{"nodes empty list", "nodes: []\n", 1, 8, "nodes is empty"},
		{"nodes empty mapping", "nodes: {}\n", 1, 8, "nodes is empty"},
		{"nodes scalar", "provider: clab\nnodes: r1\n", 2, 8, "nodes must be a mapping or a list"},
		{"nodes scalar indented", "defaults:\n  device: frr\nnodes:\n    r1 r2\n", 4, 5, "nodes must be a mapping or a list"},
		{"duplicate node in mapping", "nodes:\n  r1:\n  r2:\n  r1:\n", 4, 3, `duplicate node name "r1" (first at line 2)`},
		{"duplicate node in list", "nodes: [r1, r2, r1]\n", 1, 17, `duplicate node name "r1" (first at line 1)`},
		{"duplicate node via list mapping", "nodes:\n- r1\n- name: r1\n", 3, 9, `duplicate node name "r1" (first at line 2)`},
		{"duplicate top-level key", "nodes: [r1]\nnodes: [r2]\n", 2, 1, `duplicate key "nodes" (first at line 1)`},
		{"name starts with digit", "nodes: [r1, 1r]\n", 1, 13, `invalid node name "1r": use a letter or underscore, then letters, digits, underscores or hyphens`},
		{"name is a number", "nodes: [1]\n", 1, 9, `invalid node name "1": use a letter or underscore, then letters, digits, underscores or hyphens`},
		{"name with dot", "nodes:\n  r.1:\n", 2, 3, `invalid node name "r.1": use a letter or underscore, then letters, digits, underscores or hyphens`},
		{"name with space", "nodes: ['r 1']\n", 1, 9, `invalid node name "r 1": use a letter or underscore, then letters, digits, underscores or hyphens`},
		{"name not ASCII", "nodes: [rü]\n", 1, 9, `invalid node name "rü": use a letter or underscore, then letters, digits, underscores or hyphens`},
		{"name too long", "nodes: [abcdefghijklmnopq]\n", 1, 9, `node name "abcdefghijklmnopq" is longer than 16 characters`},
		{"name YAML 1.1 boolean", "nodes: [r1, on]\n", 1, 13, "node name on is a boolean in YAML 1.1, as Netlab reads it; quote it"},
		{"name YAML 1.2 boolean", "nodes:\n  true:\n", 2, 3, "node name true is a boolean in YAML 1.1, as Netlab reads it; quote it"},
		{"name null in list", "nodes: [r1, ~]\n", 1, 13, "nodes[1] must be a node name or a mapping, found null"},
		{"name null key", "nodes:\n  ~: {device: x}\n", 2, 3, "node name is empty"},
		{"list entry is a list", "nodes:\n- [r1]\n", 2, 3, "nodes[0] must be a node name or a mapping, found a list"},
		{"list mapping without name", "nodes:\n- r1\n- device: frr\n", 3, 3, "nodes[1] has no name"},
		{"list mapping name not string", "nodes:\n- name: [a]\n", 2, 9, "node name must be a string, found a list"},
		{"node value scalar", "nodes:\n  r1: eos\n", 2, 7, `node "r1" must be a mapping, found a string`},
		{"node device not string", "nodes:\n  r1: {device: 7}\n", 2, 16, "nodes.r1.device must be a string, found a number"},
		{"node duplicate attribute", "nodes:\n  r1:\n    device: a\n    device: b\n", 4, 5, `duplicate key "device" (first at line 3)`},
		{"defaults not mapping", "defaults: frr\nnodes: [r1]\n", 1, 11, "defaults must be a mapping, found a string"},
		{"default device not string", "defaults.device: [frr]\nnodes: [r1]\n", 1, 18, "defaults.device must be a string, found a list"},
		{"provider not string", "provider: {clab: 1}\nnodes: [r1]\n", 1, 11, "provider must be a string, found a mapping"},
		{"name not string", "name: yes\nnodes: [r1]\n", 1, 7, "name must be a string, found a boolean"},
		{"bad MAX_NODE_ID_LENGTH", "defaults.const.MAX_NODE_ID_LENGTH: many\nnodes: [r1]\n", 1, 36, "defaults.const.MAX_NODE_ID_LENGTH must be a positive integer"},
		{"links not a list", "nodes: [r1, r2]\nlinks: r1-r2\n", 2, 8, "links must be a list, found a string"},
		{"link string unknown node", "nodes: [r1, r2]\nlinks: [r1-r2, r1-r3]\n", 2, 16, `links[1]: unknown node "r3" in "r1-r3"`},
		{"link string empty part", "nodes: [r1, r2]\nlinks: [r1--r2]\n", 2, 9, `links[0]: unknown node "" in "r1--r2"`},
		{"link string spaces", "nodes: [r1, r2]\nlinks: [r1 - r2]\n", 2, 9, `links[0]: unknown node "r1 " in "r1 - r2"`},
		{"link string hyphenated node", "nodes: [core-1, r2]\nlinks: [core-1-r2]\n", 2, 9, `links[0]: unknown node "core" in "core-1-r2"; write links to nodes with a hyphen in their name as a list`},
		{"link list unknown node", "nodes: [r1, r2]\nlinks:\n- [r1, r9]\n", 3, 8, `links[0]: unknown node "r9"`},
		{"link list null entry", "nodes: [r1, r2]\nlinks:\n- [r1, ~]\n", 3, 8, "links[0][1] must be a node name or a mapping, found null"},
		{"link list mapping without node", "nodes: [r1, r2]\nlinks:\n- [r1, {ipv4: true}]\n", 3, 8, "links[0][1] has no node"},
		{"link list mapping unknown node", "nodes: [r1, r2]\nlinks:\n- [r1, {node: r7}]\n", 3, 15, `links[0]: unknown node "r7"`},
		{"link interfaces not a list", "nodes: [r1, r2]\nlinks:\n- interfaces: r1\n", 3, 15, "links[0].interfaces must be a list, found a string"},
		{"link interfaces unknown node", "nodes: [r1, r2]\nlinks:\n- interfaces: [r1, x]\n", 3, 20, `links[0].interfaces: unknown node "x"`},
		{"link mapping node value scalar", "nodes: [r1, r2]\nlinks:\n- r1: x\n  r2:\n", 3, 7, "links[0].r1 must be a mapping, found a string"},
		{"link entry number", "nodes: [r1, r2]\nlinks: [7]\n", 2, 9, "links[0] must be a string, a list or a mapping, found a number"},
		{"link entry null", "nodes: [r1, r2]\nlinks:\n- r1-r2\n-\n", 4, 2, "links[1] must be a string, a list or a mapping, found null"},
		{"YAML unclosed flow", "nodes: [r1\nlinks: x\n", 1, 0, "invalid YAML: did not find expected ',' or ']'"},
		{"YAML tab indentation", "nodes:\n\t- r1\n", 2, 0, "invalid YAML: found character that cannot start any token"},
		{"YAML bad mapping", "nodes:\n  r1: a: b\n", 2, 0, "invalid YAML: mapping values are not allowed in this context"},
		{"YAML unterminated quote", "nodes: \"r1\n", 2, 0, "invalid YAML: found unexpected end of stream"},
		{"YAML first line", "a: b: c\nnodes: [r1]\n", 1, 0, "invalid YAML: mapping values are not allowed in this context"},
		{"YAML control character", "nodes: [r\x01]\n", 1, 10, "invalid YAML: control characters are not allowed"},
		{"YAML control character line 3", "provider: clab\n# é\nnodes: [\"r\x1b\"]\n", 3, 11, "invalid YAML: control characters are not allowed"},
		{"YAML invalid UTF-8", "nodes:\n  - r1\xff\n", 2, 7, "invalid YAML: invalid leading UTF-8 octet"},
		{"YAML unknown anchor", "nodes: *n\n", 1, 8, "invalid YAML: unknown anchor 'n' referenced"},
		{"YAML unknown anchor line 3", "# *node is not an alias: *nodes\nprovider: clab # *node\nnodes: [*node]\n", 3, 9, "invalid YAML: unknown anchor 'node' referenced"},
		{"merge refers to itself", "nodes: &n\n  <<: *n\n", 1, 8, "merge keys nested too deeply"},
		{"merge value scalar", "nodes:\n  <<: x\n", 2, 7, "merge key value must be a mapping or a list of mappings, found a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := topology.Parse("topology.yml", []byte(tt.in))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, topology.ErrInvalid)
			var pe *topology.ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "topology.yml", pe.File)
			assert.Equal(t, tt.msg, pe.Msg)
			assert.Equal(t, tt.line, pe.Line, "line")
			assert.Equal(t, tt.col, pe.Column, "column")
		})
	}
}

func TestParseErrorText(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"provider: clab\nnodes:\n    r1\n", "lab.yml:3:5: nodes must be a mapping or a list"},
		{"nodes: [r1\n", "lab.yml:1: invalid YAML: did not find expected ',' or ']'"},
		{"nodes: [\x01]\n", "lab.yml:1:9: invalid YAML: control characters are not allowed"},
		{"nodes: *n\nlinks: [&n x]\n", "lab.yml:1:8: invalid YAML: unknown anchor 'n' referenced"},
	}
	for _, tt := range tests {
		_, err := topology.Parse("lab.yml", []byte(tt.in))
		require.Error(t, err)
		assert.EqualError(t, err, tt.want)
	}
}

// TestParseAliasBomb checks that a small document naming one big mapping
// many times through aliases is refused quickly instead of being walked
// once per alias.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x: &big {")
	for i := range 5000 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("device: frr}\nnodes:\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  n%d: *big\n", i)
	}
	start := time.Now()
	_, err := topology.Parse("t.yml", []byte(b.String()))
	var pe *topology.ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "topology uses too many aliases or merge keys", pe.Msg)
	t.Logf("refused in %v", time.Since(start))
}

func TestParseErrorIs(t *testing.T) {
	_, err := topology.Parse("t.yml", []byte("nodes: []"))
	assert.True(t, errors.Is(err, topology.ErrInvalid))
	assert.False(t, errors.Is(err, topology.ErrTooLarge))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"provider: clab\ndefaults.device: frr\nnodes: [r1, r2]\nlinks: [r1-r2]\n",
		"defaults:\n  device: eos\nnodes:\n  r1:\n  r2: {device: frr}\nlinks:\n- r1:\n  r2:\n  mtu: 1500\n- [r1, {node: r2}]\n- interfaces: [r1, r2]\n",
		"nodes:\n- name: a\n- b\n",
		"nodes: &n {r1: &a {device: x}, r2: *a, <<: {r3: }}\nlinks: [*n]\n",
		"nodes: &n\n  <<: *n\n",
		"nodes: [r1\n",
		"a: 1\n---\nb: 2\n",
		"defaults.const.MAX_NODE_ID_LENGTH: 99\nnodes: [on, 'off', ~, 1, r-1]\n",
		"nodes:\n  r1:\nlinks: [r1--r1, [r1, ~], {r1: x}, 7]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := topology.Parse("f.yml", data)
		if err != nil {
			var pe *topology.ParseError
			if !errors.As(err, &pe) || !errors.Is(err, topology.ErrInvalid) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Msg == "" || pe.Line < 0 || pe.Column < 0 {
				t.Fatalf("bad ParseError %+v", pe)
			}
			return
		}
		if len(top.Nodes) == 0 {
			t.Fatal("valid topology without nodes")
		}
		known := make(map[string]bool)
		for _, n := range top.Nodes {
			if n.Name == "" || known[n.Name] {
				t.Fatalf("empty or duplicate node name %q", n.Name)
			}
			known[n.Name] = true
		}
		for _, l := range top.Links {
			for _, n := range l.Nodes {
				if !known[n] {
					t.Fatalf("link names unknown node %q", n)
				}
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	var s strings.Builder
	s.WriteString("name: bench\nprovider: clab\ndefaults.device: frr\nnodes:\n")
	for i := range 10 {
		fmt.Fprintf(&s, "  r%d:\n    device: eos\n    module: [ospf, bgp]\n    bgp.as: %d\n", i, 65000+i)
	}
	s.WriteString("links:\n")
	for i := range 9 {
		fmt.Fprintf(&s, "- r%d-r%d\n", i, i+1)
	}
	s.WriteString("- [r0, r5, r9]\n- r0:\n  r9:\n    ipv4: 10.9.0.1/30\n  mtu: 1500\n")
	data := []byte(s.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := topology.Parse("bench.yml", data); err != nil {
			b.Fatal(err)
		}
	}
}
