package jobs

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestMergeTails(t *testing.T) {
	t.Parallel()
	const (
		t1 = "2026-11-22T01:02:03.001Z"
		t2 = "2026-11-22T01:02:03.002Z"
		t3 = "2026-11-22T01:02:03.003Z"
	)
	line := func(name, at, text string) string { return name + " " + at + " out " + text }
	a := []string{line("api", t1, "a1"), line("api", t3, "a3")}
	b := []string{line("web", t2, "b2"), line("web", t3, "b3")}
	for _, c := range []struct {
		name     string
		a, b     []string
		n, limit int
		want     []string
	}{
		{"by time", a, b, 10, 1 << 20, []string{a[0], b[0], a[1], b[1]}},
		{"the last n", a, b, 2, 1 << 20, []string{a[1], b[1]}},
		{"equal times: a first", b[1:], a[1:], 10, 1 << 20, []string{b[1], a[1]}},
		{"the newest within limit", a, b, 10, 2*(len(a[1])+1) + 1, []string{a[1], b[1]}},
		{"n 0", a, b, 0, 1 << 20, []string{}},
		{"one empty", nil, b, 10, 1 << 20, b},
		{"both empty", nil, nil, 10, 1 << 20, []string{}},
	} {
		if got := mergeTails(c.a, c.b, c.n, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("%s: mergeTails = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestGlobs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		word          string
		glob, problem bool
	}{
		{"web-1", false, false},
		{"a.b_c-9", false, false},
		{"web-*", true, false},
		{"*", true, false},
		{"w?b", true, false},
		{"web-[12]", true, false},
		{"web-[^1]", true, false},
		{"web-[", true, true},
		{`web-\*`, true, true},
	} {
		if got := IsGlob(c.word); got != c.glob {
			t.Errorf("IsGlob(%q) = %v, want %v", c.word, got, c.glob)
		}
		if got := GlobProblem(c.word) != ""; c.glob && got != c.problem {
			t.Errorf("GlobProblem(%q) = %q, want a problem: %v", c.word, GlobProblem(c.word), c.problem)
		}
		// A name never looks like a glob.
		if NameProblem(c.word) == "" && IsGlob(c.word) {
			t.Errorf("%q is both a valid name and a glob", c.word)
		}
	}
}

// TestFollowerOfManyLogs: one Follower of several logs gets each one's
// lines after its prefix, and ends when the last log closes.
func TestFollowerOfManyLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := newLogSink(filepath.Join(dir, "a.log"), 0, 0)
	b := newLogSink(filepath.Join(dir, "b.log"), 0, 0)
	closed := newLogSink(filepath.Join(dir, "c.log"), 0, 0)
	closed.close()
	f := newFollower("")
	a.attach(f, "a ")
	b.attach(f, "b ")
	closed.attach(f, "c ")
	f.leave()
	a.writeLine(StreamOut, []byte("one"), nil)
	b.writeLine(StreamOut, []byte("two"), nil)
	for _, want := range []string{"a ", "b "} {
		l := <-f.Lines()
		if got := l[:2]; got != want || l[len(l)-3:] != map[string]string{"a ": "one", "b ": "two"}[want] {
			t.Errorf("line %q: want it after %q", l, want)
		}
	}
	a.close()
	b.writeLine(StreamOut, []byte("three"), nil)
	if l := <-f.Lines(); l[:2] != "b " {
		t.Errorf("after a closed: line %q, want b's", l)
	}
	b.close()
	select {
	case l, ok := <-f.Lines():
		if ok {
			t.Errorf("after every log closed: line %q, want Lines closed", l)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("after every log closed: Lines still open")
	}
}
