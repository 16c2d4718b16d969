package jobs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Reaper is the daemon's one collector of child exits. It waits for
// SIGCHLD and calls wait4(-1, WNOHANG) until no exited child is left,
// handing each status to whoever started that pid.
//
// Why not exec.Cmd.Wait per child: a blocked Wait holds an OS thread per
// process (about 1000 threads at 1000 jobs), and it would race with the
// reaping of orphans the daemon inherits as a subreaper.
type Reaper struct {
	sigc chan os.Signal

	// starting is held for reading by each Start while it forks and
	// registers its child, and for writing by reap while it looks up what
	// it reaped: so reap never misses a child that exits at once, and
	// Starts, which do not exclude each other, fork side by side.
	starting sync.RWMutex
	// forks bounds the Starts under way: each holds an OS thread while
	// its child execs, and Go keeps a thread once made, so a reload of a
	// thousand jobs would otherwise leave the daemon with more threads.
	forks   chan struct{}
	mu      sync.Mutex        // guards waiting
	waiting map[int]exitTaker // by pid
	// noClone3 is set once clone3 was refused (a seccomp filter, a kernel
	// before 5.7): children then start in the daemon's cgroup and move.
	noClone3 atomic.Bool
	// pass is held by each reaping pass; paused (guarded by pass) makes
	// passes reap nothing, so that exited children stay zombies for the
	// next image to reap (Pause, Resume: see Manager.Detach).
	pass   sync.Mutex
	paused bool
}

// exitTaker takes the exit of a process the reaper waited for, once,
// without blocking: the channel a Start or Adopt returned (exitChan), or
// whoever OnExit named instead (a supervisor, which holds no channel per
// process: 5000 running jobs held 1.3 MB of them, BENCHMARKS.md, issue 16).
type exitTaker interface{ takeExit(Exit) }

// exitChan is the channel a Start or Adopt returns, buffered 1.
type exitChan chan Exit

func (c exitChan) takeExit(e Exit) { c <- e }

// maxForks is how many Starts may be under way at once: Go forks one at a
// time anyway (syscall.ForkLock); a few more overlap the rest of the work.
const maxForks = 4

// NewReaper subscribes to SIGCHLD and, on Linux, makes the daemon a child
// subreaper so orphaned grandchildren are reparented to it and reaped here.
// Call it before any child is started; then run Run.
func NewReaper() *Reaper {
	r := &Reaper{sigc: make(chan os.Signal, 1), waiting: make(map[int]exitTaker), forks: make(chan struct{}, maxForks)}
	signal.Notify(r.sigc, syscall.SIGCHLD)
	becomeSubreaper()
	return r
}

// Start starts cmd and returns its pid and a channel that receives its exit
// once. The process is released at once (cmd.Process.Pid becomes -1): only
// the reaper waits for it. A cmd whose SysProcAttr names a cgroup starts
// in it (clone3 CLONE_INTO_CGROUP), so that it forks nothing outside; if
// clone3 is refused, it starts without and moves there at once.
func (r *Reaper) Start(cmd *exec.Cmd) (pid int, exited <-chan Exit, err error) {
	defer r.Reserve()()
	return r.StartReserved(cmd)
}

// Reserve waits for one of the maxForks places of the Starts under way
// and returns what gives it back. A caller that makes descriptors for
// its child (pipes, a cgroup's) takes the place first, then calls
// StartReserved: otherwise every job of a big reload made its pipes at
// once and waited with them for a place (at 5000 jobs, four descriptors
// each: the daemon's limit of open files, 20000 here, ran out).
func (r *Reaper) Reserve() (release func()) {
	r.forks <- struct{}{}
	return func() { <-r.forks }
}

// StartReserved is Start for a caller that holds a place (Reserve).
func (r *Reaper) StartReserved(cmd *exec.Cmd) (pid int, exited <-chan Exit, err error) {
	ch := make(chan Exit, 1)
	// Start and register under starting: the reaper looks a pid up under
	// it, so it cannot miss a child that exits before Start returns.
	r.starting.RLock()
	pid, err = forkFrom(cmd, func(cmd *exec.Cmd) (int, error) {
		pid, err := r.startCmd(cmd)
		if err == nil {
			r.mu.Lock()
			r.waiting[pid] = exitChan(ch)
			r.mu.Unlock()
		}
		return pid, err
	})
	r.starting.RUnlock()
	if err != nil {
		return 0, nil, err
	}
	return pid, ch, nil
}

// startCmd starts cmd, in its cgroup if it names one, and releases it.
func (r *Reaper) startCmd(cmd *exec.Cmd) (int, error) {
	cgroup := cgroupFD(cmd)
	if cgroup >= 0 && r.noClone3.Load() {
		cmd = withoutCgroup(cmd)
	}
	err := cmd.Start()
	if err != nil && cgroupFD(cmd) >= 0 {
		// Any error: exec's own (no such file) comes again without clone3.
		retry := withoutCgroup(cmd)
		if err = retry.Start(); err == nil {
			r.noClone3.Store(true)
			cmd = retry
		}
	}
	if err != nil {
		return 0, err
	}
	if cgroup >= 0 && cgroupFD(cmd) < 0 {
		// Best effort: where this fails too, the job's group and session
		// still go with it.
		moveToCgroup(cgroup, cmd.Process.Pid)
	}
	pid := cmd.Process.Pid
	// Close the pidfd Go may hold; nothing will Wait on this Process.
	cmd.Process.Release()
	return pid, nil
}

// Waits reports whether pid is a process the reaper waits for, one that
// Start started. A Start under way finishes first: its child, forked but
// not yet registered, is not taken for a stranger.
func (r *Reaper) Waits(pid int) bool {
	r.starting.Lock()
	defer r.starting.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.waiting[pid]
	return ok
}

// OnExit has take take the exit of pid instead of exited (the channel its
// Start or Adopt returned), which is then dropped: at once if the exit
// was sent on exited already. So a supervisor learns of the exit without
// a goroutine waiting on it, and holds no channel while its process runs.
func (r *Reaper) OnExit(pid int, exited <-chan Exit, take exitTaker) {
	r.mu.Lock()
	if c, ok := r.waiting[pid].(exitChan); ok && (<-chan Exit)(c) == exited {
		r.waiting[pid] = take
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	take.takeExit(<-exited) // reaped: reap sends under mu, so it is on exited
}

// Adopt registers pid, a child of this process that the reaper did not
// start (an upgrade's successor inherits them), and returns the channel
// that receives its exit once, as Start does. A child that exited already
// is a zombie until reaped: register it before the reaper's first pass
// (Pause first if Run runs).
func (r *Reaper) Adopt(pid int) <-chan Exit {
	ch := make(chan Exit, 1)
	r.starting.RLock()
	r.mu.Lock()
	r.waiting[pid] = exitChan(ch)
	r.mu.Unlock()
	r.starting.RUnlock()
	return ch
}

// Pause makes the reaper reap nothing until Resume: a child that exits
// meanwhile stays a zombie. It returns once no pass is under way.
func (r *Reaper) Pause() {
	r.pass.Lock()
	r.paused = true
	r.pass.Unlock()
}

// Resume ends a Pause and reaps at once what exited meanwhile.
func (r *Reaper) Resume() {
	r.pass.Lock()
	r.paused = false
	r.pass.Unlock()
	select {
	case r.sigc <- syscall.SIGCHLD:
	default:
	}
}

// Run reaps until ctx is done.
func (r *Reaper) Run(ctx context.Context) {
	signal.Notify(r.sigc, syscall.SIGCHLD) // again, if an earlier Run ended
	defer signal.Stop(r.sigc)
	for {
		r.reap()
		select {
		case <-ctx.Done():
			return
		case <-r.sigc:
		}
	}
}

func (r *Reaper) reap() {
	r.pass.Lock()
	defer r.pass.Unlock()
	if r.paused {
		return
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		e := Exit{Pid: pid, Code: ws.ExitStatus(), At: time.Now()}
		if ws.Signaled() {
			e.Code = -1
			e.Signal = SignalName(ws.Signal())
		}
		r.starting.Lock()
		r.mu.Lock()
		take := r.waiting[pid]
		delete(r.waiting, pid)
		if c, ok := take.(exitChan); ok {
			c.takeExit(e) // buffered 1, sent once; under mu, for OnExit
			take = nil
		}
		r.mu.Unlock()
		r.starting.Unlock()
		if take != nil {
			take.takeExit(e)
		}
	}
}

// SignalName returns a signal's name without the SIG prefix: "KILL".
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n[len("SIG"):]
	}
	return sig.String()
}
