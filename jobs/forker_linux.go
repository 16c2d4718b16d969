package jobs

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A fork copies the forking thread's descriptor table into the child,
// whose exec then closes every close-on-exec copy one by one: work in
// proportion to the daemon's open descriptors, two pipe ends a job. At
// 5000 jobs that was ~0.5 ms of kernel time per fork, 3 of the 7.6 s of
// CPU a bring-up took (perf: do_close_on_exec, dup_fd).
//
// So children are forked by a few goroutines locked to OS threads that
// each have a descriptor table of their own (unshare CLONE_FILES), kept
// nearly empty: a start's descriptors (the pipes' write ends, the
// cgroup's, READY's) are copied into it from the daemon's table with
// pidfd_getfd just for the fork, then closed. The child's fd table is
// then a few entries, whatever the number of jobs. Where any of it is
// refused (a kernel before 5.6, a seccomp filter), children fork from
// the daemon's table as before.

// forkers are the threads children fork from; nil: fork in place.
var forkers = sync.OnceValue(startForkers)

type forkWork struct {
	cmd  *exec.Cmd
	f    func(*exec.Cmd) (int, error)
	pid  int
	err  error
	done chan struct{}
}

type forkPool struct{ work chan *forkWork }

func startForkers() *forkPool {
	p := &forkPool{work: make(chan *forkWork)}
	for range maxForks {
		ok := make(chan bool)
		go p.forker(ok, 3)
		if !<-ok {
			return nil
		}
	}
	return p
}

// forker sets up its thread, says whether it could, and then runs forks.
// tries bounds how often it lands on the process's main thread, whose
// table pidfd_getfd reads and which must stay the daemon's.
func (p *forkPool) forker(ok chan<- bool, tries int) {
	runtime.LockOSThread() // never unlocked: the thread keeps its own table
	if unix.Gettid() == unix.Getpid() {
		// Another goroutine sets up while this one holds the main
		// thread, so that it cannot land there too.
		sub := make(chan bool)
		if tries > 0 {
			go p.forker(sub, tries-1)
		}
		r := tries > 0 && <-sub
		runtime.UnlockOSThread()
		ok <- r
		return
	}
	self, err := ownTable()
	if err != nil {
		ok <- false
		return // the thread ends with the goroutine
	}
	ok <- true
	for w := range p.work {
		w.pid, w.err = forkIn(self, w.cmd, w.f)
		close(w.done)
	}
}

// ownTable gives the calling (locked) thread a descriptor table of its
// own, holding only the runtime's (its poller's epoll and eventfd: any
// thread may use them) besides 0-2, and returns a pidfd of the process,
// in that table, to copy descriptors from the daemon's.
func ownTable() (int, error) {
	// The runtime's poller first, so that its descriptors are in both.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return -1, err
	}
	ents, err := os.ReadDir("/proc/thread-self/fd")
	if err != nil {
		return -1, err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		link, err := os.Readlink("/proc/thread-self/fd/" + e.Name())
		if err == nil && (strings.HasSuffix(link, "[eventpoll]") || strings.HasSuffix(link, "[eventfd]")) {
			continue
		}
		unix.Close(fd) // a copy: the daemon's table keeps its own
	}
	self, err := unix.PidfdOpen(unix.Getpid(), 0)
	if err != nil {
		return -1, err
	}
	// Try the copy once: refused (seccomp, no ptrace rights), fork in place.
	fd, err := unix.PidfdGetfd(self, 0, 0)
	if err != nil {
		unix.Close(self)
		return -1, err
	}
	unix.Close(fd)
	return self, nil
}

// forkFrom runs f, which starts cmd, on a forker thread with cmd's
// descriptors copied into its table; or in place where there is none.
func forkFrom(cmd *exec.Cmd, f func(*exec.Cmd) (int, error)) (int, error) {
	if highestFd(cmd) < forkerAbove {
		return f(cmd) // a small table: cheaper than waking a forker
	}
	p := forkers()
	if p == nil || cmd.Cancel != nil || cmd.WaitDelay != 0 || !onlyFiles(cmd) {
		return f(cmd)
	}
	w := &forkWork{cmd: cmd, f: f, done: make(chan struct{})}
	p.work <- w
	<-w.done
	return w.pid, w.err
}

// forkerAbove is the descriptor number from which a start goes to a
// forker. The kernel hands out the lowest free number, so a start's new
// pipe numbered n means n descriptors or more are open: below a thousand
// (500 jobs) their copy and close, under 0.3 ms, cost less than the
// hand-over to a forker thread on a busy machine (restart latency, 100
// jobs: x1.63-1.72 of go-minimal through a forker, x1.39-1.42 in place,
// same runs).
const forkerAbove = 1024

// highestFd returns the highest descriptor cmd gives its child, or -1.
func highestFd(cmd *exec.Cmd) int {
	n := cgroupFD(cmd)
	for _, s := range append([]any{cmd.Stdin, cmd.Stdout, cmd.Stderr}, anys(cmd.ExtraFiles)...) {
		if f, ok := s.(*os.File); ok && f != nil {
			n = max(n, int(f.Fd()))
		}
	}
	return n
}

func anys(fs []*os.File) []any {
	out := make([]any, len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

// onlyFiles reports whether cmd's streams are files (or nil): any other
// makes exec copy in goroutines, whose descriptors must be the daemon's.
func onlyFiles(cmd *exec.Cmd) bool {
	for _, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		switch s.(type) {
		case nil, *os.File:
		default:
			return false
		}
	}
	return true
}

// forkIn runs f on a copy of cmd whose descriptors are copies, in the
// calling forker's table, of cmd's; it closes them after.
func forkIn(self int, cmd *exec.Cmd, f func(*exec.Cmd) (int, error)) (int, error) {
	var made []*os.File
	defer func() {
		for _, m := range made {
			m.Close()
		}
	}()
	dup := func(fd int) (int, error) {
		c, err := unix.PidfdGetfd(self, fd, 0) // close-on-exec, as every copy is
		if err != nil {
			return -1, os.NewSyscallError("pidfd_getfd", err)
		}
		made = append(made, os.NewFile(uintptr(c), ""))
		return c, nil
	}
	file := func(f *os.File) (*os.File, error) {
		if f == nil {
			return nil, nil
		}
		if _, err := dup(int(f.Fd())); err != nil {
			return nil, err
		}
		return made[len(made)-1], nil
	}
	c := *cmd
	var err error
	if in, ok := cmd.Stdin.(*os.File); ok {
		if c.Stdin, err = file(in); err != nil {
			return 0, err
		}
	}
	if out, ok := cmd.Stdout.(*os.File); ok {
		if c.Stdout, err = file(out); err != nil {
			return 0, err
		}
	}
	if e, ok := cmd.Stderr.(*os.File); ok {
		if e == cmd.Stdout {
			c.Stderr = c.Stdout
		} else if c.Stderr, err = file(e); err != nil {
			return 0, err
		}
	}
	if len(cmd.ExtraFiles) > 0 {
		c.ExtraFiles = make([]*os.File, len(cmd.ExtraFiles))
		for i, x := range cmd.ExtraFiles {
			if c.ExtraFiles[i], err = file(x); err != nil {
				return 0, err
			}
		}
	}
	if a := cmd.SysProcAttr; a != nil && a.UseCgroupFD {
		attr := *a
		if attr.CgroupFD, err = dup(a.CgroupFD); err != nil {
			return 0, err
		}
		c.SysProcAttr = &attr
	}
	pid, err := f(&c)
	cmd.Process = c.Process
	return pid, err
}
