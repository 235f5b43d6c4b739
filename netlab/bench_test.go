package netlab_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/netlab"
	"github.com/remotelab-go/remotelab/topology"
)

// BenchmarkInventory reads the inventory of a 20-node lab whose every
// `netlab inspect` takes 200 ms: one node list plus 20 node inspects, in
// parallel (limit 8) and one by one.
func BenchmarkInventory(b *testing.B) {
	root := b.TempDir()
	home, dir := filepath.Join(root, "home"), filepath.Join(root, "lab")
	for _, d := range []string{home, dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	var topo strings.Builder
	topo.WriteString("provider: clab\ndefaults.device: frr\nnodes:\n")
	for i := range 20 {
		fmt.Fprintf(&topo, "  n%02d:\n", i)
	}
	bundle, err := topology.NewBundle("topology.yml", []byte(topo.String()), topology.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	defer bundle.Close()
	if err := bundle.WriteTo(dir); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	setup, _ := netlab.New(netlab.Config{Env: []string{"HOME=" + home}, Logger: quiet})
	if _, err := setup.Up(context.Background(), lab.Spec{Dir: dir, Bundle: bundle}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = setup.Down(context.Background(), dir) }()

	for _, par := range []int{8, 1} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			r, _ := netlab.New(netlab.Config{
				Env:                []string{"HOME=" + home, "FAKE_NETLAB_INSPECT_DELAY=200ms"},
				InspectParallelism: par,
				Logger:             quiet,
			})
			for b.Loop() {
				devs, err := r.Inventory(context.Background(), dir, bundle.Topology().NodeNames())
				if err != nil || len(devs) != 20 {
					b.Fatalf("inventory: %d devices, %v", len(devs), err)
				}
			}
		})
	}
}
