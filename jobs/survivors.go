package jobs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// ReasonExitUnknown is the reason of the exit of an adopted process that
// ended on its own: it is no child of the daemon, so how it ended (its
// exit status or signal) is unknown; when it ended is known (a pidfd).
// See sqlstore/schema_v8.sql.
const ReasonExitUnknown = "exit-unknown"

// Survivor is a process that a daemon which died left running, as its
// open run recorded it: a candidate for adoption by the next daemon.
type Survivor struct {
	Run       int64
	Job       string
	Pid       int
	Start     string // its procStart when it was started; "" if unknown
	StartedAt time.Time
	Hash      string    // the config_hash of its job when the daemon died
	Held      bool      // its job is held by STOP: the process was being stopped
	ReadyAt   time.Time // when its run got ready (runs.ready_at); zero: not (yet), or no READY
}

// Adoptable is a survivor the next daemon adopts (ChooseSurvivors): its
// definition, the pipes the holder kept for it and the watch on its exit.
type Adoptable struct {
	Survivor
	job   *Job
	prog  program
	pipes []HeldPipe
	watch *exitWatch
}

// whyNotAdopt says why survivor s cannot be adopted, or "" (one whose
// job STOP holds was being stopped, and is stopped): def is its
// job's definition in the config dir now (nil: none), streams the streams
// of the pipes the holder kept for it, others how many other open runs
// name its job, replaced whether its program changed since it started.
// It is pure.
func whyNotAdopt(s Survivor, def *Job, streams []string, others int, replaced bool) string {
	switch {
	case def == nil:
		return "no job file by its name now"
	case s.Held:
		return "its job is held by STOP (it was being stopped)"
	case def.ReadyFd > 0 && s.ReadyAt.IsZero():
		return "it was not ready yet, and its READY fd did not survive"
	case others > 0:
		return "more than one open run of the job"
	case s.Start == "":
		return "its process start time was not recorded"
	case s.Hash == "" || def.Hash != s.Hash:
		return "its job file changed"
	case !slices.Contains(streams, StreamOut) || !slices.Contains(streams, StreamErr):
		return "its output pipes did not survive (no pipe holder, or it died too)"
	case replaced:
		return "its program was replaced"
	}
	return ""
}

// ChooseSurvivors decides which survivors the daemon adopts rather than
// stops: those whose process still runs (pid and start time), whose stdout
// and stderr pipes came back from the holder (held), whose job file in dir
// is the one they started from (the same config hash), whose program was
// not replaced since, and whose exit can be watched (a pidfd: Linux 5.3).
// It returns them, with the pipes they take; the other survivors, to stop,
// with why each is not adopted (by run; none for a process gone); and the
// other pipes, to drain. Call it at daemon start, before anything stops.
func ChooseSurvivors(dir string, environ []string, home string, survivors []Survivor, held []HeldPipe) (adopt []*Adoptable, stop []Survivor, why map[int64]string, rest []HeldPipe) {
	why = make(map[int64]string)
	if len(survivors) == 0 {
		return nil, nil, why, held
	}
	defs := map[string]*Job{}
	if ds, _, err := LoadDir(dir, environ); err == nil {
		for _, j := range ds {
			defs[j.Name] = j
		}
	}
	streams := map[string][]string{}
	for _, hp := range held {
		streams[hp.Job] = append(streams[hp.Job], hp.Stream)
	}
	count := map[string]int{}
	for _, s := range survivors {
		count[s.Job]++
	}
	cfg := &Config{Environ: environ, Home: home}
	taken := map[string]bool{}
	for _, s := range survivors {
		start, zombie, err := procStart(s.Pid)
		if err != nil || zombie || start != s.Start || s.Start == "" {
			stop = append(stop, s) // gone (or a stranger by its pid): nothing to adopt
			continue
		}
		def := defs[s.Job]
		var prog program
		replaced := false
		if def != nil {
			prog = readProgram(def, cfg)
			replaced = prog.found() && prog.ModTime > s.StartedAt.UnixNano()
		}
		w := whyNotAdopt(s, def, streams[s.Job], count[s.Job]-1, replaced)
		var watch *exitWatch
		if w == "" {
			watch, err = watchAlive(s.Pid, s.Start)
			if err != nil {
				w = err.Error()
			}
		}
		if w != "" {
			why[s.Run] = w
			stop = append(stop, s)
			continue
		}
		a := &Adoptable{Survivor: s, job: def, prog: prog, watch: watch}
		adopt = append(adopt, a)
		taken[s.Job] = true
	}
	for _, hp := range held {
		if taken[hp.Job] && (hp.Stream == StreamOut || hp.Stream == StreamErr) {
			for _, a := range adopt {
				if a.Job == hp.Job {
					a.pipes = append(a.pipes, hp)
				}
			}
			continue
		}
		rest = append(rest, hp)
	}
	return adopt, stop, why, rest
}

// watchAlive opens a watch on the exit of process pid, and checks after
// that it is still the one that started at start: a pidfd names the
// process, so a pid reused before it was opened is caught here.
func watchAlive(pid int, start string) (*exitWatch, error) {
	f, err := openExitWatch(pid)
	if err != nil {
		if errors.Is(err, errProcessGone) {
			return nil, err
		}
		return nil, fmt.Errorf("its exit cannot be watched: %w", err)
	}
	if now, zombie, err := procStart(pid); err != nil || zombie || now != start {
		f.Close()
		return nil, errProcessGone
	}
	return &exitWatch{f: f, pid: pid}, nil
}

// exitOf hands the exit of the process w watches to take when it ends:
// its status unknown, for it is no child of ours; one goroutine waits in
// the runtime's poller meanwhile, holding no thread. Closing w ends the
// wait, and nothing is handed.
func exitOf(w *exitWatch, take exitTaker) {
	go func() {
		if w.wait() {
			take.takeExit(Exit{Pid: w.pid, Code: -1, At: time.Now(), Unknown: true, Reason: ReasonExitUnknown})
		}
		w.close()
	}()
}

// Names returns the names of the jobs of adopt.
func Names(adopt []*Adoptable) []string {
	var names []string
	for _, a := range adopt {
		names = append(names, a.Job)
	}
	return names
}

// AdoptSurvivors takes over the survivors ChooseSurvivors chose, before
// the first reload: each one's supervisor carries on with its process
// (same run, running, counted as ready), watching its exit through its
// pidfd; its pipes are read into its log again and handed to this
// daemon's holder. One with READY that was not ready yet is starting, its
// readiness checked again. It returns the survivors adopted.
func (m *Manager) AdoptSurvivors(adopt []*Adoptable) ([]*Adoptable, error) {
	h := &Handover{Hold: true}
	var errs []error
	var done []*Adoptable
	for _, a := range adopt {
		var pipes []HandedPipe
		for _, hp := range a.pipes {
			fd, err := unix.FcntlInt(hp.File.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			hp.File.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("job %s: output pipe: %w", a.Job, os.NewSyscallError("fcntl", err)))
				continue
			}
			pipes = append(pipes, HandedPipe{FD: fd, Job: a.Job, Stream: hp.Stream})
		}
		st := &SupState{
			Job: a.job,
			Status: Status{Name: a.Job, State: Running, Pid: a.Pid, Since: a.StartedAt,
				Hash: a.job.Hash, ProcStart: a.Start},
			RunID: a.Run, StartedAt: a.StartedAt, GoalUp: true, EvState: Running,
			Foreign: true, watch: a.watch,
		}
		switch {
		case a.job.HasReady() && !a.ReadyAt.IsZero():
			// Ready: since then, after as long as it took (STATUS).
			st.Status.Since = a.ReadyAt
			st.Status.Ready = max(a.ReadyAt.Sub(a.StartedAt), time.Millisecond/1000)
		case a.job.HasReady():
			// Not ready yet: starting, its READY check again, and
			// READY_TIMEOUT from its start, as if no daemon had died.
			st.Status.State, st.Status.Reason, st.EvState = Starting, waitingReady, Starting
			st.ReadyBy = a.StartedAt.Add(a.job.ReadyTimeout)
		}
		h.Jobs = append(h.Jobs, Adoptee{Name: a.Job, Prog: a.prog, Sup: st})
		h.Pipes = append(h.Pipes, pipes...)
		done = append(done, a)
	}
	errs = append(errs, m.Adopt(h))
	return done, errors.Join(errs...)
}
