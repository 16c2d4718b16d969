package main

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeOnExec marks every descriptor above stderr close-on-exec, so that a
// descriptor our caller left open (a shell's 3>&1, a pipe) does not reach
// the daemon we launch or the jobs it starts, where it would keep that
// pipe open forever. Go opens its own descriptors close-on-exec already.
func closeOnExec() {
	if closeRangeOnExec() {
		return
	}
	dir, err := os.Open("/dev/fd") // /proc/self/fd on Linux, fdescfs on macOS
	if err != nil {
		return
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
