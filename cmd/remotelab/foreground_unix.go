//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"os"
	"syscall"
	"unsafe"
)

// inForeground reports whether this process is in the foreground process
// group of its terminal: then a Ctrl-C there signals the whole group,
// child processes included.
func inForeground() bool {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if !isTerminal(f) {
			continue
		}
		var pgrp int32
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGPGRP), uintptr(unsafe.Pointer(&pgrp)))
		if errno != 0 {
			continue
		}
		return int(pgrp) == syscall.Getpgrp()
	}
	return false
}
