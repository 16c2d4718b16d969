package jobs

import (
	"strings"
	"testing"
)

func TestMarked(t *testing.T) {
	env := func(kv ...string) []byte { return []byte(strings.Join(kv, "\x00") + "\x00") }
	for _, c := range []struct {
		name    string
		environ []byte
		want    bool
	}{
		{"both marks", env("PATH=/bin", "OVERSEER_INSTANCE=/d", "OVERSEER_JOB=web"), true},
		{"marks first", env("OVERSEER_JOB=web", "OVERSEER_INSTANCE=/d", "X=1"), true},
		{"no trailing NUL", []byte("OVERSEER_INSTANCE=/d\x00OVERSEER_JOB=web"), true},
		{"another job", env("OVERSEER_INSTANCE=/d", "OVERSEER_JOB=web2"), false},
		{"a job whose name ends so", env("OVERSEER_INSTANCE=/d", "OVERSEER_JOB=xweb"), false},
		{"another data dir", env("OVERSEER_INSTANCE=/d/e", "OVERSEER_JOB=web"), false},
		{"the job's mark only", env("OVERSEER_JOB=web"), false},
		{"the instance's mark only", env("OVERSEER_INSTANCE=/d"), false},
		{"a value that holds the mark", env("X=OVERSEER_JOB=web", "OVERSEER_INSTANCE=/d"), false},
		{"empty", nil, false},
	} {
		if got := marked(c.environ, "/d", "web"); got != c.want {
			t.Errorf("%s: marked(%q) = %v, want %v", c.name, c.environ, got, c.want)
		}
	}
}

func TestCgroupNames(t *testing.T) {
	a, b := cgroupName("/data/a"), cgroupName("/data/b")
	if a == b || !strings.HasPrefix(a, "overseer-") || len(a) != len("overseer-")+16 {
		t.Errorf("cgroupName: %q and %q", a, b)
	}
	if a != cgroupName("/data/a") {
		t.Errorf("cgroupName is not stable")
	}
	// A job's name may look like an interface file; its cgroup must not.
	for _, job := range []string{"cgroup.procs", "memory.max", "web"} {
		if l := leafName(job); l != "job-"+job {
			t.Errorf("leafName(%q) = %q", job, l)
		}
	}
}
