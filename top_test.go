package main

import "testing"

// TestTopColor: top colours only without -no-color, NO_COLOR and TERM=dumb.
func TestTopColor(t *testing.T) {
	for _, c := range []struct {
		noColor   bool
		env, term string
		want      bool
	}{
		{false, "", "xterm", true},
		{true, "", "xterm", false},
		{false, "1", "xterm", false},
		{false, "", "dumb", false},
	} {
		t.Setenv("NO_COLOR", c.env)
		t.Setenv("TERM", c.term)
		if got := topColor(options{noColor: c.noColor}); got != c.want {
			t.Errorf("-no-color=%v NO_COLOR=%q TERM=%s: colour %v, want %v", c.noColor, c.env, c.term, got, c.want)
		}
	}
}
