package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// summary describes a sample of latencies.
type summary struct {
	N                   int
	P50, P99, Max, Mean time.Duration
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of a
// sorted sample, or 0 for an empty one.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(n))) - 1
	rank = max(0, min(rank, n-1))
	return sorted[rank]
}

// summarize sorts a copy of ds and returns its summary.
func summarize(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	out := summary{N: len(s)}
	if len(s) > 0 {
		out.P50 = percentile(s, 50)
		out.P99 = percentile(s, 99)
		out.Max = s[len(s)-1]
		out.Mean = sum / time.Duration(len(s))
	}
	return out
}

// String prints "p50 … p99 … max … mean … (n=…)".
func (s summary) String() string {
	if s.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s  max %s  mean %s  (n=%d)", fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.Max), fmtDur(s.Mean), s.N)
}

// fmtDur prints a duration with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}

// fmtMiB prints a byte count in MiB.
func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
