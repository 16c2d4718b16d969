package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Outcome is what one request changed about a job, for the RELOAD answer.
type Outcome struct {
	Verb   Verb   // Started, StoppedIt, SkippedIt, FailedIt, Signalled, or Unchanged
	Detail string // why, for stopped, skipped and failed
	// Stuck (Waited): a job it waits for will not come by itself.
	Stuck bool
}

type op int

const (
	opUp       op = iota // run the TEST (if any) and start the job if it should run and is not running
	opStop               // stop the process, if any, and stay stopped
	opQuit               // opStop, then end the supervisor
	opSignal             // send sig to the process group, if a process runs
	opUpdate             // take job as the definition, keeping the process; then opUp
	opHandOver           // let go of the process, leaving it running, and end: see handOver
)

type request struct {
	op     op
	force  bool           // opUp: also start a job that exited, failed or was stopped
	nowait bool           // opUp: answer once started, not once ready (READY)
	tested *testResult    // opUp: the answer of the job's TEST a reload ran, to act on rather than run it again
	reason string         // opStop, opQuit: recorded as the run's end reason
	detail string         // opStop, opQuit: recorded as the run's end detail (why a RELOAD ended it)
	note   string         // opStop: the state's reason once stopped
	sig    syscall.Signal // opSignal
	job    *Job           // opUpdate: the new definition, which differs only in keys that steer supervision
	reply  *replyTo
}

// replyTo is where a request's outcome goes, once: the channel its sender
// waits on (do), or a function that takes it on the supervisor's goroutine
// (send: a reload's thousands of requests need no goroutine each waiting).
type replyTo struct {
	c    chan Outcome
	then func(Outcome) // quick, and never calls the supervisor
}

func (r *replyTo) send(o Outcome) {
	if r.then != nil {
		r.then(o)
		return
	}
	r.c <- o
}

// waiter waits for the outcome of an opUp.
type waiter struct {
	reply  *replyTo
	force  bool // a START: it wants to know what happened, changed or not
	nowait bool // answered once the process is started, ready or not
}

type testResult struct {
	ok       bool
	canceled bool
	why      string // "" when ok
}

// supervisor owns one job's process for its whole life. Only run touches
// the fields marked "owned by run"; others talk to it by posting events
// (post: a request, a timer that fired, a wake for its channels) and read
// the published Status.
//
// It is an actor run on demand: a post that finds it idle starts one
// goroutine (run) that handles its events one at a time until none is
// left, and returns. So a job's events are handled strictly in turn, jobs
// in parallel, and a job that waits for nothing to happen holds no
// goroutine (at 5000 jobs, parked goroutines' stacks were 20 MB of the
// daemon's; BENCHMARKS.md, issue 16).
type supervisor struct {
	job  *Job // owned by run, which replaces it at opUpdate; others call definition
	cfg  *Config
	sink *logSink // the job's log; its path names the job (log)
	// done is closed once run has ended the supervisor; made by ended,
	// for whoever waits for that (guarded by evMu).
	done chan struct{}

	evMu      sync.Mutex
	queue     []event // guarded by evMu: requests and timers' fires, in turn
	published Status  // guarded by evMu
	pubJob    *Job    // guarded by evMu: job, for other goroutines
	// reaped is the exit of the live process, guarded by evMu: the
	// reaper's (OnExit) or a watch's, until run takes it (step).
	reaped *Exit
	// The flags side by side (each alone took 8 bytes): those guarded by
	// evMu, then those owned by run.
	woken     bool // guarded by evMu: a channel of the supervisor may hold an event
	deps      bool // guarded by evMu: a job it waits for changed state
	busy      bool // guarded by evMu: a run goroutine handles the events
	over      bool // guarded by evMu: the supervisor ended; posts are dropped
	gone      bool // guarded by evMu: and its ending is done (done closed)
	goalUp    bool // the job should run
	memKernel bool // the live process's MEMORY_MAX is its cgroup's memory.max
	stopping  bool // stop signal sent, process not gone yet
	quit      bool
	detached  bool
	stuck     bool // waiting for a job (AFTER) that will not come by itself
	live      bool // a process runs: its exit comes (takeExit)

	// owned by run
	st        Status
	watch     *exitWatch // the live process's pidfd, when it is no child of ours (adopted after a crash)
	runID     int64      // the runs row of the live process
	tail      *tail      // the last lines of the live (or last) process; nil: none kept
	startedAt time.Time  // of the live process
	counters  counters   // of the restart policy (next)
	evState   State      // the New state of its last event, or the job's state before this supervisor
	// What only some supervisors hold at a time (a timer armed, a TEST,
	// a stop or a start under way, waiters, notify, RESTART_WITH): made
	// while run handles an event (own), let go when it is back to nothing
	// (tidy). Most of 5000 idle jobs hold none: a supervisor is a size
	// class of 576 bytes, not 896 (BENCHMARKS.md, issue 16).
	*underway
}

// underway is what a supervisor holds only while something is under way;
// owned by run, like the fields of supervisor so marked.
type underway struct {
	restart     *time.Timer     // armed while a restart is due
	restartAt   time.Time       // when restart fires
	recheck     *time.Timer     // armed while a TEST_INTERVAL re-test is due
	stopReason  string          // why the live process is being stopped
	stopDetail  string          // and in words, when a RELOAD stops it
	stopNote    string          // the Stopped state's reason once it is gone
	kill        *time.Timer     // armed while stopping
	killAt      time.Time       // when kill fires
	test        chan testResult // nil unless a TEST runs
	testCancel  chan struct{}
	upWaiters   []waiter   // answered when the TEST decides
	stopWaiters []*replyTo // answered when the process is gone
	// memOver (buffered 1) is where the sampler says the job's processes
	// hold more than its MEMORY_MAX; made by memWatch.
	memOver chan memOver
	// Readiness (READY), while the live process is starting: readyTimer is
	// armed (READY_TIMEOUT) until it is ready; readyC is non-nil while a
	// check (a command's loop, a descriptor's reader) runs, and sends once:
	// true when ready, false once canceled; readyWaiters are answered when
	// it is ready or will not be.
	readyTimer   *time.Timer
	readyC       chan bool
	readyCancel  chan struct{}
	readyWaiters []readyWaiter
	// READY=notify: notes receives what the live process sends over
	// sd_notify (nil for other jobs); notifyPath is the socket's path.
	notes      chan notice
	notifyPath string
	// Start order (AFTER, RESTART_WITH): deps (guarded by evMu) says a job
	// it waits for changed state (see order; wakeDeps); withGen holds the
	// start counts of its RESTART_WITH jobs when its live process was
	// started (none: the job has no RESTART_WITH, or no process).
	withGen map[string]uint64
	// waitLimit is armed (READY_TIMEOUT) while requests wait for the
	// start of a waiting job: then they are answered, and it waits on.
	waitLimit *time.Timer
	// handed is what handOver left for the next image, once detached.
	handed *SupState
}

// own makes the supervisor's underway, if it holds none: run calls it
// before each event.
func (s *supervisor) own() {
	if s.underway == nil {
		s.underway = new(underway)
	}
}

// tidy lets go of the supervisor's underway once nothing is under way:
// run calls it before it lets go of the supervisor. What it drops then
// is stale: stopReason, restartAt and killAt count only while stopping
// or their timer is armed, an empty withGen is no RESTART_WITH.
func (s *supervisor) tidy() {
	u := s.underway
	if u == nil || s.stopping || u.restart != nil || u.recheck != nil || u.kill != nil ||
		u.test != nil || u.testCancel != nil || len(u.upWaiters) > 0 || len(u.stopWaiters) > 0 ||
		u.memOver != nil || u.readyTimer != nil || u.readyC != nil || u.readyCancel != nil ||
		len(u.readyWaiters) > 0 || u.notes != nil || len(u.withGen) > 0 || u.waitLimit != nil ||
		u.handed != nil || u.stopDetail != "" || u.stopNote != "" {
		return
	}
	s.underway = nil
}

// readyWaiter waits for the live process to be ready: ok is its answer then.
type readyWaiter struct {
	reply *replyTo
	ok    Outcome
}

func newSupervisor(j *Job, cfg *Config, sink *logSink) *supervisor {
	return newSupervisorAfter(j, cfg, sink, NoState)
}

// newSupervisorAfter returns a supervisor whose first event says the job
// was in prev before it (rejected, or the final state of its previous
// definition).
func newSupervisorAfter(j *Job, cfg *Config, sink *logSink, prev State) *supervisor {
	s := &supervisor{
		job:  j,
		cfg:  cfg,
		sink: sink,
		busy: true, // until made: posts meanwhile wait in the queue
	}
	s.own()
	s.st = Status{Name: j.Name, State: Stopped, Since: time.Now(), Hash: j.Hash, Keys: j.KeyDigests, LastExit: cfg.takeLost(j.Name)}
	s.published, s.pubJob = s.st, j
	s.evState = prev
	cfg.order.watch(s, nil, j.Deps())
	s.ready()
	return s
}

// lostExits are the exits of Config.Lost not yet taken.
type lostExits struct {
	mu    sync.Mutex
	exits map[string]Exit // guarded by mu
}

// takeLost returns, once, the last exit of the job name an earlier daemon
// left, when nobody saw it (Config.Lost); else nil.
func (cfg *Config) takeLost(name string) *Exit {
	if cfg.lost == nil {
		return nil
	}
	cfg.lost.mu.Lock()
	defer cfg.lost.mu.Unlock()
	e, ok := cfg.lost.exits[name]
	if !ok {
		return nil
	}
	delete(cfg.lost.exits, name)
	return &e
}

// log returns the daemon's logger for the job's lines: made for each
// line rather than kept (300 bytes per job; a job logs at its starts and
// ends). The job's name is its log's (every definition the supervisor
// runs has it), so that goroutines other than run may log too.
func (s *supervisor) log() *slog.Logger { return s.cfg.Logger.With("job", s.sink.job()) }

// Status returns the job's last published state.
func (s *supervisor) Status() Status {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	return s.published
}

// definition returns the job's definition, as last published: the
// supervisor's run may replace it (opUpdate).
func (s *supervisor) definition() *Job {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	return s.pubJob
}

// do sends a request and waits for its outcome. The caller waits anyway:
// finding the supervisor idle, it handles its events itself, up to its
// own request, rather than start a goroutine for them (at a reload of
// 5000 jobs, 5000 goroutines fewer at once; the runtime keeps the memory
// of as many goroutines as ever ran at once).
func (s *supervisor) do(r request) Outcome {
	r.reply = &replyTo{c: make(chan Outcome, 1)}
	s.submit(r)
	return <-r.reply.c
}

// send sends a request whose outcome goes to then, and returns without
// waiting for it: finding the supervisor idle, it handles its events
// itself up to this request, as do does. then runs once, where the
// outcome is known (usually on the supervisor's goroutine): it must be
// quick and must not call the supervisor.
func (s *supervisor) send(r request, then func(Outcome)) {
	r.reply = &replyTo{then: then}
	s.submit(r)
}

// submit posts the request r, and handles the supervisor's events up to
// it when it finds the supervisor idle.
func (s *supervisor) submit(r request) {
	s.evMu.Lock()
	if s.over {
		s.evMu.Unlock()
		r.reply.send(Outcome{})
		return
	}
	s.queue = append(s.queue, event{req: true, r: r})
	idle := !s.busy
	s.busy = true
	s.evMu.Unlock()
	if idle {
		s.run(r.reply)
	}
}

// event is what is posted to a supervisor: a request (req), a function
// to run in turn (fn: a timer that fired), or neither: a wake, saying
// that one of its channels (test, readyC, notes, memOver) or reaped may
// hold something, or with deps, that a job it waits for changed state.
type event struct {
	req  bool
	deps bool
	r    request
	fn   func()
}

// post hands ev to the supervisor, and starts run if none runs; false:
// the supervisor has ended, and ev is dropped.
func (s *supervisor) post(ev event) bool {
	s.evMu.Lock()
	if s.over {
		s.evMu.Unlock()
		return false
	}
	if ev.req || ev.fn != nil {
		s.queue = append(s.queue, ev)
	} else {
		s.woken = true
		s.deps = s.deps || ev.deps
	}
	start := !s.busy
	s.busy = true
	s.evMu.Unlock()
	if start {
		go s.run(nil)
	}
	return true
}

// wake tells the supervisor that one of its channels may hold an event:
// whoever sends on one calls it after the send.
func (s *supervisor) wake() { s.post(event{}) }

// takeExit hands the supervisor the exit of its live process (the
// reaper's, OnExit, or a watch's, exitOf), kept in reaped until run
// takes it; a supervisor that let go of its process (handOver) leaves it
// there for Detach.
func (s *supervisor) takeExit(e Exit) {
	s.evMu.Lock()
	s.reaped = &e
	s.evMu.Unlock()
	s.wake()
}

// ready ends the making of a supervisor (busy until then): it handles
// whatever was posted meanwhile, or the events a handed-over state left.
func (s *supervisor) ready() { s.letGo() }

// letGo ends a turn of handling events outside run's own loop (the
// making of a supervisor, a caller that ran events inline): the
// supervisor goes idle, or a goroutine of its own takes what is pending.
func (s *supervisor) letGo() {
	s.tidy()
	s.evMu.Lock()
	pending := len(s.queue) > 0 || s.woken
	s.busy = pending
	s.evMu.Unlock()
	if pending {
		go s.run(nil)
	}
}

// after arms *t to run fire in turn once d has passed; stopped
// (stopTimer) or replaced meanwhile, its fire is stale and ignored.
func (s *supervisor) after(t **time.Timer, d time.Duration, fire func()) {
	var armed *time.Timer
	armed = time.AfterFunc(d, func() {
		s.post(event{fn: func() {
			if *t == armed {
				*t = nil
				fire()
			}
		}})
	})
	*t = armed
}

// run handles the supervisor's events in turn until none is left (then
// it returns; the next post starts it again) or the supervisor ends.
// With mine (submit's reply), it returns once it handled that request,
// and a goroutine of its own handles what is left.
func (s *supervisor) run(mine *replyTo) {
	for {
		s.evMu.Lock()
		var ev event
		switch {
		case len(s.queue) > 0:
			ev = s.queue[0]
			s.queue[0] = event{}
			if s.queue = s.queue[1:]; len(s.queue) == 0 {
				s.queue = nil // a parked supervisor keeps no queue
			}
		case s.woken:
			s.woken = false
		default:
			s.tidy()
			s.busy = false
			s.evMu.Unlock()
			return
		}
		s.evMu.Unlock()
		s.own()
		switch {
		case ev.req:
			s.handle(ev.r)
		case ev.fn != nil:
			ev.fn()
		default:
			for s.alive() && s.step() {
			}
		}
		if !s.alive() {
			s.finish()
			return
		}
		if mine != nil && ev.req && ev.r.reply == mine {
			s.letGo()
			return
		}
	}
}

// alive says whether the supervisor goes on after its last event: it ends
// once detached, or quitting with no process, and nothing is in flight.
func (s *supervisor) alive() bool {
	if s.test != nil || s.readyC != nil {
		return true
	}
	return !s.detached && !(s.quit && !s.live)
}

// finish ends the supervisor: requests posted but not handled get
// nothing done, as for a supervisor gone.
func (s *supervisor) finish() {
	s.end()
	s.evMu.Lock()
	s.over = true
	left := s.queue
	s.queue, s.woken, s.deps = nil, false, false
	s.evMu.Unlock()
	for _, ev := range left {
		if ev.req {
			ev.r.reply.send(Outcome{})
		}
	}
	s.evMu.Lock()
	s.gone = true
	done := s.done
	s.evMu.Unlock()
	if done != nil {
		close(done)
	}
}

// ended returns a channel closed once the supervisor has ended (made on
// demand: most supervisors' ends are waited for by nobody).
func (s *supervisor) ended() <-chan struct{} {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
		if s.gone {
			close(s.done)
		}
	}
	return s.done
}

// end lets go of what the supervisor holds, once it quits.
func (s *supervisor) end() {
	if s.detached {
		return // its process runs on: the next image adopts it
	}
	stopTimer(&s.recheck)
	s.cfg.order.watch(s, s.job.Deps(), nil)
	if cg := s.cfg.cgroups; cg != nil {
		if err := cg.remove(s.job.Name); err != nil {
			s.log().Warn("remove the job's cgroup", "err", err)
		}
	}
}

// step acts on one event its channels hold; false: they held none.
func (s *supervisor) step() bool {
	s.evMu.Lock()
	deps := s.deps
	s.deps = false
	var e *Exit
	if !deps && s.live {
		e, s.reaped = s.reaped, nil
	}
	s.evMu.Unlock()
	if deps {
		s.onDeps()
		return true
	}
	if e != nil {
		s.onExit(*e)
		return true
	}
	select {
	case t := <-s.test:
		s.onTest(t)
	case m := <-s.memOver:
		s.onMemory(m)
	case ok := <-s.readyC:
		s.readyC = nil
		if ok && s.readyTimer != nil {
			s.onReady()
		}
	case n := <-s.notes:
		s.onNotice(n)
	default:
		return false
	}
	return true
}

// The timers' fires (see after), each run in turn.
func (s *supervisor) restartDue() { s.begin() }

func (s *supervisor) recheckDue() {
	if s.goalUp && s.test == nil && !s.stopping && s.restart == nil {
		s.startTest()
	}
}

func (s *supervisor) killDue() { s.signal(syscall.SIGKILL) }

func (s *supervisor) handle(r request) {
	if s.detached {
		// Handed over, it lives on only until its canceled TEST or
		// readiness check ends: the job is the next image's now.
		r.reply.send(Outcome{})
		return
	}
	switch r.op {
	case opUp:
		if s.quit {
			r.reply.send(Outcome{}) // on its way out: a newer version takes over
			return
		}
		if s.readyTimer != nil && !s.stopping && (r.tested == nil || r.tested.ok) {
			// Started, not ready yet: a START learns when it is; a RELOAD
			// has nothing to change.
			s.goalUp = true
			if r.force && !r.nowait {
				s.readyWaiters = append(s.readyWaiters, readyWaiter{r.reply, Outcome{}})
			} else {
				r.reply.send(Outcome{})
			}
			return
		}
		idle := !s.live && s.test == nil && s.restart == nil
		if !r.force && !s.goalUp && idle && (s.st.State == Exited || s.st.State == Stopped) {
			r.reply.send(Outcome{}) // RESTART or a stop said so; only a forced start overrides
			return
		}
		if idle && (s.st.State == Failed || r.force) {
			s.counters = counters{} // a fresh start
		}
		if r.force {
			s.counters.starts = nil // START_LIMIT counts from a START or RESTART
		}
		s.goalUp = true
		s.upWaiters = append(s.upWaiters, waiter{r.reply, r.force, r.nowait})
		switch {
		case s.test != nil:
			// join the TEST in flight
		case s.restart != nil && r.force:
			stopTimer(&s.restart) // START does not wait out a backoff
			s.begin()
		case s.restart != nil || s.stopping:
			// begin runs the TEST when the start is due; a START waits for it.
			s.answerUnforced(Outcome{})
		case !s.live && s.gate():
			// waiting for the jobs it starts after; gate answered or kept the waiters
		case s.job.Test != nil && r.tested != nil:
			s.takeTest(*r.tested)
		case s.job.Test != nil:
			s.startTest()
		case !s.live:
			s.spawn()
		default:
			s.answerUp(Outcome{}) // running, no TEST
		}
	case opStop, opQuit:
		s.quit = s.quit || r.op == opQuit
		s.goalUp = false
		s.answerUnforced(Outcome{})
		s.answerUp(Outcome{Verb: StoppedIt, Detail: "a stop came first"})
		s.endReadiness(Outcome{Verb: StoppedIt, Detail: "a stop came first"})
		stopTimer(&s.restart)
		stopTimer(&s.recheck)
		stopTimer(&s.waitLimit)
		if s.test != nil && s.testCancel != nil {
			close(s.testCancel)
			s.testCancel = nil
		}
		if !s.live {
			if r.note != "" || s.st.State != Stopped && s.st.State != Skipped && s.st.State != Exited && s.st.State != Failed {
				s.set(Stopped, r.note, stopWords(r.reason))
			}
			r.reply.send(Outcome{})
			return
		}
		s.stopNote = r.note
		s.stopWaiters = append(s.stopWaiters, r.reply)
		s.stopProcess(r.reason, r.detail)
	case opUpdate:
		if !s.quit {
			s.update(r.job)
		}
		r.op = opUp
		s.handle(r)
	case opHandOver:
		s.handOver()
		r.reply.send(Outcome{})
	case opSignal:
		if !s.live {
			r.reply.send(Outcome{Detail: "not running"})
			return
		}
		s.signal(r.sig)
		r.reply.send(Outcome{Verb: Signalled, Detail: fmt.Sprint(s.st.Pid)})
	}
}

// update takes j as the job's definition while its process (if any) runs
// on: j differs only in keys that steer supervision (see PolicyKeys),
// which apply from now on: a stop already under way keeps its timeout, a
// backoff already armed its delay.
func (s *supervisor) update(j *Job) {
	old := s.job
	s.job = j
	if !slices.Equal(old.Deps(), j.Deps()) {
		// A name new to RESTART_WITH counts from now: only its next new
		// process restarts this one (the update promises no restart).
		for _, d := range j.RestartWith {
			if _, ok := s.withGen[d]; !ok && s.live {
				if s.withGen == nil {
					s.withGen = make(map[string]uint64)
				}
				s.withGen[d] = s.cfg.order.gen(d)
			}
		}
		s.cfg.order.watch(s, old.Deps(), j.Deps())
		s.wakeDeps() // a waiting job reads its new dependencies
	}
	s.st.Hash, s.st.Keys = j.Hash, j.KeyDigests // the jobs row's config_hash names the definition in force
	// START_LIMIT counts from a changed file.
	s.counters.starts = nil
	if keys := changedKeys(old, j); s.st.State == Running && len(keys) > 0 {
		// STATUS says so until the job's state next changes.
		s.st.Reason = "updated: " + strings.Join(keys, ", ") + " changed, no restart"
	}
	s.publish()
	if err := s.cfg.Recorder.RecordState(context.Background(), s.st); err != nil {
		s.log().Warn("record state", "err", err)
	}
	if was, now := metricsIntervalOf(old, s.cfg), metricsIntervalOf(j, s.cfg); s.live && was != now {
		s.cfg.sampler.unwatch(j.Name, s.st.Pid)
		s.cfg.sampler.watch(j.Name, s.st.Pid, s.startedAt, now, s.memWatch())
	}
	if j.TestInterval != old.TestInterval && s.recheck != nil {
		stopTimer(&s.recheck)
		if j.TestInterval > 0 {
			s.after(&s.recheck, j.TestInterval, s.recheckDue)
		}
	}
}

// stopProcess sends the stop signal to the job's group and arms the KILL.
// Stopping already, a request's reason still replaces a failed TEST's: the
// job then ends stopped, not skipped.
func (s *supervisor) stopProcess(reason, why string) {
	if s.stopping {
		if reason != "test-failed" {
			s.stopReason, s.stopDetail = reason, why
		}
		return
	}
	s.stopping = true
	s.stopReason, s.stopDetail = reason, why
	cause := stopWords(reason)
	note := ""
	if reason == "test-failed" || reason == ReasonMemory || reason == ReasonNotReady || reason == ReasonRestartWith {
		cause, note = why, why
	}
	s.set(Stopping, note, cause)
	s.signal(s.job.StopSignal)
	s.after(&s.kill, s.job.StopTimeout, s.killDue)
	s.killAt = time.Now().Add(s.job.StopTimeout)
}

// begin starts the job when a start is due: through its TEST if it has one.
func (s *supervisor) begin() {
	if s.test != nil {
		return // the TEST in flight decides
	}
	if s.gate() {
		return // its dependencies' changes wake it (onDeps)
	}
	if s.job.Test != nil {
		s.startTest()
		return
	}
	s.spawn()
}

func (s *supervisor) onTest(t testResult) {
	s.test = nil
	s.testCancel = nil
	if !s.goalUp {
		s.answerUp(Outcome{}) // it exited or gave up meanwhile
		return
	}
	if t.canceled {
		s.begin() // stopped, then asked up again before the TEST ended
		return
	}
	if s.job.TestInterval > 0 {
		s.after(&s.recheck, s.job.TestInterval, s.recheckDue)
	}
	if t.ok {
		if !s.live && s.restart == nil {
			s.spawn()
			return
		}
		s.answerUp(Outcome{})
		return
	}
	if s.live {
		// The condition went away while the job runs: stop it, and answer
		// the reload once it is gone.
		s.endReadiness(Outcome{Verb: SkippedIt, Detail: t.why})
		for _, w := range s.upWaiters {
			s.stopWaiters = append(s.stopWaiters, w.reply)
		}
		s.upWaiters = nil
		s.stopProcess("test-failed", t.why)
		return
	}
	stopTimer(&s.restart)
	out := Outcome{Verb: SkippedIt, Detail: t.why}
	if s.st.State == Skipped && s.st.Reason == t.why {
		s.answerUnforced(Outcome{}) // no change: a RELOAD says nothing, a START says why
		s.answerUp(out)
		return
	}
	s.set(Skipped, t.why, t.why)
	s.answerUp(out)
}

func (s *supervisor) onExit(e Exit) {
	pgid := s.st.Pid
	s.live = false
	s.watch = nil // exitOf closed it
	s.st.Pid = 0
	s.cfg.sampler.unwatch(s.job.Name, pgid)
	if !s.stopping && s.oomKilled(e) { // read before its cgroup goes
		e.Reason, e.Detail = ReasonMemory, fmt.Sprintf("over MEMORY_MAX of %s: killed by the kernel", FormatSize(s.job.MemoryMax))
	}
	if s.notes != nil {
		s.cfg.notify.routes.remove(pgid)
	}
	// Whatever the job left in its process group goes with it, so a
	// restart never runs next to leftovers of the previous process.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
		s.log().Debug("killed what the process left in its group", "pgid", pgid)
	}
	// After a crash the job may start again at once: in the same cgroup,
	// if it held nothing more (never killed, see cgroupTree.end) and no
	// MEMORY_MAX counts OOM kills in it. Making and removing a cgroup at
	// each restart were a fifth of the time from an exit to the restart's
	// fork (100 jobs, median of 40 SIGKILLs).
	kept := s.endLeftovers(pgid, !s.stopping && !s.memKernel)
	if kept {
		defer func() {
			if !s.live { // no process started in it after all
				s.removeCgroup()
			}
		}()
	}
	if s.readyTimer != nil {
		s.endReadiness(Outcome{Verb: FailedIt, Detail: "ended before it was ready: " + exitWords(e)})
	}
	if s.stopping && (s.stopReason == ReasonMemory || s.stopReason == ReasonNotReady) {
		// Stopped for its memory (onMemory) or for not getting ready: a
		// crash, a failed start, for the policy.
		s.stopping = false
		stopTimer(&s.kill)
		e.Reason, e.Detail = s.stopReason, s.stopDetail
		s.stopDetail, s.stopNote = "", ""
	} else if s.stopping {
		s.stopping = false
		stopTimer(&s.kill)
		e.Reason, e.Detail = s.stopReason, s.stopDetail
		s.stopDetail = ""
		state, why := Stopped, s.stopNote
		s.stopNote = ""
		if e.Reason == "test-failed" {
			state, why = Skipped, s.st.Reason
		}
		s.recordExit(e, state, why)
		out := Outcome{Verb: StoppedIt, Detail: why}
		if state == Stopped {
			out.Detail = ""
		}
		for _, w := range s.stopWaiters {
			w.send(out)
		}
		s.stopWaiters = nil
		if s.goalUp && state == Stopped { // asked up again while it was stopping
			s.begin()
		} else {
			s.answerUp(out) // a START that came meanwhile learns why not
		}
		if state == Skipped && s.job.TestInterval > 0 && !s.quit {
			stopTimer(&s.recheck) // it may have fired while stopping
			s.after(&s.recheck, s.job.TestInterval, s.recheckDue)
		}
		return
	}
	s.log().Info("process ended", "pid", e.Pid, "how", e.String())
	d := next(e, e.At.Sub(s.startedAt), s.counters, s.job)
	s.counters = d.counters
	switch d.then {
	case StayExited:
		s.goDown(Outcome{})
		s.recordExit(e, Exited, "")
	case GiveUp:
		s.goDown(Outcome{Verb: FailedIt, Detail: d.why})
		s.recordExit(e, Failed, d.why)
	case RestartNow:
		s.st.Restarts++
		s.recordExit(e, Starting, "")
		s.begin()
	case BackOff:
		s.st.Restarts++
		s.recordExit(e, Backoff, fmt.Sprintf("restart in %v", d.delay))
		s.after(&s.restart, d.delay, s.restartDue)
		s.restartAt = time.Now().Add(d.delay)
	}
}

// endLeftovers ends, once the job's process and group are gone, what it
// started outside its group (setpgid, setsid, double forks): everything
// in its cgroup, or else the daemon's orphaned children still in its
// session sid or marked as the job's. It returns when they are gone (or
// it gave up), before the job restarts, answers a stop or goes.
//
// With keep, an empty cgroup that was never killed is kept (and it
// returns true) for the job's next process; otherwise it is removed.
func (s *supervisor) endLeftovers(sid int, keep bool) (kept bool) {
	if cg := s.cfg.cgroups; cg != nil {
		n, err := cg.kill(s.job.Name, cgroupKillWait)
		if err != nil {
			s.log().Warn("kill what the job left in its cgroup", "err", err)
			return false
		}
		if n > 0 {
			s.log().Info("killed what the job left in its cgroup", "count", n)
		}
		if keep && n == 0 {
			return true
		}
		s.removeCgroup()
		return false
	}
	if n := stopLeftovers(sid, s.cfg.Instance, s.job.Name, s.cfg.Reaper.Waits, s.job.StopTimeout); n > 0 {
		s.log().Info("stopped what the job left outside its group", "count", n)
	}
	return false
}

// removeCgroup removes the job's (empty) cgroup.
func (s *supervisor) removeCgroup() {
	if err := s.cfg.cgroups.remove(s.job.Name); err != nil {
		s.log().Warn("remove the job's cgroup", "err", err)
	}
}

// cgroupKillWait bounds the wait for a killed cgroup to empty: KILL
// cannot be ignored, only delayed by a process stuck in the kernel.
const cgroupKillWait = 5 * time.Second

// metricsInterval returns how often the job's processes are sampled while
// it runs: its METRICS_INTERVAL, else the daemon's default; 0: never.
func (s *supervisor) metricsInterval() time.Duration {
	return metricsIntervalOf(s.job, s.cfg)
}

func metricsIntervalOf(j *Job, cfg *Config) time.Duration {
	if j.MetricsIntervalSet {
		return j.MetricsInterval
	}
	return cfg.MetricsInterval
}

// spawn starts the job's process and answers the up waiters.
func (s *supervisor) spawn() {
	// Taken before the fork: the reaper dates the exit of a process that
	// ends at once after it, never before.
	startedAt := time.Now()
	s.memKernel = s.limitMemory()
	notify, err := s.readyFd()
	if err == nil && s.job.ReadyNotify {
		s.notifyPath, err = s.cfg.notify.socket()
		if s.notes == nil {
			s.notes = make(chan notice, 8)
		}
	}
	if err != nil {
		why := "cannot start: " + err.Error()
		s.log().Warn("cannot start", "err", err)
		s.set(Failed, why, why)
		s.goDown(Outcome{Verb: FailedIt, Detail: why})
		return
	}
	s.tail = s.sink.startTail(s.cfg.TailLines, s.cfg.TailBytes)
	pid, exited, mark, err := s.startMarked(s.job, s.job.Command, StreamOut, StreamErr, notify.w)
	notify.w.Close() // the child has its copy
	if err != nil {
		notify.r.Close()
		why := "cannot start: " + s.describeStartError(s.job, err)
		s.log().Warn("cannot start", "err", err)
		s.set(Failed, why, why)
		s.goDown(Outcome{Verb: FailedIt, Detail: why})
		return
	}
	s.live = true
	s.cfg.Reaper.OnExit(pid, exited, s)
	s.startedAt = startedAt
	s.st.Pid = pid
	if s.job.ReadyNotify {
		s.cfg.notify.routes.add(pid, s.notes, s.wake) // its session: it is the leader
	}
	s.st.ProcStart = childStart(pid, mark) // for a later daemon, should this one die
	s.st.State = Running
	s.st.Since = s.startedAt
	s.st.Reason = ""
	s.st.Ready, s.st.NotifyStatus = 0, ""
	if s.job.HasReady() {
		s.st.State, s.st.Reason = Starting, waitingReady
	}
	// Recorded before it is shown: whoever sees it running finds its run.
	id, err := s.cfg.Recorder.RecordStart(context.Background(), s.st, s.startedAt)
	if err != nil {
		s.log().Warn("record start", "err", err)
	}
	s.runID = id
	s.publish()
	s.withGen = make(map[string]uint64, len(s.job.RestartWith))
	for _, d := range s.job.RestartWith {
		s.withGen[d] = s.cfg.order.gen(d)
	}
	s.cfg.sampler.watch(s.job.Name, pid, s.startedAt, s.metricsInterval(), s.memWatch())
	s.emit(pid, "started")
	s.log().Info("started", "pid", pid)
	if s.job.HasReady() {
		s.awaitReady(notify)
		for _, w := range s.upWaiters {
			if w.nowait {
				w.reply.send(Outcome{Verb: Started})
				continue
			}
			s.readyWaiters = append(s.readyWaiters, readyWaiter{w.reply, Outcome{Verb: Started}})
		}
		s.upWaiters = nil
		return
	}
	s.answerUp(Outcome{Verb: Started})
}

// environ is the job's environment, built at each start rather than kept
// (a kilobyte or more per job): the daemon's, then user (a USER's HOME,
// USER and LOGNAME), then the file's keys, which win, then overseer's marks.
func (s *supervisor) environ(j *Job, user []string) []string {
	return slices.Concat(s.cfg.Environ, user, j.Env,
		[]string{InstanceEnv + "=" + s.cfg.Instance, JobEnv + "=" + j.Name}, indexEnv(j))
}

// start runs argv in the job's environment and directory, in a session of
// its own (so its whole process group can be signalled, and it has no
// controlling terminal), with stdin from /dev/null and stdout and stderr
// copied line by line to the job's log as outStream and errStream.
//
// fd, if not nil, is given to the process as descriptor j.ReadyFd (READY=fd:N).
func (s *supervisor) start(j *Job, argv []string, outStream, errStream string, fd *os.File) (int, <-chan Exit, error) {
	pid, exited, _, err := s.startMarked(j, argv, outStream, errStream, fd)
	return pid, exited, err
}

// startMarked is start that also returns startMark's reading just before
// the fork, for childStart.
func (s *supervisor) startMarked(j *Job, argv []string, outStream, errStream string, fd *os.File) (int, <-chan Exit, int64, error) {
	// A place among the starts under way before any descriptor is made.
	defer s.cfg.Reaper.Reserve()()
	env, dir := s.environ(j, nil), j.Dir
	attr := &syscall.SysProcAttr{Setsid: true}
	if cg := s.cfg.cgroups; cg != nil && outStream != StreamTest {
		// The job's process starts in its cgroup, and all it forks stays
		// there; a TEST runs beside it, in the daemon's.
		fd, err := cg.open(j.Name)
		if err != nil {
			return 0, nil, 0, fmt.Errorf("cgroup: %w", err)
		}
		defer syscall.Close(fd)
		intoCgroup(attr, fd)
	}
	if j.User != "" {
		// Resolved now, not when the file was read, so a change to the
		// user database counts at the next start.
		id, err := lookupIdentity(j.User, j.Group)
		if err != nil {
			return 0, nil, 0, err
		}
		attr.Credential = id.cred
		// The user's HOME, USER and LOGNAME; the file's own keys still win.
		env = s.environ(j, id.environ())
		if dir == "" {
			dir = id.dir()
		}
	}
	if dir == "" {
		dir = s.cfg.Home
	}
	if j.ReadyNotify && outStream == StreamOut {
		env = append(env, NotifyEnv+"="+s.notifyPath)
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return 0, nil, 0, err
	}
	// One pipe per stream; one for both when they share a name (a TEST's
	// output), which keeps their lines in the order they were written.
	var ws []*os.File
	var rs [2]int // the read ends, for the holder once the child is forked
	defer func() {
		for _, w := range ws {
			w.Close() // the child has its copies; without a child, the pipe ends
		}
	}()
	for _, name := range []string{outStream, errStream} {
		if len(ws) > 0 && outStream == errStream {
			break
		}
		w, r, err := s.cfg.pipes.unheld(s.sink, name)
		if err != nil {
			return 0, nil, 0, err
		}
		rs[len(ws)] = r
		if c := attr.Credential; c != nil {
			if err := givePipe(w, int(c.Uid), int(c.Gid)); err != nil {
				w.Close()
				return 0, nil, 0, err
			}
		}
		ws = append(ws, w)
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Dir:         dir,
		Env:         env,
		Stdout:      ws[0],
		Stderr:      ws[len(ws)-1],
		SysProcAttr: attr,
	}
	if null, err := devNull(); err == nil {
		cmd.Stdin = null
	}
	if fd != nil {
		cmd.ExtraFiles = make([]*os.File, j.ReadyFd-2) // entry i is descriptor 3+i; nil ones are closed
		cmd.ExtraFiles[j.ReadyFd-3] = fd
	}
	mark := startMark()
	pid, exited, err := s.cfg.Reaper.StartReserved(cmd)
	if err == nil {
		// While ws are open, rs are still these pipes' (see unheld).
		for i := range ws {
			s.cfg.pipes.hold(rs[i])
		}
	}
	return pid, exited, mark, err
}

// devNull is /dev/null, opened once: every process's stdin. Left to
// exec.Cmd, each start opened it (an open, four fcntl, an epoll_ctl and a
// close, before the fork).
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// lookPath finds a program the way a shell would, on the job's own PATH.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v // the last one wins, as in exec.Cmd
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH", name)
}

func (s *supervisor) describeStartError(j *Job, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		why := fmt.Sprintf("%s %s: %v", strings.TrimPrefix(pe.Op, "fork/"), pe.Path, pe.Err)
		if j.User != "" && errors.Is(pe.Err, os.ErrPermission) {
			// The child reports a DIR it may not enter as an exec error.
			why += fmt.Sprintf(" (as USER %s: it may not run the program, or not enter DIR)", j.User)
		}
		return why
	}
	return err.Error()
}

// startTest runs the job's TEST in a goroutine; its result arrives on s.test.
func (s *supervisor) startTest() {
	if !s.live && s.st.State != Skipped {
		s.set(Starting, "", "running test") // a skipped job stays skipped until its TEST passes
	}
	stopTimer(&s.recheck)
	s.test = make(chan testResult, 1)
	s.testCancel = make(chan struct{})
	go func(j *Job, res chan<- testResult, cancel <-chan struct{}) {
		res <- s.runTest(j, cancel) // j: s.job belongs to run, which may update it meanwhile
		s.wake()
	}(s.job, s.test, s.testCancel)
}

// takeTest acts on the answer of the job's TEST that a reload ran for
// this definition, as if the supervisor had run it.
func (s *supervisor) takeTest(t testResult) {
	if !s.live && s.st.State != Skipped {
		s.set(Starting, "", "running test")
	}
	stopTimer(&s.recheck)
	s.onTest(t)
}

// runTest runs TEST to completion, its timeout or cancel, whichever comes
// first. Its output goes to the job's log as the test stream.
func (s *supervisor) runTest(j *Job, cancel <-chan struct{}) testResult {
	select {
	case s.cfg.tests <- struct{}{}:
		defer func() { <-s.cfg.tests }()
	case <-cancel:
		return testResult{canceled: true}
	}
	pid, exited, err := s.start(j, j.Test, StreamTest, StreamTest, nil)
	if err != nil {
		return testResult{why: "test cannot start: " + s.describeStartError(j, err)}
	}
	timer := time.NewTimer(j.TestTimeout)
	defer timer.Stop()
	select {
	case e := <-exited:
		syscall.Kill(-pid, syscall.SIGKILL) // leftovers of the test's group
		switch {
		case e.Code == 0 && e.Signal == "":
			return testResult{ok: true}
		case e.Signal != "":
			return testResult{why: "test killed by " + e.Signal}
		default:
			return testResult{why: fmt.Sprintf("test exited %d", e.Code)}
		}
	case <-timer.C:
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return testResult{why: fmt.Sprintf("test timed out after %v", j.TestTimeout)}
	case <-cancel:
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return testResult{canceled: true}
	}
}

// signal sends sig to the job's whole process group.
func (s *supervisor) signal(sig syscall.Signal) {
	if s.st.Pid > 0 {
		if err := syscall.Kill(-s.st.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.log().Warn("signal", "sig", SignalName(sig), "err", err)
		}
	}
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// goDown stops trying to run the job until a request asks again, and
// answers whoever waits for it to start.
func (s *supervisor) goDown(o Outcome) {
	s.goalUp = false
	stopTimer(&s.recheck)
	s.answerUp(o)
}

func (s *supervisor) answerUp(o Outcome) {
	for _, w := range s.upWaiters {
		w.reply.send(o)
	}
	s.upWaiters = nil
}

// answerUnforced answers the waiters that are not START requests, and
// keeps those.
func (s *supervisor) answerUnforced(o Outcome) {
	kept := s.upWaiters[:0]
	for _, w := range s.upWaiters {
		if w.force {
			kept = append(kept, w)
		} else {
			w.reply.send(o)
		}
	}
	s.upWaiters = kept
}

// set enters state and saves it; cause says what happened, for its event.
func (s *supervisor) set(state State, reason, cause string) {
	s.st.State = state
	s.st.Since = time.Now()
	s.st.Reason = reason
	s.publish()
	s.emit(s.st.Pid, cause)
	if err := s.cfg.Recorder.RecordState(context.Background(), s.st); err != nil {
		s.log().Warn("record state", "err", err)
	}
}

// recordExit enters state after the process ended with e, and saves both.
func (s *supervisor) recordExit(e Exit, state State, reason string) {
	last := e // without the tail: the job keeps its live process's only
	s.st.LastExit = &last
	if t, end := s.tail, e.At; t != nil {
		e.Tail = func() string { return t.Text(end) } // read by the store's writer, not here
	}
	s.st.State = state
	s.st.Since = e.At
	if e.Reason == ReasonMemory { // the note says why it ended: over MEMORY_MAX ...; restart in 2s
		reason = strings.TrimSuffix(e.Detail+"; "+reason, "; ")
	}
	s.st.Reason = reason
	s.publish()
	cause := exitWords(e)
	if state == Failed || state == Backoff || e.Reason == ReasonMemory {
		cause += ", " + reason // gave up: ..., restart in 2s
	}
	s.emit(e.Pid, cause)
	if err := s.cfg.Recorder.RecordExit(context.Background(), s.runID, e, s.st); err != nil {
		s.log().Warn("record exit", "err", err)
	}
	s.runID = 0
}

func (s *supervisor) publish() {
	s.evMu.Lock()
	s.published, s.pubJob = s.st, s.job
	s.evMu.Unlock()
	s.cfg.order.publish(s.st, s.stuck, s.job.Restart == RestartNever)
}

// emit tells EVENTS subscribers and waiters that the job entered its state,
// if that is a new one: pid is the process concerned (0: none), cause what
// happened. It never blocks (see broker).
func (s *supervisor) emit(pid int, cause string) {
	if s.st.State == s.evState {
		return
	}
	s.cfg.events.publish(Event{At: s.st.Since, Job: s.job.Name, Old: s.evState, New: s.st.State, Pid: pid, Reason: cause})
	s.evState = s.st.State
}
