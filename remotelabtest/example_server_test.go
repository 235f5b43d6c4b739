package remotelabtest_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// testLabFailure would be a test of code that uses package client: the
// fake server's labs come from a FakeRunner, here one whose start fails.
func testLabFailure(t *testing.T) {
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		return errors.New("netlab up: containerlab failed")
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner))

	s, err := srv.Client().Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, _, err = s.Acquire(t.Context(), "testdata/lab.yml")
	if !errors.Is(err, client.ErrNetlabFailed) {
		t.Fatalf("got %v, want a netlab failure", err)
	}
}

// testQueueTimeout runs server and clients in a synctest bubble: ten
// minutes in the queue take no real time.
func testQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		first, err := srv.Client().Open(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close(context.Background())

		_, err = srv.Client(client.WithSessionTimeout(10 * time.Minute)).Open(t.Context())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a timeout", err)
		}
	})
}

func ExampleNewServer() {
	_, _ = testLabFailure, testQueueTimeout // see the whole file
}
