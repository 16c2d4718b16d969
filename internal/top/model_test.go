package top

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// now is the tests' clock: uptimes do not move.
var now = time.Date(2026, 11, 29, 21, 12, 46, 0, time.UTC)

func clock() time.Time { return now }

// fakeDaemon stands for overseerd's answers: it records the requests a
// key sends, and gives each followed job its log lines.
type fakeDaemon struct {
	mu       sync.Mutex
	requests []string
	send     func(tea.Msg) // the test program's, for Follow
	history  []string
}

func (f *fakeDaemon) Request(line string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, line)
	verb, name, _ := strings.Cut(line, " ")
	switch verb {
	case "STOP":
		return "stopped " + name + "; it stays stopped until START", nil
	}
	return strings.ToLower(verb) + " " + name, nil
}

func (f *fakeDaemon) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeDaemon) History(job string) ([]string, error) { return f.history, nil }

func (f *fakeDaemon) Follow(job string) {
	if f.send != nil {
		f.send(LogMsg{Job: job, Lines: logOf(job)})
	}
}

// logOf is a job's log as LOGS FOLLOW would send it first.
func logOf(job string) []string {
	var lines []string
	for i := range 8 {
		lines = append(lines, fmt.Sprintf("%s: GET /health 200 %dms", job, 3+i%4))
	}
	return append(lines, job+": listening on :8080")
}

// jobs are a few real-looking jobs, as STATUS JSON gives them.
func jobs() StatusMsg {
	return StatusMsg{
		{Name: "api", State: "running", Pid: 4242, Since: now.Add(-3*time.Hour - 12*time.Minute), Restarts: 0, Last: "exit 0"},
		{Name: "worker", State: "running", Pid: 4250, Since: now.Add(-47 * time.Minute), Restarts: 2, Last: "exit 1"},
		{Name: "db", State: "running", Pid: 4101, Since: now.Add(-26 * time.Hour), Restarts: 0},
		{Name: "mailer", State: "backoff", Since: now.Add(-4 * time.Second), Restarts: 5, Last: "exit 3"},
		{Name: "cron-nightly", State: "exited", Since: now.Add(-9 * time.Hour), Last: "exit 0"},
		{Name: "cache", State: "stopped", Since: now.Add(-2 * time.Hour), Last: "TERM"},
		{Name: "search", State: "failed", Since: now.Add(-15 * time.Minute), Restarts: 10, Last: "KILL"},
	}
}

// samples are a minute of SAMPLES batches for the running jobs.
func samples() []SamplesMsg {
	var out []SamplesMsg
	for i := range 30 {
		out = append(out, SamplesMsg{
			{Job: "api", Pid: 4242, CPU: float64(10 + (i*7)%30), RSS: int64(48+i%5) << 20},
			{Job: "worker", Pid: 4250, CPU: float64(60 + (i*13)%40), RSS: int64(200+i*3) << 20},
			{Job: "db", Pid: 4101, CPU: 1.5, RSS: 612 << 20},
		})
	}
	return out
}

// model returns a model of w x h with the jobs and samples, the first
// row selected and its log shown, as a user sees it after a moment.
func model(t *testing.T, w, h int) (*Model, *fakeDaemon) {
	t.Helper()
	f := &fakeDaemon{}
	m := New(f, false, clock)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(jobs())
	for _, s := range samples() {
		m.Update(s)
	}
	m.Update(followMsg(m.gen))
	m.Update(LogMsg{Job: m.sel, Lines: logOf(m.sel)})
	return m, f
}

// key sends a key the way bubbletea reads it from the terminal.
func key(m *Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "up", "down", "enter", "esc", "pgdown", "pgup", "end", "home":
			msg = tea.KeyPressMsg{Code: map[string]rune{"up": tea.KeyUp, "down": tea.KeyDown, "enter": tea.KeyEnter, "esc": tea.KeyEscape, "pgdown": tea.KeyPgDown, "pgup": tea.KeyPgUp, "end": tea.KeyEnd, "home": tea.KeyHome}[k]}
		default:
			msg = tea.KeyPressMsg{Code: []rune(k)[0], Text: k}
		}
		_, cmd = m.Update(msg)
	}
	return cmd
}

// checkScreen checks that a view fills exactly the window, no wider.
func checkScreen(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Fatalf("%d lines for a window of %d:\n%s", len(lines), h, view)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Fatalf("line %d is %d wide in a window of %d: %q", i+1, n, w, l)
		}
	}
}

// TestTable: the view at 80x24, driven through bubbletea by teatest:
// the rows by name, the selected job's sparklines and log.
func TestTable(t *testing.T) {
	f := &fakeDaemon{}
	tm := teatest.NewTestModel(t, New(f, false, clock), teatest.WithInitialTermSize(80, 24))
	f.send = tm.Send
	tm.Send(jobs())
	for _, s := range samples() {
		tm.Send(s)
	}
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "api: listening on :8080") },
		teatest.WithDuration(10*time.Second))
	tm.Type("q")
	m := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
	view := m.Screen()
	checkScreen(t, view, 80, 24)
	golden.RequireEqual(t, []byte(view))
}

// TestSort: s cycles the sort column; the third is CPU, highest first,
// and the selection stays on its job.
func TestSort(t *testing.T) {
	m, _ := model(t, 80, 24)
	key(m, "s", "s")
	view := m.Screen()
	if !strings.Contains(view, "sort: cpu") {
		t.Fatalf("no sort by cpu after s s:\n%s", view)
	}
	checkScreen(t, view, 80, 24)
	golden.RequireEqual(t, []byte(view))
}

// TestFilter: / then text shows the jobs whose name (or state) holds it;
// enter keeps the filter, esc clears it.
func TestFilter(t *testing.T) {
	m, _ := model(t, 80, 24)
	key(m, "/", "e", "r")
	checkScreen(t, m.Screen(), 80, 24)
	golden.RequireEqual(t, []byte(m.Screen()))
	key(m, "enter")
	if view := m.Screen(); !strings.Contains(view, "filter: er (2 shown)") || strings.Contains(view, " db ") {
		t.Fatalf("enter did not keep the filter:\n%s", view)
	}
	key(m, "esc")
	if view := m.Screen(); strings.Contains(view, "filter:") || !strings.Contains(view, " db ") {
		t.Fatalf("esc did not clear the filter:\n%s", view)
	}
}

// TestEvent: state changes arrive as EVENTS: worker killed and back in
// backoff, cache started, a new job, a removed one.
func TestEvent(t *testing.T) {
	m, _ := model(t, 80, 24)
	m.Update(EventsMsg{
		{At: now, Job: "worker", Old: "running", New: "backoff", Reason: "killed by KILL"},
		{At: now.Add(-5 * time.Second), Job: "cache", Old: "stopped", New: "starting", Pid: 5001, Reason: "started"},
		{At: now.Add(-5 * time.Second), Job: "cache", Old: "starting", New: "running", Pid: 5001, Reason: "ready"},
		{At: now, Job: "cron-nightly", Old: "exited", New: "removed", Reason: "file removed"},
		{At: now.Add(-time.Second), Job: "new-job", New: "running", Pid: 5010, Reason: "started"},
	})
	view := m.Screen()
	checkScreen(t, view, 80, 24)
	golden.RequireEqual(t, []byte(view))
}

// TestStopConfirm: x asks, n sends nothing; x then y sends STOP, and only
// then. Through bubbletea, by teatest.
func TestStopConfirm(t *testing.T) {
	f := &fakeDaemon{}
	tm := teatest.NewTestModel(t, New(f, false, clock), teatest.WithInitialTermSize(80, 24))
	f.send = tm.Send
	tm.Send(jobs())
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "api: listening on :8080") },
		teatest.WithDuration(10*time.Second))
	tm.Type("x")
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "? y/n") },
		teatest.WithDuration(10*time.Second))
	tm.Type("n")
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "not stopped: api") },
		teatest.WithDuration(10*time.Second))
	if got := f.sent(); len(got) != 0 {
		t.Fatalf("sent %q before a y", got)
	}
	tm.Type("x")
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "? y/n") },
		teatest.WithDuration(10*time.Second))
	if got := f.sent(); len(got) != 0 {
		t.Fatalf("sent %q before a y", got)
	}
	tm.Type("y")
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "it stays stopped until START") },
		teatest.WithDuration(10*time.Second))
	tm.Type("q")
	m := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
	if got := f.sent(); len(got) != 1 || got[0] != "STOP api" {
		t.Fatalf("sent %q, want one STOP api", got)
	}
	golden.RequireEqual(t, []byte(m.Screen()))
}

// TestKeys: start, restart and signal send their requests for the
// selected job.
func TestKeys(t *testing.T) {
	m, f := model(t, 80, 24)
	key(m, "down", "down", "down") // db
	for _, k := range [][]string{{"u"}, {"r"}, {"k", "4"}, {"k", "z"}} {
		if cmd := key(m, k...); cmd != nil {
			m.Update(cmd())
		}
	}
	want := []string{"START db NOWAIT", "RESTART db NOWAIT", "SIGNAL db KILL"}
	if got := f.sent(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q, want %q", got, want)
	}
	if view := m.Screen(); !strings.Contains(view, "no signal sent") {
		t.Fatalf("a key that is no signal's did not cancel:\n%s", view)
	}
}

// TestHistory: h shows the job's full history in a pane; esc closes it.
func TestHistory(t *testing.T) {
	m, f := model(t, 80, 24)
	for i := range 40 {
		f.history = append(f.history, fmt.Sprintf("%d api %d 2026-11-29T18:%02d:00Z 2026-11-29T18:%02d:30Z 30s exit-0 -", 100-i, 4000+i, 59-i, 59-i))
	}
	m.Update(key(m, "h")())
	view := m.Screen()
	checkScreen(t, view, 80, 24)
	golden.RequireEqual(t, []byte(view))
	key(m, "esc")
	if strings.Contains(m.Screen(), "history of") {
		t.Fatal("esc did not close the history")
	}
}

// TestManyRows: 5000 jobs: the view is the window's size whatever the
// count, and follows the selection to the end and back.
func TestManyRows(t *testing.T) {
	f := &fakeDaemon{}
	m := New(f, false, clock)
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	var all StatusMsg
	for i := range 5000 {
		all = append(all, Job{Name: fmt.Sprintf("job-%04d", i), State: "running", Pid: 10000 + i, Since: now.Add(-time.Minute)})
	}
	m.Update(all)
	checkScreen(t, m.Screen(), 80, 24)
	key(m, "end")
	view := m.Screen()
	checkScreen(t, view, 80, 24)
	if !strings.Contains(view, "> job-4999 ") || strings.Contains(view, "job-0000") {
		t.Fatalf("end does not show the last row selected:\n%s", view)
	}
	key(m, "pgup")
	if view := m.Screen(); !strings.Contains(view, "> job-4987 ") || !strings.Contains(view, "job-4998") {
		t.Fatalf("pgup does not move a page up:\n%s", view)
	}
	key(m, "home")
	if view := m.Screen(); !strings.Contains(view, "> job-0000 ") {
		t.Fatalf("home does not come back to the first row:\n%s", view)
	}
	// A burst of events for every job is one message.
	var burst EventsMsg
	for i := range 5000 {
		burst = append(burst, Event{At: now, Job: fmt.Sprintf("job-%04d", i), Old: "running", New: "backoff", Reason: "exited 1"})
	}
	m.Update(burst)
	checkScreen(t, m.Screen(), 80, 24)
}

// TestResize: the view follows the window, small or large.
func TestResize(t *testing.T) {
	m, _ := model(t, 80, 24)
	for _, size := range [][2]int{{120, 40}, {40, 10}, {80, 24}, {20, 5}} {
		m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		checkScreen(t, m.Screen(), size[0], size[1])
	}
}

// TestColor: states are coloured only when colour is on.
func TestColor(t *testing.T) {
	m, _ := model(t, 80, 24)
	if strings.Contains(m.Screen(), "\x1b[") {
		t.Fatal("escape sequences without colour")
	}
	c := New(&fakeDaemon{}, true, clock)
	c.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	c.Update(jobs())
	if !strings.Contains(c.Screen(), "\x1b[") {
		t.Fatal("no colour with colour on")
	}
	checkScreen(t, c.Screen(), 80, 24)
}

// TestFirstLog: the log pane follows the job selected by the first
// STATUS, which Run applies before the program starts, without a key.
func TestFirstLog(t *testing.T) {
	f := &fakeDaemon{}
	m := New(f, false, clock)
	m.Update(jobs()) // as Run does, before bubbletea runs the model
	// The program may follow before NewTestModel returns: its Send is
	// handed over once there is one, as Run sets it before the program runs.
	var tm *teatest.TestModel
	started := make(chan struct{})
	f.send = func(msg tea.Msg) { <-started; tm.Send(msg) }
	tm = teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	close(started)
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "api: listening on :8080") },
		teatest.WithDuration(5*time.Second))
	tm.Type("q")
	tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second))
}
