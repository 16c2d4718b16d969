package jobs

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseAfter(t *testing.T) {
	for _, c := range []struct {
		src, after, with, err string
	}{
		{src: "AFTER=db cache", after: "db cache"},
		{src: "AFTER=  db\tcache db ", after: "db cache"},
		{src: "AFTER=db\nRESTART_WITH=db", after: "db", with: "db"},
		{src: "RESTART_WITH=db", with: "db"},
		{src: "AFTER=", err: "web.env:2: AFTER: is empty: name the jobs to start after, or remove the key"},
		{src: "AFTER=web", err: "web.env:2: AFTER: a job cannot wait for itself"},
		{src: "RESTART_WITH=db web", err: "web.env:2: RESTART_WITH: a job cannot wait for itself"},
		{src: "AFTER=db/x", err: "web.env:2: AFTER: expected job names separated by spaces (letters, digits, '_', '-' and '.')"},
		{src: "AFTER=.db", err: "web.env:2: AFTER: expected job names"},
	} {
		j, err := Parse("web", strings.NewReader("COMMAND=run\n"+c.src+"\n"), nil)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%q: got %v, want %q", c.src, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.src, err)
		}
		if got := strings.Join(j.After, " "); got != c.after {
			t.Errorf("%q: After %q, want %q", c.src, got, c.after)
		}
		if got := strings.Join(j.RestartWith, " "); got != c.with {
			t.Errorf("%q: RestartWith %q, want %q", c.src, got, c.with)
		}
	}
}

func TestDeps(t *testing.T) {
	j := &Job{After: []string{"db", "cache"}, RestartWith: []string{"cache", "queue"}}
	if got := j.Deps(); !reflect.DeepEqual(got, []string{"db", "cache", "queue"}) {
		t.Errorf("Deps() = %v", got)
	}
}

func TestFindCycles(t *testing.T) {
	for _, c := range []struct {
		graph map[string][]string
		want  map[string][]string
	}{
		{map[string][]string{"web": {"api"}, "api": {"db"}, "db": nil}, map[string][]string{}},
		{map[string][]string{"web": {"api"}, "api": {"web"}, "db": nil},
			map[string][]string{"web": {"web", "api", "web"}, "api": {"api", "web", "api"}}},
		{map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}},
			map[string][]string{"a": {"a", "b", "c", "a"}, "b": {"b", "c", "a", "b"}, "c": {"c", "a", "b", "c"}}},
		// The shortest way back is chosen; edges out of the graph do not count.
		{map[string][]string{"a": {"x", "b", "c"}, "b": {"c"}, "c": {"a"}},
			map[string][]string{"a": {"a", "c", "a"}, "b": {"b", "c", "a", "b"}, "c": {"c", "a", "c"}}},
		{map[string][]string{"a": {"b"}, "b": {"b"}}, map[string][]string{"b": {"b", "b"}}},
	} {
		got := findCycles(c.graph)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("findCycles(%v) = %v, want %v", c.graph, got, c.want)
		}
	}
}

func TestCheckOrder(t *testing.T) {
	job := func(name string, after ...string) *Job {
		return &Job{Name: name, After: after, afterLine: 2}
	}
	rejected := func(file string) error { return &FileError{File: file, Err: fmt.Errorf("bad")} }
	for _, c := range []struct {
		name    string
		defs    []*Job
		errs    []error
		running map[string][]string
		ok      string   // names kept
		want    []string // errors added
	}{
		{name: "chain", defs: []*Job{job("api", "db"), job("db"), job("web", "api", "db")}, ok: "api db web"},
		{name: "cycle", defs: []*Job{job("api", "web"), job("db"), job("web", "api")}, ok: "db",
			want: []string{"api.env:2: AFTER: cycle api -> web -> api", "web.env:2: AFTER: cycle web -> api -> web"}},
		{name: "dependant of a cycle loads", defs: []*Job{job("a", "b"), job("b", "a"), job("c", "a")}, ok: "c",
			want: []string{"a.env:2: AFTER: cycle a -> b -> a", "b.env:2: AFTER: cycle b -> a -> b"}},
		{name: "unknown, near", defs: []*Job{job("db"), job("web", "dbb")}, ok: "db",
			want: []string{`web.env:2: AFTER: no job named "dbb": did you mean db?`}},
		{name: "unknown, far", defs: []*Job{job("db"), job("web", "redis")}, ok: "db",
			want: []string{`web.env:2: AFTER: no job named "redis"`}},
		{name: "a rejected file is known", defs: []*Job{job("web", "db")}, errs: []error{rejected("db.env")}, ok: "web"},
		{name: "cycle through a last good version", defs: []*Job{job("web", "db")}, errs: []error{rejected("db.env")},
			running: map[string][]string{"db": {"web"}}, want: []string{"web.env:2: AFTER: cycle web -> db -> web"}},
		{name: "instances: one error for their file", defs: []*Job{
			{Name: "x.1", Base: "x", Index: 1, After: []string{"nosuch"}, afterLine: 3},
			{Name: "x.2", Base: "x", Index: 2, After: []string{"nosuch"}, afterLine: 3}, job("db")}, ok: "db",
			want: []string{`x.env:3: AFTER: no job named "nosuch"`}},
		{name: "instances on a cycle", defs: []*Job{
			{Name: "web.1", Base: "web", Index: 1, After: []string{"api"}, afterLine: 3},
			{Name: "web.2", Base: "web", Index: 2, After: []string{"api"}, afterLine: 3}, job("api", "web.1", "web.2")}, ok: "",
			want: []string{"web.env:3: AFTER: cycle web.1 -> api -> web.1", "api.env:2: AFTER: cycle api -> web.1 -> api"}},
		{name: "one instance on a cycle rejects its whole file", defs: []*Job{
			{Name: "web.1", Base: "web", Index: 1, After: []string{"api"}, afterLine: 3},
			{Name: "web.2", Base: "web", Index: 2, After: []string{"api"}, afterLine: 3}, job("api", "web.1"), job("db")}, ok: "db",
			want: []string{"web.env:3: AFTER: cycle web.1 -> api -> web.1", "api.env:2: AFTER: cycle api -> web.1 -> api"}},
		{name: "RESTART_WITH counts", defs: []*Job{{Name: "web", RestartWith: []string{"api"}, withLine: 3}, job("api", "web")}, ok: "",
			want: []string{"web.env:3: RESTART_WITH: cycle web -> api -> web", "api.env:2: AFTER: cycle api -> web -> api"}},
	} {
		ok, errs := checkOrder(c.defs, c.errs, c.running)
		var names []string
		for _, j := range ok {
			names = append(names, j.Name)
		}
		if got := strings.Join(names, " "); got != c.ok {
			t.Errorf("%s: kept %q, want %q", c.name, got, c.ok)
		}
		var got []string
		for _, err := range errs[len(c.errs):] {
			got = append(got, err.Error())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: errors\n%q\nwant\n%q", c.name, got, c.want)
		}
	}
}

func TestMayStart(t *testing.T) {
	exit := func(code int) *Exit { return &Exit{Code: code} }
	for _, c := range []struct {
		name   string
		deps   []string
		states map[string]depState
		ok     bool
		why    string
		stuck  bool
	}{
		{"no deps", nil, nil, true, "", false},
		{"ready", []string{"db"}, map[string]depState{"db": {State: Running}}, true, "", false},
		{"one-shot running", []string{"migrate"}, map[string]depState{"migrate": {State: Running, OneShot: true}}, false, "for migrate", false},
		{"service exited 0", []string{"db"}, map[string]depState{"db": {State: Exited, Exit: exit(0)}}, true, "", false},
		{"one-shot done", []string{"migrate"}, map[string]depState{"migrate": {State: Exited, Exit: exit(0), OneShot: true}}, true, "", false},
		{"starting", []string{"db"}, map[string]depState{"db": {State: Starting}}, false, "for db", false},
		{"fresh", []string{"db"}, map[string]depState{"db": {Fresh: true, State: Stopped}}, false, "for db", false},
		{"rolling", []string{"web.2"}, map[string]depState{"web.2": {State: Running, Rolling: true}}, false, "for web.2", false},
		{"rolling, failed", []string{"web.2"}, map[string]depState{"web.2": {State: Failed, Rolling: true}}, false, "for web.2", false},
		{"stopping", []string{"db"}, map[string]depState{"db": {State: Stopping}}, false, "for db", false},
		{"two", []string{"db", "cache"}, map[string]depState{"db": {State: Starting}, "cache": {State: Starting}}, false, "for db, cache", false},
		{"one of two", []string{"db", "cache"}, map[string]depState{"db": {State: Running}, "cache": {State: Starting}}, false, "for cache", false},
		{"failed", []string{"db"}, map[string]depState{"db": {State: Failed}}, false, "for db: db failed", true},
		{"one-shot failed", []string{"migrate"}, map[string]depState{"migrate": {State: Exited, Exit: exit(3), OneShot: true}}, false, "for migrate: migrate exited 3", true},
		{"killed", []string{"migrate"}, map[string]depState{"migrate": {State: Exited, Exit: &Exit{Code: -1, Signal: "KILL"}}}, false, "for migrate: migrate killed by KILL", true},
		{"stopped", []string{"db"}, map[string]depState{"db": {State: Stopped}}, false, "for db: db stopped", true},
		{"skipped", []string{"db"}, map[string]depState{"db": {State: Skipped}}, false, "for db: db skipped", true},
		{"backoff", []string{"db"}, map[string]depState{"db": {State: Backoff}}, false, "for db: db backoff", true},
		{"rejected", []string{"db"}, map[string]depState{"db": {State: Rejected}}, false, "for db: db rejected", true},
		{"not loaded", []string{"db"}, nil, false, "for db: db is not loaded", true},
		{"waiting on", []string{"api"}, map[string]depState{"api": {State: Waiting}}, false, "for api", false},
		{"waiting, stuck", []string{"api"}, map[string]depState{"api": {State: Waiting, Stuck: true}}, false, "for api: api waiting", true},
		{"mixed", []string{"db", "cache"}, map[string]depState{"db": {State: Failed}, "cache": {State: Starting}}, false, "for db, cache: db failed", true},
	} {
		ok, why, stuck := mayStart(c.deps, c.states)
		if ok != c.ok || why != c.why || stuck != c.stuck {
			t.Errorf("%s: mayStart = %v, %q, %v; want %v, %q, %v", c.name, ok, why, stuck, c.ok, c.why, c.stuck)
		}
	}
}

func TestStopFirst(t *testing.T) {
	for _, c := range []struct {
		deps map[string][]string
		want map[string][]string
	}{
		{map[string][]string{"db": nil, "api": {"db"}, "web": {"api", "db"}},
			map[string][]string{"db": {"api", "web"}, "api": {"web"}}},
		// Dependencies that do not stop do not count.
		{map[string][]string{"api": {"db"}, "web": {"api"}}, map[string][]string{"api": {"web"}}},
		{map[string][]string{"a": nil, "b": nil}, map[string][]string{}},
		// A cycle (through last good versions) orders none of its own.
		{map[string][]string{"a": {"b"}, "b": {"a"}, "c": {"a"}}, map[string][]string{"a": {"c"}}},
	} {
		if got := stopFirst(c.deps); !reflect.DeepEqual(got, c.want) {
			t.Errorf("stopFirst(%v) = %v, want %v", c.deps, got, c.want)
		}
	}
}
