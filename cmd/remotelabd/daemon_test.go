package main

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestForcedContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		force, doForce := context.WithCancel(t.Context())
		defer doForce()
		start := time.Now()
		ctx, cancel := forcedContext(force, time.Hour)
		defer cancel()

		time.Sleep(10 * time.Minute)
		assert.NoError(t, ctx.Err(), "unforced: runs until its timeout")
		doForce()
		<-ctx.Done()
		assert.Equal(t, 10*time.Minute+forcedExitWait/2, time.Since(start),
			"forced: ends shortly after, so netlab gets its SIGINT first")
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := forcedContext(t.Context(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		<-ctx.Done()
		assert.Equal(t, 5*time.Minute, time.Since(start))
		assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	})
}

func TestListenHint(t *testing.T) {
	wrap := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
	}
	assert.Contains(t, listenHint(wrap(syscall.EADDRINUSE), 8000), "another program listens on port 8000")
	assert.Contains(t, listenHint(wrap(syscall.EACCES), 80), "CAP_NET_BIND_SERVICE")
	assert.Contains(t, listenHint(wrap(syscall.EADDRNOTAVAIL), 8000), "--host")
	assert.Equal(t, "check --host and --port", listenHint(errors.New("other"), 8000))
}
