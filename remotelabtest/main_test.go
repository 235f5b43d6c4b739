package remotelabtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// Child scenarios: some tests run this test binary again, with one of the
// TestChild* tests selected and the environment they need, and look at
// its output, exit status and the server's state afterwards.
const (
	envChild  = "REMOTELABTEST_CHILD"   // set in a child process
	envNoMain = "REMOTELABTEST_NO_MAIN" // the child's TestMain skips Main
)

func TestMain(m *testing.M) {
	if os.Getenv(envNoMain) == "1" {
		os.Exit(m.Run())
	}
	code := remotelabtest.Main(m)
	if code == 0 && os.Getenv(envChild) == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// childTimeout bounds a child process, so that a child that waits on
// itself (the bug some scenarios check for) fails its test with a stack
// dump instead of hanging the parent. A passing child takes a second.
const childTimeout = 2 * time.Minute

// child runs test in a child process with env added to a clean
// environment.
func child(t *testing.T, test string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1",
		"-test.timeout="+childTimeout.String())
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REMOTE_LAB_") && !strings.HasPrefix(kv, "REMOTELABTEST_") && !strings.HasPrefix(kv, "GORACE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The race detector otherwise sleeps 1 s before a clean exit.
	cmd.Env = append(cmd.Env, envChild+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// runChild runs test in a child process and returns its output and exit
// error.
func runChild(t *testing.T, test string, env ...string) (string, error) {
	t.Helper()
	out, err := child(t, test, env...).CombinedOutput()
	t.Logf("child %s:\n%s", test, out)
	return string(out), err
}

// onlyInChild skips a TestChild* test unless a parent test runs it.
func onlyInChild(t *testing.T) {
	t.Helper()
	if os.Getenv(envChild) == "" {
		t.Skip("run in a child process by another test")
	}
}

// serverHealth reads GET /debug/health of the server at url.
func serverHealth(t testing.TB, url string) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url+"/debug/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("health: %v: %s", err, b)
	}
	return h
}

// TestChildLab uses one lab.
func TestChildLab(t *testing.T) {
	onlyInChild(t)
	lab := remotelabtest.Lab(t, "testdata/lab.yml")
	if got := len(lab.Devices()); got != 2 {
		t.Fatalf("got %d devices, want 2", got)
	}
	r1 := lab.Device("r1")
	fmt.Println("r1 mgmt", r1.Text("mgmt.ipv4"))
	if os.Getenv("REMOTELABTEST_UNKNOWN_DEVICE") == "1" {
		lab.Device("r9")
	}
}

// TestChildTwoLabs holds one lab and asks for another.
func TestChildTwoLabs(t *testing.T) {
	onlyInChild(t)
	remotelabtest.Lab(t, "testdata/lab.yml")
	remotelabtest.Lab(t, "testdata/lab-b.yml")
	fmt.Println("NOT REACHED")
}

// TestChildSubtestTwoLabs holds one lab and asks for another in a
// subtest.
func TestChildSubtestTwoLabs(t *testing.T) {
	onlyInChild(t)
	remotelabtest.Lab(t, "testdata/lab.yml")
	t.Run("sub", func(t *testing.T) {
		remotelabtest.Lab(t, "testdata/lab.yml", client.Reuse(false))
		fmt.Println("NOT REACHED")
	})
}

// TestChildRelease checks that a subtest's lab is released when the
// subtest ends, and reused by the next.
func TestChildRelease(t *testing.T) {
	onlyInChild(t)
	var sess *client.Session
	t.Run("first", func(t *testing.T) {
		lab := remotelabtest.Lab(t, "testdata/lab.yml")
		sess = lab.Session()
		st, err := sess.Status(t.Context())
		if err != nil || st.RefCount != 1 {
			t.Fatalf("during the subtest: ref count %d, err %v; want 1", st.RefCount, err)
		}
	})
	st, err := sess.Status(t.Context())
	if err != nil || st.RefCount != 0 || st.State != "idle" {
		t.Fatalf("after the subtest: ref count %d, state %q, err %v; want 0, idle", st.RefCount, st.State, err)
	}
	t.Run("second", func(t *testing.T) {
		if lab := remotelabtest.Lab(t, "testdata/lab.yml"); !lab.Reused() {
			t.Error("the second subtest did not reuse the lab")
		}
	})
}

// TestChildNoLab uses no lab: the binary must not queue.
func TestChildNoLab(t *testing.T) {
	onlyInChild(t)
	h := serverHealth(t, os.Getenv(client.EnvURL))
	if h["sessions"] != 0.0 {
		t.Fatalf("a binary whose tests use no lab has a session: %v", h)
	}
}

// TestChildPanic panics while it holds a lab.
func TestChildPanic(t *testing.T) {
	onlyInChild(t)
	remotelabtest.Lab(t, "testdata/lab.yml")
	panic("boom")
}

// TestChildHold holds a lab until its stdin closes.
func TestChildHold(t *testing.T) {
	onlyInChild(t)
	remotelabtest.Lab(t, "testdata/lab.yml")
	fmt.Println("HOLDING")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
