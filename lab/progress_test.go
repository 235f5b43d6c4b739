package lab_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

func TestProgressOutsideManagerIsNoOp(t *testing.T) {
	p := lab.ProgressFrom(context.Background())
	require.NotNil(t, p)
	p.Step("up")
	p.Output("line")
	p.Process(lab.Process{PGID: 2}, true)

	var seen []string
	ctx := lab.WithProgress(context.Background(), recordingProgress{&seen})
	lab.ProgressFrom(ctx).Step("down")
	assert.Equal(t, []string{"down"}, seen)
}

type recordingProgress struct{ steps *[]string }

func (p recordingProgress) Step(op string)          { *p.steps = append(*p.steps, op) }
func (recordingProgress) Output(string)             {}
func (recordingProgress) Process(lab.Process, bool) {}

// TestStatusShowsOperation: Status says which step runs, since when, and
// the last line the lab tool printed; each change is an EventChanged.
func TestStatusShowsOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events eventLog
		upHere, upGo := make(chan struct{}), make(chan struct{})
		r := &remotelabtest.FakeRunner{
			UpDelay: time.Minute,
			UpHook: func(ctx context.Context, _ lab.Spec) error {
				lab.ProgressFrom(ctx).Output("provider clab: executing containerlab deploy")
				upHere <- struct{}{}
				<-upGo
				return nil
			},
		}
		e := newEnv(t, r, func(c *lab.Config) { c.OnEvent = events.add })
		assert.Nil(t, e.m.Status().Operation)

		begun := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := e.m.TryAcquire(t.Context(), "s1", newBundle(t, "lab.yml", topoA), true)
			done <- err
		}()
		<-upHere
		changed := len(events.of(lab.EventChanged))
		op := e.m.Status().Operation
		require.NotNil(t, op)
		assert.Equal(t, lab.Operation{Kind: "up", Started: begun, LastOutput: "provider clab: executing containerlab deploy"}, *op)
		assert.Positive(t, changed)
		close(upGo)
		require.NoError(t, <-done)
		assert.Nil(t, e.m.Status().Operation)
		assert.Greater(t, len(events.of(lab.EventChanged)), changed)

		// The steps and how long they took.
		steps := events.of(lab.EventStep)
		require.Len(t, steps, 2)
		assert.Equal(t, "up", steps[0].Op)
		assert.Equal(t, time.Minute, steps[0].Duration)
		assert.Equal(t, "inspect", steps[1].Op)
		assert.Zero(t, steps[1].Duration)
	})
}

// TestEvents: what a full lifecycle tells OnEvent.
func TestEvents(t *testing.T) {
	var events eventLog
	r := &remotelabtest.FakeRunner{}
	e := newEnv(t, r, func(c *lab.Config) { c.OnEvent = events.add })
	a, b := newBundle(t, "a.yml", topoA), newBundle(t, "b.yml", topoB)

	_, err := e.m.TryAcquire(t.Context(), "s1", a, true)
	require.NoError(t, err)
	_, err = e.m.TryAcquire(t.Context(), "s2", a, true)
	require.NoError(t, err)
	e.m.ReleaseAll("s1")
	e.m.ReleaseAll("s2")
	_, err = e.m.TryAcquire(t.Context(), "s3", b, true)
	require.NoError(t, err)
	_, err = e.m.Destroy(t.Context(), true)
	require.NoError(t, err)

	assert.Equal(t, []string{"up", "inspect", "down", "up", "inspect", "down"}, events.steps())
	assert.Equal(t, []lab.Event{
		{Kind: lab.EventStarted, Fingerprint: a.Fingerprint()},
		{Kind: lab.EventStarted, Fingerprint: b.Fingerprint()},
	}, events.of(lab.EventStarted))
	assert.Equal(t, []lab.Event{
		{Kind: lab.EventAcquired, Holder: "s1", Fingerprint: a.Fingerprint()},
		{Kind: lab.EventAcquired, Holder: "s2", Fingerprint: a.Fingerprint(), Reused: true},
		{Kind: lab.EventAcquired, Holder: "s3", Fingerprint: b.Fingerprint()},
	}, events.of(lab.EventAcquired))
	assert.Equal(t, []lab.Event{
		{Kind: lab.EventTornDown, Fingerprint: a.Fingerprint(), Reason: "topology-switch"},
		{Kind: lab.EventTornDown, Fingerprint: b.Fingerprint(), Reason: "destroy-forced"},
	}, events.of(lab.EventTornDown))
	assert.Empty(t, events.of(lab.EventRecordError))
}

// TestEventsOfFailures: failed steps carry their error; a step that ran
// out of time wraps context.DeadlineExceeded.
func TestEventsOfFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events eventLog
		boom := errors.New("deploy failed")
		failUp := true
		r := &remotelabtest.FakeRunner{
			UpHook: func(context.Context, lab.Spec) error {
				if failUp {
					return boom
				}
				return nil
			},
			DownDelay: time.Hour,
		}
		e := newEnv(t, r, func(c *lab.Config) {
			c.OnEvent = events.add
			c.DownTimeout = time.Minute
		})
		b := newBundle(t, "lab.yml", topoA)
		_, err := e.m.TryAcquire(t.Context(), "s1", b, true)
		require.ErrorIs(t, err, boom)

		assert.Equal(t, []string{"up!", "down!"}, events.steps())
		steps := events.of(lab.EventStep)
		require.ErrorIs(t, steps[0].Err, boom)
		require.ErrorIs(t, steps[1].Err, context.DeadlineExceeded)
		started := events.of(lab.EventStarted)
		require.Len(t, started, 1)
		require.ErrorIs(t, started[0].Err, boom)
		torn := events.of(lab.EventTornDown)
		require.Len(t, torn, 1)
		assert.Equal(t, "start-failed", torn[0].Reason)
		require.ErrorIs(t, torn[0].Err, context.DeadlineExceeded)
		assert.Empty(t, events.of(lab.EventAcquired))
		assert.Equal(t, lab.StateDirty, e.m.Status().State)
	})
}

// stepless is a Runner that reports no steps.
type stepless struct{ remotelabtest.FakeRunner }

func (s *stepless) Up(ctx context.Context, spec lab.Spec) ([]lab.Device, error) {
	return s.FakeRunner.Up(context.Background(), spec)
}

func (s *stepless) Down(ctx context.Context, dir string) error {
	return s.FakeRunner.Down(context.Background(), dir)
}

func TestStepsOfARunnerThatReportsNone(t *testing.T) {
	var events eventLog
	e := newEnv(t, nil, func(c *lab.Config) {
		c.Runner = &stepless{}
		c.OnEvent = events.add
	})
	_, err := e.m.TryAcquire(t.Context(), "s1", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	_, err = e.m.Destroy(t.Context(), true)
	require.NoError(t, err)
	assert.Equal(t, []string{"up", "down"}, events.steps())
}

// TestProcessesAreRecorded: the process groups a Runner reports are in the
// record while they run, and gone from it when they end or the call
// returns.
func TestProcessesAreRecorded(t *testing.T) {
	store := &memRecords{}
	p1 := lab.Process{PGID: 1001, StartTime: 5, BootID: "b"}
	p2 := lab.Process{PGID: 1002, StartTime: 6, BootID: "b"}
	var during [][]lab.Process
	r := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, _ lab.Spec) error {
		prog := lab.ProgressFrom(ctx)
		prog.Process(p1, true)
		during = append(during, store.current().Processes)
		prog.Process(p2, true)
		during = append(during, store.current().Processes)
		prog.Process(p1, false)
		during = append(during, store.current().Processes)
		return nil // p2 is never reported ended
	}}
	e := newEnv(t, r, func(c *lab.Config) { c.Records = store })
	_, err := e.m.TryAcquire(t.Context(), "s1", newBundle(t, "lab.yml", topoA), true)
	require.NoError(t, err)
	assert.Equal(t, [][]lab.Process{{p1}, {p1, p2}, {p2}}, during)
	assert.Empty(t, store.current().Processes, "the call returned: its commands ended")
	assert.Equal(t, lab.StateRunning, store.current().State)
}
