package jobs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Handover is everything a Manager knows that its successor needs to
// carry on without restarting a job: each job's definition, process and
// supervision state, and the read ends of the output pipes. Detach makes
// one; Adopt takes it, in this image (an upgrade that failed) or in the
// next one (overseer upgrade: the daemon execs itself, same pid, and
// passes the handover and the pipes' descriptors on). It crosses the exec
// encoded by the daemon (its exported fields, by name, as encoding/gob
// would); the descriptors are numbers valid in the process that holds them.
type Handover struct {
	Jobs  []Adoptee
	Pipes []HandedPipe
	// Epoll is the epoll instance whose interest list holds every pipe
	// of Pipes (by its FD), left open across exec like them; <= 0: none,
	// each pipe is registered again.
	Epoll int
	// Hold: the pipes are not held by this daemon's pipe holder yet
	// (survivors adopted after a crash, AdoptSurvivors): Adopt hands them
	// to it, so that a second crash is survived too.
	Hold bool
}

// Adoptee is one job name's slot: its definition and state, the process
// its supervisor runs (Sup), its STOP hold, why its file is rejected, and
// what makes it ephemeral.
type Adoptee struct {
	Name     string
	Held     bool
	Rejected string
	Prog     program   // the program its process runs, as a RELOAD read it
	Sup      *SupState // nil: no version of it runs (its file is rejected)
	Eph      *EphState // nil: not ephemeral
}

// EphState is what makes a job ephemeral (SPAWN).
type EphState struct {
	Expires time.Time // when its TTL passes; zero without a TTL
	TiedTo  int       // the process it is tied to, watched again by pid; 0: none
}

// SupState is a supervisor's state: the job's definition, its published
// Status (Pid and ProcStart name its process, 0 when none runs), its run,
// the restart policy's counters and the deadlines of its timers.
type SupState struct {
	Job       *Job
	Status    Status
	RunID     int64     // the runs row of the live process; 0: none
	StartedAt time.Time // of the live process
	GoalUp    bool      // the job should run
	Deaths    int       // counters of the restart policy (next)
	Failed    int
	Starts    []time.Time
	MemKernel bool
	EvState   State     // the New state of its last event
	RestartAt time.Time // a restart (backoff) is due then; zero: none
	// Stopping: the stop signal was sent; KILL follows at KillAt.
	Stopping                         bool
	StopReason, StopDetail, StopNote string
	KillAt                           time.Time
	Quit                             bool // its supervisor was ending (an ephemeral job being forgotten)
	// Retest: a TEST (or its re-test timer) was under way: it runs again.
	Retest bool
	// ReadyBy: the live process was not ready yet; READY_TIMEOUT ends then.
	ReadyBy time.Time
	// Exit is the live process's exit, when the reaper collected it after
	// the supervisor let go of it; the adopting supervisor takes it as if
	// it had just come.
	Exit *Exit
	// Foreign: the live process is no child of this daemon (a survivor
	// adopted after a crash): its exit is watched through a pidfd, its
	// status unknown, never through the reaper.
	Foreign bool

	watch *exitWatch // AdoptSurvivors: the pidfd opened when it was chosen
	// The requests waiting for it: answered by the adopter in this image
	// (a failed upgrade); with an exec, their connections end.
	upWaiters    []waiter
	stopWaiters  []*replyTo
	readyWaiters []readyWaiter
}

// HandedPipe is the read end of one output pipe (a job's stdout or
// stderr, or its TEST's), its descriptor FD left open across exec, and
// the start of a line read from it but not yet written (Carry).
type HandedPipe struct {
	FD     int
	Job    string
	Stream string
	Carry  []byte
}

// errNoUpgrade: elsewhere a goroutine per pipe holds each read end.
var errNoUpgrade = errors.New("an upgrade in place needs Linux: on this system the daemon cannot hand its jobs' output pipes over\nhint: overseer die, then start the new overseer")

// Busy says why the manager cannot hand its jobs over now (a job waits for
// its readiness check, an ephemeral job is being forgotten), or nil.
func (m *Manager) Busy() error {
	if runtime.GOOS != "linux" {
		return errNoUpgrade
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, sl := range m.slots {
		if sl.sup != nil && sl.sup.Status().State == Starting && sl.sup.Status().Reason == waitingReady {
			return fmt.Errorf("job %s is starting, waiting until ready (READY): try again once it is", name)
		}
		if sl.eph != nil && sl.eph.forgetting || sl.leaving {
			return fmt.Errorf("job %s is being stopped and forgotten: try again once it is gone", name)
		}
	}
	return nil
}

// Detach lets go of every job without touching its process, for an
// upgrade: each supervisor ends (a TEST under way is canceled, to run
// again after), the reaper pauses (a child that exits from now on stays a
// zombie, for the adopter's first pass), and the pipe reader forgets its
// pipes, left open. Requests get ErrClosed until Adopt. It first waits
// for a reload under way; it refuses (and changes nothing) while Busy,
// or when pause, called then (the daemon stops accepting), fails.
// The descriptors in the Handover are still close-on-exec: the caller
// clears that for an exec (ClearCloseOnExec), and sets it again before
// Adopt: after an exec the new image marks every descriptor so at its
// start (closeOnExec), after an exec that failed SetCloseOnExec does.

func (m *Manager) Detach(pause func() error) (*Handover, error) {
	m.reload.Lock()
	defer m.reload.Unlock()
	if err := m.Busy(); err != nil {
		return nil, err
	}
	if err := pause(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.closed = true
	close(m.quit) // TTL timers end (their deadline is handed over)
	h := &Handover{}
	sups := make(map[string]*supervisor)
	for name, sl := range m.slots {
		if sl.sink != nil && sl.sup == nil && !sl.held && sl.rejected == "" && sl.eph == nil {
			continue // a log only
		}
		a := Adoptee{Name: name, Held: sl.held, Rejected: sl.rejected, Prog: sl.prog}
		if e := sl.eph; e != nil {
			e.release()
			a.Eph = &EphState{Expires: e.Expires, TiedTo: e.TiedTo}
		}
		if sl.sup != nil {
			sups[name] = sl.sup
		}
		h.Jobs = append(h.Jobs, a)
	}
	m.mu.Unlock()
	// All at once: one after the other, the round trips to a thousand
	// supervisors took ~10 ms of the socket's pause.
	var handing sync.WaitGroup
	for _, s := range sups {
		handing.Go(func() {
			s.do(request{op: opHandOver})
			<-s.ended()
		})
	}
	handing.Wait()
	m.bg.Wait()
	m.cfg.Reaper.Pause()
	for i, a := range h.Jobs {
		s := sups[a.Name]
		if s == nil {
			continue
		}
		var st SupState // zero when its supervisor had ended before
		if h := s.handedState(); h != nil {
			st = *h
		}
		if e := s.handedExit(); e != nil {
			st.Exit = e // reaped after its supervisor let go
		}
		h.Jobs[i].Sup = &st
	}
	pipes, epfd, err := m.cfg.pipes.detach()
	h.Pipes, h.Epoll = pipes, epfd
	m.mu.Lock()
	for _, sl := range m.slots {
		sl.sup, sl.eph = nil, nil
	}
	m.mu.Unlock()
	if err != nil {
		m.Adopt(h)
		return nil, err
	}
	return h, nil
}

// handedState is what handOver left, once the supervisor has ended; nil
// when it ended otherwise.
func (s *supervisor) handedState() *SupState {
	if s.underway == nil {
		return nil
	}
	return s.handed
}

// handedExit is the exit of the process the supervisor let go of, if
// the reaper collected it before it paused; nil if not.
func (s *supervisor) handedExit() *Exit {
	if s.handedState() == nil {
		return nil
	}
	s.evMu.Lock()
	defer s.evMu.Unlock()
	return s.reaped
}

// Adopt takes over the jobs of h: the ones Detach left, in this image or
// an earlier one of this process. Each process must be a child of this
// process, registered with the reaper before its first pass (the daemon
// starts Reaper.Run after Adopt, or Detach paused it): it is checked to
// be the process handed over (sameChild), registered with the reaper, and
// its supervisor carries on from the state handed over: no process
// starts, no run is opened or closed (but for a process that ended
// meanwhile, recorded with its true status), timers keep their
// deadlines. Each pipe's read end is read into its job's log again. It
// resumes the reaper and re-opens the manager to requests.
//
// The crash story can reuse it: a Handover built from the runs table and
// pipes kept by a holder adopts survivors the same way, provided they are
// children of this process (the reaper can wait only for those).
func (m *Manager) Adopt(h *Handover) error {
	var errs []error
	m.mu.Lock()
	if m.closed {
		m.closed = false
		m.quit = make(chan struct{})
	}
	for _, a := range h.Jobs {
		sl := m.at(a.Name)
		sl.held, sl.rejected, sl.prog = a.Held, a.Rejected, a.Prog
		if a.Sup == nil {
			m.tidy(a.Name)
			continue
		}
		s, err := m.adoptSupervisor(*a.Sup, m.sink(a.Name))
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", a.Name, err))
		}
		sl.sup = s
		if a.Eph != nil {
			m.adoptEphemeral(a.Name, sl, *a.Eph)
		}
	}
	registered := false
	if h.Epoll > 0 {
		if err := m.cfg.pipes.takeEpoll(h.Epoll); err != nil {
			errs = append(errs, fmt.Errorf("the output pipes' epoll instance: %w (each pipe is registered again)", err))
			unix.Close(h.Epoll)
		} else {
			registered = true
		}
	}
	for _, p := range h.Pipes {
		if h.Hold {
			m.cfg.Holder.hold(p.FD, p.Job, p.Stream)
		}
		if err := m.cfg.pipes.adopt(p, m.sink(p.Job), registered); err != nil {
			errs = append(errs, fmt.Errorf("output pipe of %s: %w", p.Job, err))
			unix.Close(p.FD)
		}
	}
	m.mu.Unlock()
	m.cfg.pipes.resume()
	m.cfg.Reaper.Resume()
	return errors.Join(errs...)
}

// adoptEphemeral makes sl's job ephemeral again, with what is left of its
// TTL and its tie. Call with mu held.
func (m *Manager) adoptEphemeral(name string, sl *slot, es EphState) {
	e := &ephemeral{Ephemeral: Ephemeral{Expires: es.Expires}, sup: sl.sup, gone: make(chan struct{})}
	sl.eph = e
	if !es.Expires.IsZero() {
		t := time.NewTimer(time.Until(es.Expires))
		quit := m.quit
		m.bg.Go(func() {
			defer t.Stop()
			select {
			case <-t.C:
				m.forget(name, e, "expired", "its TTL passed")
			case <-e.gone:
			case <-quit:
			}
		})
	}
	if es.TiedTo > 0 {
		e.TiedTo = es.TiedTo
		w, err := watchProcess(es.TiedTo, false)
		why := fmt.Sprintf("pid %d, which it was tied to, exited", es.TiedTo)
		if err == nil {
			e.watch = w
		}
		m.bg.Go(func() {
			if err != nil || w.wait() {
				m.forget(name, e, "tied", why)
			}
		})
	}
}

// handOver lets go of the live process (if any), leaving it running, and
// of everything under way: it cancels a TEST and a readiness check (run
// ends once they have), stops its timers, and leaves its state in
// handed, with the requests waiting for it, unanswered (a failed exec
// takes them back; after an exec their connections are gone). Requests
// that come once it is detached get nothing done (handle). Called by run.
func (s *supervisor) handOver() {
	st := SupState{
		Job: s.job, Status: s.st, RunID: s.runID, StartedAt: s.startedAt, GoalUp: s.goalUp,
		Deaths: int(s.counters.deaths), Failed: int(s.counters.failedStarts), Starts: s.counters.starts,
		MemKernel: s.memKernel, EvState: s.evState, Foreign: s.watch != nil,
		Stopping: s.stopping, StopReason: s.stopReason, StopDetail: s.stopDetail, StopNote: s.stopNote,
		Quit:   s.quit,
		Retest: s.test != nil || s.recheck != nil,
	}
	if s.restart != nil {
		st.RestartAt = s.restartAt
	}
	if s.kill != nil {
		st.KillAt = s.killAt
	}
	if s.readyTimer != nil {
		st.ReadyBy = time.Now().Add(s.job.ReadyTimeout) // Busy refuses these: a fresh wait, at worst
	}
	if s.watch != nil {
		s.watch.close() // the next image opens its own
		s.watch = nil
	}
	st.upWaiters, st.stopWaiters, st.readyWaiters = s.upWaiters, s.stopWaiters, s.readyWaiters
	s.upWaiters, s.stopWaiters, s.readyWaiters = nil, nil, nil
	s.handed = &st
	s.detached = true
	s.endReadiness(Outcome{})
	s.goalUp = false // a TEST that ends now starts nothing
	stopTimer(&s.restart)
	stopTimer(&s.recheck)
	stopTimer(&s.kill)
	if s.test != nil && s.testCancel != nil {
		close(s.testCancel)
		s.testCancel = nil
	}
	if s.live {
		s.cfg.sampler.unwatch(s.job.Name, s.st.Pid)
		if s.notes != nil {
			s.cfg.notify.routes.remove(s.st.Pid)
		}
	}
	s.live = false // its exit, if reaped before the reaper pauses, stays in reaped
}

// adoptSupervisor returns a running supervisor that carries on from st.
// Its process, if any, must be this process's child and not reaped yet
// (or reaped, with st.Exit). A process that is not the one st names
// (sameChild: on Linux, no longer an unreaped child; elsewhere, another
// start time) is taken as ended, its status unknown.
func (m *Manager) adoptSupervisor(st SupState, sink *logSink) (*supervisor, error) {
	j := st.Job
	s := &supervisor{
		job:  j,
		cfg:  m.cfg,
		sink: sink,
		busy: true, // until made: posts meanwhile wait in the queue
		// A first look at its channels: an exit may be there already.
		woken: true,

		st:        st.Status,
		goalUp:    st.GoalUp,
		runID:     st.RunID,
		startedAt: st.StartedAt,
		counters:  counters{deaths: int32(st.Deaths), failedStarts: int32(st.Failed), starts: st.Starts},
		memKernel: st.MemKernel,
		evState:   st.EvState,
		quit:      st.Quit,
	}
	s.own()
	s.upWaiters, s.stopWaiters, s.readyWaiters = st.upWaiters, st.stopWaiters, st.readyWaiters
	s.st.Held, s.st.Ephemeral = false, nil // the slot's, not the supervisor's
	if st.RunID != 0 {
		s.tail = sink.startTail(m.cfg.TailLines, m.cfg.TailBytes) // its lines from now on
	}
	var err error
	if pid := s.st.Pid; pid > 0 {
		s.live = true
		switch {
		case st.Exit != nil:
			s.reaped = st.Exit
		case st.Foreign:
			w := st.watch
			if w == nil {
				w, err = watchAlive(pid, s.st.ProcStart)
			}
			if err != nil {
				err = fmt.Errorf("adopted process %d: %w: taken as ended", pid, err)
				s.reaped = &Exit{Pid: pid, Code: -1, At: time.Now(), Unknown: true, Reason: ReasonExitUnknown}
				break
			}
			s.watch = w
			exitOf(w, s)
		default:
			if perr := sameChild(pid, s.st.ProcStart); perr != nil {
				// Not our child as handed over: its end went unseen.
				err = fmt.Errorf("process %d is not the one handed over (%v): taken as ended", pid, perr)
				s.reaped = &Exit{Pid: pid, Code: -1, At: time.Now(), Reason: "unknown"}
				break
			}
			m.cfg.Reaper.OnExit(pid, m.cfg.Reaper.Adopt(pid), s)
		}
		if st.Exit == nil && err == nil {
			s.cfg.sampler.watch(j.Name, pid, s.startedAt, s.metricsInterval(), s.memWatch())
			if j.ReadyNotify {
				s.notes = make(chan notice, 8)
				if s.notifyPath, err = s.cfg.notify.socket(); err == nil {
					s.cfg.notify.routes.add(pid, s.notes, s.wake)
				}
			}
		}
	}
	if !st.RestartAt.IsZero() {
		s.after(&s.restart, time.Until(st.RestartAt), s.restartDue)
		s.restartAt = st.RestartAt
	}
	if st.Stopping {
		s.stopping, s.stopReason, s.stopDetail, s.stopNote = true, st.StopReason, st.StopDetail, st.StopNote
		s.after(&s.kill, time.Until(st.KillAt), s.killDue)
		s.killAt = st.KillAt
	}
	if st.Retest && st.GoalUp && !st.Stopping {
		if !s.live && s.restart == nil {
			s.after(&s.restart, 0, s.restartDue) // begin: its TEST, then the start
			s.restartAt = time.Now()
		} else if s.live && j.TestInterval > 0 {
			s.after(&s.recheck, 0, s.recheckDue)
		}
	}
	if !st.ReadyBy.IsZero() && s.live {
		s.awaitReady(readyPipe{})
		s.readyTimer.Reset(time.Until(st.ReadyBy))
	}
	s.published, s.pubJob = s.st, j
	// Start order (AFTER, RESTART_WITH): it watches its dependencies again,
	// and its dependants learn its state, as no new start.
	if s.live {
		// Its process started after those of its RESTART_WITH jobs, each
		// counted 1 in this image (seed).
		s.withGen = make(map[string]uint64, len(j.RestartWith))
		for _, d := range j.RestartWith {
			s.withGen[d] = 1
		}
	}
	m.cfg.order.watch(s, nil, j.Deps())
	m.cfg.order.seed(s.st, j.Restart == RestartNever)
	s.ready()
	return s, err
}

// ClearCloseOnExec lets the descriptors of h (its pipes, its epoll
// instance) pass an exec.
func (h *Handover) ClearCloseOnExec() error {
	for _, p := range h.Pipes {
		if _, err := unix.FcntlInt(uintptr(p.FD), unix.F_SETFD, 0); err != nil {
			return os.NewSyscallError("fcntl", err)
		}
	}
	if h.Epoll > 0 {
		if _, err := unix.FcntlInt(uintptr(h.Epoll), unix.F_SETFD, 0); err != nil {
			return os.NewSyscallError("fcntl", err)
		}
	}
	return nil
}

// SetCloseOnExec marks the descriptors of h close-on-exec again.
func (h *Handover) SetCloseOnExec() {
	for _, p := range h.Pipes {
		unix.CloseOnExec(p.FD)
	}
	if h.Epoll > 0 {
		unix.CloseOnExec(h.Epoll)
	}
}
