package remotelabtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remotelab-go/remotelab/client"
)

// Timeouts of the session close at the end of a test binary.
const (
	closeTimeout       = 30 * time.Second
	signalCloseTimeout = 10 * time.Second
	// signalExitWait bounds the wait for a re-raised signal to end the
	// process before it exits with 1 instead.
	signalExitWait = 5 * time.Second
)

// errEnded is returned for lab calls after the binary's session was closed.
var errEnded = errors.New("the test binary's lab session was already closed")

// binary is the state of one test binary: its lazily opened session and
// the labs its tests hold. Main and Lab use one package-level binary; the
// package's own tests make their own.
type binary struct {
	getenv    func(string) string
	newClient func() (*client.Client, error)

	ctx    context.Context // ends when the binary shuts down
	cancel context.CancelFunc

	mainUsed atomic.Bool

	openMu  sync.Mutex
	sess    *client.Session
	openErr error
	ended   bool

	// sem serialises the binary's lab calls: the server runs one lab
	// operation per session at a time, and a conflict answer can only be
	// explained by the local holders while none of them changes.
	sem chan struct{}

	mu      sync.Mutex
	holders map[string][]string // test name → topology paths it holds
	held    int                 // references held by all tests
	idle    chan struct{}       // closed when held drops to 0
}

func newBinary() *binary {
	ctx, cancel := context.WithCancel(context.Background())
	return &binary{
		getenv:    os.Getenv,
		newClient: func() (*client.Client, error) { return client.FromEnv() },
		ctx:       ctx,
		cancel:    cancel,
		sem:       make(chan struct{}, 1),
		holders:   make(map[string][]string),
		idle:      make(chan struct{}),
	}
}

var std = newBinary()

// Main runs the tests of a test binary whose tests call Lab; use it in
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(remotelabtest.Main(m)) }
//
// It runs m.Run and returns its exit code. The binary's lab session is
// opened by the first Lab call, so a binary whose tests use no lab never
// queues. The session is closed when the tests end, when a panic reaches
// Main (it then re-panics), when a test panics while it holds a lab (its
// Lab cleanup closes it on the panic's way down), and on SIGINT or
// SIGTERM (Main then re-raises the signal, or exits with 1 where it
// cannot). A panic elsewhere (in a test without a lab, in a goroutine of
// its own) ends the process with the session open; the server then ends
// it after its active TTL, as for a killed process.
func Main(m *testing.M) int { return std.main(m.Run) }

func (b *binary) main(run func() int) int {
	b.mainUsed.Store(true)
	stop := b.watchSignals()
	defer stop()
	defer func() {
		if r := recover(); r != nil {
			b.end(closeTimeout)
			panic(r)
		}
	}()
	code := run()
	b.end(closeTimeout)
	return code
}

// watchSignals closes the session on SIGINT or SIGTERM and then lets the
// signal end the process. stop undoes it.
func (b *binary) watchSignals() (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-quit:
		case sig := <-sigs:
			// From now on a second signal has its default effect, so
			// an impatient user is not held up by the close.
			signal.Stop(sigs)
			fmt.Fprintf(os.Stderr, "remotelabtest: %v: closing the lab session\n", sig)
			b.end(signalCloseTimeout)
			if p, err := os.FindProcess(os.Getpid()); err == nil && p.Signal(sig) == nil {
				// The signal's default effect ends the process; it is
				// delivered asynchronously, so exiting now would win.
				time.Sleep(signalExitWait)
			}
			os.Exit(1)
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(quit)
		<-done
	}
}

// end closes the binary's session, if one was opened, and makes later
// lab calls fail. It is safe to call more than once.
func (b *binary) end(timeout time.Duration) {
	b.cancel() // stops an Open that is still waiting in the queue
	b.openMu.Lock()
	defer b.openMu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	if b.sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.sess.Close(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "remotelabtest: %v (the server ends the session after its active TTL)\n", err)
	}
	if err := b.sess.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
		fmt.Fprintf(os.Stderr, "remotelabtest: %s\n", endedText(err))
	}
}

// session returns the binary's session, opening it at the first call. A
// failed open is remembered, so that later tests fail at once instead of
// waiting in the queue again, unless the server could not be reached: a
// later test tries again (a server that restarts as the binary starts
// costs one test, not all).
func (b *binary) session(t testing.TB) (*client.Session, error) {
	b.openMu.Lock()
	defer b.openMu.Unlock()
	switch {
	case b.ended:
		return nil, errEnded
	case b.openErr != nil:
		return nil, fmt.Errorf("%w (in an earlier test; not tried again)", b.openErr)
	case b.sess != nil:
		return b.sess, nil
	}
	c, err := b.newClient()
	if err == nil {
		t.Logf("remotelabtest: opening the test binary's lab session at %s", c.URL())
		ctx := b.ctx
		if deadline, ok := openDeadline(t); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		b.sess, err = c.Open(ctx)
		if err != nil && ctx.Err() != nil && b.ctx.Err() == nil {
			err = fmt.Errorf("%w (gave up shortly before the test binary's -timeout, so as to leave the queue cleanly)", err)
		}
	}
	var te *client.TransportError
	if !errors.As(err, &te) {
		b.openErr = err
	}
	return b.sess, err
}

// openDeadline returns when the wait for the session's turn must end so
// that it ends before the test binary's -timeout does. A binary that the
// timeout kills while queued leaves its session behind, and the server
// removes it only after a TTL, which the sessions queued behind it wait
// out; Open instead deletes the session when it gives up, and the tests
// fail with the queue position rather than a goroutine dump. ok is false
// when t has no deadline.
func openDeadline(t testing.TB) (deadline time.Time, ok bool) {
	d, hasDeadline := t.(interface{ Deadline() (time.Time, bool) })
	if !hasDeadline {
		return time.Time{}, false
	}
	if deadline, ok = d.Deadline(); !ok {
		return time.Time{}, false
	}
	// Time for the failing tests to end and the session to be closed.
	margin := min(time.Until(deadline)/10, 30*time.Second)
	return deadline.Add(-margin), true
}
