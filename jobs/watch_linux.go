package jobs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openExitWatch returns a nonblocking descriptor that becomes readable when
// process pid exits: a pidfd (Linux 5.3 and later), which names the process
// itself, not its pid, so a later reuse of the pid cannot fool it.
func openExitWatch(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, 0) // close-on-exec by default
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, errProcessGone
	case errors.Is(err, unix.ENOSYS):
		return nil, errors.New("watching a process needs pidfd_open, Linux 5.3 or newer")
	case err != nil:
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Nonblocking, os.NewFile hands it to the runtime's poller: a wait for
	// it holds no thread.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pidfd %d: %w", pid, err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), nil
}

// exitReady reports whether the watched process has exited: its pidfd is readable.
func exitReady(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

// parentOf returns the parent pid of process pid.
func parentOf(pid int) (int, error) {
	p, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if p.zombie {
		return 0, errProcessGone
	}
	return p.ppid, nil
}
