package remotelabtest_test

import (
	"testing"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// A lab test needs one line in the package's TestMain (not shown here,
// because this file is an example):
//
//	func TestMain(m *testing.M) { os.Exit(remotelabtest.Main(m)) }
//
// and one line per test. Run the tests against a lab host with
//
//	REMOTE_LAB_URL=http://lab1:8000 go test ./...
//
// Without REMOTE_LAB_URL they are skipped.

// testOSPF would be TestOSPF in a real test file.
func testOSPF(t *testing.T) {
	lab := remotelabtest.Lab(t, "testdata/ospf.yml", client.ExtraFiles("testdata/configs"))

	r1 := lab.Device("r1")
	t.Logf("ssh %s@%s", r1.Text("ansible_user"), r1.Text("ansible_host"))
	// ... connect to the devices and test ...
}

func ExampleLab() {
	_ = testOSPF // see the whole file
}
