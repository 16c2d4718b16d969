package main

import (
	"strings"
	"testing"
	"time"

	"overseer/jobs"
)

func TestHumanize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{45 * time.Second, "45s"},
		{1234 * time.Millisecond, "1.234s"},
		{59*time.Second + 999*time.Millisecond, "59.999s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{12*time.Minute + 400*time.Millisecond, "12m"},
		{time.Hour, "1h"},
		{5*time.Hour + 12*time.Minute + 59*time.Second, "5h12m"},
		{24 * time.Hour, "1d"},
		{72 * time.Hour, "3d"},
		{76*time.Hour + 30*time.Minute, "3d4h"},
		{400*24*time.Hour + time.Hour, "400d1h"},
	} {
		if got := humanize(tc.in); got != tc.want {
			t.Errorf("humanize(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]string{"72h0m0s": "3d", "-": "-", "3m7.25s": "3m7s", "soon": "soon"} {
		if got := humanDuration(in); got != want {
			t.Errorf("humanDuration(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocalTime(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	for _, tc := range []struct{ in, layout, want string }{
		{"2026-11-29T20:03:32.564Z", localLayout, "2026-11-30 05:03:32.564"},
		{"2026-11-29T20:03:32.564Z", "2006-01-02 15:04:05", "2026-11-30 05:03:32"},
		{"-", localLayout, "-"},
		{"DROPPED", localLayout, "DROPPED"},
	} {
		if got := localTime(tc.in, tokyo, tc.layout); got != tc.want {
			t.Errorf("localTime(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var b strings.Builder
	s := localTimes(request{}, display{human: true, loc: tokyo}, &b)
	s.Line("2026-11-29T20:03:32.564Z out hello  world")
	s.Line("-- 3 lines dropped: this reader was too slow --")
	s.End()
	if want := "2026-11-30 05:03:32.564 out hello  world\n-- 3 lines dropped: this reader was too slow --\n"; b.String() != want {
		t.Errorf("localTimes wrote\n%q, want\n%q", b.String(), want)
	}
}

// TestStatusTable: the table a person sees for STATUS lines, aligned
// (colours do not count in the widths), humanised, the note kept whole.
func TestStatusTable(t *testing.T) {
	t.Parallel()
	lines := []string{
		"crasher failed - 15s 16 exit=2 gave up: ended within 1s of starting 5 times in a row",
		"devtunnel running 29578 72h0m0s 0 - ephemeral ttl=59m7s",
		"w stopped - 48s 0 signal=TERM held by STOP; START runs it again",
		"q backoff - 3s 1 exit=1",
	}
	render := func(color bool) string {
		var b strings.Builder
		s := statusTable(request{}, display{human: true, color: color}, &b)
		for _, l := range lines {
			s.Line(l)
		}
		s.End()
		return b.String()
	}
	plain := "" +
		"NAME       STATE    PID    UPTIME  RESTARTS  LAST         NOTE\n" +
		"crasher    failed   -      15s     16        exit=2       gave up: ended within 1s of starting 5 times in a row\n" +
		"devtunnel  running  29578  3d      0         -            ephemeral ttl=59m7s\n" +
		"w          stopped  -      48s     0         signal=TERM  held by STOP; START runs it again\n" +
		"q          backoff  -      3s      1         exit=1\n"
	if got := render(false); got != plain {
		t.Errorf("without colour:\n%s\nwant:\n%s", got, plain)
	}
	colored := strings.NewReplacer(
		"  failed ", "  \x1b[31mfailed\x1b[0m ",
		"  running ", "  \x1b[32mrunning\x1b[0m ",
		"  stopped ", "  \x1b[2mstopped\x1b[0m ",
		"  backoff ", "  \x1b[33mbackoff\x1b[0m ").Replace(plain)
	if got := render(true); got != colored {
		t.Errorf("with colour:\n%q\nwant:\n%q", got, colored)
	}
	var b strings.Builder
	s := statusTable(request{}, display{human: true}, &b)
	s.End()
	if b.String() != "no jobs\n" {
		t.Errorf("no jobs: got %q", b.String())
	}
	// STATUS NAME: one job in detail, or a file's instances as a table,
	// as its first line tells.
	b.Reset()
	s = statusTable(request{name: "web"}, display{human: true, loc: time.UTC}, &b)
	s.Line("name: web")
	s.Line("since: 2026-01-02T03:04:05.000Z 1s")
	s.End()
	if want := "name: web\nsince: 2026-01-02 03:04:05.000 1s\n"; b.String() != want {
		t.Errorf("STATUS NAME: want its lines as they are, with local times: got %q, want %q", b.String(), want)
	}
	b.Reset()
	s = statusTable(request{name: "web"}, display{human: true}, &b)
	s.Line("web.1 running 42 3s 0 -")
	s.End()
	if want := "NAME   STATE    PID  UPTIME  RESTARTS  LAST  NOTE\nweb.1  running  42   3s      0         -\n"; b.String() != want {
		t.Errorf("STATUS NAME of instances: want a table: got %q, want %q", b.String(), want)
	}
	if _, ok := statusTable(request{name: "web-*"}, display{human: true}, &b).(*statusSink); !ok {
		t.Errorf("STATUS GLOB: want a table")
	}
}

// TestJSONAnswer: with -json, an answer's lines go to stdout as they came
// (no table, no local times, even with -tty), and its OK line is never
// printed; a stream's still goes to stderr.
func TestJSONAnswer(t *testing.T) {
	t.Parallel()
	const line = `{"name":"web","state":"running","since":"2026-11-29T20:03:32.564Z"}` + "\n"
	for _, tc := range []struct {
		verb, ok string
		stream   bool
		note     string // on stderr
	}{
		{"STATUS", "OK 1 job\n", false, ""},
		{"RELOAD", "OK 1 started, 0 stopped\n", false, ""}, // text: the answer itself
		{"HISTORY", "OK 1 run\n", false, ""},
		{"LOGS", "OK following web\n", true, "overseer: following web\n"},
	} {
		d := newDisplay(options{tty: true}, true, nil)
		if d.human || d.color {
			t.Errorf("-json -tty: display %+v, want neither human nor colour", d)
		}
		var stdout, stderr strings.Builder
		p := newPrintAnswer(&stdout, &stderr, findVerb(tc.verb), request{verb: tc.verb}, d, tc.stream)
		p.ok(tc.ok)
		p.line(line)
		p.end()
		if stdout.String() != line || stderr.String() != tc.note {
			t.Errorf("%s -json: stdout %q, stderr %q; want %q, %q", tc.verb, stdout.String(), stderr.String(), line, tc.note)
		}
	}
}

// TestDetailTimes: STATUS NAME and INSPECT show their times, and only
// those, in local time, and samples' rss humanised.
func TestDetailTimes(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	var b strings.Builder
	s := detailTimes(request{}, display{human: true, loc: tokyo}, &b)
	for _, l := range []string{
		"state: running",
		"since: 2026-11-29T20:03:32.564Z",
		"command: testjob -at 2026-11-29T20:03:32.564Z",
		"run: 7 web 4242 2026-11-29T20:03:32.564Z - - running -",
		"run: 6 web 4241 2026-11-29T20:00:00.000Z 2026-11-29T20:03:32.000Z 3m32s exit=0 -",
		"sample: 2026-11-29T20:03:32.564Z cpu=0.0% rss=1 threads=1 files=3 procs=1 pid=4242",
		"sample: 2026-11-29T20:03:31.564Z cpu=12.5% rss=20971520 threads=9 files=14 procs=2 pid=4242",
	} {
		s.Line(l)
	}
	s.End()
	want := "state: running\n" +
		"since: 2026-11-30 05:03:32.564\n" +
		"command: testjob -at 2026-11-29T20:03:32.564Z\n" +
		"run: 7 web 4242 2026-11-30 05:03:32.564 - - running -\n" +
		"run: 6 web 4241 2026-11-30 05:00:00.000 2026-11-30 05:03:32.000 3m32s exit=0 -\n" +
		"sample: 2026-11-30 05:03:32.564 cpu=0.0% rss=1B threads=1 files=3 procs=1 pid=4242\n" +
		"sample: 2026-11-30 05:03:31.564 cpu=12.5% rss=20.0MiB threads=9 files=14 procs=2 pid=4242\n"
	if b.String() != want {
		t.Errorf("detailTimes wrote\n%s\nwant\n%s", b.String(), want)
	}
}

// TestStatusLine: STATUS's line, now appended into one buffer for every
// job, is the same text as before: NAME STATE PID FOR RESTARTS LAST [NOTE].
func TestStatusLine(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		st   jobs.Status
		want string
	}{
		{jobs.Status{Name: "web", State: jobs.Running, Pid: 42, Since: now.Add(-90 * time.Second), Restarts: 3, LastExit: &jobs.Exit{Code: 1}}, "web running 42 1m30s 3 exit=1"},
		{jobs.Status{Name: "idle", State: jobs.Stopped}, "idle stopped - - 0 -"},
		{jobs.Status{Name: "bad", State: jobs.Failed, Since: now.Add(-1400 * time.Millisecond), Reason: "gave up:\nline"}, `bad failed - 1s 0 - "gave up:\nline"`},
		{jobs.Status{Name: "eph", State: jobs.Running, Pid: 7, Since: now, Ephemeral: &jobs.Ephemeral{TiedTo: 9}, Reason: "why"}, "eph running 7 0s 0 - ephemeral tied=9; why"},
	} {
		if got := statusLine(c.st, now); got != c.want {
			t.Errorf("statusLine = %q, want %q", got, c.want)
		}
		if got := string(appendStatusLine([]byte("x\n"), c.st, now)); got != "x\n"+c.want {
			t.Errorf("appendStatusLine = %q", got)
		}
	}
}

// TestWhyTimes: WHY shows its since and its runs' starts in local time,
// and nothing else changed.
func TestWhyTimes(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	var b strings.Builder
	s := whyTimes(request{}, display{human: true, loc: tokyo}, &b)
	for _, l := range []string{
		"state: backoff: restart in 8s",
		"since: 2026-11-29T20:03:32.564Z",
		"run: 6 2026-11-29T20:03:32.554Z 10ms exit=3 -",
		"failed: run 6 exit=3",
		"tail: out 2026-11-29T20:03:32.564Z",
	} {
		s.Line(l)
	}
	s.End()
	want := "state: backoff: restart in 8s\n" +
		"since: 2026-11-30 05:03:32.564\n" +
		"run: 6 2026-11-30 05:03:32.554 10ms exit=3 -\n" +
		"failed: run 6 exit=3\n" +
		"tail: out 2026-11-29T20:03:32.564Z\n"
	if b.String() != want {
		t.Errorf("whyTimes wrote\n%s\nwant\n%s", b.String(), want)
	}
}
