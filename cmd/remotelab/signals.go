package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts turns the first SIGINT or SIGTERM into the cancellation of a
// context, passes signals on to a running child process, and lets a
// further signal end an impatient user's wait for the clean-up at once.
type interrupts struct {
	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan os.Signal
	quit   chan struct{}
	done   chan struct{}
	stderr io.Writer

	mu     sync.Mutex
	first  os.Signal
	child  *os.Process
	atExit []func() // run before an impatient exit
}

func newInterrupts(parent context.Context, stderr io.Writer) *interrupts {
	ctx, cancel := context.WithCancel(parent)
	i := &interrupts{ctx: ctx, cancel: cancel, sigs: make(chan os.Signal, 4),
		quit: make(chan struct{}), done: make(chan struct{}), stderr: stderr}
	signal.Notify(i.sigs, syscall.SIGINT, syscall.SIGTERM)
	go i.loop()
	return i
}

// stop ends the signal handling; signals have their default effect again.
func (i *interrupts) stop() {
	signal.Stop(i.sigs)
	close(i.quit)
	<-i.done
	i.cancel()
}

func (i *interrupts) loop() {
	defer close(i.done)
	for {
		select {
		case <-i.quit:
			return
		case sig := <-i.sigs:
			i.handle(sig)
		}
	}
}

func (i *interrupts) handle(sig os.Signal) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.child != nil {
		forward(i.child, sig)
		if i.first == nil {
			i.first = sig
			i.cancel()
		}
		return
	}
	if i.first == nil {
		i.first = sig
		i.cancel()
		fmt.Fprintf(i.stderr, "remotelab: %v: releasing the lab and closing the session (again to quit at once)\n", sig)
		return
	}
	fmt.Fprintf(i.stderr, "remotelab: %v again: quitting; the server ends the session after its active TTL\n", sig)
	for _, f := range i.atExit {
		f()
	}
	os.Exit(signalExit(sig))
}

// signalled returns the first signal received, or nil.
func (i *interrupts) signalled() os.Signal {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.first
}

// setChild makes signals go to p (nil: no child runs). A signal that
// came while p was starting (before setChild) is passed on to it now.
func (i *interrupts) setChild(p *os.Process) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.child = p
	if p != nil && i.first != nil {
		forward(p, i.first)
	}
}

// forward passes sig on to the child p. A Ctrl-C on the terminal reaches
// the child by itself (it is in the terminal's foreground process group,
// as this process is); a second one would make many programs quit hard.
func forward(p *os.Process, sig os.Signal) {
	if sig != syscall.SIGINT || !inForeground() {
		_ = p.Signal(sig)
	}
}

// onExit registers f to run before an impatient exit.
func (i *interrupts) onExit(f func()) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.atExit = append(i.atExit, f)
}

// signalExit is the conventional exit status after sig: 128 + its number.
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}
