package main

import (
	"errors"
	"flag"
	"testing"
)

// TestClientRequests: the client's command line (its flags before or
// after the words, the protocol's own words, -json) becomes the request
// line sent, or a usage error in the client's syntax.
func TestClientRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		line string // the request sent; "" with err
		err  string // the error, if any
	}{
		{nil, "RELOAD", ""},
		{[]string{"-tty"}, "RELOAD", ""},
		{[]string{"status"}, "STATUS", ""},
		{[]string{"Status", "web"}, "STATUS web", ""},
		{[]string{"status", "-json"}, "STATUS JSON", ""},
		{[]string{"status", "web", "-json"}, "STATUS JSON web", ""},
		{[]string{"-timeout", "5s", "status", "-json", "web", "-tty"}, "STATUS JSON web", ""},
		{[]string{"status", "'web-*'"}, "STATUS 'web-*'", ""},
		{[]string{"reload", "-v"}, "RELOAD VERBOSE", ""},
		{[]string{"reload", "VERBOSE"}, "RELOAD VERBOSE", ""},
		{[]string{"reload", "-no-wait", "-v"}, "RELOAD VERBOSE NOWAIT", ""},
		{[]string{"reload", "-json"}, "RELOAD JSON", ""},
		{[]string{"plan"}, "RELOAD DRY", ""},
		{[]string{"plan", "-v"}, "RELOAD DRY VERBOSE", ""},
		{[]string{"plan", "-json"}, "RELOAD JSON DRY", ""},
		{[]string{"PLAN", "-json", "-v"}, "RELOAD JSON DRY VERBOSE", ""},
		{[]string{"logs"}, "LOGS *", ""},
		{[]string{"logs", "-json", "-n", "50", "-f"}, "LOGS JSON * 50 FOLLOW", ""},
		{[]string{"logs", "web", "-f"}, "LOGS web FOLLOW", ""},
		{[]string{"logs", "-f", "web"}, "LOGS web FOLLOW", ""},
		{[]string{"logs", "web", "-n", "5", "-stream", "stderr"}, "LOGS web 5 stderr", ""},
		{[]string{"logs", "-stream=test", "web"}, "LOGS web test", ""},
		{[]string{"logs", "web", "100", "stderr", "FOLLOW"}, "LOGS web 100 stderr FOLLOW", ""},
		{[]string{"logs", "web", "-f", "FOLLOW"}, "LOGS web FOLLOW", ""},
		{[]string{"logs", "web", "-stream", "nope"}, "", `logs: -stream must be stdout, stderr or test, not "nope"`},
		{[]string{"logs", "web", "1", "2"}, "", "usage: overseer logs [-f] [-n N] [-stream stdout|stderr|test] [-json] [NAME]"},
		{[]string{"history"}, "HISTORY", ""},
		{[]string{"history", "web", "-n", "5"}, "HISTORY web 5", ""},
		{[]string{"history", "-n", "5", "web"}, "HISTORY web 5", ""},
		{[]string{"history", "web", "5"}, "HISTORY web 5", ""},
		{[]string{"history", "-n", "5"}, "HISTORY 5", ""},
		{[]string{"history", "-json", "web"}, "HISTORY JSON web", ""},
		{[]string{"history", "web", "5", "-n", "2"}, "", "usage: overseer history [-n N] [-json] [NAME]"},
		{[]string{"inspect", "web", "-n", "3", "-json"}, "INSPECT JSON web 3", ""},
		{[]string{"inspect", "web", "3"}, "INSPECT web 3", ""},
		{[]string{"inspect", "-n", "3"}, "", "usage: overseer inspect [-n N] [-json] NAME"},
		{[]string{"inspect"}, "", "usage: overseer inspect [-n N] [-json] NAME"},
		{[]string{"events", "-json", "web"}, "EVENTS JSON web", ""},
		{[]string{"start", "web"}, "START web", ""},
		{[]string{"start", "-no-wait", "web"}, "START web NOWAIT", ""},
		{[]string{"restart", "web", "-no-wait"}, "RESTART web NOWAIT", ""},
		{[]string{"start", "web", "NOWAIT"}, "START web NOWAIT", ""},
		{[]string{"stop"}, "", "usage: overseer stop NAME"},
		{[]string{"stop", "web", "db"}, "", "usage: overseer stop NAME"},
		{[]string{"stop", "--", "-web"}, "STOP -web", ""},
		{[]string{"signal", "web", "9"}, "SIGNAL web 9", ""},
		{[]string{"signal", "web", "NOPE"}, "", `signal: unknown signal "NOPE": use a name such as HUP, USR1 or TERM`},
		{[]string{"signal", "web", "99"}, "", "signal: no signal has the number 99 here: use a name such as HUP, USR1 or TERM, or a number kill -l lists"},
		{[]string{"wait", "web", "running", "10s"}, "WAIT web running 10s", ""},
		{[]string{"wait", "web"}, "", "usage: overseer wait NAME STATE [TIMEOUT]"},
		{[]string{"spawn", "-ttl", "1h", "-tied", "eph", "--", "sh", "-c", "echo hi"}, "SPAWN eph 1h TIED PARENT -- sh -c 'echo hi'", ""},
		{[]string{"spawn", "eph", "-ttl", "1h", "--", "testjob", "-print", "x", "--", "-n"}, "SPAWN eph 1h -- testjob -print x -- -n", ""},
		{[]string{"spawn", "eph", "TIED", "--", "testjob"}, "SPAWN eph TIED -- testjob", ""},
		{[]string{"spawn", "eph", "testjob"}, "", "usage: overseer spawn [-ttl DURATION] [-tied] NAME -- COMMAND [ARG...]"},
		{[]string{"spawn", "eph", "--"}, "", "usage: overseer spawn [-ttl DURATION] [-tied] NAME -- COMMAND [ARG...]"},
		{[]string{"ping"}, "PING", ""},
		{[]string{"die", "now"}, "", "usage: overseer die"},
		{[]string{"restrat", "web"}, "", `unknown verb "restrat": did you mean RESTART?`},
		{[]string{"plna"}, "", `unknown verb "plna": did you mean PLAN?`},
	} {
		_, call, _, err := parseCommandLine("overseer", c.args)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.err == "" && call.wire() != c.line:
			t.Errorf("%q: sends %q, want %q", c.args, call.wire(), c.line)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%q: error %v, want %s", c.args, err, c.err)
		}
	}
}

// TestClientFlagErrors: a flag a verb does not know is an error of that
// verb's flags, never a word; -h asks for that verb's help.
func TestClientFlagErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		verb string // whose flags failed
		help bool   // -h
	}{
		{[]string{"status", "-x"}, "status", false},
		{[]string{"history", "web", "-x"}, "history", false},
		{[]string{"spawn", "eph", "-x", "--", "testjob"}, "spawn", false},
		{[]string{"logs", "-n", "many"}, "logs", false},
		{[]string{"uninstall", "-n"}, "uninstall", false},
		{[]string{"-x", "status"}, "overseer", false},
		{[]string{"logs", "web", "-h"}, "logs", true},
		{[]string{"-h"}, "overseer", true},
	} {
		_, call, cl, err := parseCommandLine("overseer", c.args)
		switch {
		case err == nil:
			t.Errorf("%q: no error; sends %q", c.args, call.wire())
		case errors.Is(err, flag.ErrHelp) != c.help:
			t.Errorf("%q: error %v, want help %v", c.args, err, c.help)
		case cl.failed == nil || cl.failed.Name != c.verb:
			t.Errorf("%q: error %v not of %s's flags", c.args, err, c.verb)
		}
	}
}

// TestClientDisplayFlags: -tty and -no-color count before the verb (as
// overseer's own flags, or OVERSEER_TTY) as after it (as the verb's).
func TestClientDisplayFlags(t *testing.T) {
	for _, c := range []struct {
		env          string // OVERSEER_TTY
		args         []string
		tty, noColor bool
	}{
		{"", []string{"status"}, false, false},
		{"", []string{"-tty", "status"}, true, false},
		{"", []string{"-tty", "-no-color", "logs"}, true, true},
		{"", []string{"status", "-tty", "-no-color"}, true, true},
		{"", []string{"-no-color", "status", "-tty"}, true, true},
		{"1", []string{"status"}, true, false},
		{"", []string{"-tty"}, true, false},
	} {
		t.Setenv("OVERSEER_TTY", c.env)
		o, _, _, err := parseCommandLine("overseer", c.args)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
		} else if o.tty != c.tty || o.noColor != c.noColor {
			t.Errorf("OVERSEER_TTY=%s %q: tty %v, no-color %v; want %v, %v", c.env, c.args, o.tty, o.noColor, c.tty, c.noColor)
		}
	}
}
