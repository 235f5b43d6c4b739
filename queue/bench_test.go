package queue_test

import (
	"runtime"
	"testing"

	"github.com/remotelab-go/remotelab/queue"
)

// fill returns a queue holding n entries and their ids.
func fill(b *testing.B, n int) (*queue.Queue[struct{}], []string) {
	b.Helper()
	q := queue.New(queue.Config[struct{}]{})
	b.Cleanup(q.Close)
	ids := make([]string, n)
	for i := range ids {
		info, err := q.Join(struct{}{})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = info.ID
	}
	return q, ids
}

// BenchmarkJoinLeave joins and leaves an empty queue: each join promotes
// and each leave empties the queue again.
func BenchmarkJoinLeave(b *testing.B) {
	q, _ := fill(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		info, err := q.Join(struct{}{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := q.Leave(info.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoinLeaveHead10k keeps 10 000 entries queued: each round joins
// at the tail and the head leaves, so every position shifts.
func BenchmarkJoinLeaveHead10k(b *testing.B) {
	q, _ := fill(b, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Join(struct{}{}); err != nil {
			b.Fatal(err)
		}
		head, err := q.Head()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := q.Leave(head.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatus10k reads one entry's status in a queue of 10 000.
func BenchmarkStatus10k(b *testing.B) {
	q, ids := fill(b, 10_000)
	id := ids[len(ids)/2]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Status(id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTouch10k touches one entry in a queue of 10 000.
func BenchmarkTouch10k(b *testing.B) {
	q, ids := fill(b, 10_000)
	id := ids[len(ids)/2]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Touch(id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerEntry reports the live heap one waiting entry costs
// (payload struct{}, nobody waiting on it), measured over 10 000 joins.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const n = 10_000
	var perEntry float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		q := queue.New(queue.Config[struct{}]{})
		for range n {
			if _, err := q.Join(struct{}{}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(q)
		q.Close()
	}
	b.ReportMetric(perEntry, "B/entry")
}
