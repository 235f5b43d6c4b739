package clock_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/remotelab-go/remotelab/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSleepFullDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := clock.Sleep(t.Context(), time.Minute); err != nil {
			t.Fatalf("Sleep = %v, want nil", err)
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("Sleep took %v, want 1m", got)
		}
	})
}

func TestSleepCutShortReturnsCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := clock.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep = %v, want context.DeadlineExceeded", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("Sleep took %v, want 1s (the deadline)", got)
		}

		errStop := errors.New("stop")
		cctx, cancelCause := context.WithCancelCause(t.Context())
		go func() {
			time.Sleep(time.Second)
			cancelCause(errStop)
		}()
		if err := clock.Sleep(cctx, time.Hour); err != errStop {
			t.Fatalf("Sleep = %v, want the cause %v", err, errStop)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("Sleeps took %v, want 2s", got)
		}
	})
}

func TestSleepEndedContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		for _, d := range []time.Duration{-time.Second, 0, time.Hour} {
			if err := clock.Sleep(ctx, d); !errors.Is(err, context.Canceled) {
				t.Errorf("Sleep(ended ctx, %v) = %v, want context.Canceled", d, err)
			}
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("Sleep with an ended context blocked for %v", got)
		}
	})
}

func TestSleepNonPositive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		for _, d := range []time.Duration{-time.Hour, 0} {
			if err := clock.Sleep(t.Context(), d); err != nil {
				t.Errorf("Sleep(%v) = %v, want nil", d, err)
			}
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("Sleep of a non-positive duration blocked for %v", got)
		}
	})
}
