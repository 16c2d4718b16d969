package jobs

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestSuggestKey(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		// Misspellings: one or two edits from a known key.
		{"RESTRAT", "RESTART"},          // two neighbours swapped
		{"STOP_TIMOUT", "STOP_TIMEOUT"}, // one letter left out
		{"TEST_INTERVALL", "TEST_INTERVAL"},
		{"COMAND", "COMMAND"},
		{"COMMANDS", "COMMAND"},
		{"RESTART_DELYA", "RESTART_DELAY"},
		{"START_RETRYS", "START_RETRIES"},
		{"STOPSIGNAL", "STOP_SIGNAL"},
		{"METRIC_INTERVAL", "METRICS_INTERVAL"},
		{"RESTART_ON_BINARY_CHANGES", "RESTART_ON_BINARY_CHANGE"},
		{"DIRR", "DIR"},
		{"TETS", "TEST"},
		{"GRUOP", "GROUP"},
		// Starting with a known key of two or more words.
		{"RESTART_DELAYS", "RESTART_DELAY"},
		{"RESTART_DELAY_MS", "RESTART_DELAY"},
		{"RESTART_MAX_DELAY_SECONDS", "RESTART_MAX_DELAY"},
		{"STOP_TIMEOUT_SECS", "STOP_TIMEOUT"},
		// Known keys, lower case, and keys far from every known key.
		{"RESTART", ""},
		{"STOP_TIMEOUT", ""},
		{"restrat", ""},
		{"Restrat", ""},
		{"stop_timout", ""},
		{"MY_VAR", ""},
		{"TOKEN", ""},
		{"DATABASE_URL", ""},
		{"TEST_DATABASE_URL", ""}, // TEST is one word: no prefix rule
		{"RESTART_", "RESTART"},
		{"TESTING", ""},
		{"USERS_DB", ""},
		{"METRICS_PORT", ""},
		// Common environment variables, some of them near a known key.
		{"PATH", ""}, {"HOME", ""}, {"LANG", ""}, {"LANGUAGE", ""}, {"TERM", ""}, {"TZ", ""},
		{"PWD", ""}, {"OLDPWD", ""}, {"SHLVL", ""}, {"USERNAME", ""}, {"LOGNAME", ""},
		{"TMPDIR", ""}, {"EDITOR", ""}, {"VISUAL", ""}, {"PAGER", ""}, {"DISPLAY", ""},
		{"HOSTNAME", ""}, {"COLUMNS", ""}, {"LINES", ""}, {"MAIL", ""}, {"GROUPS", ""},
		{"SHELLOPTS", ""}, {"LC_ALL", ""}, {"LC_CTYPE", ""}, {"XDG_RUNTIME_DIR", ""},
		{"XDG_CONFIG_HOME", ""}, {"GOPATH", ""}, {"GOFLAGS", ""}, {"NODE_ENV", ""},
		{"PYTHONPATH", ""}, {"PYTHONUNBUFFERED", ""}, {"JAVA_HOME", ""}, {"RUST_LOG", ""},
		{"HTTP_PROXY", ""}, {"NO_COLOR", ""}, {"DEBUG", ""}, {"PORT", ""}, {"HOST", ""},
		{"LD_LIBRARY_PATH", ""}, {"SSH_AUTH_SOCK", ""}, {"DBUS_SESSION_BUS_ADDRESS", ""},
	} {
		if got := suggestKey(c.key); got != c.want {
			t.Errorf("suggestKey(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"A", "", 1}, {"", "AB", 2}, {"RESTART", "RESTART", 0},
		{"RESTRAT", "RESTART", 1}, {"STOP_TIMOUT", "STOP_TIMEOUT", 1},
		{"TERM", "TEST", 2}, {"SHLVL", "SHELL", 2}, {"CA", "ABC", 3},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestKnownKeys keeps knownKeys in step with Parse: each of them is read
// by Parse, not passed to the environment (SHELL is both).
func TestKnownKeys(t *testing.T) {
	values := map[string]string{"COMMAND": "run", "TEST": "check", "SHELL": "/bin/sh", "DIR": "/", "USER": "root", "GROUP": "root",
		"RESTART": "never", "RESTART_ON_BINARY_CHANGE": "no", "START_RETRIES": "1", "STOP_SIGNAL": "INT",
		"START_LIMIT": "3", "MEMORY_MAX": "16MiB", "INSTANCES": "2"}
	var src strings.Builder
	for _, k := range knownKeys {
		v, ok := values[k]
		if !ok {
			v = "1s" // the durations
		}
		src.WriteString(k + "=" + v + "\n")
	}
	j, err := Parse("all", strings.NewReader(src.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(j.Env, []string{"SHELL=/bin/sh"}) || j.Warnings != nil {
		t.Errorf("env %q, warnings %v: want only SHELL, no warnings", j.Env, j.Warnings)
	}
}

func TestParseWarnings(t *testing.T) {
	src := `COMMAND=run
# RESTRAT=never in a comment is no key
RESTRAT=never
PATH=/usr/bin
MY_VAR=secret-value
export STOP_TIMOUT=1s
RESTART_DELAYS=1s
restrat=lower
`
	j, err := Parse("mixed", strings.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Warning{
		{File: "mixed.env", Line: 3, Key: "RESTRAT", Like: "RESTART"},
		{File: "mixed.env", Line: 6, Key: "STOP_TIMOUT", Like: "STOP_TIMEOUT"},
		{File: "mixed.env", Line: 7, Key: "RESTART_DELAYS", Like: "RESTART_DELAY"},
	}
	if !reflect.DeepEqual(j.Warnings, want) {
		t.Errorf("warnings %+v, want %+v", j.Warnings, want)
	}
	// The keys still go to the environment, the job keeps its defaults.
	for _, kv := range []string{"RESTRAT=never", "STOP_TIMOUT=1s", "RESTART_DELAYS=1s", "restrat=lower"} {
		if !strings.Contains(strings.Join(j.Env, "\n"), kv) {
			t.Errorf("env %q lacks %s", j.Env, kv)
		}
	}
	if j.Restart != RestartAlways {
		t.Errorf("restart %q, want the default", j.Restart)
	}
	got := want[0].String()
	if got != "mixed.env:3: RESTRAT is not a key overseer knows: did you mean RESTART? it goes to the job's environment" {
		t.Errorf("String() = %q", got)
	}
	for _, w := range j.Warnings {
		if strings.Contains(w.String(), "never") || strings.Contains(w.String(), "1s") {
			t.Errorf("warning %q shows a value", w)
		}
	}
}

func TestPlanWarnings(t *testing.T) {
	j := &Job{Name: "web", Command: []string{"run"}, Hash: "a", Warnings: []Warning{
		{File: "web.env", Line: 2, Key: "RESTRAT", Like: "RESTART"},
		{File: "web.env", Line: 12, Key: "STOP_TIMOUT", Like: "STOP_TIMEOUT"},
	}}
	// Whatever the job's action, each warning follows it; a running,
	// unchanged job warns too, at every reload.
	for _, slots := range []map[string]view{nil, {"web": {Job: j, State: Running}}} {
		var lines []string
		for _, a := range plan([]*Job{j}, nil, nil, slots, nil) {
			lines = append(lines, a.String())
		}
		first := "start web: new file"
		if slots != nil {
			first = "keep web: running"
		}
		want := []string{first,
			"warning web.env:2: RESTRAT is not a key overseer knows: did you mean RESTART? it goes to the job's environment",
			"warning web.env:12: STOP_TIMOUT is not a key overseer knows: did you mean STOP_TIMEOUT? it goes to the job's environment"}
		if !reflect.DeepEqual(lines, want) {
			t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestChangeOrder: a reload's report lists a job's warnings after its
// own line, in line order (web.env:12 after web.env:2), whatever order
// the changes came in.
func TestChangeOrder(t *testing.T) {
	cs := []Change{
		{Verb: Warned, Name: "web.env:12", job: "web", line: 12},
		{Verb: Started, Name: "web2"},
		{Verb: Warned, Name: "web.env:2", job: "web", line: 2},
		{Verb: RejectedIt, Name: "bad.env"},
		{Verb: Started, Name: "web"},
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].less(cs[b]) })
	var got []string
	for _, c := range cs {
		got = append(got, c.Name)
	}
	if want := []string{"bad.env", "web", "web.env:2", "web.env:12", "web2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestNearest(t *testing.T) {
	verbs := []string{"STATUS", "START", "STOP", "RESTART", "PING", "PLAN", "DIE"}
	for _, tc := range []struct{ word, want string }{
		{"RESTRAT", "RESTART"}, // two neighbours swapped: one edit
		{"STAUTS", "STATUS"},
		{"STRAT", "START"},
		{"PNIG", "PING"},
		{"STPO", "STOP"},
		{"RESTARTT", "RESTART"},
		{"STATUSXYZ", ""}, // three edits from STATUS
		{"STATUS", ""},    // a verb itself
		{"DEI", "DIE"},
		{"FROB", ""},
		{"PL", ""}, // a short word: one edit at most
		{"", ""},
	} {
		if got := Nearest(tc.word, verbs); got != tc.want {
			t.Errorf("Nearest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}
