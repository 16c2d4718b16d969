package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by Reload once Shutdown has begun.
var ErrClosed = errors.New("shutting down")

// Config is what a Manager needs from the daemon.
type Config struct {
	Recorder Recorder
	Reaper   *Reaper
	LogDir   string   // job output goes to LogDir/NAME.log
	Instance string   // the data dir: every job's InstanceEnv
	Home     string   // working directory of jobs without DIR
	Environ  []string // environment every job starts from
	Logger   *slog.Logger
	// MaxTests bounds how many TEST commands run at once (default 64).
	MaxTests int
	// LogMaxSize is the size in bytes at which a job's log is rotated
	// (0: never); LogKeep is how many rotated files are kept.
	LogMaxSize int64
	LogKeep    int
	// Held names the jobs a STOP request holds stopped, as saved by an
	// earlier daemon.
	Held map[string]bool
	// Samples stores resource samples; MetricsInterval is how often the
	// processes of a running job are sampled when its file has no
	// METRICS_INTERVAL (0: not at all).
	Samples         SampleRecorder
	MetricsInterval time.Duration
	// Cgroups is CgroupsAuto to run each job in a cgroup of its own where
	// the daemon may create one, so that all it started ends with it;
	// CgroupsOff or "" to rely on sessions and markers (see Cleanup).
	Cgroups string

	tests   chan struct{} // semaphore of MaxTests
	cgroups *cgroupTree   // the daemon's cgroup; nil: sessions and markers
	events  *broker       // state transitions, for EVENTS and WAIT
	sampler *sampler
	pipes   *pipeReader // copies the jobs' output to their logs
}

// Manager maps job names to supervisors and reconciles them with the
// config dir.
type Manager struct {
	cfg *Config

	reload sync.Mutex // serialises Reload

	mu     sync.Mutex       // guards the fields below; never held while waiting on a job
	slots  map[string]*slot // everything known of each name
	closed bool
}

// slot is everything the manager knows of one job name; guarded by
// Manager.mu. A name has a slot while any field is set, and none after.
type slot struct {
	// sup runs the job's current definition (sup.job); nil when no
	// version of it runs (its file is rejected, or only a hold is left).
	sup  *supervisor
	sink *logSink // its log, made on first use; it outlives successive supervisors
	held bool     // held stopped by STOP
	// rejected says why its file is rejected, or "". The job's last good
	// version, if any, runs on.
	rejected string
	// eph is set while the job is ephemeral (SPAWN); RELOAD leaves it alone.
	eph *ephemeral
	// leaving is set while the job whose file is gone stops; the name is
	// then unknown to requests and taken for SPAWN.
	leaving bool
}

// known reports whether requests see the name: a job that runs a version,
// or a rejected file.
func (sl *slot) known() bool { return !sl.leaving && (sl.sup != nil || sl.rejected != "") }

// at returns the slot of name, made if there is none. Call with mu held.
func (m *Manager) at(name string) *slot {
	sl := m.slots[name]
	if sl == nil {
		sl = &slot{}
		m.slots[name] = sl
	}
	return sl
}

// get returns the slot of name, or an empty one (not stored). Call with mu held.
func (m *Manager) get(name string) *slot {
	if sl := m.slots[name]; sl != nil {
		return sl
	}
	return &slot{}
}

// tidy forgets the slot of name if nothing is left in it. Call with mu held.
func (m *Manager) tidy(name string) {
	if sl := m.slots[name]; sl != nil && sl.sup == nil && sl.sink == nil && !sl.held && sl.rejected == "" && sl.eph == nil && !sl.leaving {
		delete(m.slots, name)
	}
}

// NewManager returns a Manager with no jobs.
func NewManager(cfg Config) *Manager {
	if cfg.MaxTests <= 0 {
		cfg.MaxTests = 64
	}
	cfg.tests = make(chan struct{}, cfg.MaxTests)
	cfg.events = newBroker()
	cfg.sampler = newSampler(cfg.Samples, cfg.Logger)
	cfg.pipes = newPipeReader(cfg.Logger)
	if cfg.Cgroups == CgroupsAuto {
		t, n, err := openCgroups(cfg.Instance)
		if err != nil {
			cfg.Logger.Info("no cgroups: leftovers of jobs are found by session and marker", "why", err)
		}
		if n > 0 {
			cfg.Logger.Warn("killed processes an earlier overseerd left in its cgroup", "count", n)
		}
		cfg.cgroups = t
	}
	m := &Manager{cfg: &cfg, slots: make(map[string]*slot)}
	for name, h := range cfg.Held {
		if h {
			m.at(name).held = true
		}
	}
	return m
}

// heldNote is the state reason of a job held stopped.
const heldNote = "held by STOP; START runs it again"

// sink returns the log of the named job, made on first use. A job's log
// outlives the supervisors of its successive definitions. Call with mu held.
func (m *Manager) sink(name string) *logSink {
	sl := m.at(name)
	if sl.sink == nil {
		sl.sink = newLogSink(filepath.Join(m.cfg.LogDir, name+".log"), m.cfg.LogMaxSize, m.cfg.LogKeep)
		if m.cfg.Logger != nil {
			sl.sink.log = m.cfg.Logger
		}
	}
	return sl.sink
}

// logOf returns the log of a job requests can see, or nil.
func (m *Manager) logOf(name string) *logSink {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sl := m.slots[name]; sl != nil && !sl.leaving {
		return sl.sink
	}
	return nil
}

// ErrNoJob is returned for a name the manager does not know.
var ErrNoJob = errors.New("no such job")

// Logs returns the last n lines of the named job's log of stream
// (StreamOut, StreamErr, StreamTest, or "" for every stream).
func (m *Manager) Logs(name string, n int, stream string) ([]string, error) {
	l := m.logOf(name)
	if l == nil {
		return nil, ErrNoJob
	}
	return l.tail(n, stream)
}

// Follow returns the last n lines of the named job's log of stream (as for
// Logs) and a Follower of the lines of stream written after them; stop
// ends the following.
func (m *Manager) Follow(name string, n int, stream string) (last []string, f *Follower, stop func(), err error) {
	l := m.logOf(name)
	if l == nil {
		return nil, nil, nil, ErrNoJob
	}
	// Subscribe first: a line written meanwhile may show twice, never not at all.
	f, stop = l.follow(stream)
	if last, err = l.tail(n, stream); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return last, f, stop, nil
}

// Change is one line of a reload report.
type Change struct {
	Verb   string // started, restarted, stopped, skipped, failed, rejected
	Name   string // job name, or file name for rejected
	Detail string
}

// Report says what a Reload changed.
type Report struct {
	Changes []Change // sorted by name
	Jobs    int      // jobs defined after the reload
}

// Count returns how many changes have verb.
func (r Report) Count(verb string) int {
	n := 0
	for _, c := range r.Changes {
		if c.Verb == verb {
			n++
		}
	}
	return n
}

// Reload reads dir and converges the running jobs to it: new files start
// jobs, changed files restart them, removed files stop them, every TEST is
// run again. A rejected file leaves the job it used to define untouched.
// Reloads are serialised: a second one waits for the first and then does
// its own pass.
func (m *Manager) Reload(ctx context.Context, dir string) (Report, error) {
	m.reload.Lock()
	defer m.reload.Unlock()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return Report{}, ErrClosed
	}
	defs, errs, err := LoadDir(dir, m.cfg.Environ)
	if err != nil {
		return Report{}, err
	}

	var (
		rep    Report
		repMu  sync.Mutex
		wg     sync.WaitGroup
		wanted = make(map[string]bool)
	)
	add := func(c Change) {
		if c.Verb == "" {
			return
		}
		repMu.Lock()
		rep.Changes = append(rep.Changes, c)
		repMu.Unlock()
	}
	rejected := make(map[string]string)
	for _, err := range errs {
		var fe *FileError
		errors.As(err, &fe)
		add(Change{Verb: "rejected", Name: fe.File, Detail: err.Error()})
		if name := strings.TrimSuffix(fe.File, ".env"); ValidName(name) {
			rejected[name] = err.Error()
			wanted[name] = true // keep what its last good version runs
		}
	}

	m.mu.Lock()
	// A file named like a living ephemeral job is rejected; the job is not
	// the file's to change or stop.
	kept := defs[:0]
	for _, j := range defs {
		if m.get(j.Name).eph == nil {
			kept = append(kept, j)
			continue
		}
		err := ephemeralClash(j.Name)
		add(Change{Verb: "rejected", Name: j.Name + ".env", Detail: err.Error()})
		rejected[j.Name] = err.Error()
	}
	defs = kept
	wasRejected := make(map[string]bool)
	for name, sl := range m.slots {
		if sl.rejected == "" {
			continue
		}
		wasRejected[name] = true
		if sl.sup == nil && rejected[name] == "" && !defined(defs, name) {
			// A rejected file that is gone: nothing of it runs.
			st := Status{Name: name, State: Removed, Since: time.Now()}
			if err := m.cfg.Recorder.RecordState(ctx, st); err != nil {
				m.cfg.Logger.Warn("record state", "job", name, "err", err)
			}
			m.cfg.events.publish(Event{At: st.Since, Job: name, Old: Rejected, New: Removed, Reason: "reload: file removed"})
		}
		sl.rejected = ""
	}
	for name, why := range rejected {
		m.at(name).rejected = why
	}
	for _, j := range defs {
		wanted[j.Name] = true
		sl := m.at(j.Name)
		old := sl.sup
		switch {
		case old == nil:
			prev := NoState
			if wasRejected[j.Name] {
				prev = Rejected
			}
			s := newSupervisorAfter(j, m.cfg, m.sink(j.Name), prev)
			sl.sup = s
			wg.Go(func() { add(outcomeChange(j.Name, m.first(s))) })
		case old.job.Hash == j.Hash:
			wg.Go(func() { add(outcomeChange(j.Name, old.do(request{op: opUp}))) })
		default:
			// The old version stays in place, visible as stopping, until
			// its process is gone; then the new one takes its name.
			wg.Go(func() {
				was := old.do(request{op: opQuit, reason: "reload"})
				<-old.done
				m.mu.Lock()
				if m.closed || sl.sup != old || m.slots[j.Name] != sl {
					m.mu.Unlock()
					return
				}
				s := newSupervisorAfter(j, m.cfg, m.sink(j.Name), old.Status().State)
				sl.sup = s
				m.mu.Unlock()
				c := outcomeChange(j.Name, m.first(s))
				switch {
				case was.Verb != "stopped":
				case c.Verb == "started":
					c.Verb = "restarted"
				case c.Verb == "skipped" || c.Verb == "failed":
					c = Change{Verb: "stopped", Name: j.Name, Detail: "changed; " + c.Detail}
				case c.Verb == "unchanged":
					c = Change{Verb: "stopped", Name: j.Name, Detail: "changed"}
				}
				add(c)
			})
		}
	}
	for name, sl := range m.slots {
		old := sl.sup
		if old == nil || wanted[name] || sl.eph != nil || sl.leaving {
			continue
		}
		sink := sl.sink
		sl.held = false // a hold does not outlive its job
		sl.leaving = true
		wg.Go(func() {
			old.do(request{op: opQuit, reason: "removed"})
			<-old.done
			sink.drain(drainLimit) // its last lines first
			sink.close()
			st := old.Status()
			was := st.State
			st.State, st.Pid, st.Since, st.Reason = Removed, 0, time.Now(), ""
			if err := m.cfg.Recorder.RecordState(ctx, st); err != nil {
				m.cfg.Logger.Warn("record state", "job", name, "err", err)
			}
			m.cfg.events.publish(Event{At: st.Since, Job: name, Old: was, New: Removed, Reason: "reload: file removed"})
			if err := m.cfg.Recorder.SetHeld(ctx, name, false); err != nil {
				m.cfg.Logger.Warn("record hold", "job", name, "err", err)
			}
			m.mu.Lock()
			if m.slots[name] == sl {
				delete(m.slots, name)
			}
			m.mu.Unlock()
			add(Change{Verb: "stopped", Name: name, Detail: "removed"})
		})
	}
	for name, why := range rejected {
		sl := m.at(name)
		if sl.eph != nil {
			continue // not the file's job
		}
		if old := sl.sup; old != nil {
			// Its last good version runs on, and its TEST still decides.
			wg.Go(func() { add(outcomeChange(name, old.do(request{op: opUp}))) })
			continue
		}
		st := Status{Name: name, State: Rejected, Since: time.Now(), Reason: why}
		if err := m.cfg.Recorder.RecordState(ctx, st); err != nil {
			m.cfg.Logger.Warn("record state", "job", name, "err", err)
		}
		if !wasRejected[name] {
			m.cfg.events.publish(Event{At: st.Since, Job: name, Old: NoState, New: Rejected, Reason: why})
		}
	}
	for name := range wasRejected {
		m.tidy(name)
	}
	for _, sl := range m.slots {
		if sl.known() {
			rep.Jobs++ // a rejected file without a running version is listed by STATUS too
		}
	}
	m.mu.Unlock()

	wg.Wait()
	sort.SliceStable(rep.Changes, func(a, b int) bool { return rep.Changes[a].Name < rep.Changes[b].Name })
	return rep, nil
}

// first brings a new supervisor to its first state: started, or stopped
// if STOP holds its name. The hold is read now, not when the reload began,
// so a STOP that came meanwhile counts.
func (m *Manager) first(s *supervisor) Outcome {
	m.mu.Lock()
	held := m.get(s.job.Name).held
	m.mu.Unlock()
	if held {
		return s.do(request{op: opStop, note: heldNote})
	}
	return s.do(request{op: opUp, force: true})
}

func defined(defs []*Job, name string) bool {
	for _, j := range defs {
		if j.Name == name {
			return true
		}
	}
	return false
}

func outcomeChange(name string, o Outcome) Change {
	if o.Verb == "" {
		return Change{Verb: "unchanged", Name: name}
	}
	return Change{Verb: o.Verb, Name: name, Detail: o.Detail}
}

// Status returns every job's state, sorted by name. A job whose file is
// rejected and that has no running version is listed as Rejected; one that
// still runs its last good version carries the rejection in Reason.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.slots))
	for name, sl := range m.slots {
		if sl.known() {
			out = append(out, sl.status(name))
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// status returns what STATUS shows of the slot's job. Call with Manager.mu held.
func (sl *slot) status(name string) Status {
	if sl.sup == nil {
		return Status{Name: name, State: Rejected, Reason: sl.rejected}
	}
	st := sl.sup.Status()
	if sl.rejected != "" {
		st.Reason = sl.rejected
	}
	st.Held = sl.held
	if e := sl.eph; e != nil {
		info := e.Ephemeral
		st.Ephemeral = &info
	}
	return st
}

// Names returns the names of the jobs the manager knows, rejected ones included.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.slots))
	for name, sl := range m.slots {
		if sl.known() {
			names = append(names, name)
		}
	}
	return names
}

// Shutdown stops every job (stop signal, KILL after the stop timeout),
// waits for all of them to be gone, and refuses further reloads and
// requests. It does not wait for a reload in progress to begin with:
// stopping its jobs cancels the TESTs that reload waits on.
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.closed = true
	all := make([]*supervisor, 0, len(m.slots))
	for _, sl := range m.slots {
		if sl.eph != nil {
			sl.eph.release()
		}
		if sl.sup != nil {
			all = append(all, sl.sup)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			s.do(request{op: opQuit, reason: "die"})
			<-s.done
		})
	}
	wg.Wait()
	if cg := m.cfg.cgroups; cg != nil {
		cg.close()
	}
	m.cfg.sampler.stop()
	m.cfg.pipes.stop()
	m.reload.Lock() // a reload in progress ends now: its jobs are gone
	m.reload.Unlock()
	m.mu.Lock()
	sinks := make([]*logSink, 0, len(m.slots))
	for _, sl := range m.slots {
		if sl.sink != nil {
			sinks = append(sinks, sl.sink)
		}
	}
	m.mu.Unlock()
	// The jobs' last lines (a goroutine per pipe may still be reading them
	// on macOS), within drainLimit in all: leftovers may hold a pipe open.
	deadline := time.Now().Add(drainLimit)
	for _, l := range sinks {
		l.drain(time.Until(deadline))
		l.close()
	}
	m.cfg.events.close() // EVENTS streams end after the last job's events
}

// lookup returns the supervisor of name, or an error that says why there is none.
func (m *Manager) lookup(name string) (*supervisor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	sl := m.get(name)
	switch {
	case sl.leaving:
	case sl.sup != nil:
		return sl.sup, nil
	case sl.rejected != "":
		return nil, fmt.Errorf("%w: %s", ErrRejected, sl.rejected)
	}
	return nil, ErrNoJob
}

// ErrRejected is returned for a job whose file is rejected and that has no
// running version.
var ErrRejected = errors.New("job file rejected")

// setHeld records whether name is held stopped, in memory and in storage.
func (m *Manager) setHeld(name string, held bool) {
	m.mu.Lock()
	if held {
		m.at(name).held = true
	} else if sl := m.slots[name]; sl != nil {
		sl.held = false
		m.tidy(name)
	}
	m.mu.Unlock()
	if err := m.cfg.Recorder.SetHeld(context.Background(), name, held); err != nil {
		m.cfg.Logger.Warn("record hold", "job", name, "err", err)
	}
}

// control sets the named job's hold, then runs f on its supervisor. It
// does not wait for a reload in progress (whose TESTs may be slow): the
// hold is set first, and a reload reads it when it starts a new version,
// so either way the request counts.
func (m *Manager) control(name string, held bool, f func(*supervisor) Outcome) (Outcome, error) {
	if _, err := m.lookup(name); err != nil {
		return Outcome{}, err
	}
	if m.ephemeralJob(name) == nil { // an ephemeral job is never held
		m.setHeld(name, held)
	}
	s, err := m.lookup(name)
	if err != nil {
		return Outcome{}, err
	}
	return f(s), nil
}

// Start releases a STOP hold and starts the job if it is not running: its
// TEST runs first, as for every start.
func (m *Manager) Start(name string) (Outcome, error) {
	return m.control(name, false, func(s *supervisor) Outcome {
		return s.do(request{op: opUp, force: true})
	})
}

// Stop stops the job and holds it stopped, across RELOADs and daemon
// restarts, until Start. An ephemeral job is stopped and forgotten: its
// Outcome's Detail is Forgotten.
func (m *Manager) Stop(name string) (Outcome, error) {
	if e := m.ephemeralJob(name); e != nil {
		o := m.forget(name, e, "stopped", "stopped by STOP")
		o.Detail = Forgotten
		return o, nil
	}
	return m.control(name, true, func(s *supervisor) Outcome {
		return s.do(request{op: opStop, reason: "stopped", note: heldNote})
	})
}

// Restart stops the job if it runs, then starts it, releasing any hold.
func (m *Manager) Restart(name string) (Outcome, error) {
	return m.control(name, false, func(s *supervisor) Outcome {
		was := s.do(request{op: opStop, reason: "restart"})
		o := s.do(request{op: opUp, force: true})
		if was.Verb == "stopped" && o.Verb == "started" {
			o.Verb = "restarted"
		}
		return o
	})
}

// Signal sends sig to the job's process group. The Outcome's Verb is
// "signalled" (Detail: the pid), or empty when no process runs.
func (m *Manager) Signal(name string, sig syscall.Signal) (Outcome, error) {
	s, err := m.lookup(name)
	if err != nil {
		return Outcome{}, err
	}
	return s.do(request{op: opSignal, sig: sig}), nil
}

// Detail is one job in full, for STATUS NAME.
type Detail struct {
	Status
	Job      *Job   // its running definition
	Rejected string // why its file is rejected, or ""
	// MetricsInterval is how often its processes are sampled while it
	// runs: its METRICS_INTERVAL, or the daemon's default; 0: never.
	MetricsInterval time.Duration
}

// Job returns the named job in full.
func (m *Manager) Job(name string) (Detail, error) {
	s, err := m.lookup(name)
	if err != nil {
		return Detail{}, err
	}
	m.mu.Lock()
	sl := m.get(name)
	d := Detail{Status: s.Status(), Job: s.job, Rejected: sl.rejected, MetricsInterval: s.metricsInterval()}
	d.Held = sl.held
	if e := sl.eph; e != nil {
		info := e.Ephemeral
		d.Ephemeral = &info
	}
	m.mu.Unlock()
	return d, nil
}
