//go:build unix

package lab

import (
	"io/fs"
	"os"
	"syscall"
)

// killGroup sends SIGKILL to every process of group pgid.
func killGroup(pgid int) error { return syscall.Kill(-pgid, syscall.SIGKILL) }

// getpgrp is this process's group, which Recover never kills.
func getpgrp() int { return syscall.Getpgrp() }

// ownedByUs reports whether this process's user owns the file.
func ownedByUs(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
