package main

import (
	"strings"
	"testing"

	"overseer/jobs"
)

// FuzzSpawnName: whatever name a SPAWN carries, the parser does not panic;
// it takes a valid name as it came, and refuses any other with an error
// that says why on one line.
func FuzzSpawnName(f *testing.F) {
	for _, seed := range []string{
		"eph", strings.Repeat("a", jobs.MaxNameLen), strings.Repeat("a", jobs.MaxNameLen+1),
		strings.Repeat("b", 251), "bad/name", ".hidden", "é", "a\x00b", "--", "TIED",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		r, err := parseRequest("SPAWN " + name + " -- testjob")
		if f := strings.Fields(name); len(f) != 1 || f[0] != name || name == "--" {
			return // not one word: the line means something else
		}
		switch {
		case jobs.ValidName(name):
			if err != nil || r.name != name {
				t.Errorf("SPAWN %q: %v, name %q", name, err, r.name)
			}
		case err == nil:
			t.Errorf("SPAWN %q accepted", name)
		case strings.ContainsAny(err.Error(), "\n\r") || !strings.HasPrefix(err.Error(), "SPAWN: invalid job name "):
			t.Errorf("SPAWN %q: error %q", name, err)
		}
	})
}
