package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
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
	// TailLines and TailBytes bound the last lines of each run kept in
	// memory and saved in runs.tail when it ends; 0 in either: none.
	TailLines, TailBytes int
	// Held names the jobs a STOP request holds stopped, as saved by an
	// earlier daemon.
	Held map[string]bool
	// Lost is how the last process of each job an earlier daemon left
	// ended, when nobody saw it (Exit.Unknown): the first supervisor of
	// the job starts with it as its last exit.
	Lost map[string]Exit
	// Samples stores resource samples; MetricsInterval is how often the
	// processes of a running job are sampled when its file has no
	// METRICS_INTERVAL (0: not at all).
	Samples         SampleRecorder
	MetricsInterval time.Duration
	// Cgroups is CgroupsAuto to run each job in a cgroup of its own where
	// the daemon may create one, so that all it started ends with it;
	// CgroupsOff or "" to rely on sessions and markers (see Cleanup).
	Cgroups string
	// Holder, if not nil, keeps a copy of each output pipe's read end so
	// that jobs outlive a crash of the daemon (holder_linux.go).
	Holder *Holder
	// Adopting says the jobs of the process's earlier image are to be
	// adopted (Adopt): the cgroups they run in are kept.
	Adopting bool
	// Survivors names the jobs whose processes, left by a daemon that
	// died, are adopted (AdoptSurvivors): their cgroups are kept.
	Survivors []string

	tests   chan struct{} // semaphore of MaxTests
	cgroups *cgroupTree   // the daemon's cgroup; nil: sessions and markers
	events  *broker       // state transitions, for EVENTS and WAIT
	sampler *sampler
	pipes   *pipeReader // copies the jobs' output to their logs
	notify  *notifier   // the sd_notify socket of READY=notify jobs
	lost    *lostExits  // Lost, which each job's first supervisor takes from
	order   *order      // the states jobs wait for (AFTER, RESTART_WITH)
}

// Manager maps job names to supervisors and reconciles them with the
// config dir.
type Manager struct {
	cfg *Config

	reload sync.Mutex // serialises Reload

	mu     sync.Mutex       // guards the fields below; never held while waiting on a job
	slots  map[string]*slot // everything known of each name
	closed bool
	quit   chan struct{}  // closed by Shutdown: a reload's TESTs end
	bg     sync.WaitGroup // the goroutines of ephemeral jobs' TTLs and ties; Shutdown waits

	viewing viewing // samples every running job while a viewer (SAMPLES) is connected
}

// slot is everything the manager knows of one job name; guarded by
// Manager.mu. A name has a slot while any field is set, and none after.
type slot struct {
	// sup runs the job's current definition (sup.job); nil when no
	// version of it runs (its file is rejected, or only a hold is left).
	sup  *supervisor
	sink *logSink // its log, made on first use; it outlives successive supervisors
	// rejected says why its file is rejected, or "". The job's last good
	// version, if any, runs on.
	rejected string
	// eph is set while the job is ephemeral (SPAWN); RELOAD leaves it alone.
	eph *ephemeral
	// The flags side by side (a slot of 96 bytes, not 104 in a class of
	// 112; 5000 jobs hold 5000).
	held bool // held stopped by STOP
	// leaving is set while the job whose file is gone stops; the name is
	// then unknown to requests and taken for SPAWN.
	leaving bool
	// prog is the program its process runs, as read by the reload that
	// started it: a reload that reads another restarts the job.
	prog program
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
	cfg.pipes = newPipeReader(cfg.Logger, cfg.Holder)
	cfg.lost = &lostExits{exits: cfg.Lost}
	cfg.notify = newNotifier(cfg.Instance, cfg.Logger)
	cfg.order = newOrder()
	if cfg.Cgroups == CgroupsAuto {
		t, n, err := cgroupsOf(cfg.Instance, cfg.Adopting, cfg.Survivors)
		if err != nil {
			cfg.Logger.Info("no cgroups: leftovers of jobs are found by session and marker", "why", err)
		}
		if n > 0 {
			cfg.Logger.Warn("killed processes an earlier overseerd left in its cgroup", "count", n)
		}
		cfg.cgroups = t
	}
	m := &Manager{cfg: &cfg, slots: make(map[string]*slot), quit: make(chan struct{})}
	m.viewing = viewing{status: m.Status, subs: make(map[*SampleFeed]struct{})}
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

// logOf returns the log of name: the one a job writes to (even one being
// removed), or else, when its file exists, the log a job of that name
// left (removed, forgotten, or of an earlier daemon), to read only. nil:
// there is none.
func (m *Manager) logOf(name string) *logSink {
	m.mu.Lock()
	if sl := m.slots[name]; sl != nil && sl.sink != nil {
		m.mu.Unlock()
		return sl.sink
	}
	m.mu.Unlock()
	if NameProblem(name) != "" {
		return nil // a request's word is no path
	}
	path := filepath.Join(m.cfg.LogDir, name+".log")
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	l := newLogSink(path, 0, m.cfg.LogKeep)
	l.closed = true // written by no one: followers end at once
	return l
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

// LogsOf returns the last n lines of the logs of stream of the named jobs
// (as Logs; a job with no log is left out), merged by time, each after its
// job's name and a space, and at most maxTail bytes of them.
func (m *Manager) LogsOf(names []string, n int, stream string) ([]string, error) {
	var out []string
	for _, name := range names {
		l := m.logOf(name)
		if l == nil {
			continue
		}
		lines, err := l.tail(n, stream)
		if err != nil {
			return nil, err
		}
		for i := range lines {
			lines[i] = name + " " + lines[i]
		}
		out = mergeTails(out, lines, n, maxTail)
	}
	return out, nil
}

// FollowOf is Follow for several jobs: their last lines as LogsOf, and a
// Follower of the lines they write after them, each after its job's name
// and a space. Lines ends when every job's log is closed, or on stop.
func (m *Manager) FollowOf(names []string, n int, stream string) (last []string, f *Follower, stop func(), err error) {
	f = newFollower(stream)
	var detach []func()
	for _, name := range names {
		if l := m.logOf(name); l != nil {
			detach = append(detach, l.attach(f, name+" "))
		}
	}
	f.leave() // attached: the logs hold it open now
	stop = func() {
		for _, d := range detach {
			d()
		}
	}
	if last, err = m.LogsOf(names, n, stream); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return last, f, stop, nil
}

// mergeTails merges a and b, log lines "NAME TIME STREAM TEXT" each in
// time order, into their last n lines in time order, and at most limit
// bytes of them (the newest, a newline counted per line). On equal times,
// a's lines come first.
func mergeTails(a, b []string, n, limit int) []string {
	out := make([]string, 0, min(n, len(a)+len(b)))
	i, j, size := len(a)-1, len(b)-1, 0
	for len(out) < n && (i >= 0 || j >= 0) {
		var l string
		if j < 0 || i >= 0 && logTime(a[i]) > logTime(b[j]) {
			l, i = a[i], i-1
		} else {
			l, j = b[j], j-1
		}
		if size+len(l)+1 > limit {
			break
		}
		size += len(l) + 1
		out = append(out, l)
	}
	slices.Reverse(out)
	return out
}

// logTime returns the TIME of a line "NAME TIME STREAM TEXT": a fixed
// width UTC time, so that times compare as strings.
func logTime(line string) string {
	_, rest, _ := strings.Cut(line, " ")
	t, _, _ := strings.Cut(rest, " ")
	return t
}

// IsGlob reports whether word is a glob of job names (path.Match syntax)
// rather than a name: a name holds none of its characters * ? [ (see
// NameProblem), so the two never clash.
func IsGlob(word string) bool { return strings.ContainsAny(word, "*?[") }

// GlobProblem says what is wrong with a glob of job names, or "".
func GlobProblem(glob string) string {
	if strings.Contains(glob, `\`) {
		return `a glob needs no \: job names hold only letters, digits, '_', '-' and '.'`
	}
	if _, err := path.Match(glob, ""); err != nil {
		return "unclosed [ or a bad range in [...]"
	}
	return ""
}

// Match returns the names of the jobs requests see (those Status lists)
// that glob matches, sorted; none is not an error.
func (m *Manager) Match(glob string) ([]string, error) {
	if p := GlobProblem(glob); p != "" {
		return nil, fmt.Errorf("bad glob %q: %s", glob, p)
	}
	var out []string
	for _, name := range m.Names() {
		if ok, _ := path.Match(glob, name); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Change is one line of a reload report.
type Change struct {
	Verb   Verb
	Name   string // job name, or file name for RejectedIt, or FILE:LINE for Warned
	Detail string

	job  string // Warned: the job's name, which it follows in the report
	line int    // Warned: the line, to keep a file's warnings in line order
}

// less orders changes by name, each job's warnings after its own line.
func (c Change) less(d Change) bool {
	cn, dn := c.Name, d.Name
	if c.Verb == Warned {
		cn = c.job
	}
	if d.Verb == Warned {
		dn = d.job
	}
	if cn != dn {
		return cn < dn
	}
	if (c.Verb == Warned) != (d.Verb == Warned) {
		return d.Verb == Warned
	}
	return c.line < d.line
}

// Report says what a Reload changed.
type Report struct {
	Changes []Change // sorted by name
	Jobs    int      // jobs defined after the reload
}

// Count returns how many changes have verb.
func (r Report) Count(verb Verb) int {
	n := 0
	for _, c := range r.Changes {
		if c.Verb == verb {
			n++
		}
	}
	return n
}

// Reload reads dir and converges the running jobs to it: new files start
// jobs, changed files restart them, removed files stop them, the TESTs
// whose answers matter are run again. A rejected file leaves the job it
// used to define untouched; a failed job is retried only when its file or
// its TEST's answer changed. Reloads are serialised: a second one waits
// for the first and then does its own pass.
//
// It plans first (see plan), then applies each action; a job whose
// decision waits for its TEST is decided and applied once its TEST has
// answered, so a slow TEST delays only its own job. It returns once the
// jobs it started are ready (READY), or will not be; with nowait, once
// they are started.
func (m *Manager) Reload(ctx context.Context, dir string, nowait bool) (Report, error) {
	m.reload.Lock()
	defer m.reload.Unlock()
	defs, progs, errs, views, err := m.load(dir)
	if err != nil {
		return Report{}, err
	}
	r := &run{ctx: ctx, nowait: nowait}
	m.mu.Lock()
	// Rejections are set anew: a file rejected before and fine now, or
	// gone, is rejected no more.
	r.wasRejected = make(map[string]bool)
	for name, sl := range m.slots {
		if sl.rejected != "" {
			r.wasRejected[name] = true
			sl.rejected = ""
		}
	}
	actions := plan(defs, progs, errs, views, nil)
	for _, a := range actions {
		if a.Act == Reject && ValidName(a.Name) {
			for _, name := range m.rejectedNames(a.Name) {
				m.at(name).rejected = a.Why.Err
			}
		}
	}
	actions, rolls := rollSteps(actions)
	for _, steps := range rolls {
		r.wg.Go(func() { m.roll(r, steps) })
	}
	r.removing = m.removalOrder(actions)
	for _, a := range actions {
		if a.Act != Pending {
			m.apply(r, a)
			continue
		}
		sink := m.sink(a.Name)
		r.wg.Go(func() {
			t := m.test(a.Job, sink)
			m.mu.Lock()
			defer m.mu.Unlock()
			if !t.canceled && !m.closed {
				m.apply(r, a.Decide(t))
			}
		})
	}
	for name := range r.wasRejected {
		m.tidy(name)
	}
	m.mu.Unlock()

	r.wg.Wait()
	m.mu.Lock()
	for _, sl := range m.slots {
		if sl.known() {
			r.rep.Jobs++ // a rejected file without a running version is listed by STATUS too
		}
	}
	m.mu.Unlock()
	sort.SliceStable(r.rep.Changes, func(a, b int) bool { return r.rep.Changes[a].less(r.rep.Changes[b]) })
	return r.rep, nil
}

// Plan says what a Reload of dir would do now, and why: it runs the TESTs
// a reload would run (they are side-effect free by contract) and starts,
// stops or signals nothing.
func (m *Manager) Plan(dir string) ([]Action, error) {
	m.reload.Lock()
	defer m.reload.Unlock()
	defs, progs, errs, views, err := m.load(dir)
	if err != nil {
		return nil, err
	}
	actions := plan(defs, progs, errs, views, nil)
	var wg sync.WaitGroup
	for i, a := range actions {
		if a.Act != Pending {
			continue
		}
		sink := m.sinkOf(a.Name)
		wg.Go(func() { actions[i] = a.Decide(m.test(a.Job, sink)) })
	}
	wg.Wait()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return actions, nil
}

// load reads dir and the programs its jobs run, and takes a snapshot of
// the slots, for plan.
func (m *Manager) load(dir string) ([]*Job, map[string]program, []error, map[string]view, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, nil, nil, nil, ErrClosed
	}
	defs, errs, err := LoadDir(dir, m.cfg.Environ)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	progs := make(map[string]program, len(defs))
	seen := make(map[string]program) // many jobs run one program
	for _, j := range defs {
		key := j.Command[0] + "\x00" + j.Dir + "\x00" + envMap(j.Env)["PATH"]
		p, ok := seen[key]
		if !ok {
			p = readProgram(j, m.cfg)
			seen[key] = p
		}
		progs[j.Name] = p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	views := make(map[string]view, len(m.slots))
	for name, sl := range m.slots {
		v := view{Held: sl.held, Rejected: sl.rejected != "", Ephemeral: sl.eph != nil, Leaving: sl.leaving, Prog: sl.prog}
		if sl.sup != nil {
			st := sl.sup.Status()
			v.Job, v.State, v.Reason = sl.sup.definition(), st.State, st.Reason
		}
		views[name] = v
	}
	// A rejected file's instances run on: AFTER naming the file stands
	// for them.
	defs = expandDepsWith(defs, rejectedInstances(errs, views))
	defs, errs = checkOrder(defs, errs, lastGoodDeps(errs, views))
	return defs, progs, errs, views, nil
}

// sinkOf returns the log of name, made on first use.
func (m *Manager) sinkOf(name string) *logSink {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sink(name)
}

// test runs j's TEST, within MaxTests at once, and returns its answer;
// its output goes to the job's log sink. Shutdown cancels it.
func (m *Manager) test(j *Job, sink *logSink) testResult {
	t := &supervisor{job: j, cfg: m.cfg, sink: sink}
	t.own()
	return t.runTest(j, m.quit)
}

// run is one reload's report in the making.
type run struct {
	ctx         context.Context
	wg          sync.WaitGroup
	mu          sync.Mutex // guards rep
	rep         Report
	wasRejected map[string]bool // names rejected before this reload
	nowait      bool            // answer once the jobs are started, not once ready
	removing    *stopping       // the jobs it removes: dependants stop first
	sends       []func()        // guarded by mu: requests to send to supervisors, in turn (later)
	senders     int             // guarded by mu: goroutines sending them
}

func (r *run) add(c Change) {
	r.mu.Lock()
	r.rep.Changes = append(r.rep.Changes, c)
	r.mu.Unlock()
}

// maxSenders bounds the goroutines of a reload that send its requests to
// supervisors (run.later): sending one handles it when the supervisor is
// idle, a start included, which waits for a place among the reaper's
// forks; more than those places keeps them all busy.
const maxSenders = 32

// later queues send, which sends a request to a supervisor, to be run by
// one of at most maxSenders goroutines of r.wg. Its outcome comes back
// through expect: no goroutine waits for it (at a reload of 5000 jobs,
// 5000 goroutines waiting at once were 2.4 MB of the daemon's heap ever
// after: the runtime never frees a goroutine's record).
func (r *run) later(send func()) {
	r.mu.Lock()
	r.sends = append(r.sends, send)
	more := r.senders < maxSenders
	if more {
		r.senders++
	}
	r.mu.Unlock()
	if more {
		r.wg.Go(r.sendAll)
	}
}

// sendAll runs the queued sends in turn until none is left.
func (r *run) sendAll() {
	for {
		r.mu.Lock()
		if len(r.sends) == 0 {
			r.sends = nil
			r.senders--
			r.mu.Unlock()
			return
		}
		send := r.sends[0]
		r.sends[0] = nil
		r.sends = r.sends[1:]
		r.mu.Unlock()
		send()
	}
}

// expect returns what takes the outcome of one request for the report:
// change makes it a Change. r waits for it (wg).
func (r *run) expect(name string, change func(Change) Change) func(Outcome) {
	r.wg.Add(1)
	return func(o Outcome) {
		c := outcomeChange(name, o)
		if change != nil {
			c = change(c)
		}
		r.add(c)
		r.wg.Done()
	}
}

// apply carries out one action of a plan: requests to supervisors go to
// r's senders (later), whatever else waits for a job to a goroutine of
// r.wg. Call with mu held.
func (m *Manager) apply(r *run, a Action) {
	if a.Act == Warn {
		r.add(Change{Verb: Warned, Name: a.Warning.Where(), Detail: a.Why.String(), job: a.Name, line: a.Warning.Line})
		return
	}
	ctx := r.ctx
	sl := m.at(a.Name)
	if a.Prog != nil && a.Act != Reject && a.Act != Stop {
		sl.prog = *a.Prog
	}
	switch a.Act {
	case Keep:
		r.add(Change{Verb: Unchanged, Name: a.Name})
	case Reject:
		r.add(Change{Verb: RejectedIt, Name: a.File, Detail: a.Why.Err})
		if !ValidName(a.Name) || sl.sup != nil || len(m.instancesOf(a.Name)) > 0 {
			m.tidy(a.Name)
			return // not a job's name, or its last good version runs on
		}
		st := Status{Name: a.Name, State: Rejected, Since: time.Now(), Reason: a.Why.Err}
		m.cfg.order.rejected(a.Name)
		if err := m.cfg.Recorder.RecordState(ctx, st); err != nil {
			m.cfg.Logger.Warn("record state", "job", a.Name, "err", err)
		}
		if !r.wasRejected[a.Name] {
			m.cfg.events.publish(Event{At: st.Since, Job: a.Name, Old: NoState, New: Rejected, Reason: a.Why.Err})
		}
	case Start:
		prev := NoState
		if r.wasRejected[a.Name] {
			prev = Rejected
		}
		m.cfg.order.fresh(a.Name)
		s := newSupervisorAfter(a.Job, m.cfg, m.sink(a.Name), prev)
		sl.sup = s
		then := r.expect(a.Name, nil)
		r.later(func() { m.first(s, a.Test, r.nowait, then) })
	case Retest:
		s := sl.sup
		then := r.expect(a.Name, nil)
		r.later(func() { s.send(request{op: opUp, tested: a.Test, nowait: r.nowait}, then) })
	case Replace:
		m.replace(r, sl, a)
	case Update:
		s := sl.sup
		then := r.expect(a.Name, func(c Change) Change {
			switch {
			case c.Verb == Unchanged:
				c.Verb, c.Detail = Updated, a.Why.String()
			case c.Detail != "":
				c.Detail = strings.Join(a.Why.Keys, ", ") + " changed; " + c.Detail
			}
			return c
		})
		r.later(func() { s.send(request{op: opUpdate, job: a.Job, tested: a.Test, nowait: r.nowait}, then) })
	case Stop:
		if sl.sup == nil {
			// A rejected file that is gone: nothing of it runs.
			st := Status{Name: a.Name, State: Removed, Since: time.Now()}
			if err := m.cfg.Recorder.RecordState(ctx, st); err != nil {
				m.cfg.Logger.Warn("record state", "job", a.Name, "err", err)
			}
			m.cfg.events.publish(Event{At: st.Since, Job: a.Name, Old: Rejected, New: Removed, Reason: "reload: file removed"})
			m.cfg.order.forget(a.Name)
			m.tidy(a.Name)
			return
		}
		m.remove(r, a.Name, sl)
	}
}

// replace stops the running version of a changed job and then starts its
// new definition. The old version stays in place, visible as stopping,
// until its process is gone; then the new one takes its name. Call with
// mu held.
func (m *Manager) replace(r *run, sl *slot, a Action) {
	old := sl.sup
	r.wg.Go(func() {
		was := old.do(request{op: opQuit, reason: "reload", detail: a.Why.String()})
		<-old.ended()
		m.mu.Lock()
		if m.closed || sl.sup != old || m.slots[a.Name] != sl {
			m.mu.Unlock()
			return
		}
		m.cfg.order.fresh(a.Name)
		s := newSupervisorAfter(a.Job, m.cfg, m.sink(a.Name), old.Status().State)
		sl.sup = s
		m.mu.Unlock()
		o := make(chan Outcome, 1)
		m.first(s, a.Test, r.nowait, func(x Outcome) { o <- x })
		c := outcomeChange(a.Name, <-o)
		switch {
		case was.Verb != StoppedIt:
		case c.Verb == Started:
			c.Verb = Restarted
		case c.Verb == SkippedIt || c.Verb == FailedIt:
			c = Change{Verb: StoppedIt, Name: a.Name, Detail: "changed; " + c.Detail}
		case c.Verb == Unchanged:
			c = Change{Verb: StoppedIt, Name: a.Name, Detail: "changed"}
		}
		r.add(c)
	})
}

// remove stops a job whose file is gone and forgets it once its process
// is gone; meanwhile its name is unknown to requests. Call with mu held.
func (m *Manager) remove(r *run, name string, sl *slot) {
	ctx := r.ctx
	old, sink := sl.sup, sl.sink
	sl.held = false // a hold does not outlive its job
	sl.leaving = true
	r.wg.Go(func() {
		r.removing.wait(name) // its dependants removed with it stop first
		old.do(request{op: opQuit, reason: "removed", detail: "file removed"})
		<-old.ended()
		r.removing.done(name)
		m.cfg.order.forget(name)
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
		r.add(Change{Verb: StoppedIt, Name: name, Detail: "removed"})
	})
}

// first brings a new supervisor to its first state: started (through the
// answer t of its TEST, when the reload ran it), or stopped if STOP holds
// its name. The hold is read now, not when the reload began, so a STOP
// that came meanwhile counts. Its outcome goes to then (see send).
func (m *Manager) first(s *supervisor, t *testResult, nowait bool, then func(Outcome)) {
	m.mu.Lock()
	held := m.get(s.definition().Name).held
	m.mu.Unlock()
	if held {
		s.send(request{op: opStop, note: heldNote}, then)
		return
	}
	s.send(request{op: opUp, force: true, tested: t, nowait: nowait}, then)
}

func outcomeChange(name string, o Outcome) Change {
	return Change{Verb: o.Verb, Name: name, Detail: o.Detail}
}

// Status returns every job's state, sorted by name. A job whose file is
// rejected and that has no running version is listed as Rejected; one that
// still runs its last good version carries the rejection in Reason.
func (m *Manager) Status() []Status {
	type named struct {
		name string
		sl   *slot
	}
	m.mu.Lock()
	known := make([]named, 0, len(m.slots))
	for name, sl := range m.slots {
		if sl.known() {
			known = append(known, named{name, sl})
		}
	}
	// Sorted before the (large) Status values are made: at 5000 jobs,
	// sorting those moved a lot of memory.
	slices.SortFunc(known, func(a, b named) int { return strings.Compare(a.name, b.name) })
	out := make([]Status, len(known))
	for i, k := range known {
		out[i] = k.sl.status(k.name)
	}
	m.mu.Unlock()
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
	close(m.quit)
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
	// Dependants first (AFTER), the others at once.
	order := newStopping(all)
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			name := s.definition().Name
			order.wait(name)
			s.do(request{op: opQuit, reason: "die"})
			<-s.ended()
			order.done(name)
		})
	}
	wg.Wait()
	m.bg.Wait() // released above, or forgetting a job that is gone now
	if cg := m.cfg.cgroups; cg != nil {
		cg.close()
	}
	m.cfg.sampler.stop()
	m.viewing.close()
	m.cfg.pipes.stop()
	m.cfg.notify.close()
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
// TEST runs first, as for every start. It returns once the job is ready
// (READY), or will not be; with nowait, once its process is started.
func (m *Manager) Start(name string, nowait bool) (Outcome, error) {
	return m.control(name, false, func(s *supervisor) Outcome {
		return s.do(request{op: opUp, force: true, nowait: nowait})
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

// Restart stops the job if it runs, then starts it, releasing any hold;
// it returns as Start does.
func (m *Manager) Restart(name string, nowait bool) (Outcome, error) {
	return m.control(name, false, func(s *supervisor) Outcome {
		was := s.do(request{op: opStop, reason: "restart"})
		o := s.do(request{op: opUp, force: true, nowait: nowait})
		if was.Verb == StoppedIt && o.Verb == Started {
			o.Verb = Restarted
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
	j := s.definition()
	d := Detail{Status: s.Status(), Job: j, Rejected: sl.rejected, MetricsInterval: metricsIntervalOf(j, m.cfg)}
	d.Held = sl.held
	if e := sl.eph; e != nil {
		info := e.Ephemeral
		d.Ephemeral = &info
	}
	m.mu.Unlock()
	return d, nil
}
