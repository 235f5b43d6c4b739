package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/remotelab-go/remotelab/internal/gobuild"
)

var fake string // path of the built fake netlab

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakenetlab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fake = filepath.Join(dir, "netlab")
	if err := gobuild.Build(context.Background(), fake, "netlab/fakenetlab", false); err != nil {
		fmt.Fprintln(os.Stderr, "build fake netlab:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// host is one isolated machine: a HOME and lab directories under it.
type host struct {
	t    *testing.T
	home string
	root string
}

func newHost(t *testing.T) *host {
	t.Helper()
	root := t.TempDir()
	root, _ = filepath.EvalSymlinks(root)
	h := &host{t: t, home: filepath.Join(root, "home"), root: root}
	if err := os.Mkdir(h.home, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// lab makes a lab directory with the given topology.
func (h *host) lab(name, topo string) string {
	h.t.Helper()
	dir := filepath.Join(h.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if topo != "" {
		if err := os.WriteFile(filepath.Join(dir, "topology.yml"), []byte(topo), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	return dir
}

type result struct {
	stdout, stderr string
	code           int
}

func (h *host) cmd(dir string, env []string, args ...string) *exec.Cmd {
	c := exec.Command(fake, args...)
	c.Dir = dir
	c.Env = append(append(os.Environ(), "HOME="+h.home), env...)
	return c
}

// run runs the fake in dir with extra environment entries.
func (h *host) run(dir string, env []string, args ...string) result {
	h.t.Helper()
	c := h.cmd(dir, env, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func (h *host) netlab(dir string, args ...string) result {
	h.t.Helper()
	return h.run(dir, nil, args...)
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

func jsonObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	return m
}

const topo = "provider: clab\ndefaults.device: frr\nnodes: [r1, r2]\nlinks: [r1-r2]\n"

func TestCommandLineErrors(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)

	h.netlab(dir, "version").want(t, 0, []string{"netlab version 26.03\n"}, nil)
	h.netlab(dir).want(t, 0, []string{"usage: netlab"}, nil)
	h.netlab(dir, "--version").want(t, 1, nil, []string{"FatalError in netlab: Unknown command --version",
		"... Use 'netlab help' to get the list of valid commands"})
	h.netlab(dir, "frobnicate").want(t, 1, nil, []string{"FatalError in netlab: Unknown command frobnicate"})
	h.netlab(dir, "up", "--bogus").want(t, 2, nil, []string{"usage: netlab up", "netlab up: error: unrecognized arguments: --bogus"})
	h.netlab(dir, "down", "topology.yml").want(t, 2, nil, []string{"netlab down: error: unrecognized arguments: topology.yml"})
	h.netlab(dir, "status", "--format", "xml").want(t, 2, nil, []string{"argument --format: invalid choice: 'xml'"})
	h.netlab(dir, "up", "-s").want(t, 2, nil, []string{"argument -s/--set: expected one argument"})
	h.netlab(dir, "status", "--all", "--cleanup").want(t, 2, nil, []string{"not allowed with argument"})
	h.netlab(dir, "up", "missing.yml").want(t, 1, nil, []string{"Fatal error in create: Topology file missing.yml does not exist"})
}

func TestValidation(t *testing.T) {
	cases := []struct{ topo, message string }{
		{"provider: clab\nnodes: [r1]\n", "MissingValue in nodes: No device type specified for node r1 and there is no default device type"},
		{"provider: clab\ndefaults.device: frr\nnodes: [r1]\nunknown: 1\n", "IncorrectAttr in topology: Invalid topology attribute 'unknown' found in topology"},
		{"provider: clab\ndefaults.device: frr\nnodes: [r1]\nbgp.as: 65000\n", "IncorrectAttr in topology: topology uses an attribute from module bgp which is not enabled in topology"},
		{"provider: clab\nnodes:\n  r1:\n  r2:\n    device: wtf\n", "IncorrectValue in nodes: attribute 'nodes.r2.device' must be known device type identifier (got wtf)"},
		{"provider: fusion\nnodes: [r1]\n", "Fatal error in topology: Unknown virtualization provider fusion. Supported providers are: clab, external, libvirt, virtualbox"},
		{"provider: clab\nlinks: []\n", "MissingValue in topology: Required topology element 'nodes' is missing or empty"},
		{"provider: clab\nnodes: [r1\n", "Fatal error in netlab: Cannot read YAML from topology.yml"},
	}
	for i, c := range cases {
		h := newHost(t)
		dir := h.lab(fmt.Sprint("lab", i), c.topo)
		h.netlab(dir, "up").want(t, 1, nil, []string{c.message})
		if _, err := os.Stat(filepath.Join(dir, "netlab.lock")); err == nil {
			t.Errorf("case %d: validation failure left a lock", i)
		}
	}
	// Bound module attributes are fine, and -d supplies the device.
	h := newHost(t)
	dir := h.lab("ok", "provider: clab\nmodule: [bgp]\nbgp.as: 65000\nnodes: [r1]\n")
	h.netlab(dir, "create", "-d", "eos", "-o", "none").want(t, 0, nil, nil)
	if _, err := os.Stat(filepath.Join(dir, "clab.yml")); err == nil {
		t.Error("create -o none wrote files")
	}
}

func TestStatusShapesAndExitCodes(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)
	other := h.lab("other", "")

	// No status file at all.
	h.netlab(dir, "status").want(t, 1, []string{"No netlab-managed labs"}, nil)
	r := h.netlab(dir, "status", "--format", "json")
	r.want(t, 1, nil, nil)
	if m := jsonObject(t, r.stdout); m["warning"] != "No netlab-managed labs" {
		t.Errorf("status json = %v", m)
	}

	h.netlab(dir, "up", "-q").want(t, 0, []string{"provider clab: executing sudo -E containerlab deploy --reconfigure -t clab.yml"}, nil)

	r = h.netlab(dir, "status", "--format", "json")
	r.want(t, 0, nil, nil)
	m := jsonObject(t, r.stdout)
	for _, k := range []string{"dir", "providers", "status", "name", "log", "timestamp", "nodes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status json lacks %q: %v", k, m)
		}
	}
	if m["status"] != "started" || m["dir"] != dir || m["name"] != "lab" {
		t.Errorf("status json = %v", m)
	}
	r1 := m["nodes"].(map[string]any)["r1"].(map[string]any)
	want := map[string]any{"device": "frr", "mgmt": "192.168.121.101", "connection": "docker",
		"image": "quay.io/frrouting/frr:10.5.3", "provider": "clab", "provider_name": "clab-lab-r1"}
	for k, v := range want {
		if r1[k] != v {
			t.Errorf("node r1 %s = %v, want %v", k, r1[k], v)
		}
	}
	if s, _ := r1["status"].(string); !strings.HasPrefix(s, "Up ") {
		t.Errorf("node r1 status = %q", r1["status"])
	}

	r = h.netlab(other, "status", "--all", "--format", "json")
	r.want(t, 0, nil, nil)
	all := jsonObject(t, r.stdout)
	if def, ok := all["default"].(map[string]any); !ok || def["dir"] != dir {
		t.Errorf("status --all json = %v", all)
	}

	// No lab for this directory: JSON error with exit 0, text error with exit 1.
	r = h.netlab(other, "status", "--format", "json")
	r.want(t, 0, nil, nil)
	if m := jsonObject(t, r.stdout); m["error"] != "There's no running lab in the current directory." {
		t.Errorf("status json elsewhere = %v", m)
	}
	h.netlab(other, "status").want(t, 1, nil, []string{"FatalError in topology: There's no running lab in the current directory.",
		"... Use 'netlab status --all'"})
	r = h.netlab(other, "status", "-i", "7", "--format", "json")
	r.want(t, 0, nil, nil)
	if m := jsonObject(t, r.stdout); m["error"] != "Unknown lab instance 7" {
		t.Errorf("status -i 7 json = %v", m)
	}
	r = h.netlab(other, "status", "-i", "default", "--log", "--format", "json")
	if m := jsonObject(t, r.stdout); m["instance"] != "default" || m["log"] == nil {
		t.Errorf("status --log json = %v", m)
	}

	// A lab that never got its containers up is "not started".
	h2 := newHost(t)
	dir2 := h2.lab("lab", topo)
	h2.run(dir2, []string{"FAKE_NETLAB_FAIL=deploy"}, "up").want(t, 1, nil,
		[]string{"Fatal error in netlab up: sudo -E containerlab deploy --reconfigure -t clab.yml failed, aborting..."})
	r = h2.netlab(dir2, "status", "--format", "json")
	r.want(t, 0, nil, nil)
	if m := jsonObject(t, r.stdout); m["error"] != "Lab is not started, cannot display node/tool status" {
		t.Errorf("status json of failed lab = %v", m)
	}
}

func TestLockAndInstanceConflicts(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)
	other := h.lab("other", topo)

	h.netlab(dir, "up").want(t, 0, []string{"The lab is up and running"}, nil)
	before, _ := os.ReadFile(filepath.Join(h.home, ".netlab", "status.yaml"))

	h.netlab(dir, "up").want(t, 1, []string{"netlab.lock"}, []string{"Fatal error in netlab: Cannot start another lab in the same directory"})
	after, _ := os.ReadFile(filepath.Join(h.home, ".netlab", "status.yaml"))
	if !bytes.Equal(before, after) {
		t.Error("refused up changed the status file")
	}

	h.netlab(other, "up").want(t, 1, []string{"It looks like the lab instance 'default' is already running in directory " + dir},
		[]string{`Fatal error in netlab: aborting "netlab up" request`})

	// --snapshot skips the lock check and restarts the lab.
	h.netlab(dir, "up", "--snapshot").want(t, 0, nil, nil)
	if st, _ := os.ReadFile(filepath.Join(h.home, ".netlab", "status.yaml")); !strings.Contains(string(st), "restarting lab") {
		t.Errorf("status after up --snapshot:\n%s", st)
	}

	// down without --cleanup keeps the files but clears lock and status.
	h.netlab(dir, "down").want(t, 0, []string{"Stopping clab nodes"}, nil)
	for f, want := range map[string]bool{"netlab.lock": false, "netlab.snapshot.pickle": true, "clab.yml": true} {
		if _, err := os.Stat(filepath.Join(dir, f)); (err == nil) != want {
			t.Errorf("after down: %s exists = %v, want %v", f, err == nil, want)
		}
	}
	h.netlab(dir, "down", "--cleanup").want(t, 0, []string{"... removing clab.yml", "... removing directory tree node_files"}, nil)
	h.netlab(dir, "down", "--cleanup", "--force").want(t, 1, nil, []string{
		"FatalError in down: The topology snapshot file netlab.snapshot.pickle does not exist",
		"... Looks like no lab was started from this directory"})
}

func TestMultilab(t *testing.T) {
	h := newHost(t)
	a := h.lab("a", topo)
	b := h.lab("b", topo)
	h.netlab(a, "up", "-q", "--plugin", "multilab", "-s", "defaults.multilab.id=12").want(t, 0, nil, nil)
	h.netlab(b, "up", "-q", "--plugin", "multilab", "-s", "defaults.multilab.id=13").want(t, 0, nil, nil)

	all := jsonObject(t, h.netlab(a, "status", "--all", "--format", "json").stdout)
	for id, dir := range map[string]string{"12": a, "13": b} {
		in, ok := all[id].(map[string]any)
		if !ok || in["dir"] != dir || in["name"] != "ml-"+id {
			t.Errorf("instance %s = %v", id, all[id])
		}
	}
	node := jsonObject(t, h.netlab(a, "inspect", "-q", "--node", "r1", "--format", "json").stdout)
	if node["hostname"] != "clab-ml-12-r1" || node["mgmt"].(map[string]any)["ipv4"] != "192.168.12.101" {
		t.Errorf("multilab node = %v", node)
	}
	clab, _ := os.ReadFile(filepath.Join(a, "clab.yml"))
	if !strings.Contains(string(clab), "network: nl_mgmt_12") || !strings.Contains(string(clab), "name: ml-12") {
		t.Errorf("clab.yml:\n%s", clab)
	}
	nodes := h.netlab(b, "inspect", "-q", "-i", "12", "--format", "json", "nodes").stdout
	if !strings.HasPrefix(nodes, "{\n  \"r1\": {") {
		t.Errorf("inspect -i 12 nodes: want r1 first:\n%s", nodes)
	}

	h.netlab(a, "down", "-i", "13", "--cleanup").want(t, 0, []string{"[CHANGED] Selected instance 13, current directory changed to " + b}, nil)
	all = jsonObject(t, h.netlab(a, "status", "--all", "--format", "json").stdout)
	if _, ok := all["13"]; ok {
		t.Error("instance 13 still recorded")
	}
	if _, ok := all["12"]; !ok {
		t.Error("instance 12 lost")
	}
	h.netlab(a, "down", "-i", "99").want(t, 1, nil, []string{"FatalError in down: Unknown instance 99"})
	c := h.lab("c", topo)
	h.netlab(c, "up", "--plugin", "multilab").want(t, 1, nil, []string{"multilab plugin needs defaults.multilab.id"})
	h.netlab(c, "up", "--plugin", "multilab", "-s", "defaults.multilab.id=201").want(t, 1, nil,
		[]string{"must be an integer between 1 and 200"})
}

func TestInspect(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)

	// No snapshot: inspect transforms topology.yml.
	r := h.netlab(dir, "inspect", "--format", "json", "name")
	r.want(t, 0, []string{"Using lab topology file topology.yml", "\"lab\""}, nil)

	h.netlab(dir, "up", "-q", "--no-config").want(t, 0,
		[]string{"Initial configuration skipped, run 'netlab initial' to configure the devices"}, nil)
	h.netlab(dir, "inspect", "-q", "--node", "r9", "--format", "json").want(t, 1, nil,
		[]string{"UserWarning: r9 is not a glob or a valid node, group, or device name"})
	r = h.netlab(dir, "inspect", "-q", "--node", "r*", "--format", "json")
	r.want(t, 0, nil, nil)
	if json.Valid([]byte(r.stdout)) {
		t.Errorf("several nodes printed as JSON, want a table:\n%s", r.stdout)
	}
	r = h.netlab(dir, "inspect", "-q", "--format", "json", "list(nodes.keys())")
	var names []string
	if err := json.Unmarshal([]byte(r.stdout), &names); err != nil || strings.Join(names, ",") != "r1,r2" {
		t.Errorf("list(nodes.keys()) = %q, %v", r.stdout, err)
	}
}

func TestSIGINTDuringUp(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)
	c := h.cmd(dir, []string{"FAKE_NETLAB_UP_DELAY=1h"}, "up")
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "provider clab: executing") {
			if err := c.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for sc.Scan() {
	}
	err = c.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("up after SIGINT: %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "netlab up command was interrupted") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	st, _ := os.ReadFile(filepath.Join(h.home, ".netlab", "status.yaml"))
	if !strings.Contains(string(st), "netlab up command was interrupted") || !strings.Contains(string(st), "status: starting provider clab") {
		t.Errorf("status file:\n%s", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "netlab.lock")); err != nil {
		t.Error("interrupted up removed its lock")
	}
}

// TestFailFile: FAKE_NETLAB_FAIL_FILE, when the file exists, replaces
// FAKE_NETLAB_FAIL at each invocation, so a test can make down fail and
// then succeed without changing the environment.
func TestFailFile(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)
	failFile := filepath.Join(h.root, "fail")
	env := []string{"FAKE_NETLAB_FAIL_FILE=" + failFile, "FAKE_NETLAB_FAIL=inspect"}

	// No file: FAKE_NETLAB_FAIL counts.
	h.run(dir, env, "up", "-q").want(t, 0, nil, nil)
	h.run(dir, env, "inspect", "--format", "json", "nodes").want(t, 1, nil, nil)

	if err := os.WriteFile(filepath.Join(failFile), []byte("down, statuslock"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.run(dir, env, "inspect", "--format", "json", "nodes").want(t, 0, nil, nil)
	h.run(dir, env, "down").want(t, 1, nil, []string{"Cannot lock lab status file"})

	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.run(dir, env, "down").want(t, 0, []string{"Stopping clab nodes"}, nil)
}

// TestStatusFormatCameWith2602: before netlab 26.02, status has no
// --format (an argparse error, exit 2).
func TestStatusFormatCameWith2602(t *testing.T) {
	h := newHost(t)
	dir := h.lab("lab", topo)
	h.netlab(dir, "up", "-q").want(t, 0, nil, nil)
	for v, code := range map[string]int{"25.09-post1": 2, "1.9.6": 2, "26.02": 0, "26.03": 0} {
		r := h.run(dir, []string{"FAKE_NETLAB_VERSION=" + v}, "status", "--format", "json")
		r.want(t, code, nil, nil)
		if code == 2 && !strings.Contains(r.stderr, "unrecognized arguments: --format json") {
			t.Errorf("version %s: stderr %q", v, r.stderr)
		}
	}
	h.run(dir, []string{"FAKE_NETLAB_VERSION=25.09"}, "status").want(t, 0, []string{"status: started"}, nil)
}
