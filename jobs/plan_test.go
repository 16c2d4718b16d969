package jobs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, name, src string) *Job {
	t.Helper()
	j, err := Parse(name, strings.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestPlan(t *testing.T) {
	web := mustParse(t, "web", "COMMAND=server\n")
	web2 := mustParse(t, "web", "COMMAND=server -v\n")
	gated := mustParse(t, "gated", "COMMAND=server\nTEST=check\n")
	gated2 := mustParse(t, "gated", "COMMAND=server -v\nTEST=check\n")
	pass := map[string]testResult{"gated": {ok: true}}
	fail := map[string]testResult{"gated": {why: "test exited 1"}}
	fail2 := map[string]testResult{"gated": {why: "test exited 2"}}
	webSlow := mustParse(t, "web", "COMMAND=server\nSTOP_TIMEOUT=1m\n")
	gatedT := mustParse(t, "gated", "COMMAND=server\nTEST=check -v\n")
	broken := &FileError{File: "web.env", Line: 3, Err: errors.New("COMMAND is missing")}

	type want struct {
		act  Act
		name string
		verb Verb
		line string // Action.String
	}
	for _, tc := range []struct {
		name  string
		defs  []*Job
		errs  []error
		slots map[string]view
		tests map[string]testResult
		want  []want
	}{
		{"new file", []*Job{web}, nil, nil, nil,
			[]want{{Start, "web", Started, "start web: new file"}}},
		{"new file, held", []*Job{web}, nil, map[string]view{"web": {Held: true}}, nil,
			[]want{{Start, "web", Unchanged, "keep web: held by STOP (START runs it)"}}},
		{"new file, its TEST not yet run", []*Job{gated}, nil, nil, nil,
			[]want{{Pending, "gated", Unchanged, "keep gated: "}}},
		{"new file, TEST passes", []*Job{gated}, nil, nil, pass,
			[]want{{Start, "gated", Started, "start gated: new file"}}},
		{"new file, TEST fails", []*Job{gated}, nil, nil, fail,
			[]want{{Start, "gated", SkippedIt, "skip gated: test exited 1"}}},
		{"a fixed file that was rejected", []*Job{web}, nil, map[string]view{"web": {Rejected: true}}, nil,
			[]want{{Start, "web", Started, "start web: new file"}}},
		{"changed while running", []*Job{web2}, nil, map[string]view{"web": {Job: web, State: Running}}, nil,
			[]want{{Replace, "web", Restarted, "restart web: COMMAND changed"}}},
		{"changed while exited", []*Job{web2}, nil, map[string]view{"web": {Job: web, State: Exited}}, nil,
			[]want{{Replace, "web", Started, "start web: COMMAND changed"}}},
		{"changed while failed", []*Job{web2}, nil, map[string]view{"web": {Job: web, State: Failed}}, nil,
			[]want{{Replace, "web", Started, "start web: COMMAND changed"}}},
		{"a hold plus an edit", []*Job{web2}, nil, map[string]view{"web": {Job: web, State: Stopped, Held: true}}, nil,
			[]want{{Replace, "web", Unchanged, "keep web: COMMAND changed; held by STOP (START runs it)"}}},
		{"a hold plus an edit while it still stops", []*Job{web2}, nil, map[string]view{"web": {Job: web, State: Stopping, Held: true}}, nil,
			[]want{{Replace, "web", StoppedIt, "stop web: COMMAND changed"}}},
		{"changed, new TEST fails, running", []*Job{gated2}, nil, map[string]view{"gated": {Job: gated, State: Running}}, fail,
			[]want{{Replace, "gated", StoppedIt, "stop gated: COMMAND changed"}}},
		{"changed, new TEST fails, skipped", []*Job{gated2}, nil, map[string]view{"gated": {Job: gated, State: Skipped, Reason: "test exited 1"}}, fail,
			[]want{{Replace, "gated", SkippedIt, "skip gated: COMMAND changed"}}},
		{"a policy-only edit while running", []*Job{webSlow}, nil, map[string]view{"web": {Job: web, State: Running}}, nil,
			[]want{{Update, "web", Updated, "update web: STOP_TIMEOUT changed, no restart"}}},
		{"a policy-only edit in backoff", []*Job{webSlow}, nil, map[string]view{"web": {Job: web, State: Backoff}}, nil,
			[]want{{Update, "web", Updated, "update web: STOP_TIMEOUT changed, no restart"}}},
		{"a policy-only edit while its TEST runs", []*Job{gatedT}, nil, map[string]view{"gated": {Job: gated, State: Starting}}, nil,
			[]want{{Update, "gated", Updated, "update gated: TEST changed, no restart"}}},
		{"a policy-only edit while exited", []*Job{webSlow}, nil, map[string]view{"web": {Job: web, State: Exited}}, nil,
			[]want{{Replace, "web", Started, "start web: STOP_TIMEOUT changed"}}},
		{"a policy-only edit while stopping", []*Job{webSlow}, nil, map[string]view{"web": {Job: web, State: Stopping}}, nil,
			[]want{{Replace, "web", Restarted, "restart web: STOP_TIMEOUT changed"}}},
		{"a changed TEST that still passes", []*Job{gatedT}, nil, map[string]view{"gated": {Job: gated, State: Running}}, pass,
			[]want{{Update, "gated", Updated, "update gated: TEST changed, no restart"}}},
		{"a changed TEST that fails", []*Job{gatedT}, nil, map[string]view{"gated": {Job: gated, State: Running}}, fail,
			[]want{{Update, "gated", StoppedIt, "stop gated: TEST changed; test exited 1"}}},
		{"a changed TEST that passes for a skipped job", []*Job{gatedT}, nil, map[string]view{"gated": {Job: gated, State: Skipped, Reason: "test exited 1"}}, pass,
			[]want{{Update, "gated", Started, "start gated: TEST changed; test passed"}}},
		{"a failed job whose file did not change", []*Job{web}, nil, map[string]view{"web": {Job: web, State: Failed}}, nil,
			[]want{{Keep, "web", Unchanged, "keep web: failed, unchanged (START retries it)"}}},
		{"a failed job whose TEST still passes", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Failed}}, pass,
			[]want{{Keep, "gated", Unchanged, "keep gated: failed, unchanged (START retries it)"}}},
		{"a failed job whose TEST now fails", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Failed}}, fail,
			[]want{{Retest, "gated", SkippedIt, "skip gated: test exited 1"}}},
		{"unchanged, its TEST in flight", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Starting}}, nil,
			[]want{{Retest, "gated", Unchanged, "keep gated: starting"}}},
		{"unchanged running, no TEST", []*Job{web}, nil, map[string]view{"web": {Job: web, State: Running}}, nil,
			[]want{{Keep, "web", Unchanged, "keep web: running"}}},
		{"unchanged exited", []*Job{web}, nil, map[string]view{"web": {Job: web, State: Exited}}, nil,
			[]want{{Keep, "web", Unchanged, "keep web: exited"}}},
		{"unchanged running, TEST passes", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Running}}, pass,
			[]want{{Keep, "gated", Unchanged, "keep gated: running"}}},
		{"unchanged running, TEST fails", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Running}}, fail,
			[]want{{Retest, "gated", StoppedIt, "stop gated: test exited 1"}}},
		{"skipped, TEST passes now", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Skipped, Reason: "test exited 1"}}, pass,
			[]want{{Retest, "gated", Started, "start gated: test passed"}}},
		{"skipped, same answer", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Skipped, Reason: "test exited 1"}}, fail,
			[]want{{Keep, "gated", Unchanged, "keep gated: skipped"}}},
		{"skipped, another answer", []*Job{gated}, nil, map[string]view{"gated": {Job: gated, State: Skipped, Reason: "test exited 1"}}, fail2,
			[]want{{Retest, "gated", SkippedIt, "skip gated: test exited 2"}}},
		{"a broken file while the job runs", nil, []error{broken}, map[string]view{"web": {Job: web, State: Running}}, nil,
			[]want{{Reject, "web", RejectedIt, "reject web.env:3: COMMAND is missing"},
				{Keep, "web", Unchanged, "keep web: file rejected, its last good version runs on"}}},
		{"a broken file while the job runs, its TEST now fails", nil, []error{&FileError{File: "gated.env", Err: errors.New("bad")}},
			map[string]view{"gated": {Job: gated, State: Running}}, fail,
			[]want{{Reject, "gated", RejectedIt, "reject gated.env: bad"},
				{Retest, "gated", StoppedIt, "stop gated: test exited 1"}}},
		{"a broken file, no job", nil, []error{broken}, nil, nil,
			[]want{{Reject, "web", RejectedIt, "reject web.env:3: COMMAND is missing"}}},
		{"a broken file with no job's name", nil, []error{&FileError{File: ".x.env", Err: errors.New("invalid job name")}}, nil, nil,
			[]want{{Reject, ".x", RejectedIt, "reject .x.env: invalid job name"}}},
		{"a removed file", nil, nil, map[string]view{"web": {Job: web, State: Running}}, nil,
			[]want{{Stop, "web", StoppedIt, "stop web: file removed"}}},
		{"a removed file while the job is stopping", nil, nil, map[string]view{"web": {Job: web, State: Stopping}}, nil,
			[]want{{Stop, "web", StoppedIt, "stop web: file removed"}}},
		{"a removed file that was rejected", nil, nil, map[string]view{"web": {Rejected: true}}, nil,
			[]want{{Stop, "web", Unchanged, "keep web: file removed"}}},
		{"only a hold left", nil, nil, map[string]view{"web": {Held: true}}, nil, nil},
		{"an ephemeral name clash", []*Job{web}, nil, map[string]view{"web": {Job: web, State: Running, Ephemeral: true}}, nil,
			[]want{{Reject, "web", RejectedIt, "reject " + ephemeralClash("web", "web.env").Error()}}},
		{"an ephemeral job without a file", nil, nil, map[string]view{"web": {Job: web, State: Running, Ephemeral: true}}, nil, nil},
		{"a file back while its job leaves", []*Job{web}, nil, map[string]view{"gone": {Job: web, State: Stopping, Leaving: true}}, nil,
			[]want{{Start, "web", Started, "start web: new file"}}},
		{"sorted by name", []*Job{web, gated}, nil, nil, pass,
			[]want{{Start, "gated", Started, "start gated: new file"}, {Start, "web", Started, "start web: new file"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.defs, nil, tc.errs, tc.slots, tc.tests)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d actions %v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Act != w.act || g.Name != w.name || g.Verb != w.verb || g.String() != w.line {
					t.Errorf("action %d: got %v %q %v %q, want %v %q %v %q", i, g.Act, g.Name, g.Verb, g.String(), w.act, w.name, w.verb, w.line)
				}
			}
		})
	}
}

func TestPendingDecide(t *testing.T) {
	gated := mustParse(t, "gated", "COMMAND=server\nTEST=check\n")
	for _, tc := range []struct {
		name     string
		errs     []error
		slots    map[string]view
		answer   testResult
		act      Act
		verb     Verb
		line     string
		withTest bool
	}{
		{"new, passes", nil, nil, testResult{ok: true}, Start, Started, "start gated: new file", true},
		{"running, fails", nil, map[string]view{"gated": {Job: gated, State: Running}}, testResult{why: "test exited 1"}, Retest, StoppedIt, "stop gated: test exited 1", true},
		{"last good version, passes", []error{&FileError{File: "gated.env", Err: errors.New("bad")}},
			map[string]view{"gated": {Job: gated, State: Running}}, testResult{ok: true}, Keep, Unchanged, "keep gated: file rejected, its last good version runs on", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defs := []*Job{gated}
			if tc.errs != nil {
				defs = nil
			}
			var pending *Action
			for _, a := range plan(defs, nil, tc.errs, tc.slots, nil) {
				if a.Act == Pending {
					pending = &a
				}
			}
			if pending == nil {
				t.Fatal("no pending action")
			}
			got := pending.Decide(tc.answer)
			if got.Act != tc.act || got.Verb != tc.verb || got.String() != tc.line || (got.Test != nil) != tc.withTest {
				t.Errorf("got %v %v %q, want %v %v %q", got.Act, got.Verb, got.String(), tc.act, tc.verb, tc.line)
			}
			// The same answer given to plan decides alike.
			for _, a := range plan(defs, nil, tc.errs, tc.slots, map[string]testResult{"gated": tc.answer}) {
				if a.Name == "gated" && a.Act != Reject && (a.Act != got.Act || a.String() != got.String()) {
					t.Errorf("plan with the answer: %v %q, Decide: %v %q", a.Act, a, got.Act, got)
				}
			}
		})
	}
}

func TestNeedsTest(t *testing.T) {
	plain := mustParse(t, "a", "COMMAND=x\n")
	gated := mustParse(t, "a", "COMMAND=x\nTEST=y\n")
	gated2 := mustParse(t, "a", "COMMAND=x -v\nTEST=y\n")
	for _, tc := range []struct {
		name string
		j    *Job
		v    view
		want bool
	}{
		{"no TEST", plain, view{}, false},
		{"ephemeral", gated, view{Ephemeral: true}, false},
		{"leaving", gated, view{Leaving: true}, false},
		{"new", gated, view{}, true},
		{"new, held", gated, view{Held: true}, false},
		{"changed", gated2, view{Job: gated, State: Running}, true},
		{"changed, held", gated2, view{Job: gated, State: Stopped, Held: true}, false},
		{"running", gated, view{Job: gated, State: Running}, true},
		{"a policy-only edit, running", mustParse(t, "a", "COMMAND=x\nTEST=y\nSTOP_TIMEOUT=1s\n"), view{Job: gated, State: Running}, true},
		{"a policy-only edit, backoff", mustParse(t, "a", "COMMAND=x\nTEST=y\nSTOP_TIMEOUT=1s\n"), view{Job: gated, State: Backoff}, false},
		{"skipped", gated, view{Job: gated, State: Skipped}, true},
		{"failed", gated, view{Job: gated, State: Failed}, true},
		{"starting: its own TEST is in flight", gated, view{Job: gated, State: Starting}, false},
		{"backoff", gated, view{Job: gated, State: Backoff}, false},
		{"stopped", gated, view{Job: gated, State: Stopped}, false},
		{"exited", gated, view{Job: gated, State: Exited}, false},
	} {
		if got := needsTest(tc.j, program{}, tc.v); got != tc.want {
			t.Errorf("%s: needsTest = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestChangedKeys(t *testing.T) {
	base := "COMMAND=x\nTEST=y\nA=1\nB=2\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"command", "COMMAND=z\nTEST=y\nA=1\nB=2\n", []string{"COMMAND"}},
		{"env changed, added, removed", "COMMAND=x\nTEST=y\nA=9\nC=3\n", []string{"A", "B", "C"}},
		{"policy", base + "STOP_TIMEOUT=3s\nRESTART=never\nSTART_RETRIES=1\nRESTART_ON_BINARY_CHANGE=no\n", []string{"RESTART", "RESTART_ON_BINARY_CHANGE", "START_RETRIES", "STOP_TIMEOUT"}},
		{"every other key", "COMMAND=x\nTEST=z\nA=1\nB=2\nDIR=/tmp\nUSER=u\nGROUP=g\nSTOP_SIGNAL=INT\nTEST_TIMEOUT=1s\nTEST_INTERVAL=1s\nRESTART_DELAY=1s\nRESTART_MAX_DELAY=1m\nRESTART_RESET=1s\nSTART_SECS=2s\nMETRICS_INTERVAL=5s\n",
			[]string{"DIR", "GROUP", "METRICS_INTERVAL", "RESTART_DELAY", "RESTART_MAX_DELAY", "RESTART_RESET", "START_SECS", "STOP_SIGNAL", "TEST", "TEST_INTERVAL", "TEST_TIMEOUT", "USER"}},
		{"shell", "SHELL=/bin/sh\nCOMMAND=x\nTEST=y\nA=1\nB=2\n", []string{"COMMAND", "SHELL", "TEST"}},
		{"the same keys, spelled otherwise", "COMMAND=x\nTEST=y\nA=1\nB=2\n", []string{"definition"}},
	} {
		got := changedKeys(mustParse(t, "a", base), mustParse(t, "a", tc.src))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPlanProgram(t *testing.T) {
	api := mustParse(t, "api", "COMMAND=/bin/api\n")
	apiSlow := mustParse(t, "api", "COMMAND=/bin/api\nSTOP_TIMEOUT=1m\n")
	optOut := mustParse(t, "api", "COMMAND=/bin/api\nRESTART_ON_BINARY_CHANGE=no\n")
	gated := mustParse(t, "api", "COMMAND=/bin/api\nTEST=check\n")
	old := program{Path: "/bin/api", Dev: 1, Ino: 10, Size: 100, ModTime: 1}
	rebuilt := program{Path: "/bin/api", Dev: 1, Ino: 11, Size: 120, ModTime: 2}
	touched := old
	touched.ModTime = 3
	gone := program{}
	for _, tc := range []struct {
		name string
		j    *Job
		now  program
		v    view
		act  Act
		verb Verb
		line string
		prog *program // recorded after
	}{
		{"new: its program is recorded", api, old, view{}, Start, Started, "start api: new file", &old},
		{"rebuilt while running", api, rebuilt, view{Job: api, State: Running, Prog: old}, Replace, Restarted, "restart api: /bin/api changed", &rebuilt},
		{"touched while running", api, touched, view{Job: api, State: Running, Prog: old}, Replace, Restarted, "restart api: /bin/api changed", &touched},
		{"rebuilt in backoff", api, rebuilt, view{Job: api, State: Backoff, Prog: old}, Replace, Restarted, "restart api: /bin/api changed", &rebuilt},
		{"rebuilt and a policy edit: a restart all the same", apiSlow, rebuilt, view{Job: api, State: Running, Prog: old}, Replace, Restarted, "restart api: STOP_TIMEOUT, /bin/api changed", &rebuilt},
		{"a policy edit, same program: kept, program kept", apiSlow, old, view{Job: api, State: Running, Prog: old}, Update, Updated, "update api: STOP_TIMEOUT changed, no restart", nil},
		{"rebuilt, opted out", optOut, rebuilt, view{Job: optOut, State: Running, Prog: old}, Keep, Unchanged, "keep api: running", nil},
		{"unchanged", api, old, view{Job: api, State: Running, Prog: old}, Keep, Unchanged, "keep api: running", nil},
		{"vanished while running: kept", api, gone, view{Job: api, State: Running, Prog: old}, Keep, Unchanged, "keep api: /bin/api is gone (being rebuilt?); what runs is kept", nil},
		{"vanished while failed", api, gone, view{Job: api, State: Failed, Prog: old}, Keep, Unchanged, "keep api: failed, unchanged (START retries it)", &gone},
		{"rebuilt while failed: retried", api, rebuilt, view{Job: api, State: Failed, Prog: old}, Replace, Started, "start api: /bin/api changed", &rebuilt},
		{"found at last while failed: retried", api, old, view{Job: api, State: Failed}, Replace, Started, "start api: /bin/api changed", &old},
		{"not known when started: no restart", api, old, view{Job: api, State: Running}, Keep, Unchanged, "keep api: running", nil},
		{"rebuilt while exited: only recorded", api, rebuilt, view{Job: api, State: Exited, Prog: old}, Keep, Unchanged, "keep api: exited", &rebuilt},
		{"rebuilt while held: only recorded", api, rebuilt, view{Job: api, State: Stopped, Held: true, Prog: old}, Keep, Unchanged, "keep api: held by STOP (START runs it)", &rebuilt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plan([]*Job{tc.j}, map[string]program{"api": tc.now}, nil, map[string]view{"api": tc.v}, nil)
			if len(got) != 1 {
				t.Fatalf("got %v", got)
			}
			g := got[0]
			if g.Act != tc.act || g.Verb != tc.verb || g.String() != tc.line {
				t.Errorf("got %v %v %q, want %v %v %q", g.Act, g.Verb, g, tc.act, tc.verb, tc.line)
			}
			if (g.Prog == nil) != (tc.prog == nil) || g.Prog != nil && *g.Prog != *tc.prog {
				t.Errorf("records %v, want %v", g.Prog, tc.prog)
			}
		})
	}
	// A rebuilt program needs the new version's TEST, as any restart does.
	if !needsTest(gated, rebuilt, view{Job: gated, State: Backoff, Prog: old}) {
		t.Error("a rebuilt program in backoff: its TEST should run")
	}
	if needsTest(gated, old, view{Job: gated, State: Backoff, Prog: old}) {
		t.Error("unchanged in backoff: no TEST")
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[*Reason]string{
		{Why: FileRejected, Err: "web.env:2: COMMAND is missing"}: "web.env:2: COMMAND is missing",
		{Why: KeysChanged, Keys: []string{"COMMAND", "DIR"}}:      "COMMAND, DIR changed",
	} {
		if got := r.String(); got != want {
			t.Errorf("%+v: %q, want %q", *r, got, want)
		}
	}
}
