package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/remotelab-go/remotelab/broker"
)

// BenchmarkPutSessionSync: clients each save a session change and wait
// until it is durable, as the broker does before an answer. changes/commit
// shows the group commits.
func BenchmarkPutSessionSync(b *testing.B) {
	for _, clients := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", clients), func(b *testing.B) {
			s, _, err := Open(filepath.Join(b.TempDir(), "state.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			before := lastTxID(b, s)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range clients {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						ss := sess(fmt.Sprintf("%036d", i%256)) // a queue of 256 sessions, changing
						ss.Seq, ss.Labels = uint64(i), map[string]string{"job": "ci", "run": fmt.Sprint(i)}
						s.PutSession(ss)
						if err := s.Sync(b.Context()); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			commits := lastTxID(b, s) - before
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(b.N)/float64(commits), "changes/commit")
		})
	}
}

// lastTxID is the id of the last committed transaction: bbolt numbers
// them.
func lastTxID(b *testing.B, s *Store) int {
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkOpen opens (and loads) a file with 10 000 sessions and 10 000
// ended sessions.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.db")
	s, _, err := Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10000 {
		id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		s.PutSession(broker.SavedSession{
			ID: id, Seq: uint64(i), Owner: "ci-runner-" + fmt.Sprint(i%20),
			Labels:  map[string]string{"job": "integration", "pipeline": fmt.Sprint(i)},
			Created: created, WaitTimeout: time.Hour, MaxHold: 2 * time.Hour,
		})
		s.AddEnded(broker.Ended{
			ID: "ended-" + id, Owner: "ci-runner", Labels: map[string]string{"job": "integration"},
			Created: created, Promoted: created.Add(time.Minute), EndedAt: created.Add(time.Hour),
			Outcome: "closed", Reason: "closed by the client",
			Lab: &broker.LabUse{Topology: "topo.yml", Fingerprint: "sha256:0123456789abcdef"},
		})
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s, st, err := Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Sessions) != 10000 || len(st.Ended) != 10000 {
			b.Fatalf("loaded %d sessions and %d ended", len(st.Sessions), len(st.Ended))
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
}
