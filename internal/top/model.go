// Package top is overseer top: a live, full-screen view of every job. Its
// Model is pure (bubbletea's Elm architecture): it is given rows (STATUS),
// state changes (EVENTS), resource samples (SAMPLES) and log lines (LOGS
// FOLLOW) as messages, and asks overseerd for what a key wants through a
// Daemon; run.go connects both to the socket. protocol.md is the contract.
package top

import (
	"cmp"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
)

// Job is one row: what STATUS says of a job, kept current by EVENTS and
// SAMPLES.
type Job struct {
	Name     string
	State    string
	Pid      int
	Since    time.Time // when it entered State
	Restarts int
	Last     string  // how its last process ended: "exit 3", "KILL", "unknown"; "" none
	CPU      float64 // percent of one CPU, from the last sample
	RSS      int64   // bytes, from the last sample
	Sampled  bool    // CPU and RSS hold a sample of its running process

	cpu, rss []float64 // the last samples, oldest first, for the sparklines
}

// Event is one state transition (an EVENTS JSON line).
type Event struct {
	At     time.Time
	Job    string
	Old    string // "" for a job that was not there
	New    string
	Pid    int
	Reason string
}

// Sample is one resource sample of a running job (a SAMPLES JSON line).
type Sample struct {
	Job string
	Pid int
	CPU float64
	RSS int64
}

// Messages the runner sends the model.
type (
	// StatusMsg is every job, from STATUS JSON: the first rows.
	StatusMsg []Job
	// EventsMsg is the state changes that came since the last one.
	EventsMsg []Event
	// SamplesMsg is a batch of samples.
	SamplesMsg []Sample
	// LogMsg is new lines of Job's log.
	LogMsg struct {
		Job   string
		Lines []string
	}
	// HistoryMsg is Job's runs (HISTORY), newest first, or why not.
	HistoryMsg struct {
		Job   string
		Lines []string
		Err   error
	}
	// AnswerMsg is what a request a key made was answered, or why not.
	AnswerMsg struct {
		Line string
		Err  error
	}
	// GoneMsg says overseerd went away: the view ends with Err.
	GoneMsg struct{ Err error }
)

type (
	tickMsg   time.Time // time to show uptimes anew
	followMsg int       // the selection that was current when it was sent
)

// Daemon is what the model asks of overseerd. Its methods may block: the
// model calls them in commands, off the update loop.
type Daemon interface {
	// Request sends one request line and returns its answer's OK line
	// (without "OK "), or its ERR as an error.
	Request(line string) (string, error)
	// History returns the job's full HISTORY.
	History(job string) ([]string, error)
	// Follow makes the log pane follow job: its last lines, then new
	// ones, come as LogMsg. It returns at once.
	Follow(job string)
}

// Sort orders, in the order the s key cycles through them.
var sorts = []string{"name", "state", "cpu", "rss", "uptime", "restarts"}

// signals are those the signal key offers, by digit.
var signals = []string{"HUP", "INT", "TERM", "KILL", "USR1", "USR2", "QUIT"}

const (
	keepSamples = 90                     // 3 minutes at SAMPLES's 2 s
	keepLog     = 500                    // lines of the log pane
	followDelay = 250 * time.Millisecond // a selection held this long is followed
)

// Model is the view's state. Build it with New.
type Model struct {
	d   Daemon
	now func() time.Time
	st  styles

	w, h   int
	jobs   map[string]*Job
	rows   []*Job // the jobs shown, filtered and sorted: rebuilt when dirty
	dirty  bool
	sortBy int
	filter string
	typing bool   // the filter is being typed
	sel    string // the selected job
	top    int    // index in rows of the first row on screen
	gen    int    // counts selection changes, for followMsg

	logJob string   // the job whose log the pane shows
	log    []string // its last lines

	hist     []string // the history pane's lines; nil: closed
	histJob  string
	histTop  int
	confirm  string // the job a stop awaits y/n for
	signalOf string // the job a signal is being chosen for
	note     string // the last answer, said in the footer
	err      error  // why the view ended, when overseerd went away
}

// New returns the model of a view that asks d, says the time with now,
// and colours states when color is set.
func New(d Daemon, color bool, now func() time.Time) *Model {
	return &Model{d: d, now: now, st: newStyles(color), jobs: make(map[string]*Job), w: 80, h: 24}
}

// Err says why the view ended, if overseerd went away.
func (m *Model) Err() error { return m.err }

// Init starts the clock that refreshes uptimes, once a second, and
// follows the log of the job selected before the program ran (Run's
// first STATUS, whose follow no program was there to run).
func (m *Model) Init() tea.Cmd {
	if m.sel == "" || m.sel == m.logJob {
		return tick()
	}
	gen := m.gen
	return tea.Batch(tick(), func() tea.Msg { return followMsg(gen) })
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Update applies one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tickMsg:
		return m, tick()
	case StatusMsg:
		for _, j := range msg {
			if old := m.jobs[j.Name]; old != nil {
				j.cpu, j.rss, j.CPU, j.RSS, j.Sampled = old.cpu, old.rss, old.CPU, old.RSS, old.Sampled
			}
			m.jobs[j.Name] = &j
		}
		m.dirty = true
		return m, m.reselect()
	case EventsMsg:
		for _, e := range msg {
			m.apply(e)
		}
		m.dirty = true
		return m, m.reselect()
	case SamplesMsg:
		for _, s := range msg {
			j := m.jobs[s.Job]
			if j == nil || j.Pid != s.Pid {
				continue
			}
			j.CPU, j.RSS, j.Sampled = s.CPU, s.RSS, true
			j.cpu = keep(append(j.cpu, s.CPU), keepSamples)
			j.rss = keep(append(j.rss, float64(s.RSS)), keepSamples)
		}
		m.dirty = m.dirty || sorts[m.sortBy] == "cpu" || sorts[m.sortBy] == "rss"
	case LogMsg:
		if msg.Job == m.logJob {
			m.log = keep(append(m.log, msg.Lines...), keepLog)
		}
	case HistoryMsg:
		switch {
		case msg.Err != nil:
			m.note = "history: " + msg.Err.Error()
		case msg.Job == m.histJob:
			m.hist, m.histTop = msg.Lines, 0
			if m.hist == nil {
				m.hist = []string{}
			}
		}
	case AnswerMsg:
		m.note = msg.Line
		if msg.Err != nil {
			m.note = msg.Err.Error()
		}
	case followMsg:
		if int(msg) == m.gen && m.sel != m.logJob {
			m.logJob, m.log = m.sel, nil
			if m.sel != "" {
				job := m.sel
				return m, func() tea.Msg { m.d.Follow(job); return nil }
			}
		}
	case GoneMsg:
		m.err = msg.Err
		return m, tea.Quit
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// keep returns the last n of s.
func keep[T any](s []T, n int) []T {
	if len(s) > n {
		return slices.Clone(s[len(s)-n:])
	}
	return s
}

// apply changes the rows as the event says.
func (m *Model) apply(e Event) {
	if e.New == "removed" {
		delete(m.jobs, e.Job)
		return
	}
	j := m.jobs[e.Job]
	if j == nil {
		j = &Job{Name: e.Job}
		m.jobs[e.Job] = j
	}
	if e.Old == "backoff" && e.New != "stopped" && e.New != "stopping" {
		j.Restarts++
	}
	if j.Pid != e.Pid {
		j.Sampled, j.CPU, j.RSS, j.cpu, j.rss = false, 0, 0, nil, nil
	}
	j.State, j.Pid, j.Since = e.New, e.Pid, e.At
	switch {
	case strings.HasPrefix(e.Reason, "exited "):
		j.Last = "exit " + strings.TrimPrefix(e.Reason, "exited ")
	case strings.HasPrefix(e.Reason, "killed by "):
		j.Last = strings.TrimPrefix(e.Reason, "killed by ")
	}
}

// key does what a key says.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	switch {
	case k.String() == "ctrl+c":
		return tea.Quit
	case m.typing:
		switch k.Code {
		case tea.KeyEnter:
			m.typing = false
		case tea.KeyEscape:
			m.typing, m.filter = false, ""
		case tea.KeyBackspace:
			if r := []rune(m.filter); len(r) > 0 {
				m.filter = string(r[:len(r)-1])
			}
		default:
			m.filter += clean(k.Text)
		}
		m.dirty = true
		return m.reselect()
	case m.confirm != "":
		job := m.confirm
		m.confirm = ""
		if k.String() == "y" || k.String() == "Y" {
			m.note = "stopping " + job + "..."
			return m.request("STOP " + job)
		}
		m.note = "not stopped: " + job
		return nil
	case m.signalOf != "":
		job := m.signalOf
		m.signalOf = ""
		if s := k.String(); len(s) == 1 && s[0] >= '1' && int(s[0]-'1') < len(signals) {
			return m.request("SIGNAL " + job + " " + signals[s[0]-'1'])
		}
		m.note = "no signal sent"
		return nil
	case m.hist != nil:
		switch k.String() {
		case "q":
			return tea.Quit
		case "esc", "h":
			m.hist, m.histJob = nil, ""
		case "up":
			m.histTop = max(0, m.histTop-1)
		case "down":
			m.histTop = min(max(0, len(m.hist)-1), m.histTop+1)
		case "pgup":
			m.histTop = max(0, m.histTop-m.body())
		case "pgdown":
			m.histTop = min(max(0, len(m.hist)-1), m.histTop+m.body())
		}
		return nil
	}
	switch k.String() {
	case "q":
		return tea.Quit
	case "up":
		return m.move(-1)
	case "down":
		return m.move(1)
	case "pgup":
		return m.move(-m.tableRows())
	case "pgdown":
		return m.move(m.tableRows())
	case "home":
		return m.move(-len(m.jobs))
	case "end":
		return m.move(len(m.jobs))
	case "/":
		m.typing = true
	case "esc":
		m.filter, m.dirty = "", true
		return m.reselect()
	case "s":
		m.sortBy = (m.sortBy + 1) % len(sorts)
		m.dirty = true
		return m.reselect()
	case "u":
		if m.sel != "" {
			return m.request("START " + m.sel + " NOWAIT")
		}
	case "r":
		if m.sel != "" {
			return m.request("RESTART " + m.sel + " NOWAIT")
		}
	case "x":
		m.confirm = m.sel
	case "k":
		m.signalOf = m.sel
	case "h":
		if job := m.sel; job != "" {
			m.histJob = job
			return func() tea.Msg {
				lines, err := m.d.History(job)
				return HistoryMsg{Job: job, Lines: lines, Err: err}
			}
		}
	}
	return nil
}

// request sends line to overseerd, off the update loop.
func (m *Model) request(line string) tea.Cmd {
	return func() tea.Msg {
		answer, err := m.d.Request(line)
		return AnswerMsg{Line: answer, Err: err}
	}
}

// move moves the selection by n rows.
func (m *Model) move(n int) tea.Cmd {
	m.rebuild()
	if len(m.rows) == 0 {
		return nil
	}
	i := min(max(0, m.index()+n), len(m.rows)-1)
	return m.choose(m.rows[i].Name)
}

// index returns the selected row's index in rows (0 if not shown).
func (m *Model) index() int {
	return max(0, slices.IndexFunc(m.rows, func(j *Job) bool { return j.Name == m.sel }))
}

// choose selects job; its log is followed once it stayed selected for
// followDelay, so that scrolling through rows opens no connection each.
func (m *Model) choose(job string) tea.Cmd {
	if job == m.sel {
		return nil
	}
	m.sel = job
	m.gen++
	gen := m.gen
	return tea.Tick(followDelay, func(time.Time) tea.Msg { return followMsg(gen) })
}

// reselect keeps a shown job selected: the first one if the selected job
// is no longer shown.
func (m *Model) reselect() tea.Cmd {
	m.rebuild()
	if len(m.rows) == 0 || slices.ContainsFunc(m.rows, func(j *Job) bool { return j.Name == m.sel }) {
		return nil
	}
	return m.choose(m.rows[0].Name)
}

// rebuild filters and sorts the rows, if anything changed since.
func (m *Model) rebuild() {
	if !m.dirty {
		return
	}
	m.dirty = false
	m.rows = m.rows[:0]
	f := strings.ToLower(m.filter)
	for _, j := range m.jobs {
		if f == "" || strings.Contains(strings.ToLower(j.Name), f) || strings.Contains(j.State, f) {
			m.rows = append(m.rows, j)
		}
	}
	now := m.now()
	by := sorts[m.sortBy]
	slices.SortFunc(m.rows, func(a, b *Job) int {
		c := 0
		switch by {
		case "state":
			c = strings.Compare(a.State, b.State)
		case "cpu":
			c = cmp.Compare(b.CPU, a.CPU)
		case "rss":
			c = cmp.Compare(b.RSS, a.RSS)
		case "uptime":
			c = cmp.Compare(uptime(b, now), uptime(a, now))
		case "restarts":
			c = cmp.Compare(b.Restarts, a.Restarts)
		}
		if c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// uptime is how long j's process has been up; 0 when none runs.
func uptime(j *Job, now time.Time) time.Duration {
	if j.Pid == 0 || j.Since.IsZero() {
		return 0
	}
	return max(0, now.Sub(j.Since))
}

// The screen, top to bottom: a title, the table's head, its rows, the
// selected job's sparklines (2 lines), its pane's title and log, and a
// footer of keys or of the question asked.
const fixedLines = 6

// body is how many lines the rows, sparklines and log share.
func (m *Model) body() int { return max(1, m.h-fixedLines+2) }

// logLines is how many lines of log the pane shows.
func (m *Model) logLines() int {
	r := m.h - fixedLines
	if r < 8 {
		return 0
	}
	return r / 3
}

// tableRows is how many rows fit.
func (m *Model) tableRows() int {
	if m.logLines() == 0 {
		return max(1, m.h-3)
	}
	return max(1, m.h-fixedLines-m.logLines())
}
