package remotelabtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotelab-go/remotelab/client"
)

// EnvRequired names the environment variable that turns a missing
// REMOTE_LAB_URL from a skip into a failure ("1" or "true"), for CI jobs
// that must not skip lab tests.
const EnvRequired = "REMOTE_LAB_REQUIRED"

// releaseTimeout bounds the release in a test's cleanup.
const releaseTimeout = 30 * time.Second

// LabHandle is a lab acquired for one test.
type LabHandle struct {
	t        testing.TB
	session  *client.Session
	topology string
	devices  []client.Device
	reused   bool

	held      bool // the acquire succeeded: the test holds a reference
	maybeHeld bool // the acquire's outcome is unknown (no answer)
}

// Devices returns the lab's devices in topology order.
func (h *LabHandle) Devices() []client.Device { return slices.Clone(h.devices) }

// Device returns the device named name; the test fails at once if the lab
// has no such device.
func (h *LabHandle) Device(name string) client.Device {
	h.t.Helper()
	names := make([]string, len(h.devices))
	for i, d := range h.devices {
		if d.Name == name {
			return d
		}
		names[i] = d.Name
	}
	h.t.Fatalf("remotelabtest: lab %s has no device %q (it has %s)", h.topology, name, strings.Join(names, ", "))
	return client.Device{}
}

// Reused reports whether the server attached to a running lab instead of
// starting one.
func (h *LabHandle) Reused() bool { return h.reused }

// Session returns the test binary's session, for calls such as
// Session().Status. It is shared by all tests of the binary: do not close
// it, and release only through the test's cleanup.
func (h *LabHandle) Session() *client.Session { return h.session }

// Lab acquires the lab described by the topology file at topologyPath
// (plus the extra files and reuse setting in opts; by default a running
// lab with the same content is reused) for t, and releases it in
// t.Cleanup. It blocks while the test binary waits for its turn in the
// server's queue and while the lab starts. Any failure fails the test.
// The wait in the queue ends shortly before the test binary's -timeout
// would, so that the session leaves the queue cleanly.
//
// A test, or a subtest of it, holds one lab at a time: asking for a
// different one (or for a fresh start with client.Reuse(false)) while
// holding one fails the test, because the host runs one lab and the test
// would wait on itself. Parallel tests that need different labs take
// turns.
//
// Without REMOTE_LAB_URL the test is skipped, or fails when
// REMOTE_LAB_REQUIRED=1. Lab needs Main in the package's TestMain; without
// it the test fails with a message saying so.
//
// A lab test never skips once it has a URL. When the server ends the test
// binary's session (an admin evicted it, it reached its maximum hold, it
// expired), the test that holds the lab fails in its cleanup, and every
// later Lab call fails at once, each with the server's reason in the
// message.
func Lab(t testing.TB, topologyPath string, opts ...client.AcquireOption) *LabHandle {
	t.Helper()
	return std.lab(t, topologyPath, opts)
}

func (b *binary) lab(t testing.TB, topologyPath string, opts []client.AcquireOption) *LabHandle {
	t.Helper()
	if !b.mainUsed.Load() {
		t.Fatal("remotelabtest: Lab needs remotelabtest.Main in TestMain; add to this package's tests:\n\n" +
			"\tfunc TestMain(m *testing.M) { os.Exit(remotelabtest.Main(m)) }")
	}
	if strings.TrimSpace(b.getenv(client.EnvURL)) == "" {
		required, err := labRequired(b.getenv(EnvRequired))
		switch {
		case err != nil:
			t.Fatalf("remotelabtest: %v", err)
		case required:
			t.Fatalf("remotelabtest: REMOTE_LAB_URL is not set, and %s requires lab tests to run: "+
				"set REMOTE_LAB_URL=http://host:8000 to the lab host's remotelabd", EnvRequired)
		}
		t.Skipf("remotelabtest: lab test skipped: REMOTE_LAB_URL is not set. To run it, set "+
			"REMOTE_LAB_URL=http://host:8000 to the lab host's remotelabd "+
			"(%s=1 makes a missing URL fail instead)", EnvRequired)
	}
	sess, err := b.session(t)
	if err != nil {
		t.Fatalf("remotelabtest: open the lab session: %v", err)
	}
	if err := sess.Err(); err != nil {
		t.Fatalf("remotelabtest: lab %s: %s", topologyPath, endedText(err))
	}
	h := &LabHandle{t: t, session: sess, topology: topologyPath}
	// Registered before the outcome is known: an acquire that got no
	// answer may still have succeeded on the server.
	t.Cleanup(func() {
		b.release(t, h)
		if panicking() {
			// The process dies once the panic is through the cleanups;
			// Main never gets to close the session.
			fmt.Fprintf(os.Stderr, "remotelabtest: %s panicked: closing the lab session\n", t.Name())
			b.end(closeTimeout)
		}
	})
	if err := b.acquire(t, h, opts); err != nil {
		if end := sess.Err(); end != nil {
			t.Fatalf("remotelabtest: lab %s: %s", topologyPath, endedText(end))
		}
		t.Fatal(err)
	}
	t.Logf("remotelabtest: lab %s: %d devices (reused=%v)", topologyPath, len(h.devices), h.reused)
	return h
}

func labRequired(v string) (bool, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return false, nil
	}
	required, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 or 0 (true or false)", EnvRequired, v)
	}
	return required, nil
}

// acquire acquires h's lab for t, waiting while other tests of the binary
// hold a different lab.
func (b *binary) acquire(t testing.TB, h *LabHandle, opts []client.AcquireOption) error {
	ctx := t.Context()
	for {
		if err := b.lock(ctx); err != nil {
			return fmt.Errorf("remotelabtest: acquire lab %s: %w", h.topology, err)
		}
		devices, reused, err := h.session.Acquire(ctx, h.topology, opts...)
		if err == nil {
			b.mu.Lock()
			b.holders[t.Name()] = append(b.holders[t.Name()], h.topology)
			b.held++
			b.mu.Unlock()
			b.unlock()
			h.devices, h.reused, h.held = devices, reused, true
			return nil
		}
		var te *client.TransportError
		if errors.As(err, &te) {
			h.maybeHeld = true
		}
		if !errors.Is(err, client.ErrConflict) {
			b.unlock()
			return fmt.Errorf("remotelabtest: %w", err)
		}
		// The session holds a reference to another lab. Whose?
		b.mu.Lock()
		holder, paths := b.holderOf(t.Name())
		held, idle := b.held, b.idle
		b.mu.Unlock()
		b.unlock()
		switch {
		case holder != "":
			return fmt.Errorf("remotelabtest: %s asks for lab %s while %s still holds lab %s. "+
				"The lab host runs one lab at a time, so this test would wait on itself. "+
				"Use one lab per test (a fresh start with Reuse(false) counts as another lab), "+
				"or use each lab in its own sequential subtest", t.Name(), h.topology, holder, strings.Join(paths, ", "))
		case held == 0:
			return fmt.Errorf("remotelabtest: %w", err)
		}
		t.Logf("remotelabtest: lab %s: waiting for other tests of this binary to release their lab", h.topology)
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("remotelabtest: acquire lab %s: waiting for other tests to release their lab: %w", h.topology, ctx.Err())
		}
	}
}

// holderOf returns the test among name and its parents that holds a lab,
// and the labs it holds. b.mu must be held.
func (b *binary) holderOf(name string) (string, []string) {
	for holder, paths := range b.holders {
		if holder == name || strings.HasPrefix(name, holder+"/") {
			return holder, paths
		}
	}
	return "", nil
}

// release is the cleanup of a Lab call.
func (b *binary) release(t testing.TB, h *LabHandle) {
	if !h.held && !h.maybeHeld {
		return
	}
	// Waits for a running acquire of another test, which its own
	// deadline bounds. The bookkeeping below changes under the same lock,
	// so strayReference sees b.held agree with the server.
	_ = b.lock(context.Background())
	defer b.unlock()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if !h.held && !b.strayReference(ctx, t, h) {
		return
	}
	err := h.session.Release(ctx)
	if h.held {
		h.held = false
		b.mu.Lock()
		paths := b.holders[t.Name()]
		if i := slices.Index(paths, h.topology); i >= 0 {
			paths = slices.Delete(paths, i, i+1)
		}
		if len(paths) == 0 {
			delete(b.holders, t.Name())
		} else {
			b.holders[t.Name()] = paths
		}
		b.held--
		if b.held == 0 {
			close(b.idle)
			b.idle = make(chan struct{})
		}
		b.mu.Unlock()
	}
	if end := h.session.Err(); end != nil && !errors.Is(end, client.ErrClosed) {
		t.Errorf("remotelabtest: lab %s: %s", h.topology, endedText(end))
		return
	}
	if err != nil && !errors.Is(err, client.ErrClosed) {
		t.Errorf("remotelabtest: release lab %s: %v", h.topology, err)
	}
}

// endedText explains a session end (see client.Session.Err) in a test's
// failure: the server's reason first, then the details.
func endedText(err error) string {
	var se *client.Error
	why := "the test binary's lab session ended"
	if errors.As(err, &se) && errors.Is(err, client.ErrNotFound) {
		switch {
		case se.Reason != "":
			why = "the server ended the test binary's lab session: " + se.Reason
		default:
			why = "the server no longer knows the test binary's lab session"
		}
	}
	return why + "; lab tests after this one fail too (" + err.Error() + ")"
}

// strayReference reports whether the session holds a lab reference that
// no test of the binary accounts for: what an acquire that got no answer
// leaves behind when the server did act on it. Releasing when there is
// none would drop another test's reference to the same lab, and the
// server could then restart or tear down that lab under it. The server
// counts references per session, and only the active session holds any,
// so the lab's reference count is this session's. b.sem must be held.
func (b *binary) strayReference(ctx context.Context, t testing.TB, h *LabHandle) bool {
	st, err := h.session.Status(ctx)
	if err != nil {
		if !errors.Is(err, client.ErrClosed) {
			t.Logf("remotelabtest: lab %s: cannot tell whether the failed acquire left a reference behind: %v", h.topology, err)
		}
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return st.RefCount > b.held
}

func (b *binary) lock(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *binary) unlock() { <-b.sem }

// panicking reports whether the calling goroutine is unwinding a panic.
// The testing package runs a panicking test's cleanups on the panic's way
// down (its stack then holds the runtime's panic frame) and then lets the
// panic end the process.
func panicking() bool {
	buf := make([]byte, 64<<10)
	n := runtime.Stack(buf, false)
	return bytes.Contains(buf[:n], []byte("\npanic("))
}
