// Package testutil holds the test helpers that several of the module's
// packages need: a Buffer that collects output from many goroutines or a
// child process and can be waited on, and Bundle, which builds a
// topology bundle that lives as long as the test. Only tests import it.
package testutil

import (
	"bytes"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/topology"
)

// Buffer collects what is written to it, from any number of goroutines (a
// logger's, a child process's output), and lets a test read it or wait
// for it. The zero value is ready to use; a Buffer must not be copied
// after first use.
type Buffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced by each Write; nil until asked for
}

// Write appends p and wakes those waiting for a change. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Snapshot returns everything written so far and a channel that is
// closed by the next Write, so a waiter misses no write between reading
// and waiting.
func (b *Buffer) Snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.buf.String(), b.changed
}

// WaitFor blocks until the content matches rx at least n times (n >= 1)
// and returns the submatches of the nth match. It gives up with an error
// after timeout, or once done is closed (the writer ended; what it wrote
// before still counts). A nil done never closes.
func (b *Buffer) WaitFor(rx *regexp.Regexp, n int, timeout time.Duration, done <-chan struct{}) ([]string, error) {
	if n < 1 {
		panic("testutil: WaitFor needs n >= 1")
	}
	nth := func(s string) []string {
		if ms := rx.FindAllStringSubmatch(s, n); len(ms) == n {
			return ms[n-1]
		}
		return nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s, changed := b.Snapshot()
		if m := nth(s); m != nil {
			return m, nil
		}
		select {
		case <-changed:
		case <-done:
			if m := nth(b.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("output ended before matching %q %d times", rx, n)
		case <-timer.C:
			return nil, fmt.Errorf("output did not match %q %d times within %v", rx, n, timeout)
		}
	}
}

// Bundle returns a bundle of the topology text under the file name name,
// with the default limits, and closes it when the test ends. It fails the
// test at once if name or text do not make a bundle.
func Bundle(t testing.TB, name, text string) *topology.Bundle {
	t.Helper()
	b, err := topology.NewBundle(name, []byte(text), topology.Limits{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}
