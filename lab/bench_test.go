package lab_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func quiet(c *lab.Config) { c.Logger = slog.New(slog.DiscardHandler) }

// BenchmarkAttachRelease measures the warm path: attaching to the running
// lab and releasing, which takes only the state mutex, plus writing the
// record after each reference change (records=file: lab.json, synced).
func BenchmarkAttachRelease(b *testing.B) {
	for _, tc := range []struct {
		name string
		mod  func(*lab.Config)
	}{
		{"records=none", func(c *lab.Config) { c.StateDir = "" }},
		{"records=file", func(*lab.Config) {}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, &remotelabtest.FakeRunner{}, quiet, tc.mod)
			bundle := newBundle(b, "a.yml", topoA)
			ctx := context.Background()
			if _, err := e.m.TryAcquire(ctx, "keeper", bundle, true); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					holder := fmt.Sprint("h", i%8)
					i++
					if _, err := e.m.TryAcquire(ctx, holder, bundle, true); err != nil {
						b.Error(err)
						return
					}
					if err := e.m.Release(holder); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkStartStop measures a full start and teardown with the
// FakeRunner: working directory, bundle write, state record, lock file.
func BenchmarkStartStop(b *testing.B) {
	e := newEnv(b, &remotelabtest.FakeRunner{}, quiet)
	bundle := newBundle(b, "a.yml", topoA, "configs/r1.cfg", "hostname r1\n")
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.m.TryAcquire(ctx, "h", bundle, true); err != nil {
			b.Fatal(err)
		}
		if _, err := e.m.Destroy(ctx, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatus measures a snapshot of a running lab.
func BenchmarkStatus(b *testing.B) {
	e := newEnv(b, &remotelabtest.FakeRunner{}, quiet)
	if _, err := e.m.TryAcquire(context.Background(), "h", newBundle(b, "a.yml", topoA), true); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = e.m.Status()
	}
}
