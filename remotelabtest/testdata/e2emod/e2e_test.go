// Package e2e is a package with a lab test, as a user writes it. It is run
// by remotelabtest's end-to-end test, which sets REMOTE_LAB_URL and
// E2E_CONTROL, the URL of its control server.
package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestMain(m *testing.M) { os.Exit(remotelabtest.Main(m)) }

// TestHoldLab acquires the lab, reports to the control server, and holds
// the lab until the control server answers.
func TestHoldLab(t *testing.T) {
	lab := remotelabtest.Lab(t, "lab.yml")
	q := url.Values{
		"name":    {os.Getenv("E2E_NAME")},
		"pid":     {strconv.Itoa(os.Getpid())},
		"devices": {strconv.Itoa(len(lab.Devices()))},
		"reused":  {strconv.FormatBool(lab.Reused())},
		"host":    {lab.Device("r1").Text("ansible_host")},
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost,
		os.Getenv("E2E_CONTROL")+"/holding?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("control server: %s", resp.Status)
	}
}
