package gobuild_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remotelab-go/remotelab/internal/gobuild"
)

func TestBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "netlab")
	if err := gobuild.Build(t.Context(), out, "netlab/fakenetlab", false); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(out, "version").Output()
	if err != nil || !strings.HasPrefix(string(b), "netlab version ") {
		t.Fatalf("built fake says %q, %v", b, err)
	}
}

func TestBuildReportsCompilerOutput(t *testing.T) {
	err := gobuild.Build(t.Context(), filepath.Join(t.TempDir(), "x"), "no/such/package", false)
	if err == nil || !strings.Contains(err.Error(), "no/such/package") {
		t.Fatalf("error = %v, want one naming the package", err)
	}
}
