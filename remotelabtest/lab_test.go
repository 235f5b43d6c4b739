package remotelabtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestLabSkipsWithoutURL(t *testing.T) {
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_URL=")
	require.NoError(t, err)
	assert.Contains(t, out, "--- SKIP: TestChildLab")
	assert.Contains(t, out, "REMOTE_LAB_URL is not set")
	assert.Contains(t, out, "REMOTE_LAB_URL=http://host:8000")
}

func TestLabRequiredFailsWithoutURL(t *testing.T) {
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_URL=", "REMOTE_LAB_REQUIRED=1")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Contains(t, out, "--- FAIL: TestChildLab")
	assert.Contains(t, out, "REMOTE_LAB_REQUIRED requires lab tests to run")
	assert.Contains(t, out, "REMOTE_LAB_URL=http://host:8000")
}

func TestLabRequiredInvalid(t *testing.T) {
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_REQUIRED=maybe")
	require.Error(t, err)
	assert.Contains(t, out, `REMOTE_LAB_REQUIRED="maybe": want 1 or 0`)
}

func TestLabRequiredOff(t *testing.T) {
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_REQUIRED=0")
	require.NoError(t, err)
	assert.Contains(t, out, "--- SKIP: TestChildLab")
}

func TestLabWithoutMainFails(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_URL="+srv.URL(), envNoMain+"=1")
	require.Error(t, err)
	assert.Contains(t, out, "--- FAIL: TestChildLab")
	assert.Contains(t, out, "Lab needs remotelabtest.Main in TestMain")
	assert.Contains(t, out, "func TestMain(m *testing.M) { os.Exit(remotelabtest.Main(m)) }")
	assert.Empty(t, srv.Runner().Calls())
}

// A test binary gets its lab, and its session is gone when it exits.
func TestLabInTestBinary(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_URL="+srv.URL())
	require.NoError(t, err)
	assert.Contains(t, out, "--- PASS: TestChildLab")
	assert.Contains(t, out, "r1 mgmt 192.168.121.101")

	assert.Equal(t, 0, srv.Broker().Len())
	st := srv.Manager().Status()
	assert.Equal(t, 0, st.RefCount)
	assert.EqualValues(t, "idle", st.State)
	assert.Len(t, srv.Runner().Calls(), 1)
}

func TestLabUnknownDevice(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_URL="+srv.URL(), "REMOTELABTEST_UNKNOWN_DEVICE=1")
	require.Error(t, err)
	assert.Contains(t, out, `lab testdata/lab.yml has no device "r9" (it has r1, r2)`)
}

func TestLabOpenFails(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	srv.API().Drain()
	out, err := runChild(t, "TestChildLab", "REMOTE_LAB_URL="+srv.URL())
	require.Error(t, err)
	assert.Contains(t, out, "open the lab session")
	assert.Contains(t, out, "503 Service Unavailable")
}

func TestTwoLabsInOneTestFail(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildTwoLabs", "REMOTE_LAB_URL="+srv.URL())
	require.Error(t, err)
	assert.Contains(t, out, "--- FAIL: TestChildTwoLabs")
	assert.Contains(t, out, "TestChildTwoLabs asks for lab testdata/lab-b.yml while TestChildTwoLabs still holds lab testdata/lab.yml")
	assert.Contains(t, out, "would wait on itself")
	assert.NotContains(t, out, "NOT REACHED")
	assert.Equal(t, 0, srv.Broker().Len())
	assert.Equal(t, 0, srv.Manager().Status().RefCount)
}

func TestSubtestAsksForAnotherLab(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildSubtestTwoLabs", "REMOTE_LAB_URL="+srv.URL())
	require.Error(t, err)
	assert.Contains(t, out, "--- FAIL: TestChildSubtestTwoLabs/sub")
	assert.Contains(t, out, "TestChildSubtestTwoLabs/sub asks for lab testdata/lab.yml while TestChildSubtestTwoLabs still holds lab testdata/lab.yml")
	assert.NotContains(t, out, "NOT REACHED")
}

func TestLabReleasedInCleanup(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildRelease", "REMOTE_LAB_URL="+srv.URL())
	require.NoError(t, err)
	assert.Contains(t, out, "--- PASS: TestChildRelease")
	assert.Len(t, srv.Runner().Calls(), 1, "the second subtest reuses the lab")
}

func TestBinaryWithoutLabsDoesNotQueue(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildNoLab", "REMOTE_LAB_URL="+srv.URL())
	require.NoError(t, err)
	assert.Contains(t, out, "--- PASS: TestChildNoLab")
}

// SIGINT and SIGTERM close the binary's session before it exits.
func TestSignalClosesSession(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			srv := remotelabtest.NewServer(t)
			cmd := child(t, "TestChildHold", "REMOTE_LAB_URL="+srv.URL())
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())

			lines := bufio.NewScanner(stdout)
			var out strings.Builder
			for lines.Scan() {
				out.WriteString(lines.Text() + "\n")
				if lines.Text() == "HOLDING" {
					break
				}
			}
			require.Contains(t, out.String(), "HOLDING")
			require.Equal(t, 1, srv.Broker().Len())
			require.Equal(t, 1, srv.Manager().Status().RefCount)

			require.NoError(t, cmd.Process.Signal(sig))
			done := make(chan struct{})
			go func() {
				defer close(done)
				for lines.Scan() {
					out.WriteString(lines.Text() + "\n")
				}
			}()
			<-done
			err = cmd.Wait()
			t.Logf("child output:\n%s%s", out.String(), stderr.String())
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			ws := ee.Sys().(syscall.WaitStatus)
			assert.True(t, ws.Signaled() && ws.Signal() == sig, "the signal ends the process: %v", err)
			assert.Contains(t, stderr.String(), "closing the lab session")

			assert.Equal(t, 0, srv.Broker().Len())
			assert.Equal(t, 0, srv.Manager().Status().RefCount)
		})
	}
}

// A test that panics while it holds a lab closes the binary's session on
// the panic's way down, although the panic never reaches Main: the queue
// does not wait out the active TTL.
func TestTestPanicClosesSession(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	out, err := runChild(t, "TestChildPanic", "REMOTE_LAB_URL="+srv.URL())
	require.Error(t, err)
	assert.Contains(t, out, "panic: boom")
	assert.Contains(t, out, "remotelabtest: TestChildPanic panicked: closing the lab session")
	assert.Equal(t, 0, srv.Broker().Len(), "the session is closed")
	assert.Equal(t, 0, srv.Manager().Status().RefCount)
	h, err := srv.Client().History(t.Context(), 1)
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.Equal(t, api.OutcomeClosed, h[0].Outcome)
}

// envOf returns a getenv that knows only the given variables.
func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// inProcess returns per-binary state using srv, with its client requests
// passed through rt (nil: directly).
func inProcess(srv *remotelabtest.Server, rt func(http.RoundTripper) http.RoundTripper) *remotelabtest.Binary {
	return remotelabtest.NewBinary(envOf(map[string]string{client.EnvURL: srv.URL()}), func() (*client.Client, error) {
		tr := srv.HTTPClient().Transport
		if rt != nil {
			tr = rt(tr)
		}
		return srv.Client(client.WithHTTPClient(&http.Client{Transport: tr})), nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestMainReturnsCodeAndClosesSession(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	b := inProcess(srv, nil)
	code := b.Main(func() int {
		assert.Equal(t, 0, srv.Broker().Len(), "the session opens lazily")
		t.Run("lab", func(t *testing.T) {
			b.Lab(t, "testdata/lab.yml")
			assert.Equal(t, 1, srv.Broker().Len())
		})
		return 3
	})
	assert.Equal(t, 3, code)
	assert.Equal(t, 0, srv.Broker().Len())
}

func TestMainClosesSessionOnPanic(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	b := inProcess(srv, nil)
	assert.PanicsWithValue(t, "boom", func() {
		b.Main(func() int {
			b.Lab(t, "testdata/lab.yml")
			require.Equal(t, 1, srv.Broker().Len())
			panic("boom")
		})
	})
	assert.Equal(t, 0, srv.Broker().Len())
	assert.Equal(t, 0, srv.Manager().Status().RefCount)
}

// Parallel tests on one lab share it: one start, both hold it at once.
func TestParallelTestsShareALab(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	b := inProcess(srv, nil)
	b.Main(func() int {
		t.Run("group", func(t *testing.T) {
			// checked keeps b (and so its cleanup's release) from ending
			// before a has looked.
			aHolds, bHolds, checked := make(chan struct{}), make(chan struct{}), make(chan struct{})
			t.Run("a", func(t *testing.T) {
				t.Parallel()
				lab := b.Lab(t, "testdata/lab.yml")
				assert.False(t, lab.Reused())
				close(aHolds)
				<-bHolds
				assert.Equal(t, 2, srv.Manager().Status().RefCount)
				close(checked)
			})
			t.Run("b", func(t *testing.T) {
				t.Parallel()
				<-aHolds
				lab := b.Lab(t, "testdata/lab.yml")
				assert.True(t, lab.Reused())
				close(bHolds)
				<-checked
			})
		})
		return 0
	})
	assert.Len(t, srv.Runner().Calls(), 1)
}

// Parallel tests on different labs take turns: the second waits until the
// first released its lab, instead of failing or waiting on itself.
func TestParallelTestsTakeTurnsForDifferentLabs(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	conflicted := make(chan struct{})
	var once sync.Once
	b := inProcess(srv, func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(r)
			if err == nil && r.URL.Path == "/lab" && resp.StatusCode == http.StatusConflict {
				once.Do(func() { close(conflicted) })
			}
			return resp, err
		})
	})
	var order []string
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s)
	}
	b.Main(func() int {
		t.Run("group", func(t *testing.T) {
			aHolds := make(chan struct{})
			t.Run("a", func(t *testing.T) {
				t.Parallel()
				b.Lab(t, "testdata/lab.yml")
				note("a holds")
				close(aHolds)
				<-conflicted // b asked while a holds its lab
				t.Cleanup(func() { note("a releases") })
			})
			t.Run("b", func(t *testing.T) {
				t.Parallel()
				<-aHolds
				lab := b.Lab(t, "testdata/lab-b.yml")
				note("b holds")
				assert.Len(t, lab.Devices(), 3)
			})
		})
		return 0
	})
	assert.Equal(t, []string{"a holds", "a releases", "b holds"}, order)
	var ops []string
	for _, c := range srv.Runner().Calls() {
		ops = append(ops, c.Op)
	}
	assert.Equal(t, []string{"up", "down", "up"}, ops[:3])
}

func TestLabAfterMainEnded(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	b := inProcess(srv, nil)
	b.Main(func() int { return 0 })
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Lab(ft, "testdata/lab.yml")
	}()
	<-done
	assert.Contains(t, ft.msg, "already closed")
}

// fatalRecorder records the message of a Fatal call and ends the calling
// goroutine, as testing.T does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fakeT is a testing.TB whose failures and cleanups stay its own: Fatal
// records the message and ends the calling goroutine, and the Cleanup
// functions run when runCleanups is called.
type fakeT struct {
	testing.TB
	name     string
	deadline time.Time // zero: none

	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (f *fakeT) Helper()      {}
func (f *fakeT) Name() string { return f.name }

// Deadline is testing.T's: when the test binary's -timeout ends.
func (f *fakeT) Deadline() (time.Time, bool) { return f.deadline, !f.deadline.IsZero() }

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, fmt.Sprintf(format, args...))
}

func (f *fakeT) Fatal(args ...any) {
	f.Errorf("%s", fmt.Sprint(args...))
	runtime.Goexit()
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run runs fn as the body of the fake test, then its cleanups, and
// returns its failure messages.
func (f *fakeT) run(fn func(testing.TB)) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	cleanups := f.cleanups
	f.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.failures, "\n")
}

// An acquire that gets no answer may or may not have left a reference on
// the server. The cleanup releases it exactly when it did: releasing
// otherwise would drop the reference of another test that holds the same
// lab, and the server could then tear that lab down under it.
func TestLabAcquireWithoutAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reached bool // the server got the request and acted on it
	}{
		{"request lost", false},
		{"answer lost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := remotelabtest.NewServer(t)
			var breakNext atomic.Bool
			b := inProcess(srv, func(next http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					if r.URL.Path != "/lab" || r.Method != http.MethodPost || !breakNext.CompareAndSwap(true, false) {
						return next.RoundTrip(r)
					}
					if tc.reached {
						if resp, err := next.RoundTrip(r); err == nil {
							resp.Body.Close()
						}
					}
					return nil, errors.New("connection reset by peer")
				})
			})
			b.Main(func() int {
				t.Run("holder", func(t *testing.T) {
					b.Lab(t, "testdata/lab.yml")
					require.Equal(t, 1, srv.Manager().Status().RefCount)

					breakNext.Store(true)
					other := &fakeT{TB: t, name: "TestOther"}
					failures := other.run(func(t testing.TB) { b.Lab(t, "testdata/lab.yml") })
					assert.Contains(t, failures, "connection reset by peer")
					assert.NotContains(t, failures, "release")
					assert.Equal(t, 1, srv.Manager().Status().RefCount, "the holder's reference must survive")
				})
				return 0
			})
			assert.Equal(t, 0, srv.Broker().Len())
		})
	}
}

// A binary whose turn does not come before its -timeout gives up in time:
// the test fails with its queue position, and the session leaves the queue
// at once instead of lingering, dead, until the server's TTL.
func TestLabGivesUpBeforeBinaryTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		holder, err := srv.Client().Open(context.Background())
		require.NoError(t, err)
		defer holder.Close(context.Background())

		b := inProcess(srv, nil)
		start := time.Now()
		queued := &fakeT{TB: t, name: "TestQueued", deadline: start.Add(5 * time.Minute)}
		var failures string
		b.Main(func() int {
			failures = queued.run(func(t testing.TB) { b.Lab(t, "testdata/lab.yml") })
			return 1
		})
		assert.Equal(t, 4*time.Minute+30*time.Second, time.Since(start))
		assert.Contains(t, failures, "still queued at position 1")
		assert.Contains(t, failures, "before the test binary's -timeout")
		assert.Equal(t, 1, srv.Broker().Len(), "the queued session is gone")
	})
}

// A session that could not be opened because the server was unreachable
// is tried again by the next Lab call (a server restarting as the binary
// starts costs one test); a refusal by the server is remembered, and
// later tests fail at once saying so.
func TestOpenFailureRetriedOnlyWhenUnreachable(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		srv := remotelabtest.NewServer(t)
		var down atomic.Bool
		down.Store(true)
		b := inProcess(srv, func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if down.Load() {
					return nil, errors.New("connect: connection refused")
				}
				return next.RoundTrip(r)
			})
		})
		b.Main(func() int {
			first := &fakeT{TB: t, name: "TestFirst"}
			assert.Contains(t, first.run(func(t testing.TB) { b.Lab(t, "testdata/lab.yml") }), "connection refused")
			down.Store(false)
			second := &fakeT{TB: t, name: "TestSecond"}
			assert.Empty(t, second.run(func(t testing.TB) {
				b.Lab(t, "testdata/lab.yml")
				assert.Equal(t, 1, srv.Manager().Status().RefCount)
			}))
			return 0
		})
		assert.Equal(t, 0, srv.Broker().Len())
	})
	t.Run("refused", func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithBroker(func(c *broker.Config) { c.MaxSessions = 1 }))
		other, err := srv.Client().Open(t.Context())
		require.NoError(t, err)
		defer other.Close(context.Background())
		b := inProcess(srv, nil)
		b.Main(func() int {
			first := &fakeT{TB: t, name: "TestFirst"}
			assert.Contains(t, first.run(func(t testing.TB) { b.Lab(t, "testdata/lab.yml") }), "Queue full")
			second := &fakeT{TB: t, name: "TestSecond"}
			failures := second.run(func(t testing.TB) { b.Lab(t, "testdata/lab.yml") })
			assert.Contains(t, failures, "Queue full")
			assert.Contains(t, failures, "(in an earlier test; not tried again)")
			return 0
		})
		assert.Equal(t, 1, srv.Broker().Len(), "no session of the binary was left")
	})
}
