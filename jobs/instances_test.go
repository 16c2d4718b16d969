package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// instancesOfFile parses src as the file name.env and expands it alone.
func instancesOfFile(t *testing.T, name, src string) []*Job {
	t.Helper()
	defs, errs := expandInstances([]*Job{mustParse(t, name, src)}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return defs
}

func TestExpandInstances(t *testing.T) {
	names := func(defs []*Job) []string {
		var out []string
		for _, j := range defs {
			out = append(out, fmt.Sprintf("%s(%s,%d)", j.Name, j.Base, j.Index))
		}
		slices.Sort(out)
		return out
	}
	errText := func(errs []error) []string {
		var out []string
		for _, e := range errs {
			out = append(out, e.Error())
		}
		slices.Sort(out)
		return out
	}
	job := func(name, src string) *Job { return mustParse(t, name, src) }
	for _, tc := range []struct {
		name string
		defs []*Job
		errs []error
		want []string
		bad  []string // the errors, sorted
	}{
		{"no INSTANCES: one job, its name unchanged", []*Job{job("web", "COMMAND=x\n")}, nil,
			[]string{"web(,0)"}, nil},
		{"INSTANCES=1: one instance, web.1", []*Job{job("web", "COMMAND=x\nINSTANCES=1\n")}, nil,
			[]string{"web.1(web,1)"}, nil},
		{"INSTANCES=3", []*Job{job("web", "COMMAND=x\nINSTANCES=3\n")}, nil,
			[]string{"web.1(web,1)", "web.2(web,2)", "web.3(web,3)"}, nil},
		{"a file named like an instance: both rejected", []*Job{job("web", "COMMAND=x\nINSTANCES=3\n"), job("web.2", "COMMAND=x\n"), job("api", "COMMAND=x\n")}, nil,
			[]string{"api(,0)"}, []string{
				"web.2.env: the job name web.2 is also made by web.env (a file with INSTANCES=N makes NAME.1 to NAME.N): rename one of the two files",
				"web.env: the job name web.2 is also made by web.2.env (a file with INSTANCES=N makes NAME.1 to NAME.N): rename one of the two files",
			}},
		{"a file named like an instance, over N: no clash", []*Job{job("web", "COMMAND=x\nINSTANCES=3\n"), job("web.4", "COMMAND=x\n")}, nil,
			[]string{"web.1(web,1)", "web.2(web,2)", "web.3(web,3)", "web.4(,0)"}, nil},
		{"a file whose base is an instance's name", []*Job{job("web", "COMMAND=x\nINSTANCES=2\n"), job("web.1", "COMMAND=x\nINSTANCES=2\n")}, nil,
			nil, []string{
				"web.1.env: the job name web.1 is also made by web.env (a file with INSTANCES=N makes NAME.1 to NAME.N): rename one of the two files",
				"web.env: the job name web.1 is also made by web.1.env (a file with INSTANCES=N makes NAME.1 to NAME.N): rename one of the two files",
			}},
		{"a rejected file claims its name too", []*Job{job("web", "COMMAND=x\nINSTANCES=2\n")}, []error{&FileError{File: "web.2.env", Err: errors.New("COMMAND is missing")}},
			nil, []string{
				"web.2.env: COMMAND is missing",
				"web.env: the job name web.2 is also made by web.2.env (a file with INSTANCES=N makes NAME.1 to NAME.N): rename one of the two files",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defs, errs := expandInstances(tc.defs, tc.errs)
			if got := names(defs); !slices.Equal(got, tc.want) {
				t.Errorf("jobs %q, want %q", got, tc.want)
			}
			if got := errText(errs); !slices.Equal(got, tc.bad) {
				t.Errorf("errors %q, want %q", got, tc.bad)
			}
		})
	}

	// Every instance runs the same definition: one Hash, which INSTANCES
	// does not change; each has its index and only the first the warnings.
	three := instancesOfFile(t, "web", "COMMAND=x\nINSTANCES=3\nCOMAND=y\n")
	five := instancesOfFile(t, "web", "COMMAND=x\nINSTANCES=5\nCOMAND=y\n")
	if three[0].Hash != five[4].Hash || three[1].Hash != three[2].Hash {
		t.Errorf("INSTANCES changes the hash: %s %s", three[0].Hash, five[4].Hash)
	}
	if len(three[0].Warnings) != 1 || len(three[1].Warnings) != 0 {
		t.Errorf("warnings %v, %v: want one, on the first instance", three[0].Warnings, three[1].Warnings)
	}
	if got := indexEnv(three[2]); !slices.Equal(got, []string{"OVERSEER_INDEX=3"}) {
		t.Errorf("indexEnv = %q", got)
	}
	if got := indexEnv(mustParse(t, "web", "COMMAND=x\n")); got != nil {
		t.Errorf("indexEnv of a job without INSTANCES = %q", got)
	}
}

func TestInstancesKey(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"COMMAND=x\nINSTANCES=0\n", "web.env:2: INSTANCES must be a whole number from 1 to 1000"},
		{"COMMAND=x\nINSTANCES=1001\n", "web.env:2: INSTANCES must be a whole number from 1 to 1000"},
		{"COMMAND=x\nINSTANCES=two\n", "web.env:2: INSTANCES must be a whole number from 1 to 1000"},
		{"COMMAND=x\nINSTANCES=1000\n", ""},
	} {
		_, err := Parse("web", strings.NewReader(tc.src), nil)
		if got := fmt.Sprint(err); (tc.err == "" && err != nil) || (tc.err != "" && got != tc.err) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.err)
		}
	}
	long := strings.Repeat("a", MaxNameLen-2)
	if _, err := Parse(long, strings.NewReader("COMMAND=x\nINSTANCES=10\n"), nil); err == nil || !strings.Contains(err.Error(), "INSTANCES makes names of 201 characters") {
		t.Errorf("a name too long for its instances: %v", err)
	}
}

func TestBaseOf(t *testing.T) {
	for name, want := range map[string]string{"web.2": "web", "a.b.10": "a.b", "web": "", "web.": "", "web.0": "", "web.02": "", ".1": "", "web.x": ""} {
		if got := baseOf(name); got != want {
			t.Errorf("baseOf(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestPlanInstances: a change of N starts or stops only the difference;
// the plan says so; the kept instances are left alone.
func TestPlanInstances(t *testing.T) {
	running := func(defs []*Job) map[string]view {
		slots := make(map[string]view)
		for _, j := range defs {
			slots[j.Name] = view{Job: j, State: Running}
		}
		return slots
	}
	three := instancesOfFile(t, "web", "COMMAND=x\nINSTANCES=3\n")
	five := instancesOfFile(t, "web", "COMMAND=x\nINSTANCES=5\n")
	two := instancesOfFile(t, "web", "COMMAND=x\nINSTANCES=2\n")
	twoNew := instancesOfFile(t, "web", "COMMAND=y\nINSTANCES=2\n")
	single := mustParse(t, "web", "COMMAND=x\n")
	for _, tc := range []struct {
		name  string
		defs  []*Job
		slots map[string]view
		want  []string
	}{
		{"first load", three, nil, []string{"start web.1: new file", "start web.2: new file", "start web.3: new file"}},
		{"3 -> 5", five, running(three), []string{"keep web.1: running", "keep web.2: running", "keep web.3: running",
			"start web.4: INSTANCES is 5", "start web.5: INSTANCES is 5"}},
		{"5 -> 2", two, running(five), []string{"keep web.1: running", "keep web.2: running",
			"stop web.3: INSTANCES is 2", "stop web.4: INSTANCES is 2", "stop web.5: INSTANCES is 2"}},
		{"5 -> 2, changed", twoNew, running(five), []string{
			"restart web.1: COMMAND changed; one instance at a time, each once the one before is ready",
			"restart web.2: COMMAND changed; one instance at a time, each once the one before is ready",
			"stop web.3: INSTANCES is 2", "stop web.4: INSTANCES is 2", "stop web.5: INSTANCES is 2"}},
		{"INSTANCES removed", []*Job{single}, running(two), []string{"start web: new file",
			"stop web.1: INSTANCES is gone: web replaces it", "stop web.2: INSTANCES is gone: web replaces it"}},
		{"INSTANCES set", two, running([]*Job{single}), []string{"stop web: INSTANCES is set: web.1 to web.2 replace it",
			"start web.1: new file", "start web.2: new file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range plan(tc.defs, nil, nil, tc.slots, nil) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}

	// A rejected file with INSTANCES: its instances run on, as a single job does.
	broken := &FileError{File: "web.env", Line: 1, Err: errors.New("COMMAND is missing")}
	for _, a := range plan(nil, nil, []error{broken}, running(three), nil) {
		if a.Act == Stop {
			t.Errorf("a rejected file's instance is stopped: %s", a)
		}
	}
}

// TestRollSteps: the order in which a reload carries out one file's
// changes: stops highest first, then restarts in index order, then new
// instances; the rest at once.
func TestRollSteps(t *testing.T) {
	inst := func(i int) *Job { return &Job{Name: instanceName("web", i), Base: "web", Index: i} }
	act := func(a Act, i int) Action {
		x := Action{Act: a, Name: instanceName("web", i), Job: inst(i)}
		if a == Stop {
			x.Job, x.Why = nil, Reason{Why: InstanceCount}
		}
		return x
	}
	other := Action{Act: Replace, Name: "api", Job: &Job{Name: "api"}}
	steps := func(as []Action) string {
		var out []string
		for _, a := range as {
			out = append(out, fmt.Sprintf("%d:%s", a.Act, a.Name))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name       string
		in         []Action
		rest, roll string
	}{
		{"restarts in index order", []Action{act(Replace, 3), act(Replace, 1), act(Replace, 2), other},
			"2:api", "2:web.1 2:web.2 2:web.3"},
		{"stops highest first, before restarts", []Action{act(Replace, 1), act(Stop, 3), act(Stop, 5), act(Stop, 4), act(Replace, 2)},
			"", "5:web.5 5:web.4 5:web.3 2:web.1 2:web.2"},
		{"new instances after the restarts", []Action{act(Start, 4), act(Replace, 1), act(Keep, 2)},
			"0:web.2", "2:web.1 1:web.4"},
		{"only new instances: at once", []Action{act(Start, 4), act(Start, 5), act(Keep, 1)},
			"1:web.4 1:web.5 0:web.1", ""},
		{"a single job is no roll", []Action{other}, "2:api", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, rolls := rollSteps(tc.in)
			if got := steps(rest); got != tc.rest {
				t.Errorf("rest %q, want %q", got, tc.rest)
			}
			if got := steps(rolls["web"]); got != tc.roll {
				t.Errorf("roll %q, want %q", got, tc.roll)
			}
		})
	}
}

func TestExpandDeps(t *testing.T) {
	web := mustParse(t, "web", "COMMAND=x\nINSTANCES=2\n")
	api := mustParse(t, "api", "COMMAND=x\nAFTER=db web\nRESTART_WITH=web\n")
	db := mustParse(t, "db", "COMMAND=x\n")
	defs, errs := expandInstances([]*Job{web, api, db}, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := make(map[string]*Job)
	for _, j := range defs {
		got[j.Name] = j
	}
	if a := got["api"]; a == nil || !slices.Equal(a.After, []string{"db", "web.1", "web.2"}) || !slices.Equal(a.RestartWith, []string{"web.1", "web.2"}) {
		t.Errorf("api: AFTER %v, RESTART_WITH %v; want [db web.1 web.2], [web.1 web.2]", got["api"].After, got["api"].RestartWith)
	}
	if !slices.Equal(api.After, []string{"db", "web"}) {
		t.Errorf("the parsed job was changed in place: AFTER %v", api.After)
	}
}
