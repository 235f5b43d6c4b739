package remotelabtest_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// Skip records a skip as a failure message, so that a test can tell a
// fixture that skipped from one that failed, and ends the goroutine.
func (f *fakeT) Skip(args ...any) {
	f.Errorf("SKIPPED: %s", fmt.Sprint(args...))
	runtime.Goexit()
}

func (f *fakeT) Skipf(format string, args ...any) {
	f.Errorf("SKIPPED: "+format, args...)
	runtime.Goexit()
}

func (f *fakeT) SkipNow() {
	f.Errorf("SKIPPED")
	runtime.Goexit()
}

// A test whose session an admin evicts while it holds the lab fails, with
// the admin's reason; the lab tests after it fail at once, also with the
// reason, and none skips.
func TestEvictedSessionFailsTests(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	b := inProcess(srv, nil)
	var holding, later, third string
	b.Main(func() int {
		holder := &fakeT{TB: t, name: "TestHolding"}
		holding = holder.run(func(ft testing.TB) {
			b.Lab(ft, "testdata/lab.yml")
			q, err := srv.Client().Queue(context.Background())
			require.NoError(t, err)
			require.NoError(t, srv.Client().Admin().Evict(context.Background(), q.Holder.ID, "host needs a reboot"))
		})
		later = (&fakeT{TB: t, name: "TestLater"}).run(func(ft testing.TB) { b.Lab(ft, "testdata/lab.yml") })
		third = (&fakeT{TB: t, name: "TestThird"}).run(func(ft testing.TB) { b.Lab(ft, "testdata/lab-b.yml") })
		return 1
	})
	for name, failures := range map[string]string{"holding": holding, "later": later, "third": third} {
		assert.Contains(t, failures, "the server ended the test binary's lab session: evicted by local: host needs a reboot", name)
		assert.NotContains(t, failures, "SKIPPED", name)
	}
	assert.Contains(t, holding, "lab testdata/lab.yml: ")
	assert.Contains(t, third, "lab testdata/lab-b.yml: ")
	assert.Equal(t, 0, srv.Broker().Len())
	assert.Len(t, srv.Runner().Calls(), 1, "no lab starts after the eviction")
}

// An eviction between two tests, which no call has noticed yet, fails the
// next lab test with the reason: its acquire learns it.
func TestEvictionBetweenTests(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	b := inProcess(srv, nil)
	var first, second string
	b.Main(func() int {
		first = (&fakeT{TB: t, name: "TestFirst"}).run(func(ft testing.TB) { b.Lab(ft, "testdata/lab.yml") })
		q, err := srv.Client().Queue(context.Background())
		require.NoError(t, err)
		_, err = srv.Broker().Evict(q.Holder.ID, "ops", "quota")
		require.NoError(t, err)
		second = (&fakeT{TB: t, name: "TestSecond"}).run(func(ft testing.TB) { b.Lab(ft, "testdata/lab.yml") })
		return 0
	})
	assert.Empty(t, first)
	assert.Contains(t, second, "the server ended the test binary's lab session: evicted by ops: quota")
	assert.NotContains(t, second, "SKIPPED")
}

// A session that reaches the server's maximum hold mid-test fails that
// test with the reason, learned by the heartbeats alone.
func TestMaxHoldFailsTest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		b := remotelabtest.NewBinary(envOf(map[string]string{client.EnvURL: srv.URL()}), func() (*client.Client, error) {
			return srv.Client(client.WithHeartbeatInterval(10*time.Second), client.WithOpenDefaults(client.WithMaxHold(time.Minute))), nil
		})
		var failures string
		b.Main(func() int {
			failures = (&fakeT{TB: t, name: "TestLong"}).run(func(ft testing.TB) {
				b.Lab(ft, "testdata/lab.yml")
				time.Sleep(2 * time.Minute)
				synctest.Wait()
			})
			return 1
		})
		assert.Contains(t, failures, "the server ended the test binary's lab session: max_hold: held the lab for 60 s")
		assert.NotContains(t, failures, "SKIPPED")
	})
}
