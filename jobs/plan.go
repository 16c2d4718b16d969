package jobs

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Reconciliation is two steps: plan decides, from the loaded definitions,
// the load errors, a snapshot of the slots and the answers of the TESTs
// that were run, what to do with each name; apply carries it out. plan is
// pure (no goroutines, clock or OS), so every branch has a table test.

// Act is what apply does with one name.
type Act int

// The acts of a plan.
const (
	Keep    Act = iota // nothing: the job stays as it is
	Start              // a new supervisor for a job that has none
	Replace            // stop the running version, then start the new definition
	Update             // hand the new definition to the running supervisor: the process stays
	Retest             // hand the TEST's answer to the unchanged job's supervisor
	Stop               // the file is gone: stop the job and forget it
	Reject             // the file cannot be used; its last good version, if any, runs on
	// Pending: the decision waits for the job's TEST, which plan was not
	// given. Reload runs it and decides then (Action.Decide), so that a
	// slow TEST delays only its own job.
	Pending
	// Warn: a key of the job's file looks like a misspelt known key
	// (Action.Warning); the job loads all the same.
	Warn
)

// Why is the kind of a Reason.
type Why int

// The reasons of actions.
const (
	NewFile         Why = iota // a file for a name with no running version
	KeysChanged                // the definition changed: Reason.Keys says where
	KeysUpdated                // only keys that steer supervision changed: Reason.Keys (and Test)
	FileRemoved                // the file is gone
	TestAnswer                 // the TEST's answer decides: Reason.Test says it
	FileRejected               // the file cannot be used: Reason.Err says why
	HeldByStop                 // a STOP holds the job stopped
	FailedUnchanged            // it failed and nothing changed since
	AsItIs                     // nothing to do: Reason.State is the job's state
	LastGood                   // its file is rejected; its last good version runs on
	EphemeralName              // the file is named like a living ephemeral job
	ProgramGone                // the program it runs is gone (Reason.Keys[0]); what runs is kept
	MisspeltKey                // a key looks like a misspelt known key: Reason.Err says which
	InstanceCount              // an instance started or stopped as its file's INSTANCES changed: Reason.Err says how
)

// Reason says why a plan does what it does: data, rendered by String.
type Reason struct {
	Why   Why
	Keys  []string // KeysChanged: the keys that differ, sorted
	Test  string   // TestAnswer: the TEST's answer ("test exited 1"), "" when it passed; KeysChanged: that STOP holds the job
	Err   string   // FileRejected, EphemeralName: the error, naming the file
	State State    // AsItIs: the job's state
}

func (r Reason) String() string {
	switch r.Why {
	case NewFile:
		return "new file"
	case KeysChanged:
		if r.Test != "" { // a held job's new definition
			return strings.Join(r.Keys, ", ") + " changed; " + r.Test
		}
		return strings.Join(r.Keys, ", ") + " changed"
	case KeysUpdated:
		if r.Test != "" {
			return strings.Join(r.Keys, ", ") + " changed; " + r.Test
		}
		return strings.Join(r.Keys, ", ") + " changed, no restart"
	case FileRemoved:
		return "file removed"
	case TestAnswer:
		if r.Test == "" {
			return "test passed"
		}
		return r.Test
	case FileRejected, EphemeralName, MisspeltKey, InstanceCount:
		return r.Err
	case HeldByStop:
		return "held by STOP (START runs it)"
	case FailedUnchanged:
		return "failed, unchanged (START retries it)"
	case LastGood:
		return "file rejected, its last good version runs on"
	case ProgramGone:
		return r.Keys[0] + " is gone (being rebuilt?); what runs is kept"
	}
	return string(r.State)
}

// Action is what a reload does with one name, and what it will report.
type Action struct {
	Act  Act
	Name string // the job's name; for Reject, File names the file
	File string // Reject: the file's base name
	// Job is the definition to run (Start, Replace) or the running one
	// (Retest); Test is its TEST's answer for this reload, nil when none ran.
	Job  *Job
	Test *testResult
	Why  Reason
	// Verb is what the reload's answer will say of the job when nothing
	// changes meanwhile (Unchanged for a keep).
	Verb Verb

	// Warning is the key a Warn is about.
	Warning Warning

	// Prog is the program to record as the one the job runs, nil to
	// keep the recorded one (a running process runs what it ran).
	Prog *program

	view     view    // Pending: the slot as plan saw it
	prog     program // Pending: the program read for Job
	lastGood bool    // Pending: Job is the last good version of a rejected file
}

// Decide returns the action a Pending one becomes once its TEST answered t.
func (a Action) Decide(t testResult) Action {
	return decide(a.Job, a.prog, a.view, &t, a.lastGood)
}

// String says what the action does and why, as a line of `overseer plan`.
func (a Action) String() string {
	if a.Act == Reject {
		return "reject " + a.Why.Err // the error names the file
	}
	if a.Act == Warn {
		return "warning " + a.Warning.Where() + ": " + a.Why.String()
	}
	words := map[Verb]string{Started: "start", Restarted: "restart", Updated: "update", StoppedIt: "stop", SkippedIt: "skip", FailedIt: "fail", Unchanged: "keep"}
	if a.Verb == Restarted && a.Job != nil && a.Job.Index > 0 {
		return fmt.Sprintf("%s %s: %s; one instance at a time, each once the one before is ready", words[a.Verb], a.Name, a.Why)
	}
	return fmt.Sprintf("%s %s: %s", words[a.Verb], a.Name, a.Why)
}

// view is what plan knows of a slot.
type view struct {
	Job       *Job   // the running definition; nil when no version runs
	State     State  // its supervisor's state
	Reason    string // its state's reason (a skipped job's TEST answer)
	Held      bool
	Rejected  bool
	Ephemeral bool
	Leaving   bool
	Prog      program // what its process runs (read when it was started)
	// BaseRuns: the name is an instance's, and an instance of its file
	// runs (so a new one is a change of INSTANCES, not a new file).
	BaseRuns bool
}

// needsTest reports whether a reload runs j's TEST before planning, given
// the slot of its name: for a definition it would start, and for an
// unchanged job whose TEST's answer may change what it does.
func needsTest(j *Job, p program, v view) bool {
	switch {
	case j.Test == nil, v.Ephemeral, v.Leaving:
		return false
	case v.Job == nil:
		return !v.Held
	}
	if keys := changes(j, p, v); len(keys) > 0 && !inPlace(keys, v.State) {
		return !v.Held
	}
	return v.State == Running || v.State == Skipped || v.State == Failed
}

// plan decides what a reload does with every name: defs are the loaded
// definitions, progs the programs they run (read now), errs the files that could not be loaded (*FileError),
// slots the manager's names, tests the answers of the TESTs needsTest
// asked for. The actions come sorted by name.
func plan(defs []*Job, progs map[string]program, errs []error, slots map[string]view, tests map[string]testResult) []Action {
	var out []Action
	bad := make(map[string]bool)
	for _, err := range errs {
		var fe *FileError
		errors.As(err, &fe)
		name := strings.TrimSuffix(fe.File, ".env")
		out = append(out, Action{Act: Reject, Name: name, File: fe.File, Why: Reason{Why: FileRejected, Err: err.Error()}, Verb: RejectedIt})
		if ValidName(name) {
			bad[name] = true
		}
	}
	defined := make(map[string]bool)
	count := make(map[string]int) // a file with INSTANCES → how many
	baseRuns := make(map[string]bool)
	for _, v := range slots {
		if v.Job != nil && v.Job.Base != "" && !v.Leaving {
			baseRuns[v.Job.Base] = true
		}
	}
	for _, j := range defs {
		defined[j.Name] = true
		if j.Base != "" {
			count[j.Base] = j.Instances
		}
		v := slots[j.Name]
		v.BaseRuns = j.Base != "" && baseRuns[j.Base]
		if v.Ephemeral {
			// The job is not the file's to change or stop.
			out = append(out, Action{Act: Reject, Name: j.Name, File: fileOf(j), Why: Reason{Why: EphemeralName, Err: ephemeralClash(j.Name, fileOf(j)).Error()}, Verb: RejectedIt})
			continue
		}
		out = append(out, decide(j, progs[j.Name], v, answer(tests, j.Name), false))
		for _, w := range j.Warnings {
			out = append(out, Action{Act: Warn, Name: j.Name, File: w.File, Warning: w, Why: Reason{Why: MisspeltKey, Err: w.Message()}, Verb: Warned})
		}
	}
	for name, v := range slots {
		switch {
		case defined[name], v.Ephemeral, v.Leaving:
		case bad[name] && v.Job != nil:
			out = append(out, decide(v.Job, v.Prog, v, answer(tests, name), true))
		case bad[name]:
		case v.Job != nil && v.Job.Base != "" && bad[v.Job.Base]:
			// An instance of a rejected file: its last good version runs on.
			out = append(out, decide(v.Job, v.Prog, v, answer(tests, name), true))
		case v.Job != nil && v.Job.Base != "" && count[v.Job.Base] > 0:
			out = append(out, Action{Act: Stop, Name: name, Why: Reason{Why: InstanceCount, Err: fmt.Sprintf("INSTANCES is %d", count[v.Job.Base])}, Verb: StoppedIt})
		case v.Job != nil && v.Job.Base == "" && count[name] > 0:
			out = append(out, Action{Act: Stop, Name: name, Why: Reason{Why: InstanceCount, Err: fmt.Sprintf("INSTANCES is set: %s to %s replace it", instanceName(name, 1), instanceName(name, count[name]))}, Verb: StoppedIt})
		case v.Job != nil && v.Job.Base != "" && defined[v.Job.Base]:
			out = append(out, Action{Act: Stop, Name: name, Why: Reason{Why: InstanceCount, Err: "INSTANCES is gone: " + v.Job.Base + " replaces it"}, Verb: StoppedIt})
		case v.Job != nil:
			out = append(out, Action{Act: Stop, Name: name, Why: Reason{Why: FileRemoved}, Verb: StoppedIt})
		case v.Rejected:
			// A rejected file that is gone: nothing of it runs, nothing to report.
			out = append(out, Action{Act: Stop, Name: name, Why: Reason{Why: FileRemoved}, Verb: Unchanged})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func answer(tests map[string]testResult, name string) *testResult {
	if t, ok := tests[name]; ok {
		return &t
	}
	return nil
}

// decide decides what to do with the definition j of a name whose slot
// is v, given the program p it would run and the answer t of j's TEST
// (nil when none ran): Pending if it needs one. lastGood says j is the
// running version of a rejected file.
func decide(j *Job, p program, v view, t *testResult, lastGood bool) Action {
	if t == nil && needsTest(j, p, v) {
		return Action{Act: Pending, Name: j.Name, Job: j, Verb: Unchanged, Why: Reason{Why: AsItIs, State: v.State}, view: v, prog: p, lastGood: lastGood}
	}
	a := planJob(j, p, v, t)
	if lastGood && a.Act == Keep {
		a.Why = Reason{Why: LastGood}
	}
	return a
}

// changes names what differs between the running version of a job (its
// slot v) and the definition j with program p: the keys, and the
// program's path when the program was replaced and the job runs it (or
// failed: it may work now).
func changes(j *Job, p program, v view) []string {
	var keys []string
	switch {
	case v.Job.Hash != j.Hash:
		keys = changedKeys(v.Job, j)
	case !slices.Equal(v.Job.After, j.After) || !slices.Equal(v.Job.RestartWith, j.RestartWith):
		// The same file, but a file it names has another INSTANCES: the
		// names it stands for changed (expandDeps).
		keys = changedKeys(v.Job, j)
	}
	switch v.State {
	case Running, Backoff, Starting:
		if j.RestartOnBinaryChange && v.Prog.found() && p.found() && p != v.Prog {
			keys = append(keys, p.Path)
		}
	case Failed:
		if j.RestartOnBinaryChange && p.found() && p != v.Prog {
			keys = append(keys, p.Path)
		}
	}
	return keys
}

// planJob decides what to do with the definition j of a name whose slot
// is v, given the program p it would run and the answer t of j's TEST
// (nil when none ran).
func planJob(j *Job, p program, v view, t *testResult) Action {
	a := Action{Name: j.Name, Job: j, Test: t, Prog: &p}
	failing := t != nil && !t.ok
	if v.Job == nil {
		a.Act, a.Why, a.Verb = Start, Reason{Why: NewFile}, Started
		if v.BaseRuns {
			a.Why = Reason{Why: InstanceCount, Err: fmt.Sprintf("INSTANCES is %d", j.Instances)}
		}
		switch {
		case v.Held:
			a.Why, a.Verb = Reason{Why: HeldByStop}, Unchanged
		case failing:
			a.Why, a.Verb = Reason{Why: TestAnswer, Test: t.why}, SkippedIt
		}
		return a
	}
	keys := changes(j, p, v)
	switch {
	case len(keys) > 0 && inPlace(keys, v.State):
		// As for an unchanged job, the new definition handed over first.
		u := v
		u.Job, u.Prog = j, p
		a = planJob(j, p, u, t)
		switch {
		case a.Verb == Unchanged: // keep, or its TEST in flight decides
			a.Why, a.Verb = Reason{Why: KeysUpdated, Keys: keys}, Updated
		default: // its TEST's answer acts too
			a.Why = Reason{Why: KeysUpdated, Keys: keys, Test: a.Why.String()}
		}
		a.Act = Update
		if live(v.State) {
			a.Prog = nil // the process runs what it ran
		}
		return a
	case len(keys) > 0:
		a.Act, a.Why, a.Verb = Replace, Reason{Why: KeysChanged, Keys: keys}, Restarted
		if !live(v.State) {
			a.Verb = Started // nothing runs to be stopped
		}
		switch {
		case v.Held && live(v.State):
			a.Verb = StoppedIt
		case v.Held:
			a.Verb = Unchanged // the new definition, still held
			a.Why.Test = Reason{Why: HeldByStop}.String()
		case failing && live(v.State):
			a.Verb = StoppedIt
		case failing:
			a.Verb = SkippedIt
		}
		return a
	}
	a.Act, a.Why, a.Verb = Keep, Reason{Why: AsItIs, State: v.State}, Unchanged
	if live(v.State) {
		a.Prog = nil // the process runs what it ran
	}
	switch {
	case v.Held && v.State == Stopped:
		a.Why = Reason{Why: HeldByStop}
	case v.State == Failed && failing:
		// Its TEST's answer changed: it passed when the job was started.
		a.Act, a.Why, a.Verb = Retest, Reason{Why: TestAnswer, Test: t.why}, SkippedIt
	case v.State == Failed:
		a.Why = Reason{Why: FailedUnchanged}
	case v.State == Starting:
		a.Act = Retest // its TEST in flight decides; the reload waits for it
	case t != nil && v.State == Running && failing:
		a.Act, a.Why, a.Verb = Retest, Reason{Why: TestAnswer, Test: t.why}, StoppedIt
	case t != nil && v.State == Skipped && !failing:
		a.Act, a.Why, a.Verb = Retest, Reason{Why: TestAnswer}, Started
	case t != nil && v.State == Skipped && v.Reason != t.why:
		a.Act, a.Why, a.Verb = Retest, Reason{Why: TestAnswer, Test: t.why}, SkippedIt
	case live(v.State) && v.Prog.found() && !p.found():
		// Being rebuilt, perhaps: no reason to stop what runs.
		a.Why = Reason{Why: ProgramGone, Keys: []string{v.Prog.Path}}
	}
	return a
}

// inPlace reports whether a job in state st can take a definition that
// differs in keys without a restart: it has a process or is about to, and
// only keys that steer supervision (PolicyKey) changed.
func inPlace(keys []string, st State) bool {
	switch st {
	case Running, Backoff, Starting, Skipped:
	default:
		return false // nothing runs: a new supervisor costs no process
	}
	for _, k := range keys {
		if !PolicyKey(k) {
			return false
		}
	}
	return true
}

// PolicyKey reports whether a job file's key only steers supervision, so
// that a change to it needs no restart. TEST is one: a changed TEST is run,
// and still passing keeps the process. READY_INTERVAL and READY_TIMEOUT
// count from the next start, AFTER and RESTART_WITH from the next start or
// restart of a dependency; READY does not (fd:N and notify change what
// the process is given). The others (COMMAND, SHELL, DIR,
// USER, GROUP, every environment key) change what the process sees.
func PolicyKey(key string) bool {
	switch key {
	case "RESTART", "START_SECS", "RESTART_DELAY", "RESTART_MAX_DELAY", "RESTART_RESET", "START_RETRIES",
		"START_LIMIT", "START_LIMIT_INTERVAL", "STOP_SIGNAL", "STOP_TIMEOUT", "TEST", "TEST_TIMEOUT", "TEST_INTERVAL", "METRICS_INTERVAL", "RESTART_ON_BINARY_CHANGE",
		"READY_INTERVAL", "READY_TIMEOUT", "AFTER", "RESTART_WITH":
		return true
	}
	return false
}

// live reports whether a job in state st has a process, or is about to.
func live(st State) bool {
	return st == Running || st == Backoff || st == Stopping || st == Starting
}

// changedKeys names the keys in which two definitions of a job differ.
func changedKeys(old, new *Job) []string {
	var keys []string
	diff := func(key string, differs bool) {
		if differs {
			keys = append(keys, key)
		}
	}
	diff("COMMAND", !slices.Equal(old.Command, new.Command))
	diff("TEST", !slices.Equal(old.Test, new.Test))
	diff("SHELL", old.Shell != new.Shell)
	diff("USER", old.User != new.User)
	diff("GROUP", old.Group != new.Group)
	diff("DIR", old.Dir != new.Dir)
	diff("RESTART", old.Restart != new.Restart)
	diff("STOP_SIGNAL", old.StopSignal != new.StopSignal)
	diff("STOP_TIMEOUT", old.StopTimeout != new.StopTimeout)
	diff("TEST_TIMEOUT", old.TestTimeout != new.TestTimeout)
	diff("TEST_INTERVAL", old.TestInterval != new.TestInterval)
	diff("RESTART_DELAY", old.RestartDelay != new.RestartDelay)
	diff("RESTART_MAX_DELAY", old.RestartMaxDelay != new.RestartMaxDelay)
	diff("RESTART_RESET", old.RestartReset != new.RestartReset)
	diff("START_SECS", old.StartSecs != new.StartSecs)
	diff("START_RETRIES", old.StartRetries != new.StartRetries)
	diff("START_LIMIT", old.StartLimit != new.StartLimit)
	diff("START_LIMIT_INTERVAL", old.StartLimitInterval != new.StartLimitInterval)
	diff("MEMORY_MAX", old.MemoryMax != new.MemoryMax)
	diff("RESTART_ON_BINARY_CHANGE", old.RestartOnBinaryChange != new.RestartOnBinaryChange)
	diff("READY", !slices.Equal(old.ReadyCommand, new.ReadyCommand) || old.ReadyFd != new.ReadyFd || old.ReadyNotify != new.ReadyNotify)
	diff("READY_INTERVAL", old.ReadyInterval != new.ReadyInterval)
	diff("READY_TIMEOUT", old.ReadyTimeout != new.ReadyTimeout)
	diff("AFTER", !slices.Equal(old.After, new.After))
	diff("RESTART_WITH", !slices.Equal(old.RestartWith, new.RestartWith))
	diff("METRICS_INTERVAL", old.MetricsInterval != new.MetricsInterval || old.MetricsIntervalSet != new.MetricsIntervalSet)
	oldEnv, newEnv := envMap(old.Env), envMap(new.Env)
	for k, v := range newEnv {
		if ov, ok := oldEnv[k]; (!ok || ov != v) && k != "SHELL" {
			keys = append(keys, k)
		}
	}
	for k := range oldEnv {
		if _, ok := newEnv[k]; !ok && k != "SHELL" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return []string{"definition"} // the same keys, spelled so that they parse alike
	}
	sort.Strings(keys)
	return keys
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
