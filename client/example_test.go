package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"

	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// startServer starts a stand-in for remotelabd: the real HTTP API over
// simulated labs. Real code uses client.FromEnv() and a real server.
func startServer() (url string, stop func()) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	work, err := os.MkdirTemp("", "remotelab-example-")
	if err != nil {
		log.Fatal(err)
	}
	b, err := broker.New(broker.Config{
		Lab:    lab.Config{Runner: &remotelabtest.FakeRunner{}, WorkRoot: work, LockPath: "-", Logger: quiet},
		Logger: quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	api, err := httpserver.New(httpserver.Config{Broker: b, SpoolDir: work, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(api)
	return ts.URL, func() {
		api.Close()
		ts.Close()
		_ = b.Close(context.Background())
		_ = os.RemoveAll(work)
	}
}

func Example() {
	url, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, err := client.New(url, client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	// Wait for our turn in the queue.
	s, err := c.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	devices, reused, err := s.Acquire(ctx, "testdata/lab.yml", client.ExtraFiles("testdata/configs"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Release(ctx)
	fmt.Println("reused:", reused)
	for _, d := range devices {
		fmt.Println(d.Name, d.Text("mgmt.ipv4"))
	}
	// Output:
	// reused: false
	// r1 192.168.121.101
	// r2 192.168.121.102
}

func ExampleSession_Acquire_errors() {
	url, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, _ := client.New(url, client.WithLogger(slog.New(slog.DiscardHandler)))
	s, err := c.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	_, _, err = s.AcquireBytes(ctx, "bad.yml", []byte("nodes: 5\n"))
	fmt.Println(errors.Is(err, client.ErrInvalidTopology))
	fmt.Println(err)

	if _, _, err := s.Acquire(ctx, "testdata/lab.yml"); err != nil {
		log.Fatal(err)
	}
	_, _, err = s.AcquireBytes(ctx, "other.yml", []byte("nodes: [x1]\n"))
	fmt.Println(errors.Is(err, client.ErrConflict))
	// Output:
	// true
	// acquire bad.yml: invalid topology: bad.yml:1:8: nodes must be a mapping or a list
	// true
}

// A session names its owner and labels; the queue shows them, and an
// admin's eviction reaches the session with its reason.
func ExampleClient_Open_metadata() {
	url, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, _ := client.New(url, client.WithLogger(slog.New(slog.DiscardHandler)))
	s, err := c.Open(ctx, client.WithOwner("alice@ci-3"), client.WithLabels(map[string]string{"job": "https://ci.example/42"}),
		client.OnProgress(func(p client.Progress) { fmt.Println("status:", p.Status, "position:", p.Position) }))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	q, err := c.Queue(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("holder:", q.Holder.Owner, q.Holder.Labels["job"])

	// The test server runs on loopback, where admin calls need no token.
	if err := c.Admin().Evict(ctx, s.ID(), "maintenance"); err != nil {
		log.Fatal(err)
	}
	_, err = s.Devices(ctx)
	var se *client.Error
	if errors.Is(err, client.ErrEvicted) && errors.As(err, &se) {
		fmt.Println("evicted:", se.Reason)
	}
	fmt.Println(errors.Is(s.Err(), client.ErrEvicted))
	// Output:
	// status: active position: 0
	// holder: alice@ci-3 https://ci.example/42
	// evicted: evicted by local: maintenance
	// true
}
