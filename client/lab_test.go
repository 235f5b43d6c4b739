package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/client"
	"github.com/remotelab-go/remotelab/internal/testutil"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
	"github.com/remotelab-go/remotelab/topology"
)

func names(devs []client.Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.Name
	}
	return out
}

func TestAcquireReleaseLifecycle(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	s := open(t, srv.Client())
	ctx := t.Context()

	devs, reused, err := s.Acquire(ctx, "testdata/lab.yml")
	require.NoError(t, err)
	assert.False(t, reused)
	assert.Equal(t, []string{"r1", "r2"}, names(devs))
	assert.Equal(t, "192.168.121.101", devs[0].Text("mgmt.ipv4"))

	// The same lab again: attached, no second start.
	devs2, reused, err := s.Acquire(ctx, "testdata/lab.yml")
	require.NoError(t, err)
	assert.True(t, reused)
	assert.Equal(t, devs, devs2)

	st, err := s.Status(ctx)
	require.NoError(t, err)
	assert.True(t, st.Running)
	assert.Equal(t, 2, st.RefCount)
	assert.Equal(t, "running", st.State)
	assert.NotEmpty(t, st.Fingerprint)
	assert.Equal(t, "lab.yml", filepath.Base(st.Topology))
	assert.Equal(t, []string{"r1", "r2"}, names(st.Devices))

	got, err := s.Devices(ctx)
	require.NoError(t, err)
	assert.Equal(t, devs, got)

	require.NoError(t, s.Release(ctx))
	require.NoError(t, s.Release(ctx))
	require.NoError(t, s.Release(ctx)) // nothing held: a no-op
	st, err = s.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, st.RefCount)
	assert.Equal(t, "idle", st.State)

	calls := srv.Runner().Calls()
	require.Len(t, calls, 1)
	assert.Equal(t, "up", calls[0].Op)

	require.NoError(t, s.Destroy(ctx, false))
	st, err = s.Status(ctx)
	require.NoError(t, err)
	assert.False(t, st.Running)
	// No lab: Destroy and Release are no-ops, Devices says so.
	require.NoError(t, s.Destroy(ctx, true))
	require.NoError(t, s.Release(ctx))
	_, err = s.Devices(ctx)
	require.ErrorIs(t, err, client.ErrNoLab)
	assert.NotErrorIs(t, err, client.ErrNotFound)
}

func TestAcquireBytes(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	s := open(t, srv.Client())
	devs, reused, err := s.AcquireBytes(t.Context(), "b.YAML", []byte(topoB))
	require.NoError(t, err)
	assert.False(t, reused)
	assert.Equal(t, []string{"r1", "r2", "r3"}, names(devs))
}

// Extra files arrive in their relative layout next to the topology, and
// are part of the lab's identity.
func TestAcquireExtraFiles(t *testing.T) {
	var (
		mu    sync.Mutex
		paths [][]string
		files []map[string]string
	)
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		got := map[string]string{}
		err := filepath.WalkDir(spec.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(spec.Dir, p)
			got[filepath.ToSlash(rel)] = string(b)
			return err
		})
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, spec.Bundle.Paths())
		files = append(files, got)
		return err
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner))
	s := open(t, srv.Client())
	notes := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(notes, []byte("some notes\n"), 0o644))

	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml",
		client.ExtraFiles("testdata/configs"),
		client.ExtraFile("docs/notes.txt", notes),
		client.ExtraBytes("inline.cfg", []byte("x")))
	require.NoError(t, err)
	require.NoError(t, s.Release(t.Context()))

	// Same topology, different extra file content: a different lab.
	_, reused, err := s.Acquire(t.Context(), "testdata/lab.yml",
		client.ExtraFiles("testdata/configs"),
		client.ExtraFile("docs/notes.txt", notes),
		client.ExtraBytes("inline.cfg", []byte("y")))
	require.NoError(t, err)
	assert.False(t, reused)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, paths, 2)
	assert.Equal(t, []string{"docs/notes.txt", "inline.cfg", "r1.cfg", "sub/r2.cfg"}, paths[0])
	assert.Equal(t, map[string]string{
		"lab.yml":        topoA,
		"docs/notes.txt": "some notes\n",
		"inline.cfg":     "x",
		"r1.cfg":         "hostname r1\n",
		"sub/r2.cfg":     "hostname r2\n",
	}, files[0])
	assert.Equal(t, "y", files[1]["inline.cfg"])
	calls := srv.Runner().Calls()
	var ups []string
	for _, c := range calls {
		if c.Op == "up" {
			ups = append(ups, c.Fingerprint)
		}
	}
	require.Len(t, ups, 2)
	assert.NotEqual(t, ups[0], ups[1])
}

// Bad input is reported before anything is sent.
func TestAcquireRejectsBadInput(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	c, rec := recordingClient(srv)
	s := open(t, c)
	dir := t.TempDir()

	for name, tc := range map[string]struct {
		acquire func() error
		is      []error
		as      any
	}{
		"missing topology": {
			acquire: func() error { _, _, err := s.Acquire(t.Context(), "testdata/nope.yml"); return err },
			is:      []error{fs.ErrNotExist},
		},
		"topology name": {
			acquire: func() error { _, _, err := s.AcquireBytes(t.Context(), "lab.txt", []byte(topoA)); return err },
			is:      []error{client.ErrBadRequest, topology.ErrBadTopologyName},
		},
		"topology name without a stem": {
			acquire: func() error { _, _, err := s.AcquireBytes(t.Context(), ".yml", []byte(topoA)); return err },
			is:      []error{client.ErrBadRequest, topology.ErrBadTopologyName},
		},
		"topology name with directory": {
			acquire: func() error { _, _, err := s.AcquireBytes(t.Context(), "x/lab.yml", []byte(topoA)); return err },
			is:      []error{client.ErrBadRequest, topology.ErrBadTopologyName},
		},
		"invalid topology": {
			acquire: func() error { _, _, err := s.AcquireBytes(t.Context(), "lab.yml", []byte("nodes: 5\n")); return err },
			is:      []error{client.ErrInvalidTopology, topology.ErrInvalid},
			as:      new(*topology.ParseError),
		},
		"unsafe path": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraBytes("../escape", nil))
				return err
			},
			is: []error{client.ErrBadRequest, topology.ErrUnsafePath},
			as: new(*topology.PathError),
		},
		"absolute path": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraBytes("/etc/passwd", nil))
				return err
			},
			is: []error{client.ErrBadRequest, topology.ErrUnsafePath},
		},
		"duplicate path": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml",
					client.ExtraBytes("r1.cfg", nil), client.ExtraFiles("testdata/configs"))
				return err
			},
			is: []error{client.ErrBadRequest},
		},
		"extra file named like the topology": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraBytes("lab.yml", nil))
				return err
			},
			is: []error{client.ErrBadRequest},
		},
		"missing extra file": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraFile("a.cfg", filepath.Join(dir, "nope")))
				return err
			},
			is: []error{fs.ErrNotExist},
		},
		"extra file is a directory": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraFile("a.cfg", dir))
				return err
			},
		},
		"missing extra directory": {
			acquire: func() error {
				_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraFiles(filepath.Join(dir, "nope")))
				return err
			},
			is: []error{fs.ErrNotExist},
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.acquire()
			require.Error(t, err)
			assert.Regexp(t, `^acquire`, err.Error())
			for _, target := range tc.is {
				assert.ErrorIs(t, err, target)
			}
			if tc.as != nil {
				assert.ErrorAs(t, err, tc.as)
			}
		})
	}
	assert.Zero(t, rec.count(http.MethodPost, "/lab"))
	assert.Empty(t, srv.Runner().Calls())
}

func TestExtraFilesSkipsSpecialFiles(t *testing.T) {
	var got []string
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		got = spec.Bundle.Paths()
		return nil
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner))
	s := open(t, srv.Client())
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d", "f"), []byte("f"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(dir, "d", "f"), filepath.Join(dir, "link-to-file")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "d"), filepath.Join(dir, "link-to-dir")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "dangling")))

	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraFiles(dir))
	require.NoError(t, err)
	assert.Equal(t, []string{"d/f", "link-to-file"}, got)
}

// A conflict (the session holds another lab) is answered at once and not
// retried; the original client retried it forever. (In a bubble, so that a
// retry would show as more requests instead of a hang.)
func TestAcquireConflict(t *testing.T) {
	synctest.Test(t, testAcquireConflict)
}

func testAcquireConflict(t *testing.T) {
	srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
	c, rec := recordingClient(srv)
	s := open(t, c)
	ctx := t.Context()
	start := time.Now()
	defer func() { assert.Zero(t, time.Since(start), "a conflict must not wait") }()
	_, _, err := s.Acquire(ctx, "testdata/lab.yml")
	require.NoError(t, err)

	_, _, err = s.AcquireBytes(ctx, "b.yml", []byte(topoB))
	require.ErrorIs(t, err, client.ErrConflict)
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusConflict, se.StatusCode)
	assert.Equal(t, api.DetailLabConflict, se.Detail)
	assert.Equal(t, 2, rec.count(http.MethodPost, "/lab"))

	_, _, err = s.Acquire(ctx, "testdata/lab.yml", client.Reuse(false))
	require.ErrorIs(t, err, client.ErrConflict)
	assert.Equal(t, 3, rec.count(http.MethodPost, "/lab"))

	err = s.Destroy(ctx, false)
	require.ErrorIs(t, err, client.ErrConflict)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, api.DetailLabInUse, se.Detail)

	require.NoError(t, s.Destroy(ctx, true))
	assert.Len(t, srv.Runner().Calls(), 2) // up, down
}

func TestAcquireFreshStart(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	s := open(t, srv.Client())
	ctx := t.Context()
	_, _, err := s.Acquire(ctx, "testdata/lab.yml")
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx))
	_, reused, err := s.Acquire(ctx, "testdata/lab.yml", client.Reuse(false))
	require.NoError(t, err)
	assert.False(t, reused)
	var ops []string
	for _, c := range srv.Runner().Calls() {
		ops = append(ops, c.Op)
	}
	assert.Equal(t, []string{"up", "down", "up"}, ops)
}

// While the lab is busy (here another holder uses a different lab),
// Acquire retries every poll interval until its context ends.
func TestAcquireBusyRetriedUntilContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		_, err := srv.Manager().TryAcquire(context.Background(), "someone-else", testutil.Bundle(t, "other.yml", topoA), true)
		require.NoError(t, err)
		c, rec := recordingClient(srv)
		s := open(t, c)

		ctx, cancel := context.WithTimeout(context.Background(), 31*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err = s.AcquireBytes(ctx, "b.yml", []byte(topoB))
		assert.Equal(t, 31*time.Second, time.Since(start))
		require.ErrorIs(t, err, client.ErrBusy)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var se *client.Error
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusLocked, se.StatusCode)
		assert.Equal(t, api.DetailLabBusy, se.Detail)
		assert.Contains(t, err.Error(), "gave up after 7 attempts")
		assert.Equal(t, 7, rec.count(http.MethodPost, "/lab")) // at 0, 5, ..., 30 s
	})
}

// The acquisition timeout bounds the retries too.
func TestAcquireBusyBoundedByAcquisitionTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		_, err := srv.Manager().TryAcquire(context.Background(), "someone-else", testutil.Bundle(t, "other.yml", topoA), true)
		require.NoError(t, err)
		s := open(t, srv.Client(client.WithAcquisitionTimeout(20*time.Second)))
		start := time.Now()
		_, _, err = s.AcquireBytes(context.Background(), "b.yml", []byte(topoB))
		assert.Equal(t, 20*time.Second, time.Since(start))
		require.ErrorIs(t, err, client.ErrBusy)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

// Once the lab is free, the retry gets it.
func TestAcquireBusyThenFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork())
		_, err := srv.Manager().TryAcquire(context.Background(), "someone-else", testutil.Bundle(t, "other.yml", topoA), true)
		require.NoError(t, err)
		s := open(t, srv.Client())
		time.AfterFunc(12*time.Second, func() { _ = srv.Manager().Release("someone-else") })
		start := time.Now()
		devs, reused, err := s.AcquireBytes(context.Background(), "b.yml", []byte(topoB))
		require.NoError(t, err)
		assert.Equal(t, 15*time.Second, time.Since(start))
		assert.False(t, reused)
		assert.Len(t, devs, 3)
	})
}

func TestAcquireTooLarge(t *testing.T) {
	srv := remotelabtest.NewServer(t, remotelabtest.WithLimits(topology.Limits{MaxFileBytes: 16}))
	s := open(t, srv.Client())
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraBytes("big.bin", make([]byte, 1024)))
	require.ErrorIs(t, err, client.ErrTooLarge)
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusRequestEntityTooLarge, se.StatusCode)
	assert.Empty(t, srv.Runner().Calls())
}

func TestAcquireNetlabFailed(t *testing.T) {
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		return errors.New("netlab up: Error: containerlab deploy failed")
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner))
	s := open(t, srv.Client())
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml")
	require.ErrorIs(t, err, client.ErrNetlabFailed)
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusBadGateway, se.StatusCode)
	assert.Contains(t, se.Detail, "containerlab deploy failed")

	st, err := s.Status(t.Context())
	require.NoError(t, err)
	assert.False(t, st.Running)
	assert.Equal(t, 0, st.RefCount)
}

func TestAcquireNetlabTimeout(t *testing.T) {
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		return fmt.Errorf("netlab up: %w", context.DeadlineExceeded)
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner))
	s := open(t, srv.Client())
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml")
	require.ErrorIs(t, err, client.ErrNetlabTimeout)
	assert.NotErrorIs(t, err, client.ErrNetlabFailed)
}

// labServer is a fake server whose session is active at once and whose
// /lab answers come from answer.
type labServer struct {
	mu     sync.Mutex
	answer func(n int, r *http.Request) (int, string) // n counts /lab calls from 1
	n      int
}

func (l *labServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/session" && r.Method == http.MethodPost:
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(api.CreateSessionResponse{SessionID: "sess-1", Status: "active", SessionDetails: api.SessionDetails{Epoch: 1}})
	case r.URL.Path == "/session/sess-1" || r.URL.Path == "/session/heartbeat":
		w.WriteHeader(http.StatusNoContent)
	default:
		l.mu.Lock()
		l.n++
		code, body := l.answer(l.n, r)
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

// A 422 from POST /lab is an invalid topology (the server's parser found
// what the client's did not, e.g. an older client).
func TestAcquireInvalidTopologyFromServer(t *testing.T) {
	h := &labServer{answer: func(int, *http.Request) (int, string) {
		return 422, `{"detail":"lab.yml:2:8: nodes must be a mapping or a list"}`
	}}
	s := open(t, fakeClient(t, h))
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml")
	require.ErrorIs(t, err, client.ErrInvalidTopology)
	assert.NotErrorIs(t, err, client.ErrBadRequest)
	assert.Contains(t, err.Error(), "lab.yml:2:8: nodes must be a mapping or a list")
}

// "Session is not active" is retried like "Lab currently busy"; the
// upload is sent again in full each time.
func TestAcquireRetriesNotActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sizes []int64
		h := &labServer{answer: func(n int, r *http.Request) (int, string) {
			require.NoError(t, r.ParseMultipartForm(1<<20))
			sizes = append(sizes, r.MultipartForm.File[api.PartTopology][0].Size)
			assert.Equal(t, []string{"false"}, r.MultipartForm.Value[api.PartReuse])
			assert.Equal(t, "application/x-yaml", r.MultipartForm.File[api.PartTopology][0].Header.Get("Content-Type"))
			assert.Equal(t, "lab.yml", r.MultipartForm.File[api.PartTopology][0].Filename)
			if n < 3 {
				return 423, `{"detail":"Session is not active"}`
			}
			return 200, `{"reused":false,"devices":[{"name":"r1","raw":{"ansible_host":"10.0.0.1"}}]}`
		}}
		s := open(t, fakeClient(t, h))
		start := time.Now()
		devs, reused, err := s.Acquire(context.Background(), "testdata/lab.yml", client.Reuse(false))
		require.NoError(t, err)
		assert.Equal(t, 10*time.Second, time.Since(start))
		assert.False(t, reused)
		assert.Equal(t, "10.0.0.1", devs[0].Text("ansible_host"))
		assert.Equal(t, []int64{int64(len(topoA)), int64(len(topoA)), int64(len(topoA))}, sizes)
	})
}

// A server that stops reading the upload early (here: it answers 413 at
// once) does not leave the client's writer stuck.
func TestAcquireServerStopsReading(t *testing.T) {
	h := &labServer{answer: func(int, *http.Request) (int, string) {
		return 413, `{"detail":"too large"}`
	}}
	s := open(t, fakeClient(t, h))
	big := make([]byte, 8<<20)
	_, _, err := s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraBytes("big.bin", big))
	require.ErrorIs(t, err, client.ErrTooLarge)
}

// A lab start takes as long as it takes: the per-request timeout does not
// cut POST /lab short, only the acquisition timeout bounds it.
func TestAcquireOutlastsRequestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runner := &remotelabtest.FakeRunner{UpDelay: 3 * time.Minute}
		srv := remotelabtest.NewServer(t, remotelabtest.WithoutNetwork(), remotelabtest.WithRunner(runner))
		s := open(t, srv.Client(client.WithRequestTimeout(30*time.Second)))
		start := time.Now()
		devs, _, err := s.Acquire(context.Background(), "testdata/lab.yml")
		require.NoError(t, err)
		assert.Equal(t, 3*time.Minute, time.Since(start))
		assert.Len(t, devs, 2)

		// The acquisition timeout does bound it.
		require.NoError(t, s.Release(context.Background()))
		require.NoError(t, s.Close(context.Background()))
		s2 := open(t, srv.Client(client.WithAcquisitionTimeout(time.Minute)))
		start = time.Now()
		_, _, err = s2.Acquire(context.Background(), "testdata/lab.yml", client.Reuse(false))
		assert.Equal(t, time.Minute, time.Since(start))
		var te *client.TransportError
		require.ErrorAs(t, err, &te)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

// ExtraFiles follows a symbolic link given as the directory itself, and
// rejects a path that is not a directory.
func TestExtraFilesRoot(t *testing.T) {
	var got []string
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		got = spec.Bundle.Paths()
		return nil
	}}
	s := open(t, remotelabtest.NewServer(t, remotelabtest.WithRunner(runner)).Client())
	configs, err := filepath.Abs("testdata/configs")
	require.NoError(t, err)
	link := filepath.Join(t.TempDir(), "configs")
	require.NoError(t, os.Symlink(configs, link))

	_, _, err = s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraFiles(link))
	require.NoError(t, err)
	assert.Equal(t, []string{"r1.cfg", "sub/r2.cfg"}, got)

	_, _, err = s.Acquire(t.Context(), "testdata/lab.yml", client.ExtraFiles("testdata/lab.yml"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a directory")
}
