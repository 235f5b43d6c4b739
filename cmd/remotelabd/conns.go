package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// maxHeaderBlock bounds a request's header block (request line, headers
// and the blank line): larger ones get 431.
const maxHeaderBlock = 64 << 10

// maxHeaderBytes is the http.Server setting that makes maxHeaderBlock
// the limit: net/http reads up to 4 KiB more than MaxHeaderBytes.
const maxHeaderBytes = maxHeaderBlock - 4<<10

// fdReserve is how many file descriptors are kept for lab work (spooled
// uploads, netlab's pipes, the state store, logs) when the connection cap
// is fitted to the process's descriptor limit.
const fdReserve = 256

// connectionCap returns the connection cap to use: --max-connections, or
// less when the process may not open that many files, so that a flood of
// connections can never starve the holder's upload of descriptors.
func connectionCap(want int, log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return want
	}
	// Go raises the soft limit to the hard one at start-up.
	avail := int(min(lim.Cur, uint64(1<<30))) - fdReserve
	if avail >= want {
		return want
	}
	capped := max(avail, 16)
	log.Warn("The descriptor limit is below --max-connections; capping connections to keep descriptors for lab work",
		"max_connections", want, "nofile", lim.Cur, "cap", capped, "hint", "raise LimitNOFILE (systemd) or ulimit -n")
	return capped
}

// limitListener accepts at most n connections at a time: beyond that,
// Accept waits for one to close (new connections wait in the kernel's
// backlog instead of taking descriptors).
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// inflight counts the requests being handled, so a shutdown can wait for
// them while new ones are still answered (503) on the open listener. (A
// sync.WaitGroup does not fit: requests start while the shutdown waits,
// and a WaitGroup's Add from zero must not race with its Wait.)
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil until a wait needs it
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.add(1)
		defer f.add(-1)
		h.ServeHTTP(w, r)
	})
}

func (f *inflight) add(delta int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += delta
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

// wait waits until no request runs, or ctx ends; it reports which.
func (f *inflight) wait(ctx context.Context) bool {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return true
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}
