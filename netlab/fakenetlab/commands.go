package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// selectInstance handles -i ID: it changes into the instance's directory.
func selectInstance(module, id string, quiet bool) error {
	s, err := readStatusUnlocked()
	if err != nil {
		return err
	}
	in := s.get(id)
	if in == nil {
		return fatalError(module, "Unknown instance "+id, "Use 'netlab status --all' to display all running instances")
	}
	if err := os.Chdir(in.Dir); err != nil {
		return fatal("netlab", fmt.Sprintf("Cannot change directory to %s: %v", in.Dir, err))
	}
	if !quiet {
		fmt.Printf("[CHANGED] Selected instance %s, current directory changed to %s\n", id, in.Dir)
	}
	return nil
}

func cmdDown(ctx context.Context, args []string) error {
	p := &argParser{prog: "netlab down", opts: []option{
		{short: "-v", long: "--verbose", kind: optCount},
		{long: "--cleanup", kind: optBool},
		{long: "--dry-run", kind: optBool},
		{long: "--force", kind: optCount},
		{short: "-i", long: "--instance", kind: optValue, metavar: "INSTANCE"},
		{long: "--snapshot", kind: optOptional, def: snapshotFile, metavar: "SNAPSHOT"},
	}}
	a := p.parse(args)
	force := a.count("--force")
	if id := a.value("--instance"); id != "" {
		if err := selectInstance("down", id, false); err != nil {
			return err
		}
	}
	dir := cwd()
	snap := snapshotFile
	if a.has("--snapshot") {
		snap = a.value("--snapshot")
	}
	d, err := readSnapshot(snap)
	if errors.Is(err, fs.ErrNotExist) {
		return fatalError("down", fmt.Sprintf("The topology snapshot file %s does not exist", snap),
			"Looks like no lab was started from this directory",
			"Use 'netlab status --all' to display labs running on this system")
	}
	if err != nil {
		return fatal("netlab", err.Error())
	}
	id := d.Instance

	// Directory mismatch: netlab asks, and stdin at EOF makes Python fail.
	s, err := readStatusUnlocked()
	if err != nil {
		return err
	}
	mismatch := false
	if in := s.get(id); in != nil && in.Dir != dir {
		mismatch = true
		fmt.Printf("The lab instance %s is running in directory %s, not in the current directory %s\n", id, in.Dir, dir)
		if force < 2 {
			fmt.Print("Do you want to proceed? [y/n]: ")
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil {
				fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
				fmt.Fprintln(os.Stderr, `  File "netsim/cli/down.py", line 120, in run`)
				fmt.Fprintln(os.Stderr, "EOFError: EOF when reading a line")
				return &exitError{1}
			}
			if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(line)), "y") {
				return nil
			}
		}
	}

	fmt.Println("Checking virtualization provider installation")
	fmt.Printf("OK: %s installed and working correctly\n", d.Provider)
	if !mismatch {
		if err := updateInstance(id, "lab shutdown requested", ""); err != nil {
			return err
		}
	}
	if a.flag("--dry-run") {
		fmt.Println("DRY RUN: " + destroyCmd)
	} else {
		if !mismatch {
			if err := updateInstance(id, "stopping clab provider", ""); err != nil {
				return err
			}
		}
		fmt.Println("Stopping clab nodes")
		fmt.Println("provider clab: executing " + destroyCmd)
		if err := delay(ctx, "FAKE_NETLAB_DOWN_DELAY"); err != nil {
			return err
		}
		if injected("down") {
			fmt.Fprintln(os.Stderr, "Error: failed to remove container clab-"+d.Name+" (injected by FAKE_NETLAB_FAIL=down)")
			if force == 0 {
				_ = updateInstance(id, "", "FAIL: "+destroyCmd)
				return fatal("netlab down", destroyCmd+" failed")
			}
			fmt.Println("Error stopping clab provider, continuing (--force)")
		} else {
			for _, n := range d.Nodes {
				fmt.Printf("INFO Removed container name=%s\n", n.Summary["hostname"])
			}
			_ = os.RemoveAll("clab-" + d.Name)
		}
	}

	if a.flag("--cleanup") {
		fmt.Println("Cleanup configuration files")
		for _, f := range []string{"clab.yml", "clab_files", "ansible.cfg", "hosts.yml", "group_vars", "host_vars",
			"config", "node_files", "netlab.snapshot.yml", snapshotFile} {
			info, err := os.Lstat(f)
			if err != nil {
				continue
			}
			if info.IsDir() {
				fmt.Println("... removing directory tree " + f)
			} else {
				fmt.Println("... removing " + f)
			}
			_ = os.RemoveAll(f)
		}
	}
	if !mismatch {
		if err := withStatus(func(s *statusFile) (bool, error) {
			if s.get(id) == nil {
				return false, nil
			}
			s.remove(id)
			return true, nil
		}); err != nil {
			return err
		}
	}
	_ = os.Remove(lockFile)
	return nil
}

// nodeStatus is one entry of `netlab status --format json` nodes.
type nodeStatus struct {
	Device       string `json:"device" yaml:"device"`
	Mgmt         string `json:"mgmt" yaml:"mgmt"`
	Connection   string `json:"connection" yaml:"connection"`
	Image        string `json:"image" yaml:"image"`
	Provider     string `json:"provider" yaml:"provider"`
	ProviderName string `json:"provider_name" yaml:"provider_name"`
	Status       string `json:"status" yaml:"status"`
}

// instanceJSON is an instance as status prints it.
func instanceJSON(in *instance) ordered {
	return ordered{
		{"dir", in.Dir}, {"providers", in.Providers}, {"status", in.Status},
		{"name", in.Name}, {"log", nonNil(in.Log)}, {"timestamp", in.Timestamp.String()},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// upFor renders container uptime like docker ps.
func upFor(d time.Duration) string {
	switch {
	case d < time.Second:
		return "Up Less than a second"
	case d < time.Minute:
		return fmt.Sprintf("Up %d seconds", int(d.Seconds()))
	case d < 2*time.Minute:
		return "Up About a minute"
	case d < time.Hour:
		return fmt.Sprintf("Up %d minutes", int(d.Minutes()))
	case d < 2*time.Hour:
		return "Up About an hour"
	default:
		return fmt.Sprintf("Up %d hours", int(d.Hours()))
	}
}

func cmdStatus(_ context.Context, args []string) error {
	opts := []option{
		{short: "-l", long: "--log", kind: optBool},
		{long: "--cleanup", kind: optBool},
		{long: "--reset", kind: optBool},
		{long: "--all", kind: optBool},
		{short: "-v", long: "--verbose", kind: optCount},
		{short: "-q", long: "--quiet", kind: optBool},
		{short: "-i", long: "--instance", kind: optValue, metavar: "INSTANCE"},
	}
	if !versionBefore(26, 2) { // --format came with netlab 26.02
		opts = append(opts, option{long: "--format", kind: optValue, choices: []string{"json", "yaml", "text"}})
	}
	p := &argParser{prog: "netlab status", opts: opts, exclusive: [][]string{{"--all", "--reset", "--cleanup"}}}
	a := p.parse(args)
	format := a.value("--format")
	if format == "" {
		format = "text"
	}
	structured := format != "text"
	emit := func(v any) {
		if format == "yaml" {
			out, _ := yaml.Marshal(toPlain(v))
			fmt.Print(string(out))
			return
		}
		printJSON(v)
	}
	if (a.flag("--cleanup") || a.flag("--reset")) && structured {
		return fatalError("status", "--cleanup and --reset work only with text output")
	}

	s, err := readStatusUnlocked()
	if err != nil {
		return err
	}
	if len(s.keys) == 0 {
		if structured {
			emit(ordered{{"warning", "No netlab-managed labs"}})
		} else {
			fmt.Println("No netlab-managed labs")
		}
		return &exitError{1}
	}
	if a.flag("--cleanup") || a.flag("--reset") {
		fmt.Print("Are you sure you want to proceed? [y/n]: ")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
			fmt.Fprintln(os.Stderr, "EOFError: EOF when reading a line")
			return &exitError{1}
		}
		return nil
	}

	if a.flag("--all") {
		if structured {
			all := ordered{}
			for _, k := range s.keys {
				all = append(all, kv{k.id, instanceJSON(s.get(k.id))})
			}
			emit(all)
			return nil
		}
		fmt.Printf("%-10s %-12s %-40s %s\n", "id", "name", "directory", "status")
		for _, k := range s.keys {
			in := s.get(k.id)
			fmt.Printf("%-10s %-12s %-40s %s\n", k.id, in.Name, in.Dir, in.Status)
		}
		return nil
	}

	// One instance: -i ID or the one running in the current directory.
	var id string
	var in *instance
	if id = a.value("--instance"); id != "" {
		in = s.get(id)
	} else {
		dir := cwd()
		for _, k := range s.keys {
			if s.get(k.id).Dir == dir {
				id, in = k.id, s.get(k.id)
				break
			}
		}
	}
	if in == nil {
		msg := "There's no running lab in the current directory."
		if a.value("--instance") != "" {
			msg = "Unknown lab instance " + id
		}
		if structured {
			emit(ordered{{"error", msg}})
			return nil
		}
		return fatalError("topology", msg, "Use 'netlab status --all' to display all running labs")
	}
	if a.flag("--log") {
		if structured {
			emit(append(instanceJSON(in), kv{"instance", id}))
			return nil
		}
		fmt.Printf("Lab %s in %s\n  status: %s\n", in.Name, in.Dir, in.Status)
		for _, l := range in.Log {
			fmt.Println("  " + l)
		}
		return nil
	}
	if !in.started() {
		if structured {
			emit(ordered{{"error", "Lab is not started, cannot display node/tool status"}})
			return nil
		}
		fmt.Fprintln(os.Stderr, "Lab is not started, cannot display node/tool status")
		for _, l := range in.Log {
			fmt.Println("  " + l)
		}
		return nil
	}
	d, err := readSnapshot(filepath.Join(in.Dir, snapshotFile))
	if err != nil {
		return fatal("netlab", "Cannot read lab snapshot: "+err.Error())
	}
	up := upFor(time.Since(in.Timestamp.Time))
	nodes := ordered{}
	for _, n := range d.Nodes {
		nodes = append(nodes, kv{n.Name, nodeStatus{
			Device:       fmt.Sprint(n.Summary["device"]),
			Mgmt:         fmt.Sprint(n.Summary["mgmt"].(map[string]any)["ipv4"]),
			Connection:   fmt.Sprint(n.Detail["ansible_connection"]),
			Image:        fmt.Sprint(n.Summary["box"]),
			Provider:     d.Provider,
			ProviderName: fmt.Sprint(n.Summary["hostname"]),
			Status:       up,
		}})
	}
	if structured {
		emit(append(instanceJSON(in), kv{"nodes", nodes}))
		return nil
	}
	fmt.Printf("Lab %s in %s\n  status: %s\n  provider(s): %s\n\n", in.Name, in.Dir, in.Status, strings.Join(in.Providers, ","))
	fmt.Printf("%-12s %-10s %-28s %-16s %-14s %s\n", "node", "device", "image", "mgmt IPv4", "connection", "status")
	for _, e := range nodes {
		n := e.val.(nodeStatus)
		fmt.Printf("%-12s %-10s %-28s %-16s %-14s %s\n", e.key, n.Device, n.Image, n.Mgmt, n.Connection, n.Status)
	}
	return nil
}

// toPlain turns ordered values into plain maps for YAML output.
func toPlain(v any) any {
	switch v := v.(type) {
	case ordered:
		m := make(map[string]any, len(v))
		for _, e := range v {
			m[e.key] = toPlain(e.val)
		}
		return m
	default:
		return v
	}
}

func cmdInspect(ctx context.Context, args []string) error {
	p := &argParser{prog: "netlab inspect", opts: []option{
		{long: "--node", kind: optValue, metavar: "NODE"},
		{long: "--all", kind: optBool},
		{long: "--format", kind: optValue, choices: []string{"yaml", "json"}},
		{short: "-q", long: "--quiet", kind: optBool},
		{short: "-v", long: "--verbose", kind: optCount},
		{short: "-i", long: "--instance", kind: optValue, metavar: "INSTANCE"},
		{long: "--snapshot", kind: optOptional, def: snapshotFile, metavar: "SNAPSHOT"},
		{short: "-t", long: "--topology", kind: optValue, metavar: "TOPOLOGY"},
	}, positionals: []positional{{"expr", true}}}
	a := p.parse(args)
	quiet := a.flag("--quiet")
	format := a.value("--format")
	if format == "" {
		format = "yaml"
	}

	// Data source: -t, -i, --snapshot or the default snapshot, else
	// ./topology.yml transformed on the fly.
	var d *labData
	var err error
	switch {
	case a.value("--topology") != "":
		if d, err = loadTopology(a.value("--topology"), createOptions{}); err != nil {
			return err
		}
	default:
		if id := a.value("--instance"); id != "" {
			if err := selectInstance("inspect", id, quiet); err != nil {
				return err
			}
		}
		snap := snapshotFile
		if a.has("--snapshot") {
			snap = a.value("--snapshot")
		}
		d, err = readSnapshot(snap)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist) && !a.has("--snapshot") && a.value("--instance") == "":
			if !quiet {
				fmt.Println("Using lab topology file " + topologyFile)
			}
			if d, err = loadTopology(topologyFile, createOptions{}); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrNotExist):
			return fatalError("inspect", fmt.Sprintf("The topology snapshot file %s does not exist", snap))
		default:
			return fatal("netlab", err.Error())
		}
	}
	if err := delay(ctx, "FAKE_NETLAB_INSPECT_DELAY"); err != nil {
		return err
	}
	if injected("inspect") {
		return fatal("netlab", "Cannot read the transformed topology (injected by FAKE_NETLAB_FAIL=inspect)")
	}

	emit := func(v any) {
		if format == "json" {
			printJSON(v)
			return
		}
		out, _ := yaml.Marshal(toPlain(v))
		fmt.Print(string(out))
	}
	nodesObj := func() ordered {
		o := ordered{}
		for _, n := range d.Nodes {
			o = append(o, kv{n.Name, n.Summary})
		}
		return o
	}

	if sel := a.value("--node"); sel != "" {
		if n := d.node(sel); n != nil {
			emit(n.Detail)
			return nil
		}
		var picked []int
		for _, part := range strings.Split(sel, ",") {
			for i, n := range d.Nodes {
				match, _ := filepath.Match(part, n.Name)
				if match || n.Summary["device"] == part {
					picked = append(picked, i)
				}
			}
			if len(picked) == 0 {
				fmt.Fprintf(os.Stderr, "UserWarning: %s is not a glob or a valid node, group, or device name\n", part)
				return fatal("netlab", "Cannot proceed beyond this point due to errors, exiting")
			}
		}
		// Several nodes: a table, not JSON, like netlab.
		fmt.Printf("%-12s %-10s %-16s %s\n", "node", "device", "mgmt", "ansible_host")
		for _, i := range picked {
			n := d.Nodes[i]
			fmt.Printf("%-12s %-10s %-16s %s\n", n.Name, n.Summary["device"], n.Summary["mgmt"].(map[string]any)["ipv4"], n.Detail["ansible_host"])
		}
		return nil
	}

	switch expr := a.pos["expr"]; {
	case expr == "":
		emit(ordered{{"name", d.Name}, {"provider", d.Provider}, {"nodes", nodesObj()}})
	case expr == "nodes":
		emit(nodesObj())
	case expr == "name":
		emit(d.Name)
	case expr == "provider":
		emit(d.Provider)
	case expr == "list(nodes.keys())" || expr == "nodes.keys()":
		var names []string
		for _, n := range d.Nodes {
			names = append(names, n.Name)
		}
		emit(names)
	case strings.HasPrefix(expr, "nodes."):
		n := d.node(strings.TrimPrefix(expr, "nodes."))
		if n == nil {
			return fatal("inspect", fmt.Sprintf("Cannot evaluate expression %s: unknown node", expr))
		}
		emit(n.Summary)
	default:
		return fatal("inspect", fmt.Sprintf("Cannot evaluate expression %s (the fake netlab knows nodes, name, provider, nodes.NAME, list(nodes.keys()))", expr))
	}
	return nil
}
