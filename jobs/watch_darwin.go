package jobs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openExitWatch returns a nonblocking kqueue that becomes readable when
// process pid exits (EVFILT_PROC, NOTE_EXIT).
func openExitWatch(pid int) (*os.File, error) {
	// Under ForkLock, so that no job started meanwhile inherits it.
	syscall.ForkLock.RLock()
	kq, err := unix.Kqueue()
	if err == nil {
		unix.CloseOnExec(kq)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("kqueue: %w", err)
	}
	ev := []unix.Kevent_t{{Ident: uint64(pid), Filter: unix.EVFILT_PROC, Flags: unix.EV_ADD | unix.EV_ONESHOT, Fflags: unix.NOTE_EXIT}}
	if _, err := unix.Kevent(kq, ev, nil, nil); err != nil {
		unix.Close(kq)
		if errors.Is(err, unix.ESRCH) {
			return nil, errProcessGone
		}
		return nil, fmt.Errorf("kevent %d: %w", pid, err)
	}
	// Nonblocking, os.NewFile hands it to the runtime's poller: a wait for
	// it holds no thread.
	if err := unix.SetNonblock(kq, true); err != nil {
		unix.Close(kq)
		return nil, fmt.Errorf("kqueue: %w", err)
	}
	return os.NewFile(uintptr(kq), fmt.Sprintf("kqueue:%d", pid)), nil
}

// exitReady reports whether the watched process has exited: its kqueue holds the event.
func exitReady(fd uintptr) bool {
	ev := make([]unix.Kevent_t, 1)
	n, err := unix.Kevent(int(fd), nil, ev, &unix.Timespec{})
	return err == nil && n > 0
}

// parentOf returns the parent pid of process pid.
func parentOf(pid int) (int, error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return 0, err
	}
	if k.Proc.P_pid != int32(pid) {
		return 0, errProcessGone
	}
	const zombieState = 5 // SZOMB in sys/proc.h
	if k.Proc.P_stat == zombieState {
		return 0, errProcessGone
	}
	return int(k.Eproc.Ppid), nil
}
