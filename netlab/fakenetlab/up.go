package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	lockFile     = "netlab.lock"
	lockText     = "netlab lock file, do not remove\n"
	deployCmd    = "sudo -E containerlab deploy --reconfigure -t clab.yml"
	destroyCmd   = "sudo -E containerlab destroy --cleanup -t clab.yml"
	topologyFile = "topology.yml"
)

func createOpts() []option {
	return []option{
		{short: "-p", long: "--provider", kind: optValue},
		{short: "-d", long: "--device", kind: optValue},
		{short: "-s", long: "--set", kind: optAppend, metavar: "SETTINGS"},
		{long: "--plugin", kind: optAppend},
		{long: "--defaults", kind: optMulti},
		{short: "-q", long: "--quiet", kind: optBool},
		{short: "-v", long: "--verbose", kind: optCount},
		{long: "--log", kind: optBool},
	}
}

func optsFrom(a *parsedArgs) createOptions {
	return createOptions{
		provider: a.value("--provider"),
		device:   a.value("--device"),
		sets:     a.list("--set"),
		plugins:  a.list("--plugin"),
	}
}

// cwd returns the current directory with symlinks resolved, as Python's
// os.getcwd() reports it.
func cwd() string {
	d, err := os.Getwd()
	if err != nil {
		return "."
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		return r
	}
	return d
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func cmdCreate(ctx context.Context, args []string) error {
	p := &argParser{prog: "netlab create",
		opts:        append(createOpts(), option{short: "-o", long: "--output", kind: optAppend}),
		positionals: []positional{{"topology", true}}}
	a := p.parse(args)
	topo := a.pos["topology"]
	if topo == "" {
		topo = topologyFile
	}
	outputs := a.list("--output")
	none := len(outputs) == 1 && outputs[0] == "none"
	if !none && exists(lockFile) {
		fmt.Println(lockExplanation)
		return fatal("netlab", "Cannot create configuration files in a directory with a running lab")
	}
	if injected("create") {
		return injectedCreateFailure()
	}
	d, err := loadTopology(topo, optsFrom(a))
	if err != nil {
		return err
	}
	if none {
		return nil
	}
	return writeOutputs(d, a.flag("--quiet"))
}

const lockExplanation = `The current directory contains a lab lock file (netlab.lock). It looks like you
already started a lab in this directory. You cannot start another lab in the
same directory; use 'netlab down' to shut down the running lab first, or
'netlab status' to display its state.`

func injectedCreateFailure() error {
	fmt.Fprintln(os.Stderr, "IncorrectValue in create: injected failure in the create step (FAKE_NETLAB_FAIL=create)")
	return fatal("netlab", "Cannot proceed beyond this point due to errors, exiting")
}

func cmdUp(ctx context.Context, args []string) error {
	p := &argParser{prog: "netlab up",
		opts: append(createOpts(),
			option{long: "--no-config", kind: optBool},
			option{short: "-r", long: "--reload-config", kind: optValue, metavar: "DIR"},
			option{long: "--no-tools", kind: optBool},
			option{long: "--fast-config", kind: optBool},
			option{long: "--snapshot", kind: optOptional, def: snapshotFile, metavar: "SNAPSHOT"},
			option{long: "--dry-run", kind: optBool},
			option{long: "--validate", kind: optBool},
		),
		positionals: []positional{{"topology", true}},
		exclusive:   [][]string{{"--no-config", "--reload-config"}},
	}
	a := p.parse(args)
	quiet := a.flag("--quiet")
	dry := a.flag("--dry-run")
	useSnapshot := a.has("--snapshot")
	dir := cwd()

	child := 0
	writePidfile := func() {
		if path := os.Getenv("FAKE_NETLAB_PIDFILE"); path != "" {
			line := fmt.Sprint(os.Getpid())
			if child != 0 {
				line += fmt.Sprint(" ", child)
			}
			_ = os.WriteFile(path+".tmp", []byte(line+"\n"), 0o644)
			_ = os.Rename(path+".tmp", path)
		}
	}
	writePidfile()

	// 1. The directory lock.
	if !useSnapshot && !dry && exists(lockFile) {
		fmt.Println(lockExplanation)
		return fatal("netlab", "Cannot start another lab in the same directory")
	}

	// 2. Create step, or the snapshot of an earlier one.
	var d *labData
	if useSnapshot {
		snap := a.value("--snapshot")
		var err error
		if d, err = readSnapshot(snap); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fatalError("up", fmt.Sprintf("The topology snapshot file %s does not exist", snap),
					"Looks like no lab was started from this directory")
			}
			return fatal("netlab", err.Error())
		}
	} else {
		if injected("create") {
			return injectedCreateFailure()
		}
		topo := a.pos["topology"]
		if topo == "" {
			topo = topologyFile
		}
		var err error
		if d, err = loadTopology(topo, optsFrom(a)); err != nil {
			return err
		}
		if err := writeOutputs(d, quiet); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if dry {
		fmt.Println("DRY RUN: " + deployCmd)
		fmt.Println("DRY RUN: netlab initial --no-message --deploy")
		return nil
	}

	// 3. The same instance must not run elsewhere.
	id := d.Instance
	if err := checkInstanceElsewhere(d, dir); err != nil {
		return err
	}

	// 4. Provider probe.
	if !quiet {
		fmt.Println("Checking virtualization provider installation")
	}
	if d.Provider != "clab" {
		return fatal("netlab", fmt.Sprintf("%s provider is not installed or not working (the fake netlab only supports clab)", d.Provider))
	}
	if !quiet {
		fmt.Println("OK: clab installed and working correctly")
	}

	// 6. Record the instance.
	err := withStatus(func(s *statusFile) (bool, error) {
		in := s.get(id)
		if in != nil && in.Dir != dir {
			return false, fatal("netlab", "race condition, lab instance already running in "+in.Dir)
		}
		status := "starting lab"
		if in != nil {
			status = "restarting lab"
		}
		in = &instance{Dir: dir, Providers: []string{d.Provider}, Name: d.Name, Log: nil}
		if old := s.get(id); old != nil {
			in.Log = old.Log
		}
		in.logStatus(status, "")
		s.set(d.key(), in)
		return true, nil
	})
	if err != nil {
		return err
	}
	interrupted := func() error {
		_ = updateInstance(id, "", "netlab up command was interrupted")
		return errInterrupted
	}
	if ctx.Err() != nil {
		return interrupted()
	}

	// 7. Lock the directory.
	if err := os.WriteFile(lockFile, []byte(lockText), 0o644); err != nil {
		return fatal("netlab", "Cannot create "+lockFile+": "+err.Error())
	}

	// 8. Start the containers.
	if err := updateInstance(id, "starting provider clab", ""); err != nil {
		return err
	}
	fmt.Println("provider clab: executing " + deployCmd)
	fmt.Println("INFO Containerlab started version=0.72.0")
	fmt.Printf("INFO Parsing & checking topology file=clab.yml\n")
	fmt.Printf("INFO Creating lab directory path=%s\n", filepath.Join(dir, "clab-"+d.Name))
	if os.Getenv("FAKE_NETLAB_SPAWN_CHILD") == "1" {
		pid, err := spawnChild()
		if err != nil {
			return fatal("netlab", "fake: cannot spawn child: "+err.Error())
		}
		child = pid
		writePidfile()
		fmt.Printf("fake netlab: spawned child %d\n", pid)
	}
	if err := delay(ctx, "FAKE_NETLAB_UP_DELAY"); err != nil {
		if errors.Is(err, errInterrupted) {
			return interrupted()
		}
		return err
	}
	if injected("deploy") {
		_ = updateInstance(id, "", "FAIL: "+deployCmd)
		fmt.Fprintln(os.Stderr, "Error: failed to create container clab-"+d.Name+"-"+d.Nodes[0].Name+" (injected by FAKE_NETLAB_FAIL=deploy)")
		return fatal("netlab up", deployCmd+" failed, aborting...")
	}
	if err := os.MkdirAll(filepath.Join("clab-"+d.Name), 0o755); err == nil {
		_ = os.WriteFile(filepath.Join("clab-"+d.Name, "ansible-inventory.yml"), []byte(clabInventory(d)), 0o644)
	}
	for _, n := range d.Nodes {
		fmt.Printf("INFO Created container name=%s\n", n.Summary["hostname"])
	}
	if err := updateInstance(id, "", "OK: "+deployCmd); err != nil {
		return err
	}
	if err := updateInstance(id, "clab workload started", ""); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return interrupted()
	}

	// 10. Configure the devices.
	if a.flag("--no-config") {
		fmt.Println("Initial configuration skipped, run 'netlab initial' to configure the devices")
	} else {
		if err := updateInstance(id, "deploying initial configuration", ""); err != nil {
			return err
		}
		if !quiet {
			fmt.Println("Deploying initial device configuration")
		}
		if injected("initial") {
			n := d.Nodes[len(d.Nodes)-1]
			fmt.Fprintf(os.Stderr, "SSH server on %s (%s) is not ready after 100 seconds (injected by FAKE_NETLAB_FAIL=initial)\n",
				n.Name, n.Summary["mgmt"].(map[string]any)["ipv4"])
			return fatal("netlab up", "netlab initial failed, aborting...")
		}
		if err := updateInstance(id, "initial configuration complete", ""); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return interrupted()
	}

	// 12. Done.
	if err := updateInstance(id, "started", ""); err != nil {
		return err
	}
	now := time.Now()
	_ = os.Chtimes(lockFile, now, now)
	if !quiet {
		fmt.Println("The lab is up and running")
	}
	return nil
}

// checkInstanceElsewhere fails when the lab's instance id is recorded as
// running in another directory.
func checkInstanceElsewhere(d *labData, dir string) error {
	return withStatus(func(s *statusFile) (bool, error) {
		if in := s.get(d.Instance); in != nil && in.Dir != dir {
			fmt.Printf("It looks like the lab instance '%s' is already running in directory %s\n", d.Instance, in.Dir)
			fmt.Println("Use 'netlab status --all' to display running labs, 'netlab down -i " + d.Instance +
				"' to stop that lab, or the multilab plugin to run several labs at once.")
			return false, fatal("netlab", `aborting "netlab up" request`)
		}
		return false, nil
	})
}

// spawnChild starts the SIGINT-ignoring child and returns once the child
// ignores SIGINT (it closes the pipe it gets as fd 3 then).
func spawnChild() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	ready, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer ready.Close()
	c := exec.Command(exe)
	c.Env = append(os.Environ(), "FAKE_NETLAB_CHILD=1")
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.ExtraFiles = []*os.File{w}
	err = c.Start()
	w.Close()
	if err != nil {
		return 0, err
	}
	pid := c.Process.Pid
	_ = c.Process.Release()
	_, _ = io.Copy(io.Discard, ready) // EOF once the child is ready
	return pid, nil
}

// writeOutputs writes what netlab create writes into the current
// directory.
func writeOutputs(d *labData, quiet bool) error {
	created := func(what, path string) {
		if !quiet {
			fmt.Printf("Created %s: %s\n", what, path)
		}
	}
	write := func(path string, data []byte) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fatal("netlab", err.Error())
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fatal("netlab", err.Error())
		}
		return nil
	}
	jsonFile := func(v any) []byte {
		b, _ := json.MarshalIndent(v, "", "  ")
		return append(b, '\n')
	}

	if err := writeSnapshot(snapshotFile, d); err != nil {
		return fatal("netlab", "Cannot write "+snapshotFile+": "+err.Error())
	}
	created("transformed topology snapshot", snapshotFile)

	if err := write("clab.yml", []byte(clabYAML(d))); err != nil {
		return err
	}
	created("provider configuration file", "clab.yml")

	// node_files is regenerated on every create.
	_ = os.RemoveAll("node_files")
	hosts := etcHosts(d)
	if err := write(filepath.Join("node_files", "-shared-hosts"), []byte(hosts)); err != nil {
		return err
	}
	for _, n := range d.Nodes {
		if err := write(filepath.Join("node_files", n.Name, "hosts"), []byte(hosts)); err != nil {
			return err
		}
	}
	created("node configuration files", "node_files")

	if err := write("hosts.yml", []byte(hostsYAML(d))); err != nil {
		return err
	}
	if err := write("ansible.cfg", []byte("#\n# Ansible configuration file created by netlab\n#\n[defaults]\ninventory=hosts.yml\nhost_key_checking=False\ninterpreter_python=auto_silent\n\n[persistent_connection]\ncommand_timeout=180\nconnect_timeout=60\n")); err != nil {
		return err
	}
	hostsMap := ordered{}
	groups := map[string]map[string]any{}
	for _, n := range d.Nodes {
		hostsMap = append(hostsMap, kv{n.Name, map[string]any{"ipv4": []any{n.Summary["mgmt"].(map[string]any)["ipv4"]}}})
		dev := n.Summary["device"].(string)
		if groups[dev] == nil {
			gv := map[string]any{}
			for k, v := range n.Detail {
				if _, inSummary := n.Summary[k]; !inSummary && k != "ansible_host" {
					gv[k] = v
				}
			}
			groups[dev] = gv
		}
		if err := write(filepath.Join("host_vars", n.Name, "topology.json"), jsonFile(n.Summary)); err != nil {
			return err
		}
	}
	all := ordered{{"netlab_provider", d.Provider}, {"netlab_name", d.Name}, {"hosts", hostsMap}}
	if err := write(filepath.Join("group_vars", "all", "topology.json"), jsonFile(all)); err != nil {
		return err
	}
	for dev, gv := range groups {
		if err := write(filepath.Join("group_vars", strings.ReplaceAll(dev, "-", "_"), "topology.json"), jsonFile(gv)); err != nil {
			return err
		}
	}
	created("Ansible inventory file", "hosts.yml")
	created("Ansible configuration file", "ansible.cfg")
	return nil
}

func clabYAML(d *labData) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nprefix: \"clab\"\n\nmgmt:\n  network: %s\n  ipv4-subnet: %s.0/24\n\ntopology:\n  nodes:\n",
		d.Name, d.MgmtNetwork, d.MgmtPrefix)
	for _, n := range d.Nodes {
		s := n.Summary
		fmt.Fprintf(&b, "    %s:\n      mgmt-ipv4: %s\n      kind: %s\n      image: %s\n      runtime: docker\n",
			n.Name, s["mgmt"].(map[string]any)["ipv4"], s["clab"].(map[string]any)["kind"], s["box"])
		fmt.Fprintf(&b, "      binds:\n      - node_files/-shared-hosts:/etc/hosts\n")
	}
	type link struct {
		index     float64
		endpoints []string
	}
	links := map[float64]*link{}
	for _, n := range d.Nodes {
		ifs, _ := n.Summary["interfaces"].([]any)
		for _, i := range ifs {
			m := i.(map[string]any)
			idx := toFloat(m["linkindex"])
			if links[idx] == nil {
				links[idx] = &link{index: idx}
			}
			links[idx].endpoints = append(links[idx].endpoints, fmt.Sprintf("%s:%s", n.Name, m["ifname"]))
		}
	}
	var sorted []*link
	for _, l := range links {
		sorted = append(sorted, l)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].index < sorted[j].index })
	if len(sorted) > 0 {
		b.WriteString("\n  links:\n")
		for _, l := range sorted {
			b.WriteString("  - endpoints:\n")
			for _, e := range l.endpoints {
				fmt.Fprintf(&b, "    - \"%s\"\n", e)
			}
		}
	}
	return b.String()
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

func hostsYAML(d *labData) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Ansible inventory created from ['%s']\n#\n---\nall:\n  hosts: {}\n", d.Input)
	for _, g := range []string{"modules", "custom_configs", "daemons", "unprovisioned", "netlab_no_reload"} {
		fmt.Fprintf(&b, "%s:\n  hosts: {}\n", g)
	}
	byDevice := map[string][]int{}
	var devices []string
	for i, n := range d.Nodes {
		dev := strings.ReplaceAll(n.Summary["device"].(string), "-", "_")
		if byDevice[dev] == nil {
			devices = append(devices, dev)
		}
		byDevice[dev] = append(byDevice[dev], i)
	}
	for _, dev := range devices {
		fmt.Fprintf(&b, "%s:\n  hosts:\n", dev)
		for _, i := range byDevice[dev] {
			n := d.Nodes[i]
			fmt.Fprintf(&b, "    %s:\n      ansible_host: %s\n      id: %v\n", n.Name, n.Detail["ansible_host"], n.Summary["id"])
		}
	}
	return b.String()
}

func etcHosts(d *labData) string {
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
	for _, n := range d.Nodes {
		fmt.Fprintf(&b, "%s %s\n", n.Summary["mgmt"].(map[string]any)["ipv4"], n.Name)
	}
	return b.String()
}

func clabInventory(d *labData) string {
	var b strings.Builder
	b.WriteString("all:\n  vars:\n    ansible_httpapi_use_proxy: false\n  children:\n")
	var kinds []string
	byKind := map[string][]int{}
	for i, n := range d.Nodes {
		k := fmt.Sprint(n.Summary["clab"].(map[string]any)["kind"])
		if byKind[k] == nil {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], i)
	}
	for _, k := range kinds {
		fmt.Fprintf(&b, "    %s:\n      hosts:\n", k)
		for _, i := range byKind[k] {
			n := d.Nodes[i]
			fmt.Fprintf(&b, "        %s:\n          ansible_host: %s\n", n.Summary["hostname"], n.Summary["mgmt"].(map[string]any)["ipv4"])
		}
	}
	return b.String()
}
