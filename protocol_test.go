package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestVerbTable: each entry of the table of verbs is whole (a handler for
// every request it parses), protocol.md's table of verbs documents it with
// the same arguments, and overseer -help (on stdout) names it as typed,
// with its flags, as it does the client's own verbs.
func TestVerbTable(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	var usage, errs bytes.Buffer
	if code := run([]string{"overseer", "-help"}, &usage, &errs); code != exitOK || errs.Len() > 0 {
		t.Fatalf("overseer -help: exit %d, stderr %q", code, errs.String())
	}
	for _, v := range verbs {
		if v.name != strings.ToUpper(v.name) || v.help == "" {
			t.Errorf("%s: the name must be upper case and the help said", v.name)
		}
		if v.answer == nil && (v.serve == nil || v.serves != nil) {
			t.Errorf("%s: no handler for some requests: answer is nil, and serve is nil or does not serve all", v.name)
		}
		if v.stream != nil && v.serve == nil {
			t.Errorf("%s: a stream needs serve", v.name)
		}
		args := "none"
		if v.args != "" {
			args = "`" + strings.ReplaceAll(strings.TrimSpace(v.args), "|", `\|`) + "`"
		}
		if row := "| `" + v.name + "` | " + args + " |"; !bytes.Contains(doc, []byte(row)) {
			t.Errorf("%s: protocol.md's table of verbs has no row %q", v.name, row)
		}
	}
	// The client's verbs: the protocol's and its own, each with its
	// syntax, flags included.
	for _, v := range commandVerbs() {
		if v.short == "" {
			t.Errorf("%s: no short help for overseer -help", v.name)
		}
		if !strings.Contains(usage.String(), "\n  "+syntax(v)+" ") && !strings.Contains(usage.String(), "\n  "+syntax(v)+"\n") {
			t.Errorf("%s: overseer -help does not name it as %q", v.name, syntax(v))
		}
	}
}

// TestGlobRequests: the verbs that act on many jobs take a glob for NAME;
// the others, and bad globs, are refused with a message saying why.
func TestGlobRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ line, err string }{
		{"STATUS web-*", ""},
		{"START *", ""},
		{"STOP web-[12]", ""},
		{"RESTART w?b", ""},
		{"SIGNAL web-* HUP", ""},
		{"LOGS * 5 FOLLOW", ""},
		{"HISTORY * 5", ""},
		{"HISTORY web-*", ""},
		{"WAIT web-* running 1s", ""},
		{"INSPECT web-*", `INSPECT takes one job's name, not a glob such as "web-*"`},
		{"EVENTS *", `EVENTS takes one job's name, not a glob such as "*"`},
		{"STOP web-[", `STOP: bad glob "web-[": unclosed [ or a bad range in [...]`},
		{`STOP web-\*`, `STOP: bad glob "web-\\*": a glob needs no \: job names hold only letters, digits, '_', '-' and '.'`},
	} {
		r, err := parseRequest(c.line)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.line, err)
		case c.err == "" && r.name == "":
			t.Errorf("%s: no name parsed", c.line)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%s: error %v, want %s", c.line, err, c.err)
		}
	}
}

// TestJSONWord: the word JSON right after a verb that has a JSON answer
// sets json, in any case, and is never taken for a job's name; after
// another verb it is refused with a message naming the verb.
func TestJSONWord(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ line, name, err string }{
		{"STATUS JSON", "", ""},
		{"status json web", "web", ""},
		{"STATUS Json [J]SON", "[J]SON", ""},
		{"STATUS JSON JSON", "JSON", ""},
		{"HISTORY JSON 5", "", ""},
		{"INSPECT JSON web 2", "web", ""},
		{"LOGS JSON * 5 stderr FOLLOW", "*", ""},
		{"EVENTS JSON", "", ""},
		{"RELOAD JSON DRY VERBOSE", "", ""},
		{"STATUS web JSON", "", "usage: STATUS [NAME]"},
		{"INSPECT JSON", "", "usage: INSPECT NAME [N]"},
		{"RELOAD DRY JSON", "", "usage: RELOAD [DRY] [VERBOSE] [NOWAIT]"},
		{"PING JSON", "", "PING has no JSON answer: only STATUS, RELOAD, LOGS, HISTORY, EVENTS, SAMPLES, INSPECT and WHY have one"},
		{"START json", "", "START has no JSON answer: only STATUS, RELOAD, LOGS, HISTORY, EVENTS, SAMPLES, INSPECT and WHY have one; a job named JSON is written [J]SON"},
		{"SPAWN JSON -- true", "", "SPAWN has no JSON answer: only STATUS, RELOAD, LOGS, HISTORY, EVENTS, SAMPLES, INSPECT and WHY have one"},
	} {
		r, err := parseRequest(c.line)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.line, err)
		case c.err == "" && (!r.json || r.name != c.name):
			t.Errorf("%s: json %v, name %q; want true, %q", c.line, r.json, r.name, c.name)
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("%s: error %v, want %s", c.line, err, c.err)
		}
	}
	if r, err := parseRequest("STATUS web"); err != nil || r.json {
		t.Errorf("STATUS web: json %v, %v", r.json, err)
	}
}
