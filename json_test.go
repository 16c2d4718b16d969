package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestJSONAnswers asks a daemon with jobs in several states for every
// JSON answer: each has the OK line its text answer has, then lines that
// are each one compact JSON document (encoding/json parses it), and the
// JSON says what the text says.
func TestJSONAnswers(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, map[string]string{
		"web.env":    "COMMAND=sh -c 'printf \"up\\\\033[0m\\\\r\\\\n\"; exec sleep 1000'\nMETRICS_INTERVAL=1s\nTOKEN=secret-value\n",
		"done.env":   "COMMAND=sh -c 'echo bye; exit 3'\nRESTART=never\n",
		"held.env":   "COMMAND=sleep 1000\n",
		"nocmd.env":  "TEST=true\n",
		"absent.env": "COMMAND=/nonexistent/program\nRESTART=never\n",
		"typo.env":   "COMMAND=sleep 1000\nRESTRAT=never\n",
	})
	d.waitFor(t, "jobs settled", func() bool {
		st := d.status(t)
		return st["web"] != nil && st["web"][1] == "running" && st["done"] != nil && st["done"][1] == "exited" &&
			st["held"] != nil && st["held"][1] == "running" && st["absent"] != nil && st["absent"][1] == "failed"
	})
	d.waitFor(t, "web's line in its log", func() bool {
		return strings.HasPrefix(answer(t, d, "LOGS web"), "OK 1 line\n")
	})
	if out, err := sendLine(d.socket, "STOP held\n"); err != nil || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("STOP held: %q %v", out, err)
	}
	if out, err := sendLine(d.socket, "SPAWN eph 1h -- sleep 1000\n"); err != nil || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("SPAWN: %q %v", out, err)
	}

	// Each request, and the text request whose OK line it must share.
	for _, req := range []string{
		"STATUS", "STATUS web", "STATUS held", "STATUS eph", "STATUS nocmd", "STATUS *o*",
		"HISTORY", "HISTORY done 1", "HISTORY nope",
		"INSPECT web", "INSPECT absent 0", "INSPECT eph",
		"LOGS web", "LOGS * 10", "LOGS done 0", "LOGS web stderr",
		"RELOAD DRY VERBOSE", "RELOAD VERBOSE", "RELOAD",
	} {
		verb, rest, _ := strings.Cut(req, " ")
		text := answer(t, d, req)
		js := answer(t, d, strings.TrimSpace(verb+" JSON "+rest))
		if firstLine(js) != firstLine(text) && !strings.HasPrefix(verb, "RELOAD") {
			t.Errorf("%s: JSON's OK line %q, the text's %q", req, firstLine(js), firstLine(text))
		}
		if strings.HasPrefix(text, "ERR ") && js == text {
			continue // the same error, and no JSON
		}
		if !strings.HasPrefix(js, "OK ") {
			t.Errorf("%s JSON: %q", req, js)
			continue
		}
		docs := jsonLines(t, req, js)
		if strings.Contains(js, "secret-value") {
			t.Errorf("%s JSON shows a value of the environment: %s", req, js)
		}
		if verb == "LOGS" && len(docs) != strings.Count(text, "\n")-1 {
			t.Errorf("%s: %d JSON lines for %d text lines", req, len(docs), strings.Count(text, "\n")-1)
		}
	}

	// The STATUS fields agree, job by job.
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(jsonLines(t, "STATUS", answer(t, d, "STATUS JSON"))[0]), &jobs); err != nil {
		t.Fatal(err)
	}
	text := d.status(t)
	if len(jobs) != len(text) {
		t.Fatalf("%d jobs in JSON, %d in text", len(jobs), len(text))
	}
	for _, j := range jobs {
		f := text[j["name"].(string)]
		pid := "-"
		if p, ok := j["pid"].(float64); ok {
			pid = strconv.Itoa(int(p))
		}
		last := "-"
		if e, ok := j["last_exit"].(map[string]any); ok && e["signal"] != nil {
			last = "signal=" + e["signal"].(string)
		} else if ok {
			last = fmt.Sprintf("exit=%v", e["exit_code"])
		}
		if got := []string{j["state"].(string), pid, fmt.Sprint(j["restarts"]), last}; f == nil ||
			strings.Join(got, " ") != strings.Join([]string{f[1], f[2], f[4], f[5]}, " ") {
			t.Errorf("%s: JSON says %v, text %v", j["name"], got, f)
		}
	}

	// A line of a job's log with control characters stays one line.
	logs := jsonLines(t, "LOGS web", answer(t, d, "LOGS JSON web"))
	var line struct{ Job, Text string }
	if err := json.Unmarshal([]byte(logs[0]), &line); err != nil || line.Job != "web" || line.Text != "up\x1b[0m\r" {
		t.Errorf("LOGS JSON web: %s: %+v %v", logs[0], line, err)
	}
}

// answer sends req and returns the answer.
func answer(t *testing.T, d *testDaemon, req string) string {
	t.Helper()
	out, err := sendLine(d.socket, req+"\n")
	if err != nil {
		t.Fatalf("%s: %v", req, err)
	}
	return out
}

// firstLine returns s's first line.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// jsonLines returns the lines after answer's OK line, failing unless each
// is one compact JSON document and the answer ends with a newline.
func jsonLines(t *testing.T, req, answer string) []string {
	t.Helper()
	if !strings.HasSuffix(answer, "\n") {
		t.Fatalf("%s JSON: no newline at the end: %q", req, answer)
	}
	lines := strings.Split(strings.TrimSuffix(answer, "\n"), "\n")[1:]
	for _, line := range lines {
		var v any
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Errorf("%s JSON: not one JSON document (%v): %s", req, err, line)
			continue
		}
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(line)); compact.String() != line {
			t.Errorf("%s JSON: not compact: %s", req, line)
		}
	}
	return lines
}
