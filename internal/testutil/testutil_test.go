package testutil_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBufferConcurrentWrites(t *testing.T) {
	var b testutil.Buffer
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "g%d-%d\n", g, i)
			}
		})
	}
	wg.Go(func() { // a reader racing the writers
		for range 100 {
			_, _ = b.Snapshot()
			_ = b.String()
		}
	})
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	assert.Len(t, lines, 800)
	for g := range 8 {
		assert.Contains(t, lines, fmt.Sprintf("g%d-99", g))
	}
}

func TestBufferSnapshotWakesOnWrite(t *testing.T) {
	var b testutil.Buffer
	s, changed := b.Snapshot()
	assert.Empty(t, s)
	select {
	case <-changed:
		t.Fatal("changed is closed before any write")
	default:
	}
	_, _ = b.Write([]byte("x"))
	<-changed // closed by the write; a missed wake-up hangs here
	s, changed2 := b.Snapshot()
	assert.Equal(t, "x", s)
	assert.NotEqual(t, changed, changed2)
}

func TestBufferWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b testutil.Buffer
		rx := regexp.MustCompile(`session (\w+) at position (\d)`)
		go func() {
			for i, id := range []string{"aa", "bb", "cc"} {
				time.Sleep(time.Second)
				fmt.Fprintf(&b, "noise\nsession %s at position %d\n", id, i)
			}
		}()
		start := time.Now()
		m, err := b.WaitFor(rx, 2, time.Minute, nil)
		require.NoError(t, err)
		assert.Equal(t, []string{"session bb at position 1", "bb", "1"}, m)
		assert.Equal(t, 2*time.Second, time.Since(start), "answers at the second match")

		m, err = b.WaitFor(rx, 1, time.Minute, nil)
		require.NoError(t, err, "an earlier match answers at once")
		assert.Equal(t, "aa", m[1])
		assert.Equal(t, 2*time.Second, time.Since(start))

		_, err = b.WaitFor(rx, 4, 10*time.Second, nil)
		assert.EqualError(t, err, `output did not match "session (\\w+) at position (\\d)" 4 times within 10s`)
		assert.Equal(t, 12*time.Second, time.Since(start))
	})
}

func TestBufferWaitForDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b testutil.Buffer
		done := make(chan struct{})
		go func() {
			time.Sleep(time.Second)
			_, _ = b.Write([]byte("listening on 127.0.0.1:80\n"))
			close(done)
		}()
		rx := regexp.MustCompile(`listening on (\S+)`)
		m, err := b.WaitFor(rx, 1, time.Minute, done)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1:80", m[1])

		start := time.Now()
		_, err = b.WaitFor(rx, 2, time.Minute, done)
		assert.EqualError(t, err, `output ended before matching "listening on (\\S+)" 2 times`)
		assert.Zero(t, time.Since(start), "gives up as soon as the writer ended")
	})
}

// TestBufferWaitForLastLook: output written just before the writer ended
// is matched even when the end is seen first.
func TestBufferWaitForLastLook(t *testing.T) {
	var b testutil.Buffer
	done := make(chan struct{})
	close(done)
	_, _ = b.Write([]byte("ready\n"))
	m, err := b.WaitFor(regexp.MustCompile(`ready`), 1, time.Minute, done)
	require.NoError(t, err)
	assert.Equal(t, []string{"ready"}, m)
}

func TestBundle(t *testing.T) {
	tmp := t.TempDir()
	t.Run("inner", func(t *testing.T) {
		t.Setenv("TMPDIR", tmp)
		b := testutil.Bundle(t, "lab.yml", "nodes: [r1, r2]\n")
		assert.Equal(t, "lab.yml", b.TopologyName())
		assert.Equal(t, []string{"r1", "r2"}, b.Topology().NodeNames())
		require.NoError(t, b.AddFileFrom("configs/r1.cfg", strings.NewReader("x")))
		spool, err := os.ReadDir(tmp)
		require.NoError(t, err)
		assert.Len(t, spool, 1, "the bundle spools into TMPDIR")
	})
	spool, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, spool, "the bundle was closed when the test ended")
}
