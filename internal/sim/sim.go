// Package sim simulates Netlab's view of a lab: the node data `netlab
// inspect` prints for a topology (management addresses, container names,
// per-device credentials) and a lab.Runner that "starts" labs in process
// (kept as marker files in their directories).
// remotelabd --runner sim, remotelabtest.FakeRunner and the fake netlab
// executable share it, so every stand-in reports the same realistic data.
//
// The data imitates Netlab 26.03 with the containerlab provider: node ids
// follow definition order from 1, the management address of node id N is
// <prefix>.(100+N) with MAC ca:fe:00:NN:00:00, containers are named
// clab-<lab>-<node>, and credentials come from a per-device table.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/remotelab-go/remotelab/internal/clock"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/topology"
)

// NetlabVersion is the Netlab release the simulated data imitates; it is
// the `_netlab_version` of every node detail.
const NetlabVersion = "26.03"

// DefaultMgmtPrefix is Netlab's default management /24 (192.168.121.0/24).
const DefaultMgmtPrefix = "192.168.121"

// Addressing is how a lab's nodes are named and numbered.
type Addressing struct {
	// LabName is the lab's name (topology `name:`, else derived from the
	// working directory as Netlab does, else "default"); containers are
	// clab-<LabName>-<node>. "" means "default".
	LabName string
	// MgmtPrefix is the management /24 as "a.b.c" (default "192.168.121").
	MgmtPrefix string
}

func (a Addressing) withDefaults() Addressing {
	if a.LabName == "" {
		a.LabName = "default"
	}
	if a.MgmtPrefix == "" {
		a.MgmtPrefix = DefaultMgmtPrefix
	}
	return a
}

// Node is one node as `netlab inspect` shows it.
type Node struct {
	Name string
	// Summary is the node's entry in `netlab inspect --format json nodes`.
	Summary map[string]any
	// Detail is `netlab inspect --node NAME --format json`: the node data
	// merged with its device's Ansible group variables.
	Detail map[string]any
}

// LabName returns the name Netlab gives a lab whose topology is t and
// whose topology file lies in dir: t's `name:` if set, else dir's base
// name with non-alphanumerics turned into underscores, leading digits
// dropped, underscores removed and cut to 12 characters, else "default".
// t may be nil.
func LabName(t *topology.Topology, dir string) string {
	if t != nil && t.Name != "" {
		return t.Name
	}
	base := filepath.Base(filepath.Clean(dir))
	// Netlab: non-alphanumerics become "_", leading digits go, then the
	// underscores go too.
	base = strings.TrimLeft(strings.Map(func(r rune) rune {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, base), "0123456789")
	var b strings.Builder
	for _, r := range base {
		if r != '_' {
			b.WriteRune(r)
		}
	}
	name := b.String()
	if len(name) > 12 {
		name = name[:12]
	}
	if name == "" {
		return "default"
	}
	return name
}

// Inspect returns the nodes of t in definition order (node id = index+1).
// A node without a device is shown as device "none". Each call returns
// fresh maps that the caller may modify.
func Inspect(t *topology.Topology, a Addressing) []Node {
	a = a.withDefaults()
	ifaces := interfaces(t)
	nodes := make([]Node, len(t.Nodes))
	for i, n := range t.Nodes {
		id := i + 1
		device := n.Device
		if device == "" {
			device = "none"
		}
		p := profileFor(device)
		mgmtIP := fmt.Sprintf("%s.%d", a.MgmtPrefix, 100+id)
		hostname := fmt.Sprintf("clab-%s-%s", a.LabName, n.Name)
		summary := map[string]any{
			"name":   n.Name,
			"id":     id,
			"device": device,
			"box":    p.image,
			"mgmt": map[string]any{
				"ifname": p.mgmtIf,
				"ipv4":   mgmtIP,
				"mac":    fmt.Sprintf("ca:fe:00:%02x:00:00", id&0xff),
			},
			"hostname":   hostname,
			"af":         map[string]any{"ipv4": true},
			"clab":       map[string]any{"kind": p.kind},
			"interfaces": ifaces[n.Name],
		}
		if p.host {
			summary["role"] = "host"
		} else if p.loIf != "" {
			summary["loopback"] = map[string]any{
				"ifindex": 0,
				"ifname":  p.loIf,
				"ipv4":    fmt.Sprintf("10.0.0.%d/32", id),
			}
			summary["role"] = "router"
		}
		if summary["interfaces"] == nil {
			summary["interfaces"] = []any{}
		}

		detail := clone(summary).(map[string]any)
		host := mgmtIP
		if p.conn == "docker" {
			host = hostname
		}
		detail["ansible_host"] = host
		detail["ansible_user"] = p.user
		if p.pass != "" {
			detail["ansible_ssh_pass"] = p.pass
		}
		detail["ansible_connection"] = p.conn
		detail["ansible_network_os"] = p.netOS
		detail["netlab_device_type"] = device
		for k, v := range p.extra {
			detail[k] = v
		}
		detail["_netlab_version"] = NetlabVersion

		nodes[i] = Node{Name: n.Name, Summary: summary, Detail: detail}
	}
	return nodes
}

// interfaces numbers the links like Netlab's default pools: two-node links
// are p2p /30s from 10.1.0.0/16, others LANs (stub for one node) /24s
// from 172.16.0.0/16 where a node's host part is its id.
func interfaces(t *topology.Topology) map[string][]any {
	ids := make(map[string]int, len(t.Nodes))
	devices := make(map[string]string, len(t.Nodes))
	for i, n := range t.Nodes {
		ids[n.Name] = i + 1
		devices[n.Name] = n.Device
	}
	type end struct {
		node, ifname, ipv4 string
		ifindex            int
	}
	next := make(map[string]int) // last ifindex per node
	out := make(map[string][]any)
	p2p, lan := 0, 0
	for li, l := range t.Links {
		ends := make([]end, 0, len(l.Nodes))
		typ := "p2p"
		var addr func(i int, node string) string
		switch len(l.Nodes) {
		case 2:
			base := p2p * 4
			p2p++
			addr = func(i int, _ string) string {
				return fmt.Sprintf("10.1.%d.%d/30", base/256, base%256+i+1)
			}
		default:
			typ = "lan"
			if len(l.Nodes) == 1 {
				typ = "stub"
			}
			subnet := lan
			lan++
			addr = func(_ int, node string) string {
				return fmt.Sprintf("172.16.%d.%d/24", subnet%256, ids[node])
			}
		}
		for i, node := range l.Nodes {
			if _, ok := ids[node]; !ok {
				continue // the topology package rejects these; be safe
			}
			next[node]++
			ends = append(ends, end{
				node:    node,
				ifindex: next[node],
				ifname:  profileFor(devices[node]).ifname(next[node]),
				ipv4:    addr(i, node),
			})
		}
		for i, e := range ends {
			neighbors := []any{}
			for j, o := range ends {
				if j != i {
					neighbors = append(neighbors, map[string]any{
						"node": o.node, "ifname": o.ifname, "ipv4": o.ipv4,
					})
				}
			}
			out[e.node] = append(out[e.node], map[string]any{
				"ifindex":   e.ifindex,
				"ifname":    e.ifname,
				"ipv4":      e.ipv4,
				"linkindex": li + 1,
				"type":      typ,
				"neighbors": neighbors,
			})
		}
	}
	return out
}

// clone deep-copies the maps and slices of a JSON-like value.
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = clone(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = clone(e)
		}
		return s
	default:
		return v
	}
}

// Devices returns t's nodes as lab devices whose Raw is the Detail data.
func Devices(t *topology.Topology, a Addressing) []lab.Device {
	nodes := Inspect(t, a)
	devs := make([]lab.Device, len(nodes))
	for i, n := range nodes {
		raw, err := json.Marshal(n.Detail)
		if err != nil {
			panic("sim: marshal node detail: " + err.Error())
		}
		devs[i] = lab.Device{Name: n.Name, Raw: raw}
	}
	return devs
}

// Runner is a lab.Runner that simulates Netlab: Up waits UpDelay and
// returns Devices for the bundle's topology (lab name derived from
// spec.Dir as Netlab would, default management prefix); Down waits
// DownDelay. Both honour ctx and, like the netlab runner, their own
// deadlines (UpTimeout, DownTimeout): when one ends first they return an
// error wrapping context.Canceled or context.DeadlineExceeded. They report their steps ("up", then "inspect";
// "down") and a few lines of output like Netlab's through
// lab.ProgressFrom(ctx).
//
// Its labs are files: Up leaves a marker (MarkerFile, with the devices)
// in spec.Dir and Down removes it, so Running (lab.Prober) can tell a
// restarted process whether the lab in a directory still "runs". The zero
// value is ready to use and safe for concurrent use.
type Runner struct {
	UpDelay   time.Duration
	DownDelay time.Duration
	// UpTimeout and DownTimeout bound Up and Down as netlab's deadlines
	// do (0: no bound).
	UpTimeout   time.Duration
	DownTimeout time.Duration
}

// step waits d for the simulated command, bounded by ctx and timeout
// (0: none). An interrupted wait says after how long, as netlab's does.
func step(ctx context.Context, d, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	if err := Delay(ctx, d); err != nil {
		return fmt.Errorf("interrupted after %.1fs: %w", time.Since(start).Seconds(), err)
	}
	return nil
}

// MarkerFile is the file a running simulated lab has in its directory.
const MarkerFile = ".remotelab-sim.json"

var _ lab.Prober = (*Runner)(nil)

// Up implements lab.Runner.
func (r *Runner) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	if spec.Bundle == nil {
		return nil, fmt.Errorf("simulate lab start: spec has no bundle")
	}
	progress := lab.ProgressFrom(ctx)
	progress.Step("up")
	t := spec.Bundle.Topology()
	progress.Output(fmt.Sprintf("provider sim: starting %d node(s) of lab %s", len(t.Nodes), LabName(t, spec.Dir)))
	if err := step(ctx, r.UpDelay, r.UpTimeout); err != nil {
		return nil, fmt.Errorf("simulate lab start: %w", err)
	}
	devs := Devices(t, Addressing{LabName: LabName(t, spec.Dir)})
	marker, err := json.Marshal(map[string]any{"devices": devs})
	if err != nil {
		return nil, fmt.Errorf("simulate lab start: %w", err)
	}
	if err := os.WriteFile(filepath.Join(spec.Dir, MarkerFile), marker, 0o644); err != nil {
		return nil, fmt.Errorf("simulate lab start: %w", err)
	}
	progress.Output("[SUCCESS] The lab is up and running")
	progress.Step("inspect")
	return devs, nil
}

// Down implements lab.Runner. A directory without a running lab (or
// without a directory) has nothing to tear down.
func (r *Runner) Down(ctx context.Context, dir string) error {
	progress := lab.ProgressFrom(ctx)
	progress.Step("down")
	progress.Output("provider sim: stopping nodes")
	if err := step(ctx, r.DownDelay, r.DownTimeout); err != nil {
		return fmt.Errorf("simulate lab teardown: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, MarkerFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("simulate lab teardown: %w", err)
	}
	progress.Output("[SUCCESS] The lab is down")
	return nil
}

// Running implements lab.Prober: the lab in dir runs while its marker is
// there.
func (r *Runner) Running(ctx context.Context, dir string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("simulate lab status: %w", err)
	}
	_, err := os.Stat(filepath.Join(dir, MarkerFile))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("simulate lab status: %w", err)
}

// Delay blocks for d or until ctx ends, whichever is first: it returns nil
// after d, context.Cause(ctx) when ctx ended first (at once if it already
// had, even for d <= 0), as clock.Sleep does. Runner and
// remotelabtest.FakeRunner wait with it.
func Delay(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, d)
}
