// Package gobuild builds this module's commands for tests and the load
// harness, which run remotelabd and the fake netlab as real processes.
package gobuild

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Module is this module's path; packages are named under it.
const Module = "github.com/remotelab-go/remotelab"

// Build runs `go build -o out pkg` (with -race when race is set), where pkg
// is a path relative to the module root such as "cmd/remotelabd". It works
// from any working directory inside the module. The error carries the
// compiler's output.
func Build(ctx context.Context, out, pkg string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goTool(), append(args, Module+"/"+pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " ")+" "+pkg, err, b)
	}
	return nil
}

// goTool finds the go command: on PATH, else the toolchain that built the
// running binary.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
