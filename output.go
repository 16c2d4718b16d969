package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"overseer/jobs"
)

// display says for whom the client prints: a person at a terminal gets
// tables, local times, humanised durations and colour; a program reading
// a pipe gets the protocol's lines (protocol.md) without the OK line, so
// that awk and grep keep working. README.md (Output) documents it.
type display struct {
	human bool           // a person reads stdout
	color bool           // and states are coloured
	loc   *time.Location // for the times a person reads
	// json: the answer's lines are JSON (-json), for a program wherever
	// stdout goes: printed as they come, without the OK line.
	json bool
}

// newDisplay decides how to print to stdout: JSON lines when json (-json)
// asks for them; else for a person when stdout is a terminal or -tty
// (OVERSEER_TTY=1) says so; coloured then, unless -no-color, NO_COLOR
// (https://no-color.org) or TERM=dumb says not to.
func newDisplay(opts options, json bool, stdout io.Writer) display {
	human := opts.tty
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		human = true
	}
	human = human && !json
	return display{
		human: human,
		color: human && !opts.noColor && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb",
		loc:   time.Local,
		json:  json,
	}
}

// lineSink writes the lines of an answer for a person.
type lineSink interface {
	Line(line string) // one line, without its newline
	End()             // after the last line
}

// printAnswer prints an answer line by line as v's table entry and d say:
// the OK line shown without "OK " when it is the answer (started web);
// when it is a header, dropped (OK 7 jobs), or for a stream, which may
// wait long for its first line, said on stderr (overseer: following web).
// The other lines go through v.human for a person, else as they come.
// JSON lines (d.json) always come as they are, and their OK line is a
// header, whatever the verb. An answer for a glob (OK 3 jobs, then a line
// per job) is a header and its lines: an ERR line among them goes to
// stderr, as the error of a request for that job alone would.
type printAnswer struct {
	w, note io.Writer // stdout; stderr, for a stream's header
	errw    io.Writer // stderr, for a glob's ERR lines; nil: as they come
	header  bool
	sink    lineSink // nil: lines as they come
}

func newPrintAnswer(stdout, stderr io.Writer, v *verb, r request, d display, stream bool) *printAnswer {
	glob := v.globs && jobs.IsGlob(r.name)
	p := &printAnswer{w: stdout, header: v.header || d.json || glob}
	if glob && !d.json {
		p.errw = stderr
	}
	if stream {
		p.note = stderr
	}
	if d.human && v.human != nil {
		p.sink = v.human(r, d, stdout)
	}
	return p
}

// ok prints the answer's first line, an OK line.
func (p *printAnswer) ok(line string) {
	rest, isOK := strings.CutPrefix(line, "OK ")
	switch {
	case !isOK && line != "OK\n":
		io.WriteString(p.w, line) // not the protocol we know: as it came
	case !isOK:
	case !p.header:
		io.WriteString(p.w, rest)
	case p.note != nil:
		p.flush()
		io.WriteString(p.note, "overseer: "+rest)
	}
}

// line prints one line after the OK line, as read (with its newline, but
// the last may have none).
func (p *printAnswer) line(line string) {
	switch {
	case line == "":
	case p.errw != nil && strings.HasPrefix(line, "ERR "):
		p.flush()
		io.WriteString(p.errw, "overseer: "+strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "ERR ")+"\n")
	case p.sink == nil:
		io.WriteString(p.w, line)
	default:
		p.sink.Line(strings.TrimSuffix(line, "\n"))
	}
}

// flush writes out what p.w holds (a buffer in the client) before
// something goes to stderr, so that the two keep their order.
func (p *printAnswer) flush() {
	if f, ok := p.w.(interface{ Flush() error }); ok {
		f.Flush()
	}
}

// end finishes the answer: a table is written once it is whole.
func (p *printAnswer) end() {
	if p.sink != nil {
		p.sink.End()
	}
}

// Colours of states (ANSI SGR).
const (
	colorReset  = "\x1b[0m"
	colorGreen  = "\x1b[32m"
	colorRed    = "\x1b[31m"
	colorYellow = "\x1b[33m"
	colorDim    = "\x1b[2m"
)

// stateColor returns the colour of a job state: running green, failed
// red, on its way yellow, at rest dim.
func stateColor(state string) string {
	switch state {
	case "running":
		return colorGreen
	case "failed":
		return colorRed
	case "starting", "backoff", "stopping", "waiting":
		return colorYellow
	case "stopped", "exited", "skipped":
		return colorDim
	}
	return ""
}

// table collects rows and writes them aligned under a header: columns
// apart by two spaces, the last (free text) left as it is.
type table struct {
	w        io.Writer
	d        display
	header   []string
	rows     [][]string
	colorCol int    // the column coloured by stateColor; -1: none
	empty    string // said instead of a header with no rows
}

// add adds a row from the first n-1 whitespace-separated fields of line
// and the rest of it, converted by conv (nil: as they are).
func (t *table) add(line string, conv func(row []string)) {
	row := cutFields(line, len(t.header))
	if conv != nil {
		conv(row)
	}
	t.rows = append(t.rows, row)
}

func (t *table) End() {
	if len(t.rows) == 0 && t.empty != "" {
		fmt.Fprintln(t.w, t.empty)
		return
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, cell := range row {
			cell = strings.ReplaceAll(cell, "\t", " ")
			if i < len(row)-1 {
				cell += "\t"
			}
			io.WriteString(tw, cell)
		}
		io.WriteString(tw, "\n")
	}
	tw.Flush()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, line := range lines {
		line = strings.TrimRight(line, " ")
		if i > 0 && t.d.color && t.colorCol >= 0 {
			line = colorCell(line, t.rows[i-1], t.colorCol)
		}
		fmt.Fprintln(t.w, line)
	}
}

// colorCell colours cell col of an aligned line made of row: colour after
// alignment, since escapes would count in a column's width.
func colorCell(line string, row []string, col int) string {
	c := stateColor(row[col])
	if c == "" {
		return line
	}
	at := 0
	for i := 0; i < col; i++ {
		at += len(row[i])
		at += len(line[at:]) - len(strings.TrimLeft(line[at:], " "))
	}
	if !strings.HasPrefix(line[at:], row[col]) {
		return line
	}
	end := at + len(row[col])
	return line[:at] + c + line[at:end] + colorReset + line[end:]
}

// cutFields splits line into n cells: n-1 whitespace-separated fields and
// the rest of the line (the free text, "" when none); missing fields are "".
func cutFields(line string, n int) []string {
	cells := make([]string, n)
	rest := line
	for i := 0; i < n-1; i++ {
		rest = strings.TrimLeft(rest, " ")
		f, r, _ := strings.Cut(rest, " ")
		cells[i], rest = f, r
	}
	cells[n-1] = strings.TrimLeft(rest, " ")
	return cells
}

// statusTable shows STATUS (every job, or those of a glob) as a table:
// NAME STATE PID UPTIME RESTARTS LAST NOTE, the uptime humanised. STATUS
// NAME is shown as detailTimes does.
func statusTable(r request, d display, w io.Writer) lineSink {
	table := &statusSink{table{w: w, d: d, colorCol: 1, empty: "no jobs",
		header: []string{"NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST", "NOTE"}}}
	if r.name != "" && !jobs.IsGlob(r.name) {
		// A name is one job's, in detail, or a file's with INSTANCES,
		// whose answer is a glob's: the first line tells.
		return &eitherSink{detail: detailTimes(r, d, w), table: table}
	}
	return table
}

// eitherSink shows STATUS NAME's answer as a detail (its first line is
// "name: NAME") or, for the instances of a file, as a table.
type eitherSink struct {
	detail, table, chosen lineSink
}

func (s *eitherSink) Line(line string) {
	if s.chosen == nil {
		s.chosen = s.table
		if strings.HasPrefix(line, "name: ") {
			s.chosen = s.detail
		}
	}
	s.chosen.Line(line)
}

func (s *eitherSink) End() {
	if s.chosen != nil {
		s.chosen.End()
	}
}

type statusSink struct{ table }

func (s *statusSink) Line(line string) {
	s.add(line, func(row []string) { row[3] = humanDuration(row[3]) })
}

// historyTable shows HISTORY as a table: ID JOB PID STARTED ENDED FOR HOW
// REASON, the times local, the durations humanised.
func historyTable(_ request, d display, w io.Writer) lineSink {
	return &historySink{table{w: w, d: d, colorCol: -1, empty: "no runs",
		header: []string{"ID", "JOB", "PID", "STARTED", "ENDED", "FOR", "HOW", "REASON"}}}
}

type historySink struct{ table }

func (s *historySink) Line(line string) {
	s.add(line, func(row []string) {
		row[3] = localTime(row[3], s.d.loc, "2006-01-02 15:04:05")
		row[4] = localTime(row[4], s.d.loc, "2006-01-02 15:04:05")
		row[5] = humanDuration(row[5])
	})
}

// localTimes shows lines that begin with a UTC time (LOGS, EVENTS) with
// that time in local time, as they come; the lines of LOGS GLOB begin with
// the job's name, then the time.
func localTimes(r request, d display, w io.Writer) lineSink {
	s := &localSink{w: w, loc: d.loc}
	if r.verb == "LOGS" && jobs.IsGlob(r.name) {
		s.name = true
	}
	return s
}

type localSink struct {
	w    io.Writer
	loc  *time.Location
	name bool // each line begins with a job's name, then the time
}

func (s *localSink) Line(line string) {
	name := ""
	if s.name {
		if n, rest, ok := strings.Cut(line, " "); ok {
			name, line = n+" ", rest
		}
	}
	stamp, rest, ok := strings.Cut(line, " ")
	if ok {
		line = localTime(stamp, s.loc, localLayout) + " " + rest
	}
	fmt.Fprintln(s.w, name+line)
}

func (s *localSink) End() {}

// detailTimes shows a job in detail (STATUS NAME, INSPECT: KEY: VALUE
// lines, protocol.md) with its times in local time and its samples' rss
// humanised (rss=20.0MiB), as they come.
func detailTimes(_ request, d display, w io.Writer) lineSink {
	return &detailSink{w: w, loc: d.loc, times: detailTimeFields}
}

// whyTimes shows WHY's answer (KEY: VALUE lines, protocol.md) with its
// times in local time.
func whyTimes(_ request, d display, w io.Writer) lineSink {
	return &detailSink{w: w, loc: d.loc, times: whyTimeFields}
}

type detailSink struct {
	w     io.Writer
	loc   *time.Location
	times map[string][]int // detailTimeFields or whyTimeFields
}

// detailTimeFields are, for each key of a detail line whose value holds
// times, which of its value's words are times.
var detailTimeFields = map[string][]int{
	"since":   {0},
	"expires": {0},
	"run":     {3, 4}, // ID JOB PID STARTED ENDED ...
	"sample":  {0},
}

// whyTimeFields are detailTimeFields for WHY's lines.
var whyTimeFields = map[string][]int{
	"since": {0},
	"run":   {1}, // ID STARTED DURATION OUTCOME REASON
}

func (s *detailSink) Line(line string) {
	key, value, ok := strings.Cut(line, ": ")
	if at := s.times[key]; ok && at != nil {
		words := strings.Split(value, " ")
		for _, i := range at {
			if i < len(words) {
				words[i] = localTime(words[i], s.loc, localLayout)
			}
		}
		if key == "sample" {
			for i, w := range words {
				if n, err := strconv.ParseInt(strings.TrimPrefix(w, "rss="), 10, 64); err == nil && strings.HasPrefix(w, "rss=") {
					words[i] = "rss=" + jobs.HumanSize(n)
				}
			}
		}
		line = key + ": " + strings.Join(words, " ")
	}
	fmt.Fprintln(s.w, line)
}

func (s *detailSink) End() {}

// protocolTime is how the protocol writes times: UTC, milliseconds.
const protocolTime = "2006-01-02T15:04:05.000Z"

// localLayout is how a person reads a log's or an event's time.
const localLayout = "2006-01-02 15:04:05.000"

// localTime returns a protocol time in loc, written as layout; anything
// else ("-", a DROPPED line) as it is.
func localTime(s string, loc *time.Location, layout string) string {
	t, err := time.Parse(protocolTime, s)
	if err != nil {
		return s
	}
	return t.In(loc).Format(layout)
}

// humanDuration returns a protocol duration (Go's: 72h0m0s) humanised
// (3d); anything else ("-") as it is.
func humanDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	return humanize(d)
}

// humanize writes d in its two largest units, the second left out when 0:
// 3d4h, 5h12m, 12m, 1m30s; under a minute as Go does (45s, 1.234s).
func humanize(d time.Duration) string {
	if d < time.Minute {
		return d.String()
	}
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units[:len(units)-1] {
		if d < u.size {
			continue
		}
		s := fmt.Sprintf("%d%s", d/u.size, u.name)
		next := units[i+1]
		if n := d % u.size / next.size; n > 0 {
			s += fmt.Sprintf("%d%s", n, next.name)
		}
		return s
	}
	return d.String()
}
