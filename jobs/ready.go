package jobs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ReasonNotReady is the reason a run records when overseer stopped its
// process for not getting ready within READY_TIMEOUT: a failed start.
const ReasonNotReady = "not-ready"

// waitingReady is the note of a job whose process is started and not ready yet.
const waitingReady = "waiting until ready (READY)"

// maxReadyInterval caps the doubling of the wait between READY checks
// (unless READY_INTERVAL is longer).
const maxReadyInterval = time.Second

// readyPipe is the pipe of READY=fd:N: w goes to the process as
// descriptor N, r is read for its newline. Both nil for other jobs.
type readyPipe struct{ r, w *os.File }

// readyFd makes the pipe of a READY=fd:N job; nothing for other jobs.
func (s *supervisor) readyFd() (readyPipe, error) {
	if s.job.ReadyFd == 0 {
		return readyPipe{}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return readyPipe{}, fmt.Errorf("READY=fd:%d: %w", s.job.ReadyFd, err)
	}
	return readyPipe{r, w}, nil
}

// awaitReady arms READY_TIMEOUT and starts what tells that the process
// just started is ready: its READY command's loop, or the reader of its
// descriptor p.r (a notify job is told ready by the daemon's socket).
func (s *supervisor) awaitReady(p readyPipe) {
	s.after(&s.readyTimer, s.job.ReadyTimeout, s.notReady)
	switch {
	case s.job.ReadyCommand != nil:
		s.readyC, s.readyCancel = make(chan bool, 1), make(chan struct{})
		go func(j *Job, res chan<- bool, cancel <-chan struct{}) {
			res <- s.checkReady(j, cancel) // j: s.job belongs to run
			s.wake()
		}(s.job, s.readyC, s.readyCancel)
	case p.r != nil:
		s.readyC, s.readyCancel = make(chan bool, 1), make(chan struct{})
		go func(r *os.File, res chan<- bool, cancel <-chan struct{}) {
			readReady(r, res, cancel)
			s.wake()
		}(p.r, s.readyC, s.readyCancel)
	}
}

// onReady makes a starting job running: its process is ready.
func (s *supervisor) onReady() {
	s.endReadiness(Outcome{})
	now := time.Now()
	s.st.Ready = max(now.Sub(s.startedAt), time.Millisecond/1000)
	// Recorded before it is shown, as a start is.
	s.st.State, s.st.Since, s.st.Reason = Running, now, s.st.NotifyStatus
	if err := s.cfg.Recorder.RecordReady(context.Background(), s.runID, now, s.st); err != nil {
		s.log().Warn("record ready", "err", err)
	}
	s.publish()
	s.emit(s.st.Pid, "ready after "+s.st.Ready.Round(time.Millisecond).String())
	s.log().Info("ready", "after", s.st.Ready)
	for _, w := range s.readyWaiters {
		w.reply.send(w.ok)
	}
	s.readyWaiters = nil
}

// onNotice takes what the live process said over sd_notify: READY=1
// makes it ready; a STATUS= text is its note while it runs.
func (s *supervisor) onNotice(n notice) {
	if !s.live || s.stopping {
		return // from a process that is gone, or going
	}
	if n.set {
		s.st.NotifyStatus = n.status
		if s.st.State == Running {
			s.st.Reason = n.status
		} else if s.st.State == Starting {
			s.st.Reason = waitingReady
			if n.status != "" {
				s.st.Reason += ": " + n.status
			}
		}
		s.publish() // a note, not a state: no event, no write
	}
	if n.ready && s.readyTimer != nil {
		s.onReady()
	}
}

// notReady stops a process that did not get ready within READY_TIMEOUT;
// its exit then counts as a failed start (see next).
func (s *supervisor) notReady() {
	why := fmt.Sprintf("not ready within %v", s.job.ReadyTimeout)
	s.endReadiness(Outcome{Verb: FailedIt, Detail: why})
	s.log().Warn("not ready in time: stopping it", "timeout", s.job.ReadyTimeout)
	s.stopProcess(ReasonNotReady, why)
}

// endReadiness stops waiting for readiness and answers whoever waited
// with o (unless o is empty: onReady answers them).
func (s *supervisor) endReadiness(o Outcome) {
	stopTimer(&s.readyTimer)
	if s.readyCancel != nil {
		close(s.readyCancel) // readyC then sends false, or has sent
		s.readyCancel = nil
	}
	if o == (Outcome{}) {
		return
	}
	for _, w := range s.readyWaiters {
		w.reply.send(o)
	}
	s.readyWaiters = nil
}

// checkReady runs j's READY command until it exits 0 (true) or cancel is
// closed (false): every ReadyInterval at first, doubling up to
// maxReadyInterval. Its output goes to the job's log as the test stream,
// and it runs among the MaxTests a TEST counts in.
func (s *supervisor) checkReady(j *Job, cancel <-chan struct{}) bool {
	wait, most := j.ReadyInterval, max(j.ReadyInterval, maxReadyInterval)
	warned := false
	for {
		select {
		case s.cfg.tests <- struct{}{}:
		case <-cancel:
			return false
		}
		pid, exited, err := s.start(j, j.ReadyCommand, StreamTest, StreamTest, nil)
		if err != nil && !warned {
			s.log().Warn("READY command cannot start", "err", s.describeStartError(j, err))
			warned = true
		}
		if err == nil {
			select {
			case e := <-exited:
				syscall.Kill(-pid, syscall.SIGKILL) // leftovers of the check's group
				if e.Code == 0 && e.Signal == "" {
					<-s.cfg.tests
					return true
				}
			case <-cancel:
				syscall.Kill(-pid, syscall.SIGKILL)
				<-exited
				<-s.cfg.tests
				return false
			}
		}
		<-s.cfg.tests
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-cancel:
			t.Stop()
			return false
		}
		wait = min(wait*2, most)
	}
}

// readReady reads r, the read end of a READY=fd:N pipe, and sends true on
// res at the first newline. End of file without one (the process closed
// the descriptor, or ended) means not ready: it then waits for cancel. On
// cancel it sends false.
func readReady(r *os.File, res chan<- bool, cancel <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		select {
		case <-cancel:
			r.Close() // ends the read below
		case <-done:
		}
	}()
	ready := false
	buf := make([]byte, 512) // what comes before the newline is read and dropped
	for !ready {
		n, err := r.Read(buf)
		ready = bytes.IndexByte(buf[:n], '\n') >= 0
		if err != nil {
			break
		}
	}
	close(done)
	if ready {
		r.Close()
		res <- true
		return
	}
	<-cancel
	r.Close()
	res <- false
}
