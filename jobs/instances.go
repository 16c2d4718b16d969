package jobs

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Instances: a file with INSTANCES=N defines N jobs, NAME.1 to NAME.N,
// each a job of its own (its supervisor, log, runs and events); NAME, the
// file's name, addresses them all (Expand). A file without INSTANCES
// defines one job named NAME, as it always did. A name of a job may hold
// dots, so a file web.2.env could name a job that web.env's INSTANCES
// makes too: LoadDir rejects both files (expandInstances).
//
// A reload that restarts instances (a changed definition) restarts them
// one at a time, in order of index, each stopped, then started and waited
// for until ready before the next goes (roll): so copies that share a port
// keep answering. The old process stops before the new one starts (no
// surge): a job that cannot share its port or its files with a copy of
// itself is never run twice. One that does not get ready stops the roll;
// the instances after it keep their version. A lower N stops the instances
// over it, highest first; a higher N starts the new ones; the others are
// left alone (INSTANCES is no part of a definition's Hash).

// MaxInstances is the most instances INSTANCES may ask for.
const MaxInstances = 1000

// IndexEnv is set in the environment of an instance (and its TEST and
// READY commands) to its index, from 1. The number of instances is not
// given: changing it leaves the others running as they are, so a value
// given at their start could be stale.
const IndexEnv = "OVERSEER_INDEX"

// indexEnv is what the environment of j's processes gets for its index.
func indexEnv(j *Job) []string {
	if j.Index == 0 {
		return nil
	}
	return []string{IndexEnv + "=" + strconv.Itoa(j.Index)}
}

// instanceName is the name of instance i of the file named base.
func instanceName(base string, i int) string { return base + "." + strconv.Itoa(i) }

// File is the base name of the file that defines j: NAME.env, or for an
// instance BASE.env.
func (j *Job) File() string { return fileOf(j) }

// fileOf is the base name of the file that defines j.
func fileOf(j *Job) string {
	if j.Base != "" {
		return j.Base + ".env"
	}
	return j.Name + ".env"
}

// expandInstances replaces each job of a file with INSTANCES by its
// instances, and rejects the files whose names clash: a name that two
// files make (web.env's INSTANCES=3 makes web.2, and web.2.env names
// web.2; or web.env's instance web.1 is web.1.env's base name). Files
// already rejected (errs) claim their names too, so a broken web.2.env
// is no name for web.env to take meanwhile. Both files of a clash are
// rejected, each error naming the other file: neither is preferred.
func expandInstances(defs []*Job, errs []error) ([]*Job, []error) {
	owner := make(map[string]string) // a name → the file that makes it
	clash := make(map[string]string) // a file → its error
	claim := func(name, file string) {
		other, ok := owner[name]
		switch {
		case !ok:
			owner[name] = file
		case other != file:
			if clash[file] == "" {
				clash[file] = clashError(name, other)
			}
			if clash[other] == "" {
				clash[other] = clashError(name, file)
			}
		}
	}
	for _, err := range errs {
		if fe, ok := err.(*FileError); ok {
			if name := strings.TrimSuffix(fe.File, ".env"); ValidName(name) {
				claim(name, fe.File)
			}
		}
	}
	for _, j := range defs {
		file := fileOf(j)
		claim(j.Name, file)
		for i := 1; i <= j.Instances; i++ {
			claim(instanceName(j.Name, i), file)
		}
	}
	var out []*Job
	for _, j := range defs {
		file := fileOf(j)
		if why := clash[file]; why != "" {
			errs = append(errs, &FileError{File: file, Err: fmt.Errorf("%s", why)})
			continue
		}
		if j.Instances == 0 {
			out = append(out, j)
			continue
		}
		for i := 1; i <= j.Instances; i++ {
			c := *j
			c.Name, c.Base, c.Index = instanceName(j.Name, i), j.Name, i
			if i > 1 {
				c.Warnings = nil // a file's warnings are said once
			}
			out = append(out, &c)
		}
	}
	return expandDeps(out), errs
}

// expandDeps makes a file's name in AFTER or RESTART_WITH stand for every
// instance of that file (AFTER=web waits for web.1 to web.N), as it does
// in requests. The jobs' own lists are never changed in place: instances
// share them.
func expandDeps(defs []*Job) []*Job { return expandDepsWith(defs, nil) }

// expandDepsWith is expandDeps where running names more instances (base
// name → their names): those of rejected files, which run their last
// good versions (rejectedInstances).
func expandDepsWith(defs []*Job, running map[string][]string) []*Job {
	instances := make(map[string][]string) // base name → its instances' names
	for base, names := range running {
		instances[base] = names
	}
	for _, j := range defs {
		if j.Base != "" {
			instances[j.Base] = append(instances[j.Base], j.Name)
		}
	}
	if len(instances) == 0 {
		return defs
	}
	expand := func(names []string) []string {
		if !slices.ContainsFunc(names, func(n string) bool { return instances[n] != nil }) {
			return names
		}
		var out []string
		for _, n := range names {
			if in := instances[n]; in != nil {
				out = append(out, in...)
			} else {
				out = append(out, n)
			}
		}
		return out
	}
	for i, j := range defs {
		after, with := expand(j.After), expand(j.RestartWith)
		if len(after) != len(j.After) || len(with) != len(j.RestartWith) {
			c := *j
			c.After, c.RestartWith = after, with
			defs[i] = &c
		}
	}
	return defs
}

func clashError(name, other string) string {
	return fmt.Sprintf("the job name %s is also made by %s (a file with INSTANCES=N makes NAME.1 to NAME.N): rename one of the two files", name, other)
}

// baseOf returns the base name of an instance's name web.2 ("web"), or "".
func baseOf(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return ""
	}
	if n, err := strconv.Atoi(name[i+1:]); err != nil || n < 1 || strconv.Itoa(n) != name[i+1:] {
		return ""
	}
	return name[:i]
}

// indexOf returns the index of an instance's name web.2 (2), or 0.
func indexOf(name string) int {
	if baseOf(name) == "" {
		return 0
	}
	n, _ := strconv.Atoi(name[strings.LastIndexByte(name, '.')+1:])
	return n
}

// rollSteps takes out of a plan's actions those a reload carries out one
// at a time, file by file: it returns the others, and for each file
// with instances to restart or stop its steps in order. A file's steps
// are the stops of instances over its new INSTANCES, highest first, then
// the restarts (and the instances whose TEST decides) in index order,
// then the new instances. A file with nothing to restart or stop keeps its
// starts in rest: they go at once.
func rollSteps(actions []Action) (rest []Action, rolls map[string][]Action) {
	rolled := make(map[string]bool)
	for _, a := range actions {
		switch {
		case a.Act == Stop && a.Why.Why == InstanceCount && baseOf(a.Name) != "",
			a.Act == Replace && a.Job.Index > 0,
			a.Act == Pending && a.Job.Index > 0 && a.view.Job != nil:
			rolled[baseOf(a.Name)] = true
		}
	}
	for _, a := range actions {
		base := baseOf(a.Name)
		in := rolled[base] && a.Act != Warn && a.Act != Reject
		switch {
		case !in:
		case a.Act == Stop && a.Why.Why == InstanceCount && base != "":
		case a.Act == Replace, a.Act == Pending, a.Act == Start:
			in = a.Job.Index > 0 && a.Job.Base == base
		default:
			in = false
		}
		if !in {
			rest = append(rest, a)
			continue
		}
		if rolls == nil {
			rolls = make(map[string][]Action)
		}
		rolls[base] = append(rolls[base], a)
	}
	for _, steps := range rolls {
		sort.SliceStable(steps, func(x, y int) bool { return stepLess(steps[x], steps[y]) })
	}
	return rest, rolls
}

// stepLess orders the steps of a roll: stops first, highest index first;
// then restarts in index order; then new instances in index order.
func stepLess(a, b Action) bool {
	rank := func(a Action) int {
		switch {
		case a.Act == Stop:
			return 0
		case a.Act == Start, a.Act == Pending && a.view.Job == nil:
			return 2
		}
		return 1
	}
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra < rb
	}
	if ra == 0 {
		return indexOf(a.Name) > indexOf(b.Name)
	}
	return indexOf(a.Name) < indexOf(b.Name)
}

// Expand returns the instances of the file named name, in index order,
// when name is no job's but a file's with INSTANCES; nil otherwise.
func (m *Manager) Expand(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.get(name).known() {
		return nil
	}
	return m.instancesOf(name)
}

// instancesOf returns the names of the known instances of the file named
// base, in index order. Call with mu held.
func (m *Manager) instancesOf(base string) []string {
	var out []string
	for n, sl := range m.slots {
		if sl.known() && sl.sup != nil && sl.sup.definition().Base == base {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(a, b int) bool { return indexOf(out[a]) < indexOf(out[b]) })
	return out
}

// rejectedNames returns the names that carry the rejection of the file
// named name: its instances that run their last good version, or else
// the name itself. Call with mu held.
func (m *Manager) rejectedNames(name string) []string {
	if sl := m.slots[name]; sl == nil || sl.sup == nil {
		if in := m.instancesOf(name); len(in) > 0 {
			return in
		}
	}
	return []string{name}
}

// roll carries out the steps of one file's roll (rollSteps) one at a
// time, each once the one before is done: a restart once the new process
// is ready. A restart that does not end ready stops the roll: the steps
// left are reported skipped, and their instances keep their version.
func (m *Manager) roll(r *run, steps []Action) {
	var rolling []string
	for _, a := range steps {
		if a.Act == Replace || a.Act == Pending {
			rolling = append(rolling, a.Name)
		}
	}
	m.Rolling(rolling, true)
	defer m.Rolling(rolling, false)
	for i, a := range steps {
		if a.Act == Pending {
			t := m.test(a.Job, m.sinkOf(a.Name))
			if t.canceled {
				return
			}
			a = a.Decide(t)
		}
		restart := a.Act == Replace && a.Verb == Restarted
		if restart {
			if why := m.blocked(a.Job); why != "" {
				m.skipRest(r, steps[i:], why)
				return
			}
		}
		// Each step waits until ready, even for RELOAD NOWAIT: the next
		// must not go before.
		one := &run{ctx: r.ctx, wasRejected: r.wasRejected}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		m.apply(one, a)
		m.mu.Unlock()
		one.wg.Wait()
		m.Rolling([]string{a.Name}, false)
		ok, detail := true, ""
		for _, c := range one.rep.Changes {
			if a.Act == Stop && c.Name == a.Name && c.Verb == StoppedIt {
				c.Detail = a.Why.Err // not "removed": its file is there
			}
			if restart && c.Name == a.Name && c.Verb != Restarted {
				ok, detail = false, strings.TrimPrefix(c.Detail, "changed; ")
			}
			r.add(c)
		}
		if !ok {
			why := a.Name + " did not get ready"
			if detail != "" {
				why += " (" + detail + ")"
			}
			m.skipRest(r, steps[i+1:], why)
			return
		}
	}
}

// Rolling says whether a roll is under way that is to restart the jobs
// of names, one at a time (on), or is done with them: meanwhile they do
// not count as ready for the jobs that wait for them (AFTER,
// RESTART_WITH), which so start once, after the roll.
func (m *Manager) Rolling(names []string, on bool) { m.cfg.order.rolling(names, on) }

// skipRest reports the steps of a roll left when it stopped, and why.
func (m *Manager) skipRest(r *run, steps []Action, why string) {
	for _, a := range steps {
		if a.Act == Warn || a.Act == Reject {
			continue
		}
		r.add(Change{Verb: SkippedIt, Name: a.Name, Detail: "the roll stopped: " + why + "; " + a.Name + " is left as it was"})
	}
}

// blocked says why a roll must not restart another instance for the new
// definition j: an instance of its file that already runs j is not ready
// (starting, stopping, backing off, failed, skipped). "" when none.
func (m *Manager) blocked(j *Job) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n, sl := range m.slots {
		if n == j.Name || sl.sup == nil || sl.leaving || sl.held {
			continue
		}
		d := sl.sup.definition()
		if d.Base != j.Base || d.Hash != j.Hash {
			continue
		}
		switch st := sl.sup.Status().State; st {
		case Starting, Backoff, Failed, Stopping, Skipped:
			names = append(names, n+" already runs the new definition and is "+string(st))
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return ""
	}
	return strings.Join(names, ", ")
}
