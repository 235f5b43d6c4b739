package topology_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/remotelab-go/remotelab/topology"
)

func ExampleNewBundle() {
	lab := []byte(`provider: clab
defaults.device: frr
nodes: [r1, r2]
links: [r1-r2]
`)
	b, err := topology.NewBundle("lab.yml", lab, topology.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	if err := b.AddFileFrom("configs/r1.cfg", strings.NewReader("hostname r1\n")); err != nil {
		fmt.Println(err)
		return
	}
	err = b.AddFile("../etc/passwd", nil)
	fmt.Println(err, errors.Is(err, topology.ErrUnsafePath))

	dir, err := os.MkdirTemp("", "lab-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	if err := b.WriteTo(dir); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Topology().NodeNames(), b.Paths(), len(b.Fingerprint()))
	// Output:
	// unsafe path "../etc/passwd": '..' segment true
	// [r1 r2] [configs/r1.cfg] 64
}

func ExampleParse() {
	_, err := topology.Parse("lab.yml", []byte("provider: clab\nnodes:\n  r1:\n  r1:\n"))
	fmt.Println(err)
	// Output:
	// lab.yml:4:3: duplicate node name "r1" (first at line 3)
}

func ExampleCheckTopologyName() {
	for _, name := range []string{"lab.yml", "LAB.YAML", ".yml", "labs/lab.yml", "lab.txt"} {
		err := topology.CheckTopologyName(name)
		fmt.Println(name, err == nil, errors.Is(err, topology.ErrBadTopologyName))
	}
	// Output:
	// lab.yml true false
	// LAB.YAML true false
	// .yml false true
	// labs/lab.yml false true
	// lab.txt false true
}
