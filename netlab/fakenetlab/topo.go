package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/topology"
)

// labData is the transformed topology: what the create step computes and
// the snapshot keeps.
type labData struct {
	Version     string     `json:"_netlab_version"`
	Input       string     `json:"input"` // absolute topology file path
	Name        string     `json:"name"`
	Provider    string     `json:"provider"`
	Instance    string     `json:"instance"`
	InstanceInt bool       `json:"instance_int"`
	Multilab    bool       `json:"multilab"`
	MgmtPrefix  string     `json:"mgmt_prefix"`
	MgmtNetwork string     `json:"mgmt_network"`
	Nodes       []sim.Node `json:"nodes"`
}

func (d *labData) key() instanceKey { return instanceKey{id: d.Instance, isInt: d.InstanceInt} }

func (d *labData) node(name string) *sim.Node {
	for i := range d.Nodes {
		if d.Nodes[i].Name == name {
			return &d.Nodes[i]
		}
	}
	return nil
}

// createOptions are the command-line settings that change the topology.
type createOptions struct {
	provider string   // -p
	device   string   // -d
	sets     []string // -s key=value
	plugins  []string // --plugin
}

var topLevelKeys = []string{"nodes", "links", "defaults", "addressing", "groups", "module", "plugin",
	"prefix", "provider", "name", "tools", "validate", "version", "message", "input", "components",
	"clab", "libvirt", "virtualbox", "external"}

var providers = []string{"clab", "external", "libvirt", "virtualbox"}

// moduleAttrs maps top-level attributes to the module that owns them.
var moduleAttrs = map[string]string{
	"bfd": "bfd", "bgp": "bgp", "dhcp": "dhcp", "eigrp": "eigrp", "evpn": "evpn", "gateway": "gateway",
	"isis": "isis", "lag": "lag", "mpls": "mpls", "ospf": "ospf", "ripv2": "ripv2", "routing": "routing",
	"sr": "sr", "srv6": "srv6", "stp": "stp", "vlan": "vlan", "vlans": "vlan", "vrf": "vrf", "vrfs": "vrf",
	"vxlan": "vxlan", "lldp": "lldp",
}

// loadTopology reads, validates and transforms a topology like netlab's
// create step. Errors are printed in netlab's format; the returned error
// is an *exitError.
func loadTopology(file string, opts createOptions) (*labData, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fatal("create", fmt.Sprintf("Topology file %s does not exist", file))
	}
	if err != nil {
		return nil, fatal("create", fmt.Sprintf("Cannot read topology file %s: %v", file, err))
	}
	abs, _ := filepath.Abs(file)
	abs, _ = filepath.EvalSymlinks(abs)

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fatal("netlab", fmt.Sprintf("Cannot read YAML from %s: %s", file, strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fatal("netlab", fmt.Sprintf("Cannot read YAML from %s: topology is not a dictionary", file))
	}
	root := doc.Content[0]

	// Command-line settings.
	if opts.provider != "" {
		setPath(root, []string{"provider"}, scalar(opts.provider))
	}
	if opts.device != "" {
		setPath(root, []string{"defaults", "device"}, scalar(opts.device))
	}
	for _, s := range opts.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fatal("netlab", fmt.Sprintf("Invalid --set argument %q, expected key=value", s))
		}
		setPath(root, strings.Split(k, "."), scalar(v))
	}

	// Unconditional failures first, like netlab.
	if n := lookup(root, "nodes"); n == nil || isEmpty(n) {
		fmt.Fprintln(os.Stderr, "MissingValue in topology: Required topology element 'nodes' is missing or empty")
		return nil, fatal("netlab", "Fatal topology errors, aborting")
	}
	provider := "libvirt"
	if p := lookup(root, "provider"); p != nil && p.Kind == yaml.ScalarNode {
		provider = p.Value
	}
	if !slices.Contains(providers, provider) {
		return nil, fatal("topology", fmt.Sprintf("Unknown virtualization provider %s. Supported providers are: %s",
			provider, strings.Join(providers, ", ")))
	}

	var problems []string
	enabled := enabledModules(root)
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i].Value
		first, _, _ := strings.Cut(key, ".")
		if slices.Contains(topLevelKeys, first) {
			continue
		}
		if mod, ok := moduleAttrs[first]; ok {
			if !slices.Contains(enabled, mod) {
				problems = append(problems, fmt.Sprintf("IncorrectAttr in topology: topology uses an attribute from module %s which is not enabled in topology", mod))
			}
			continue
		}
		problems = append(problems, fmt.Sprintf("IncorrectAttr in topology: Invalid topology attribute '%s' found in topology", key))
	}

	plugins := append([]string(nil), opts.plugins...)
	plugins = append(plugins, stringList(lookup(root, "plugin"))...)
	multilab := slices.Contains(plugins, "multilab")
	instance, instanceInt := "default", false
	if id := lookup(root, "defaults.multilab.id"); id != nil {
		n, err := strconv.Atoi(id.Value)
		if err != nil || n < 1 || n > 200 {
			problems = append(problems, fmt.Sprintf("IncorrectValue in multilab: attribute 'defaults.multilab.id' must be an integer between 1 and 200 (got %s)", id.Value))
		} else {
			instance, instanceInt = strconv.Itoa(n), true
		}
	} else if multilab {
		problems = append(problems, "MissingValue in multilab: multilab plugin needs defaults.multilab.id")
	}

	var topo *topology.Topology
	if len(problems) == 0 {
		out, err := yaml.Marshal(root)
		if err == nil {
			topo, err = topology.Parse(filepath.Base(file), out)
		}
		if err != nil {
			msg := err.Error()
			var pe *topology.ParseError
			if errors.As(err, &pe) {
				msg = pe.Msg
			}
			problems = append(problems, "IncorrectValue in topology: "+msg)
		}
	}
	if topo != nil {
		for _, n := range topo.Nodes {
			switch {
			case n.Device == "":
				problems = append(problems, fmt.Sprintf("MissingValue in nodes: No device type specified for node %s and there is no default device type", n.Name))
			case !sim.KnownDevice(n.Device):
				problems = append(problems,
					fmt.Sprintf("IncorrectValue in nodes: attribute 'nodes.%s.device' must be known device type identifier (got %s)", n.Name, n.Device),
					"... Use 'netlab show devices' to display a list of valid devices")
			}
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		return nil, fatal("netlab", "Cannot proceed beyond this point due to errors, exiting")
	}

	d := &labData{
		Version:     sim.NetlabVersion,
		Input:       abs,
		Name:        sim.LabName(topo, filepath.Dir(abs)),
		Provider:    provider,
		Instance:    instance,
		InstanceInt: instanceInt,
		Multilab:    multilab && instanceInt,
		MgmtPrefix:  sim.DefaultMgmtPrefix,
		MgmtNetwork: "netlab_mgmt",
	}
	if d.Multilab {
		d.Name = "ml-" + instance
		d.MgmtPrefix = "192.168." + instance
		d.MgmtNetwork = "nl_mgmt_" + instance
	}
	d.Nodes = sim.Inspect(topo, sim.Addressing{LabName: d.Name, MgmtPrefix: d.MgmtPrefix})
	return d, nil
}

func scalar(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: v, Tag: "!!str"}
	if _, err := strconv.Atoi(v); err == nil {
		n.Tag = "!!int"
	} else if v == "true" || v == "false" || v == "True" || v == "False" {
		n.Tag, n.Value = "!!bool", strings.ToLower(v)
	}
	return n
}

func isEmpty(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.Tag == "!!null" || n.Value == ""
	}
	return false
}

// lookup finds a dotted path in a mapping, whether written nested
// (defaults: {device: x}), dotted (defaults.device: x) or mixed.
func lookup(m *yaml.Node, path string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i].Value, m.Content[i+1]
		if k == path {
			return v
		}
		if strings.HasPrefix(path, k+".") {
			if r := lookup(v, strings.TrimPrefix(path, k+".")); r != nil {
				return r
			}
		}
	}
	return nil
}

// setPath sets a value, replacing an existing nested or dotted entry.
func setPath(m *yaml.Node, path []string, v *yaml.Node) {
	full := strings.Join(path, ".")
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == full {
			m.Content[i+1] = v
			return
		}
	}
	for j := len(path) - 1; j >= 1; j-- {
		prefix := strings.Join(path[:j], ".")
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == prefix && m.Content[i+1].Kind == yaml.MappingNode {
				setPath(m.Content[i+1], path[j:], v)
				return
			}
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: full}, v)
}

func stringList(n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var out []string
		for _, s := range strings.Split(n.Value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	case yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			out = append(out, c.Value)
		}
		return out
	}
	return nil
}

// enabledModules lists modules enabled globally or on any node.
func enabledModules(root *yaml.Node) []string {
	mods := stringList(lookup(root, "module"))
	nodes := lookup(root, "nodes")
	if nodes != nil && nodes.Kind == yaml.MappingNode {
		for i := 1; i < len(nodes.Content); i += 2 {
			mods = append(mods, stringList(lookup(nodes.Content[i], "module"))...)
		}
	}
	return mods
}

// Snapshot: netlab writes a Python pickle; the fake writes a pickle-like
// header and its own JSON. Clients must never parse it.
const snapshotFile = "netlab.snapshot.pickle"

var snapshotMagic = []byte("\x80\x05fake-netlab-snapshot\n")

func writeSnapshot(path string, d *labData) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(append([]byte(nil), snapshotMagic...), data...), 0o644)
}

func readSnapshot(path string) (*labData, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(data, snapshotMagic)
	if !ok {
		return nil, fmt.Errorf("%s is not a snapshot written by the fake netlab", path)
	}
	var d labData
	if err := json.Unmarshal(rest, &d); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &d, nil
}
