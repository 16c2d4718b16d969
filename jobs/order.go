package jobs

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Start order (AFTER, RESTART_WITH). The decisions are pure functions:
// checkOrder (at load: unknown names, cycles), mayStart (may a job start
// now, and if not, what it waits for) and stopFirst (who stops before
// whom). The order registry only carries the states they read between
// supervisors, and wakes the dependants of a job whose state changed.

// ReasonRestartWith is the reason a run records when overseer stopped its
// process because a job it names in RESTART_WITH restarted.
const ReasonRestartWith = "restart-with"

// parseNames reads the value of AFTER or RESTART_WITH: job names separated
// by blanks, in order, without repeats. Its errors quote nothing of v.
func parseNames(self, v string) ([]string, error) {
	var out []string
	for _, n := range strings.Fields(v) {
		if NameProblem(n) != "" {
			return nil, errors.New("expected job names separated by spaces (letters, digits, '_', '-' and '.')")
		}
		if n == self {
			return nil, errors.New("a job cannot wait for itself")
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("is empty: name the jobs to start after, or remove the key")
	}
	return out, nil
}

// Deps returns the jobs j starts after: AFTER's, then RESTART_WITH's
// others, without repeats.
func (j *Job) Deps() []string {
	if len(j.RestartWith) == 0 {
		return j.After
	}
	out := slices.Clone(j.After)
	for _, n := range j.RestartWith {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// depKey names the key of j that makes it wait for dep, and its line.
func (j *Job) depKey(dep string) (string, int) {
	if slices.Contains(j.After, dep) {
		return "AFTER", int(j.afterLine)
	}
	return "RESTART_WITH", int(j.withLine)
}

// checkOrder rejects the definitions that name a job no file defines, or
// that are on a cycle of dependencies, and keeps the others: defs and
// errs as LoadDir returns them, running the dependencies of the last good
// versions of rejected files (they run on, so they are part of the graph).
// A name whose file is rejected is known: its dependants wait for it. It
// is pure.
func checkOrder(defs []*Job, errs []error, running map[string][]string) ([]*Job, []error) {
	known := make(map[string]bool)
	graph := make(map[string][]string)
	for _, err := range errs {
		var fe *FileError
		if errors.As(err, &fe) {
			name := strings.TrimSuffix(fe.File, ".env")
			known[name] = true
			graph[name] = running[name]
		}
	}
	for n, deps := range running {
		known[n] = true // a rejected file's instances, which run on
		graph[n] = deps
	}
	names := make([]string, 0, len(defs))
	for _, j := range defs {
		known[j.Name] = true
		graph[j.Name] = j.Deps()
		names = append(names, j.Name)
	}
	cycles := findCycles(graph)
	// A file is rejected whole, once: the first error of its instances
	// (INSTANCES) rejects them all.
	bad := make(map[string]bool) // by file
	for _, j := range defs {
		if file := fileOf(j); !bad[file] {
			if err := orderError(j, known, names, cycles[j.Name]); err != nil {
				bad[file] = true
				errs = append(errs, err)
			}
		}
	}
	var ok []*Job
	for _, j := range defs {
		if !bad[fileOf(j)] {
			ok = append(ok, j)
		}
	}
	return ok, errs
}

// orderError says why j cannot be used, given the known names (names:
// the defined ones, for a suggestion) and the cycle j is on (nil: none).
func orderError(j *Job, known map[string]bool, names []string, cycle []string) error {
	for _, d := range j.Deps() {
		if known[d] {
			continue
		}
		key, line := j.depKey(d)
		msg := fmt.Sprintf("%s: no job named %q", key, d)
		if like := Nearest(d, names); like != "" {
			msg += fmt.Sprintf(": did you mean %s?", like)
		}
		return &FileError{File: fileOf(j), Line: line, Err: errors.New(msg)}
	}
	if cycle == nil {
		return nil
	}
	key, line := j.depKey(cycle[1])
	return &FileError{File: fileOf(j), Line: line, Err: fmt.Errorf("%s: cycle %s", key, strings.Join(cycle, " -> "))}
}

// findCycles returns, for each name on a cycle of graph (name -> the
// names it waits for), one shortest cycle from it back to it: [web api
// web]. Edges to names not in graph are ignored. It is pure.
func findCycles(graph map[string][]string) map[string][]string {
	out := make(map[string][]string)
	names := make([]string, 0, len(graph))
	for n := range graph {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, start := range names {
		// Breadth first from start, to the first edge back to it.
		prev := map[string]string{start: ""}
		queue := []string{start}
		found := ""
		for len(queue) > 0 && found == "" {
			n := queue[0]
			queue = queue[1:]
			for _, d := range graph[n] {
				if _, ok := graph[d]; !ok {
					continue
				}
				if d == start {
					found = n
					break
				}
				if _, seen := prev[d]; !seen {
					prev[d] = n
					queue = append(queue, d)
				}
			}
		}
		if found == "" {
			continue
		}
		path := []string{start}
		for n := found; n != start; n = prev[n] {
			path = append(path, n)
		}
		slices.Reverse(path[1:])
		out[start] = append(path, start)
	}
	return out
}

// depState is what a dependant knows of one of its dependencies.
type depState struct {
	State State
	Exit  *Exit // its last exit (Exited: 0 is a one-shot done)
	// Gen counts the starts of its processes: a change restarts the
	// jobs that name it in RESTART_WITH.
	Gen uint64
	pid int // the last pid seen, to count Gen
	// The flags side by side: 48 bytes, not 64.
	// Fresh: a new supervisor, not yet asked to start or hold: it is
	// about to start.
	Fresh bool
	// OneShot: RESTART=never, a job done once it exited 0 (a migration):
	// running, it is not yet.
	OneShot bool
	// Stuck: it is Waiting for a dependency that will not come by itself.
	Stuck bool
	// Rolling: a roll of its file's instances is to restart it: it does
	// not count as ready until its step is done, so that a dependant
	// starts once, after the roll, not between its steps.
	Rolling bool
}

// mayStart decides whether a job that waits for deps may start, given
// the states of the jobs known (a name without one is not loaded): each
// must be running (which means ready), or have exited 0; a one-shot
// (RESTART=never, such as a migration) must have exited 0. If not, why says what it waits for ("for db, cache")
// and, when some will not come by themselves, why not ("for db: db
// failed"); stuck says so: a dependency failed, exited non-zero, was
// stopped, skipped, rejected or is backing off, or waits for such a one.
// It is pure.
func mayStart(deps []string, states map[string]depState) (ok bool, why string, stuck bool) {
	var waitFor, bad []string
	for _, d := range deps {
		st, found := states[d]
		switch {
		case !found:
			waitFor, bad = append(waitFor, d), append(bad, d+" is not loaded")
		case st.Fresh, st.Rolling:
			waitFor = append(waitFor, d)
		case st.State == Running && !st.OneShot:
		case st.State == Exited && st.Exit != nil && st.Exit.Code == 0 && st.Exit.Signal == "":
		case st.State == Starting, st.State == Stopping, st.State == Running, st.State == Waiting && !st.Stuck:
			waitFor = append(waitFor, d)
		case st.State == Exited && st.Exit != nil:
			waitFor, bad = append(waitFor, d), append(bad, d+" "+exitWords(*st.Exit))
		default:
			waitFor, bad = append(waitFor, d), append(bad, d+" "+string(st.State))
		}
	}
	if len(waitFor) == 0 {
		return true, "", false
	}
	why = "for " + strings.Join(waitFor, ", ")
	if len(bad) > 0 {
		why += ": " + strings.Join(bad, ", ")
	}
	return false, why, len(bad) > 0
}

// stopFirst returns, for each name of deps (name -> the names it waits
// for, among others), the names in deps that wait for it: they stop
// before it. Edges on a cycle (possible only through last good versions)
// are left out, so that waiting on the answer never deadlocks. It is pure.
func stopFirst(deps map[string][]string) map[string][]string {
	out := make(map[string][]string)
	for n, ds := range deps {
		for _, d := range ds {
			if _, ok := deps[d]; !ok || d == n || reaches(deps, d, n) {
				continue // not stopping, or n and d wait for each other
			}
			out[d] = append(out[d], n)
		}
	}
	for _, ns := range out {
		sort.Strings(ns)
	}
	return out
}

// reaches reports whether to can be reached from from in graph.
func reaches(graph map[string][]string, from, to string) bool {
	seen := map[string]bool{from: true}
	stack := []string{from}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == to {
			return true
		}
		for _, d := range graph[n] {
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

// order carries the states of jobs to the supervisors that wait for them
// (AFTER, RESTART_WITH), and wakes those when they change. Its mutex is
// never held while waiting on anything. A nil *order knows nothing.
type order struct {
	mu         sync.Mutex
	jobs       map[string]*depState            // by name: the last state its supervisor published
	dependants map[string]map[*supervisor]bool // by dependency: the supervisors that name it
}

func newOrder() *order {
	return &order{jobs: make(map[string]*depState), dependants: make(map[string]map[*supervisor]bool)}
}

// wake tells the dependants of name that its state changed. Call with mu held.
func (o *order) wake(name string) {
	for s := range o.dependants[name] {
		s.wakeDeps() // one wake pending is enough: it reads the newest states
	}
}

// publish takes st, the state the supervisor of a job published, stuck
// (it waits for a dependency that will not come) and oneShot (RESTART=never).
func (o *order) publish(st Status, stuck, oneShot bool) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entry(st.Name)
	if st.Pid != 0 && st.Pid != e.pid {
		e.Gen++
	}
	e.pid, e.Fresh, e.State, e.Exit, e.Stuck = st.Pid, false, st.State, st.LastExit, stuck && st.State == Waiting
	e.OneShot = oneShot
	o.wake(st.Name)
}

// entry is name's state, made if there is none yet; o.mu is held.
func (o *order) entry(name string) *depState {
	e := o.jobs[name]
	if e == nil {
		e = &depState{}
		o.jobs[name] = e
	}
	return e
}

// seed takes the state of a job adopted from this process's earlier image
// (an upgrade) as publish does, but as no new start: its count of starts
// is 1 in this image, as its adopted dependants count it (withGen).
func (o *order) seed(st Status, oneShot bool) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entry(st.Name)
	e.pid, e.Fresh, e.State, e.Exit, e.OneShot = st.Pid, false, st.State, st.LastExit, oneShot
	e.Gen = max(e.Gen, 1) // it started before: its next process is a new one
	o.wake(st.Name)
}

// fresh says a new supervisor of name is about to be asked to start.
func (o *order) fresh(name string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.jobs[name]
	if e == nil {
		e = &depState{}
		o.jobs[name] = e
	}
	e.Fresh = true
	o.wake(name)
}

// rolling says whether a roll is to restart the jobs of names (see
// depState.Rolling).
func (o *order) rolling(names []string, on bool) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range names {
		if e := o.jobs[n]; e != nil && e.Rolling != on {
			e.Rolling = on
			o.wake(n)
		}
	}
}

// rejected says name's file is rejected and no version of it runs.
func (o *order) rejected(name string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.jobs[name] = &depState{State: Rejected}
	o.wake(name)
}

// forget says no job of name is left.
func (o *order) forget(name string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.jobs, name)
	o.wake(name)
}

// watch moves s from the dependants of the names in was to those of now.
func (o *order) watch(s *supervisor, was, now []string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range was {
		delete(o.dependants[n], s)
		if len(o.dependants[n]) == 0 {
			delete(o.dependants, n)
		}
	}
	for _, n := range now {
		if o.dependants[n] == nil {
			o.dependants[n] = make(map[*supervisor]bool)
		}
		o.dependants[n][s] = true
	}
}

// states returns the states of names, for mayStart.
func (o *order) states(names []string) map[string]depState {
	out := make(map[string]depState, len(names))
	if o == nil {
		return out
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range names {
		if e := o.jobs[n]; e != nil {
			out[n] = *e
		}
	}
	return out
}

// gen returns the count of the starts of name's processes.
func (o *order) gen(name string) uint64 {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.jobs[name]; e != nil {
		return e.Gen
	}
	return 0
}

// gate reports whether the job must wait before a start for the jobs it
// starts after (mayStart); it is then waiting, with what it waits for as
// its note. Those waiting for its start are answered (Waited) when a
// dependency will not come by itself, or they asked not to wait (NOWAIT,
// a RELOAD's -no-wait); the others wait on: for its start, or until then.
func (s *supervisor) gate() bool {
	deps := s.job.Deps()
	if len(deps) == 0 {
		return false
	}
	ok, why, stuck := mayStart(deps, s.cfg.order.states(deps))
	if ok {
		s.stuck = false
		stopTimer(&s.waitLimit)
		return false
	}
	note := "waiting " + why
	if s.st.State != Waiting || s.st.Reason != note || s.stuck != stuck {
		s.stuck = stuck
		s.set(Waiting, note, note)
	}
	kept := s.upWaiters[:0]
	for _, w := range s.upWaiters {
		if stuck || w.nowait {
			w.reply.send(Outcome{Verb: Waited, Detail: why, Stuck: stuck})
		} else {
			kept = append(kept, w)
		}
	}
	s.upWaiters = kept
	if len(kept) > 0 && s.waitLimit == nil {
		s.after(&s.waitLimit, s.job.ReadyTimeout, s.waitedLong)
	}
	return true
}

// waitedLong answers whoever has waited READY_TIMEOUT for the start of a
// waiting job (a one-shot it waits for may run long): it waits on.
func (s *supervisor) waitedLong() {
	if s.st.State != Waiting {
		return
	}
	ok, why, _ := mayStart(s.job.Deps(), s.cfg.order.states(s.job.Deps()))
	if ok {
		return // a wake is on its way: it starts
	}
	s.answerUp(Outcome{Verb: Waited, Detail: why})
}

// wakeDeps makes run read its dependencies' states again.
func (s *supervisor) wakeDeps() { s.post(event{deps: true}) }

// onDeps acts on a change of state of a job this one waits for: a
// waiting job starts if it now may (or notes why not); a job with a
// process restarts if a job it names in RESTART_WITH started a new process.
func (s *supervisor) onDeps() {
	if s.quit {
		return
	}
	if s.st.State == Waiting {
		if s.goalUp && !s.live && s.test == nil && s.restart == nil {
			s.begin()
		}
		return
	}
	if !s.live || s.stopping {
		return
	}
	for _, d := range s.job.RestartWith {
		// A count of 0: no job of that name (its file was removed): a
		// removal is no new process, and a dependant stopped for it
		// would wait for a job that is not loaded.
		g := s.cfg.order.gen(d)
		if prev, ok := s.withGen[d]; ok && prev == 0 && g != 0 {
			// Counted before it ever started (a copy INSTANCES just
			// added): its first process replaces none.
			s.withGen[d] = g
			continue
		}
		if g != 0 && g != s.withGen[d] {
			s.log().Info("restarting with", "job", d)
			s.stopProcess(ReasonRestartWith, d+" restarted (RESTART_WITH)")
			return
		}
	}
}

// stopping orders the stops of jobs that go together (removed by one
// RELOAD, or at shutdown): each waits for its dependants among them to be
// gone (stopFirst). A nil *stopping orders nothing.
type stopping struct {
	first map[string][]string      // name -> its dependants to stop first
	gone  map[string]chan struct{} // closed once the name's job is gone
}

// newStopping orders the stops of the jobs of sups.
func newStopping(sups []*supervisor) *stopping {
	deps := make(map[string][]string, len(sups))
	for _, s := range sups {
		deps[s.definition().Name] = s.definition().Deps()
	}
	st := &stopping{first: stopFirst(deps), gone: make(map[string]chan struct{}, len(deps))}
	for n := range deps {
		st.gone[n] = make(chan struct{})
	}
	return st
}

// wait returns once the dependants of name among the jobs are gone.
func (st *stopping) wait(name string) {
	if st == nil {
		return
	}
	for _, d := range st.first[name] {
		<-st.gone[d]
	}
}

// done says name's job is gone.
func (st *stopping) done(name string) {
	if st == nil {
		return
	}
	if c, ok := st.gone[name]; ok {
		close(c)
	}
}

// removalOrder orders the stops of the jobs actions remove. Call with mu held.
func (m *Manager) removalOrder(actions []Action) *stopping {
	var sups []*supervisor
	for _, a := range actions {
		if sl := m.slots[a.Name]; a.Act == Stop && sl != nil && sl.sup != nil {
			sups = append(sups, sl.sup)
		}
	}
	if len(sups) < 2 {
		return nil
	}
	return newStopping(sups)
}

// lastGoodDeps returns the dependencies of the versions that run on for
// the rejected files of errs (views: the slots), for checkOrder: by the
// file's name, and by its instances' names for a file with INSTANCES.
func lastGoodDeps(errs []error, views map[string]view) map[string][]string {
	out := make(map[string][]string)
	for _, err := range errs {
		var fe *FileError
		if !errors.As(err, &fe) {
			continue
		}
		name := strings.TrimSuffix(fe.File, ".env")
		if v := views[name]; v.Job != nil && !v.Ephemeral {
			out[name] = v.Job.Deps()
		}
	}
	for base, names := range rejectedInstances(errs, views) {
		out[base] = nil
		for _, n := range names {
			out[n] = views[n].Job.Deps()
		}
	}
	return out
}

// rejectedInstances returns, for each rejected file of errs with
// INSTANCES, the names of its instances that run their last good version
// (views: the slots), in index order.
func rejectedInstances(errs []error, views map[string]view) map[string][]string {
	rejected := make(map[string]bool)
	for _, err := range errs {
		var fe *FileError
		if errors.As(err, &fe) {
			rejected[strings.TrimSuffix(fe.File, ".env")] = true
		}
	}
	out := make(map[string][]string)
	for n, v := range views {
		if v.Job != nil && !v.Ephemeral && !v.Leaving && v.Job.Base != "" && rejected[v.Job.Base] {
			out[v.Job.Base] = append(out[v.Job.Base], n)
		}
	}
	for _, names := range out {
		sort.Slice(names, func(a, b int) bool { return indexOf(names[a]) < indexOf(names[b]) })
	}
	return out
}
