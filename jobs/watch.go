package jobs

import (
	"errors"
	"fmt"
	"os"
)

// errProcessGone is returned for a process that has exited already.
var errProcessGone = errors.New("the process has exited")

// exitWatch waits for one process to exit, without polling: the runtime's
// poller wakes its goroutine when the kernel says the process is gone
// (openExitWatch: a pidfd on Linux, a kqueue on macOS).
type exitWatch struct {
	f   *os.File
	pid int // the watched process
}

// watchProcess watches process pid or, with parent, its parent. pid must
// be alive (the process that asked, waiting for its answer). The parent is
// read from the system, never taken from the request; it counts only if
// pid still has it once the watch is open, so a parent that exited and
// whose pid went to another process is never watched in its place.
func watchProcess(pid int, parent bool) (*exitWatch, error) {
	f, err := openExitWatch(pid)
	if errors.Is(err, errProcessGone) {
		return nil, fmt.Errorf("the requesting process (pid %d) has exited", pid)
	}
	if err != nil {
		return nil, err
	}
	if !parent {
		return &exitWatch{f: f, pid: pid}, nil
	}
	defer f.Close()
	ppid, err := parentOf(pid)
	if err != nil {
		return nil, fmt.Errorf("find the parent of pid %d: %w", pid, err)
	}
	if ppid <= 1 {
		return nil, fmt.Errorf("the requesting process (pid %d) has no parent to tie to (its parent is pid %d)", pid, ppid)
	}
	pf, err := openExitWatch(ppid)
	if errors.Is(err, errProcessGone) {
		return nil, fmt.Errorf("the parent (pid %d) of the requesting process has exited", ppid)
	}
	if err != nil {
		return nil, err
	}
	// A parent that exits leaves its children to another: if pid, still
	// alive, still has ppid for parent, ppid was alive when it was opened.
	again, err := parentOf(pid)
	if err != nil || again != ppid || exited(f) {
		pf.Close()
		return nil, fmt.Errorf("the parent (pid %d) of the requesting process has exited", ppid)
	}
	return &exitWatch{f: pf, pid: ppid}, nil
}

// exited reports whether the process f watches has exited, without waiting.
func exited(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	rc.Control(func(fd uintptr) { ready = exitReady(fd) })
	return ready
}

// wait blocks until the process exits (true) or the watch is closed (false).
func (w *exitWatch) wait() bool {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return false
	}
	// Read calls the function, and while it says false waits for the
	// descriptor to become readable: no thread is held meanwhile.
	return rc.Read(exitReady) == nil
}

// close ends the watch; a wait in progress returns false.
func (w *exitWatch) close() { w.f.Close() }
