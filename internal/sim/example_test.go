package sim_test

import (
	"fmt"

	"github.com/remotelab-go/remotelab/internal/sim"
	"github.com/remotelab-go/remotelab/topology"
)

func ExampleInspect() {
	topo, err := topology.Parse("topology.yml", []byte("provider: clab\ndefaults.device: frr\nnodes: [r1, r2]\n"))
	if err != nil {
		panic(err)
	}
	for _, n := range sim.Inspect(topo, sim.Addressing{LabName: sim.LabName(topo, "/srv/labs/demo")}) {
		fmt.Println(n.Name, n.Summary["mgmt"].(map[string]any)["ipv4"], n.Detail["ansible_host"])
	}
	// Output:
	// r1 192.168.121.101 clab-demo-r1
	// r2 192.168.121.102 clab-demo-r2
}
