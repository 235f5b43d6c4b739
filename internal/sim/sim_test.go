package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// equal reports a test error when got and want differ.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func mgmt(n sim.Node) map[string]any { return n.Summary["mgmt"].(map[string]any) }

func testTopology() *topology.Topology {
	return &topology.Topology{
		Name:     "demo",
		Provider: "clab",
		Nodes: []topology.Node{
			{Name: "r1", Device: "frr"},
			{Name: "r2", Device: "srlinux"},
			{Name: "h1", Device: "linux"},
			{Name: "x1", Device: "eos"},
		},
		Links: []topology.Link{
			{Nodes: []string{"r1", "r2"}},
			{Nodes: []string{"r1", "r2", "h1"}},
			{Nodes: []string{"x1", "r1"}},
		},
	}
}

func TestInspectNodeData(t *testing.T) {
	nodes := sim.Inspect(testTopology(), sim.Addressing{LabName: "demo"})
	if len(nodes) != 4 {
		t.Fatalf("got %d nodes, want 4", len(nodes))
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	equal(t, "node order", names, []string{"r1", "r2", "h1", "x1"})

	r1 := nodes[0].Summary
	equal(t, "name", r1["name"], "r1")
	equal(t, "id", r1["id"], 1)
	equal(t, "device", r1["device"], "frr")
	equal(t, "box", r1["box"], "quay.io/frrouting/frr:10.5.3")
	equal(t, "hostname", r1["hostname"], "clab-demo-r1")
	equal(t, "mgmt", r1["mgmt"], map[string]any{"ifname": "eth0", "ipv4": "192.168.121.101", "mac": "ca:fe:00:01:00:00"})
	if _, ok := r1["ansible_host"]; ok {
		t.Error("summary has group vars")
	}
	equal(t, "x1 id", nodes[3].Summary["id"], 4)
	equal(t, "x1 mgmt ifname", mgmt(nodes[3])["ifname"], "Management0")
	equal(t, "x1 mgmt ipv4", mgmt(nodes[3])["ipv4"], "192.168.121.104")

	// Docker-connection device: container name as ansible_host, no password.
	d1 := nodes[0].Detail
	equal(t, "ansible_host", d1["ansible_host"], "clab-demo-r1")
	equal(t, "ansible_user", d1["ansible_user"], "root")
	if _, ok := d1["ansible_ssh_pass"]; ok {
		t.Error("docker device has ansible_ssh_pass")
	}
	equal(t, "ansible_connection", d1["ansible_connection"], "docker")
	equal(t, "ansible_network_os", d1["ansible_network_os"], "frr")
	equal(t, "netlab_device_type", d1["netlab_device_type"], "frr")
	equal(t, "_netlab_version", d1["_netlab_version"], "26.03")
	equal(t, "detail mgmt", d1["mgmt"], r1["mgmt"])

	// SSH device: management address as ansible_host, credentials.
	d2 := nodes[1].Detail
	equal(t, "r2 ansible_host", d2["ansible_host"], "192.168.121.102")
	equal(t, "r2 ansible_user", d2["ansible_user"], "admin")
	equal(t, "r2 ansible_ssh_pass", d2["ansible_ssh_pass"], "NokiaSrl1!")
	equal(t, "r2 box", d2["box"], "ghcr.io/nokia/srlinux:25.10.2")

	equal(t, "h1 role", nodes[2].Summary["role"], "host")
	if _, ok := nodes[2].Summary["loopback"]; ok {
		t.Error("host has a loopback")
	}
	equal(t, "r1 loopback", r1["loopback"].(map[string]any)["ipv4"], "10.0.0.1/32")
}

func TestInspectCredentialsTable(t *testing.T) {
	cases := []struct {
		device, user, pass, conn string
	}{
		{"frr", "root", "", "docker"},
		{"linux", "root", "", "docker"},
		{"vyos", "vyos", "", "docker"},
		{"cumulus", "root", "", "docker"},
		{"srlinux", "admin", "NokiaSrl1!", "paramiko"},
		{"eos", "admin", "admin", "network_cli"},
		{"iol", "admin", "admin", "network_cli"},
		{"ioll2", "admin", "admin", "network_cli"},
		{"nxos", "admin", "admin", "network_cli"},
		{"iosv", "admin", "admin", "network_cli"},
		{"csr", "admin", "admin", "network_cli"},
		{"iosxr", "clab", "clab@123", "network_cli"},
		{"crpd", "root", "clab123", "netconf"},
		{"vmx", "admin", "admin@123", "netconf"},
		{"vsrx", "admin", "admin@123", "netconf"},
		{"vjunos-router", "admin", "admin@123", "netconf"},
		{"vjunos-switch", "admin", "admin@123", "netconf"},
		{"some-new-box", "admin", "admin", "network_cli"},
	}
	for _, c := range cases {
		t.Run(c.device, func(t *testing.T) {
			topo := &topology.Topology{Nodes: []topology.Node{{Name: "n", Device: c.device}}}
			d := sim.Inspect(topo, sim.Addressing{})[0].Detail
			equal(t, "ansible_user", d["ansible_user"], c.user)
			equal(t, "ansible_connection", d["ansible_connection"], c.conn)
			pass, hasPass := d["ansible_ssh_pass"]
			if c.pass == "" {
				if hasPass {
					t.Errorf("ansible_ssh_pass = %v, want none", pass)
				}
				equal(t, "ansible_host", d["ansible_host"], "clab-default-n")
			} else {
				equal(t, "ansible_ssh_pass", pass, c.pass)
				equal(t, "ansible_host", d["ansible_host"], "192.168.121.101")
			}
			equal(t, "netlab_device_type", d["netlab_device_type"], c.device)
			equal(t, "KnownDevice", sim.KnownDevice(c.device), c.device != "some-new-box")
		})
	}
}

func TestInspectDefaultsAndMultilabAddressing(t *testing.T) {
	topo := &topology.Topology{Nodes: []topology.Node{{Name: "a"}, {Name: "b", Device: "frr"}}}

	nodes := sim.Inspect(topo, sim.Addressing{})
	equal(t, "device of node without one", nodes[0].Summary["device"], "none")
	equal(t, "default hostname", nodes[1].Summary["hostname"], "clab-default-b")

	nodes = sim.Inspect(topo, sim.Addressing{LabName: "ml-12", MgmtPrefix: "192.168.12"})
	equal(t, "multilab hostname", nodes[1].Summary["hostname"], "clab-ml-12-b")
	equal(t, "multilab mgmt", mgmt(nodes[1])["ipv4"], "192.168.12.102")
	equal(t, "multilab mac", mgmt(nodes[1])["mac"], "ca:fe:00:02:00:00")
}

func TestInspectMACIsTwoHexDigits(t *testing.T) {
	topo := &topology.Topology{}
	for i := range 20 {
		topo.Nodes = append(topo.Nodes, topology.Node{Name: "n" + string(rune('a'+i)), Device: "frr"})
	}
	nodes := sim.Inspect(topo, sim.Addressing{})
	equal(t, "mac of id 16", mgmt(nodes[15])["mac"], "ca:fe:00:10:00:00")
	equal(t, "mac of id 20", mgmt(nodes[19])["mac"], "ca:fe:00:14:00:00")
	equal(t, "ipv4 of id 20", mgmt(nodes[19])["ipv4"], "192.168.121.120")
}

func TestInspectInterfaces(t *testing.T) {
	nodes := sim.Inspect(testTopology(), sim.Addressing{})
	ifs := func(i int) []any { return nodes[i].Summary["interfaces"].([]any) }

	r1 := ifs(0)
	if len(r1) != 3 {
		t.Fatalf("r1 has %d interfaces, want 3", len(r1))
	}
	first := r1[0].(map[string]any)
	equal(t, "ifname", first["ifname"], "eth1")
	equal(t, "ipv4", first["ipv4"], "10.1.0.1/30")
	equal(t, "type", first["type"], "p2p")
	equal(t, "neighbors", first["neighbors"], []any{map[string]any{"node": "r2", "ifname": "ethernet-1/1", "ipv4": "10.1.0.2/30"}})

	lan := r1[1].(map[string]any)
	equal(t, "lan type", lan["type"], "lan")
	equal(t, "lan ipv4", lan["ipv4"], "172.16.0.1/24")
	equal(t, "lan neighbors", len(lan["neighbors"].([]any)), 2)

	equal(t, "second p2p link", r1[2].(map[string]any)["ipv4"], "10.1.0.6/30")
	equal(t, "eos ifname", ifs(3)[0].(map[string]any)["ifname"], "Ethernet1")
	equal(t, "host on lan", ifs(2)[0].(map[string]any)["ipv4"], "172.16.0.3/24")
}

func TestInspectReturnsFreshMaps(t *testing.T) {
	topo := testTopology()
	a := sim.Inspect(topo, sim.Addressing{})
	mgmt(a[0])["ipv4"] = "changed"
	equal(t, "detail after summary change", a[0].Detail["mgmt"].(map[string]any)["ipv4"], "192.168.121.101")
	b := sim.Inspect(topo, sim.Addressing{})
	equal(t, "next call after change", mgmt(b[0])["ipv4"], "192.168.121.101")
}

func TestDevicesRawIsDetail(t *testing.T) {
	topo := testTopology()
	devs := sim.Devices(topo, sim.Addressing{LabName: "demo"})
	nodes := sim.Inspect(topo, sim.Addressing{LabName: "demo"})
	if len(devs) != len(nodes) {
		t.Fatalf("got %d devices, want %d", len(devs), len(nodes))
	}
	for i, d := range devs {
		equal(t, "name", d.Name, nodes[i].Name)
		var got, want map[string]any
		if err := json.Unmarshal(d.Raw, &got); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(nodes[i].Detail)
		_ = json.Unmarshal(raw, &want)
		equal(t, d.Name+" raw", got, want)
	}
}

func TestLabName(t *testing.T) {
	cases := []struct {
		name, dir, want string
	}{
		{"explicit", "/tmp/whatever", "explicit"},
		{"", "/tmp/lab", "lab"},
		{"", "/tmp/my-lab_dir", "mylabdir"},
		{"", "/tmp/123abc", "abc"},
		{"", "/tmp/12_3ab", "3ab"},
		{"", "/tmp/remotelab-work-0123456789", "remotelabwor"},
		{"", "/tmp/---", "default"},
		{"", "/tmp/2024", "default"},
		{"", "/tmp/lab/", "lab"},
	}
	for _, c := range cases {
		got := sim.LabName(&topology.Topology{Name: c.name}, c.dir)
		equal(t, "LabName("+c.name+", "+c.dir+")", got, c.want)
	}
	equal(t, "LabName(nil)", sim.LabName(nil, "/x/lab"), "lab")
}

func TestKnownDevices(t *testing.T) {
	devs := sim.KnownDevices()
	for _, d := range []string{"frr", "vjunos-switch", "none"} {
		if !slices.Contains(devs, d) || !sim.KnownDevice(d) {
			t.Errorf("%s is not known", d)
		}
	}
	if sim.KnownDevice("wtf") {
		t.Error("wtf is known")
	}
	if !slices.IsSorted(devs) {
		t.Error("KnownDevices is not sorted")
	}
}

func TestRunnerDownHonoursDelayAndContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := &sim.Runner{DownDelay: time.Minute}
		start := time.Now()
		if err := r.Down(t.Context(), dir); err != nil {
			t.Fatal(err)
		}
		equal(t, "down took", time.Since(start), time.Minute)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := r.Down(ctx, dir)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Down = %v, want deadline exceeded", err)
		}
		equal(t, "interrupted down took", time.Since(start), time.Minute+time.Second)
	})
}

// UpTimeout and DownTimeout bound the simulated commands as netlab's
// deadlines bound the real ones.
func TestRunnerTimeouts(t *testing.T) {
	b := twoRouters(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		r := &sim.Runner{UpDelay: time.Minute, DownDelay: time.Minute, UpTimeout: 10 * time.Second, DownTimeout: 5 * time.Second}
		start := time.Now()
		_, err := r.Up(t.Context(), lab.Spec{Dir: dir, Bundle: b})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Up = %v, want deadline exceeded", err)
		}
		equal(t, "error", err.Error(), "simulate lab start: interrupted after 10.0s: context deadline exceeded")
		equal(t, "up took", time.Since(start), 10*time.Second)
		if running, _ := r.Running(t.Context(), dir); running {
			t.Error("a timed-out Up left a running lab")
		}

		start = time.Now()
		err = r.Down(t.Context(), dir)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Down = %v, want deadline exceeded", err)
		}
		equal(t, "down took", time.Since(start), 5*time.Second)

		r.UpTimeout, r.DownTimeout = 2*time.Minute, 2*time.Minute
		if _, err := r.Up(t.Context(), lab.Spec{Dir: dir, Bundle: b}); err != nil {
			t.Fatalf("Up within its deadline = %v", err)
		}
	})
}

func TestRunnerZeroValue(t *testing.T) {
	var r sim.Runner
	dir := t.TempDir()
	if err := r.Down(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if err := r.Down(t.Context(), filepath.Join(dir, "gone")); err != nil {
		t.Errorf("Down of a missing directory = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Down(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("Down with cancelled context = %v, want context.Canceled", err)
	}
	if _, err := r.Running(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("Running with cancelled context = %v, want context.Canceled", err)
	}
	if _, err := r.Up(t.Context(), lab.Spec{Dir: dir}); err == nil {
		t.Error("Up without a bundle succeeded")
	}
}

func twoRouters(t *testing.T) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle("topology.yml", []byte(
		"provider: clab\ndefaults.device: frr\nnodes: [r1, r2]\nlinks: [r1-r2]\n"), topology.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestRunnerUp(t *testing.T) {
	b := twoRouters(t)
	dir := filepath.Join(t.TempDir(), "my_lab")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		r := &sim.Runner{UpDelay: 100 * time.Millisecond}
		start := time.Now()
		devs, err := r.Up(t.Context(), lab.Spec{Dir: dir, Bundle: b})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "up took", time.Since(start), 100*time.Millisecond)
		if len(devs) != 2 || devs[0].Name != "r1" || devs[1].Name != "r2" {
			t.Fatalf("devices = %v, want r1, r2", devs)
		}
		var raw map[string]any
		if err := json.Unmarshal(devs[1].Raw, &raw); err != nil {
			t.Fatal(err)
		}
		equal(t, "ansible_host", raw["ansible_host"], "clab-mylab-r2")
		equal(t, "mgmt ipv4", raw["mgmt"].(map[string]any)["ipv4"], "192.168.121.102")

		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(10 * time.Millisecond)
			cancel()
		}()
		_, err = r.Up(ctx, lab.Spec{Dir: dir, Bundle: b})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Up = %v, want context.Canceled", err)
		}
		equal(t, "cancelled up took", time.Since(start), 110*time.Millisecond)
	})
}

// progressLog records what a Runner reports.
type progressLog struct {
	steps, lines []string
}

func (p *progressLog) Step(op string)            { p.steps = append(p.steps, op) }
func (p *progressLog) Output(line string)        { p.lines = append(p.lines, line) }
func (p *progressLog) Process(lab.Process, bool) {}

// TestRunnerKeepsLabsAsFiles: a lab runs (for Running) from a successful
// Up until Down, as a marker file in its directory; Up and Down report
// their steps and a few lines of output.
func TestRunnerKeepsLabsAsFiles(t *testing.T) {
	b := twoRouters(t)
	dir := t.TempDir()
	var r sim.Runner
	running := func(want bool) {
		t.Helper()
		if got, err := r.Running(t.Context(), dir); err != nil || got != want {
			t.Errorf("Running = %v, %v; want %v", got, err, want)
		}
	}
	running(false)
	var up progressLog
	devs, err := r.Up(lab.WithProgress(t.Context(), &up), lab.Spec{Dir: dir, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	running(true)
	equal(t, "up steps", up.steps, []string{"up", "inspect"})
	equal(t, "up output", up.lines, []string{"provider sim: starting 2 node(s) of lab " + sim.LabName(b.Topology(), dir),
		"[SUCCESS] The lab is up and running"})
	var marker struct{ Devices []lab.Device }
	data, err := os.ReadFile(filepath.Join(dir, sim.MarkerFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &marker); err != nil {
		t.Fatal(err)
	}
	equal(t, "devices in the marker", marker.Devices, devs)

	var down progressLog
	if err := r.Down(lab.WithProgress(t.Context(), &down), dir); err != nil {
		t.Fatal(err)
	}
	running(false)
	equal(t, "down steps", down.steps, []string{"down"})
	if got, err := r.Running(t.Context(), filepath.Join(dir, "gone")); err != nil || got {
		t.Errorf("Running of a missing directory = %v, %v", got, err)
	}
}

// TestManagerAdoptsSimLab: a Manager over the sim runner that closes with
// KeepOnClose leaves its lab for the next one to adopt; without the
// marker (the lab was lost meanwhile) it is torn down instead.
func TestManagerAdoptsSimLab(t *testing.T) {
	b := twoRouters(t)
	for _, lost := range []bool{false, true} {
		work, state := t.TempDir(), t.TempDir()
		r := &sim.Runner{}
		newManager := func(keep bool) *lab.Manager {
			m, err := lab.NewManager(lab.Config{Runner: r, WorkRoot: work, StateDir: state, LockPath: "-",
				KeepOnClose: keep, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close(context.Background()) })
			return m
		}
		first := newManager(true)
		if _, err := first.TryAcquire(t.Context(), "s1", b, true); err != nil {
			t.Fatal(err)
		}
		dir := first.Status().Dir
		if err := first.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if lost {
			if err := os.Remove(filepath.Join(dir, sim.MarkerFile)); err != nil {
				t.Fatal(err)
			}
		}
		second := newManager(false)
		got, err := second.Recover(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want, wantState := lab.RecoveredAdopted, lab.StateRunning
		if lost {
			want, wantState = lab.RecoveredTornDown, lab.StateNone
		}
		st := second.Status()
		if got != want || st.State != wantState {
			t.Errorf("lost %v: Recover = %v, state %s; want %v, %s", lost, got, st.State, want, wantState)
		}
		if !lost && (st.Dir != dir || st.Holders["s1"] != 1 || len(st.Devices) != 2) {
			t.Errorf("adopted lab: %+v", st)
		}
	}
}
