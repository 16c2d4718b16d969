package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timings of supervision. Issue-level knobs may make these per job.
const (
	stopTimeout = 10 * time.Second // stop signal, then KILL after this
	testTimeout = 10 * time.Second // a TEST running longer counts as "should not run"
	// A process that lived at least minUptime is restarted at once; one that
	// died sooner is restarted after a delay doubling from firstDelay to
	// maxDelay, so a crash loop cannot spin the CPU.
	minUptime  = time.Second
	firstDelay = 500 * time.Millisecond
	maxDelay   = 30 * time.Second
)

// Outcome is what one request changed about a job, for the RELOAD answer.
type Outcome struct {
	Verb   string // "started", "stopped", "skipped", "failed", or "" for no change
	Detail string // why, for stopped, skipped and failed
}

type op int

const (
	opUp   op = iota // run the TEST (if any) and start the job if it should run and is not running
	opStop           // stop the process, if any, and stay stopped
	opQuit           // opStop, then end the supervisor
)

type request struct {
	op     op
	force  bool   // opUp: also start a job that exited or was stopped
	reason string // opStop, opQuit: recorded as the run's end reason
	reply  chan Outcome
}

type testResult struct {
	ok       bool
	canceled bool
	why      string // "" when ok
}

// supervisor owns one job's process for its whole life. Only run touches
// the fields marked "owned by run"; others talk to it through reqs and
// read the published Status.
type supervisor struct {
	job     *Job
	cfg     *Config
	log     *slog.Logger
	env     []string
	reqs    chan request
	done    chan struct{}
	logPath string

	mu        sync.Mutex
	published Status // guarded by mu

	// owned by run
	st          Status
	goalUp      bool            // the job should run
	exited      <-chan Exit     // nil unless a process runs
	runID       int64           // the runs row of the live process
	startedAt   time.Time       // of the live process
	shortRuns   int             // consecutive runs shorter than minUptime
	restart     *time.Timer     // armed while a restart is due
	stopping    bool            // stop signal sent, process not gone yet
	stopReason  string          // why the live process is being stopped
	kill        *time.Timer     // armed while stopping
	test        chan testResult // nil unless a TEST runs
	testCancel  chan struct{}
	upWaiters   []chan Outcome // answered when the TEST decides
	stopWaiters []chan Outcome // answered when the process is gone
	quit        bool
}

func newSupervisor(j *Job, cfg *Config) *supervisor {
	s := &supervisor{
		job:     j,
		cfg:     cfg,
		log:     cfg.Logger.With("job", j.Name),
		env:     append(append([]string(nil), cfg.Environ...), j.Env...),
		reqs:    make(chan request),
		done:    make(chan struct{}),
		logPath: filepath.Join(cfg.LogDir, j.Name+".log"),
	}
	s.st = Status{Name: j.Name, State: Stopped, Since: time.Now(), Hash: j.Hash}
	s.published = s.st
	go s.run()
	return s
}

// Status returns the job's last published state.
func (s *supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published
}

// do sends a request and waits for its outcome.
func (s *supervisor) do(r request) Outcome {
	r.reply = make(chan Outcome, 1)
	select {
	case s.reqs <- r:
	case <-s.done:
		return Outcome{}
	}
	return <-r.reply
}

func (s *supervisor) run() {
	defer close(s.done)
	for {
		var restartC, killC <-chan time.Time
		if s.restart != nil {
			restartC = s.restart.C
		}
		if s.kill != nil {
			killC = s.kill.C
		}
		select {
		case r := <-s.reqs:
			s.handle(r)
		case e := <-s.exited:
			s.onExit(e)
		case t := <-s.test:
			s.onTest(t)
		case <-restartC:
			s.restart = nil
			s.begin()
		case <-killC:
			s.kill = nil
			s.signal(syscall.SIGKILL)
		}
		if s.quit && s.exited == nil && s.test == nil {
			return
		}
	}
}

func (s *supervisor) handle(r request) {
	switch r.op {
	case opUp:
		if !r.force && !s.goalUp && s.exited == nil && (s.st.State == Exited || s.st.State == Stopped) {
			r.reply <- Outcome{} // RESTART or a STOP said so; only START overrides
			return
		}
		s.goalUp = true
		s.upWaiters = append(s.upWaiters, r.reply)
		switch {
		case s.test != nil:
			// join the TEST in flight
		case s.restart != nil || s.stopping:
			s.answerUp(Outcome{}) // begin runs the TEST when the start is due
		case s.job.Test != nil:
			s.startTest()
		case s.exited == nil:
			s.spawn()
		default:
			s.answerUp(Outcome{}) // running, no TEST
		}
	case opStop, opQuit:
		s.quit = s.quit || r.op == opQuit
		s.goalUp = false
		s.answerUp(Outcome{})
		s.cancelRestart()
		if s.test != nil {
			close(s.testCancel)
			s.testCancel = nil
		}
		if s.exited == nil {
			if s.st.State != Stopped && s.st.State != Skipped && s.st.State != Exited && s.st.State != Failed {
				s.set(Stopped, "")
			}
			r.reply <- Outcome{}
			return
		}
		s.stopWaiters = append(s.stopWaiters, r.reply)
		if !s.stopping {
			s.stopping = true
			s.stopReason = r.reason
			s.set(Stopping, "")
			s.signal(syscall.SIGTERM)
			s.kill = time.NewTimer(stopTimeout)
		}
	}
}

// begin starts the job when a restart is due: through its TEST if it has one.
func (s *supervisor) begin() {
	if s.test != nil {
		return // the TEST in flight decides
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
		return
	}
	if t.canceled {
		s.begin() // stopped, then asked up again before the TEST ended
		return
	}
	if t.ok {
		if s.exited == nil && s.restart == nil {
			s.spawn()
			return
		}
		s.answerUp(Outcome{})
		return
	}
	if s.exited != nil {
		// The condition went away while the job runs: stop it, and answer
		// the reload once it is gone.
		s.goalUp = false
		s.stopWaiters = append(s.stopWaiters, s.upWaiters...)
		s.upWaiters = nil
		if !s.stopping {
			s.stopping = true
			s.stopReason = "test-failed"
			s.set(Stopping, t.why)
			s.signal(syscall.SIGTERM)
			s.kill = time.NewTimer(stopTimeout)
		}
		return
	}
	s.cancelRestart()
	changed := s.st.State != Skipped || s.st.Reason != t.why
	s.set(Skipped, t.why)
	if changed {
		s.answerUp(Outcome{Verb: "skipped", Detail: t.why})
	} else {
		s.answerUp(Outcome{})
	}
}

func (s *supervisor) onExit(e Exit) {
	s.exited = nil
	s.st.Pid = 0
	s.st.LastExit = &e
	if s.stopping {
		s.stopping = false
		if s.kill != nil {
			s.kill.Stop()
			s.kill = nil
		}
		e.Reason = s.stopReason
		s.st.LastExit = &e
		state, why := Stopped, ""
		if e.Reason == "test-failed" {
			state, why = Skipped, s.st.Reason
		}
		s.recordExit(e, state, why)
		out := Outcome{Verb: "stopped", Detail: why}
		for _, w := range s.stopWaiters {
			w <- out
		}
		s.stopWaiters = nil
		if s.goalUp { // started again while it was stopping
			s.begin()
		}
		return
	}
	s.log.Info("process ended", "pid", e.Pid, "how", e.String())
	again := s.job.Restart == RestartAlways ||
		s.job.Restart == RestartOnFailure && (e.Code != 0 || e.Signal != "")
	if !again {
		s.goalUp = false
		s.recordExit(e, Exited, "")
		return
	}
	s.st.Restarts++
	delay := time.Duration(0)
	if e.At.Sub(s.startedAt) < minUptime {
		s.shortRuns++
		delay = backoff(s.shortRuns)
	} else {
		s.shortRuns = 0
	}
	if delay == 0 {
		s.recordExit(e, Starting, "")
		s.begin()
		return
	}
	s.recordExit(e, Backoff, fmt.Sprintf("restart in %v", delay))
	s.restart = time.NewTimer(delay)
}

// backoff returns the delay before the nth consecutive restart of a process
// that keeps dying young.
func backoff(n int) time.Duration {
	d := firstDelay
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// spawn starts the job's process and answers the up waiters.
func (s *supervisor) spawn() {
	cmd, err := s.command(s.job.Command)
	var exited <-chan Exit
	var pid int
	if err == nil {
		pid, exited, err = s.cfg.Reaper.Start(cmd)
		closeOutput(cmd)
	}
	if err != nil {
		why := "cannot start: " + describeStartError(err)
		s.log.Warn("cannot start", "err", err)
		s.goalUp = false
		s.set(Failed, why)
		s.answerUp(Outcome{Verb: "failed", Detail: why})
		return
	}
	s.exited = exited
	s.startedAt = time.Now()
	s.st.Pid = pid
	s.st.State = Running
	s.st.Since = s.startedAt
	s.st.Reason = ""
	s.publish()
	id, err := s.cfg.Recorder.RecordStart(context.Background(), s.st, s.startedAt)
	if err != nil {
		s.log.Warn("record start", "err", err)
	}
	s.runID = id
	s.log.Info("started", "pid", s.st.Pid)
	s.answerUp(Outcome{Verb: "started"})
}

// command builds the exec.Cmd for argv in the job's environment: in its
// own session (so its whole process group can be signalled, and it has no
// controlling terminal), output appended to the job's log.
func (s *supervisor) command(argv []string) (*exec.Cmd, error) {
	path, err := lookPath(argv[0], s.env)
	if err != nil {
		return nil, err
	}
	out, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	dir := s.job.Dir
	if dir == "" {
		dir = s.cfg.Home
	}
	return &exec.Cmd{
		Path:        path,
		Args:        argv,
		Dir:         dir,
		Env:         s.env,
		Stdout:      out,
		Stderr:      out,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}, nil
}

// closeOutput closes the parent's copy of the log file once the child has it.
func closeOutput(cmd *exec.Cmd) {
	if f, ok := cmd.Stdout.(*os.File); ok {
		f.Close()
	}
}

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

func describeStartError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s %s: %v", strings.TrimPrefix(pe.Op, "fork/"), pe.Path, pe.Err)
	}
	return err.Error()
}

// startTest runs the job's TEST in a goroutine; its result arrives on s.test.
func (s *supervisor) startTest() {
	if s.exited == nil && s.st.State != Skipped {
		s.set(Starting, "") // a skipped job stays skipped until its TEST passes
	}
	s.test = make(chan testResult, 1)
	s.testCancel = make(chan struct{})
	go func(res chan<- testResult, cancel <-chan struct{}) {
		res <- s.runTest(cancel)
	}(s.test, s.testCancel)
}

// runTest runs TEST to completion, a timeout or cancel, whichever comes first.
func (s *supervisor) runTest(cancel <-chan struct{}) testResult {
	select {
	case s.cfg.tests <- struct{}{}:
		defer func() { <-s.cfg.tests }()
	case <-cancel:
		return testResult{canceled: true}
	}
	cmd, err := s.command(s.job.Test)
	var exited <-chan Exit
	var pid int
	if err == nil {
		pid, exited, err = s.cfg.Reaper.Start(cmd)
		closeOutput(cmd)
	}
	if err != nil {
		return testResult{why: "test cannot start: " + describeStartError(err)}
	}
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	var why string
	select {
	case e := <-exited:
		if e.Code == 0 && e.Signal == "" {
			return testResult{ok: true}
		}
		if e.Signal != "" {
			return testResult{why: "test killed by " + e.Signal}
		}
		return testResult{why: fmt.Sprintf("test exited %d", e.Code)}
	case <-timer.C:
		why = fmt.Sprintf("test timed out after %v", testTimeout)
	case <-cancel:
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		return testResult{canceled: true}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-exited
	return testResult{why: why}
}

// signal sends sig to the job's whole process group.
func (s *supervisor) signal(sig syscall.Signal) {
	if s.st.Pid > 0 {
		if err := syscall.Kill(-s.st.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.log.Warn("signal", "sig", SignalName(sig), "err", err)
		}
	}
}

func (s *supervisor) cancelRestart() {
	if s.restart != nil {
		s.restart.Stop()
		s.restart = nil
	}
}

func (s *supervisor) answerUp(o Outcome) {
	for _, w := range s.upWaiters {
		w <- o
	}
	s.upWaiters = nil
}

// set enters state and saves it.
func (s *supervisor) set(state State, reason string) {
	s.st.State = state
	s.st.Since = time.Now()
	s.st.Reason = reason
	s.publish()
	if err := s.cfg.Recorder.RecordState(context.Background(), s.st); err != nil {
		s.log.Warn("record state", "err", err)
	}
}

// recordExit enters state after the process ended with e, and saves both.
func (s *supervisor) recordExit(e Exit, state State, reason string) {
	s.st.State = state
	s.st.Since = e.At
	s.st.Reason = reason
	s.publish()
	if err := s.cfg.Recorder.RecordExit(context.Background(), s.runID, e, s.st); err != nil {
		s.log.Warn("record exit", "err", err)
	}
	s.runID = 0
}

func (s *supervisor) publish() {
	s.mu.Lock()
	s.published = s.st
	s.mu.Unlock()
}
