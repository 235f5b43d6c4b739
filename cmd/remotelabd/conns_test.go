package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestInflightWait: wait reports true once the running requests finished,
// false when its context ends first, and leaves nothing behind.
func TestInflightWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f inflight
		assert.True(t, f.wait(t.Context()), "nothing runs")

		release := make(chan struct{})
		h := f.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		}()
		synctest.Wait() // the request runs

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		start := time.Now()
		assert.False(t, f.wait(ctx), "the request still runs")
		assert.Equal(t, time.Minute, time.Since(start))
		cancel()

		waited := make(chan bool)
		go func() { waited <- f.wait(t.Context()) }()
		synctest.Wait()
		close(release)
		assert.True(t, <-waited)
		<-done
	})
}

// TestInflightRequestsDuringWait: requests keep starting and ending while
// a shutdown waits (they are answered 503 then); under -race this is the
// case a sync.WaitGroup gets wrong (Add from zero during Wait).
func TestInflightRequestsDuringWait(t *testing.T) {
	var f inflight
	h := f.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			}
		})
	}
	for range 1000 {
		wctx, wcancel := context.WithTimeout(ctx, time.Millisecond)
		f.wait(wctx)
		wcancel()
	}
	cancel()
	wg.Wait()
	assert.True(t, f.wait(t.Context()), "all requests ended")
}
