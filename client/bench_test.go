package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func quietServer(b *testing.B) *remotelabtest.Server {
	return remotelabtest.NewServer(b, remotelabtest.WithLogger(slog.New(slog.DiscardHandler)))
}

// BenchmarkOpenClose measures a session's life on an empty queue: POST
// /session (active at once) and DELETE /session/{id}, over real sockets.
func BenchmarkOpenClose(b *testing.B) {
	c := quietServer(b).Client()
	ctx := context.Background()
	for b.Loop() {
		s, err := c.Open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquireRelease measures attaching to the running lab (no netlab
// call) and releasing it, with extra files of the given total size.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, size := range []int{0, 1 << 20, 16 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			s, err := quietServer(b).Client().Open(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			var opts []client.AcquireOption
			if size > 0 {
				opts = append(opts, client.ExtraBytes("blob.bin", make([]byte, size)))
			}
			ctx := context.Background()
			if _, _, err := s.AcquireBytes(ctx, "lab.yml", []byte(topoA), opts...); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size + len(topoA)))
			for b.Loop() {
				if _, _, err := s.AcquireBytes(ctx, "lab.yml", []byte(topoA), opts...); err != nil {
					b.Fatal(err)
				}
				if err := s.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n == 0 {
		return "topology-only"
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// signalHandler is a slog.Handler that reports records with a given
// message.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.ch <- struct{}{}
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// BenchmarkHandover measures the queue hand-over as a waiting client sees
// it: from the head's Close until the next session's Open returns, over
// real sockets and long-poll (the original client's 5 s polls cost 2.5 s
// on average).
func BenchmarkHandover(b *testing.B) {
	srv := quietServer(b)
	queued := make(chan struct{}, 1)
	waiter := srv.Client(client.WithLogger(slog.New(signalHandler{msg: "Queued", ch: queued})))
	ctx := context.Background()
	head, err := srv.Client().Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		opened := make(chan *client.Session)
		go func() {
			s, err := waiter.Open(ctx)
			if err != nil {
				b.Error(err)
			}
			opened <- s
		}()
		<-queued
		b.StartTimer()
		if err := head.Close(ctx); err != nil {
			b.Fatal(err)
		}
		head = <-opened
		if head == nil {
			b.FailNow()
		}
	}
	_ = head.Close(ctx)
}
