package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"overseer/jobs"
	"overseer/sqlstore"
)

// ephemeralNote describes an ephemeral job's bounds: " ttl=1h0m0s tied=4242",
// each part after sep.
func ephemeralNote(e jobs.Ephemeral, now time.Time, sep string) string {
	var parts []string
	if !e.Expires.IsZero() {
		parts = append(parts, "ttl="+max(e.Expires.Sub(now), 0).Round(time.Second).String())
	}
	if e.TiedTo > 0 {
		parts = append(parts, "tied="+strconv.Itoa(e.TiedTo))
	}
	if len(parts) == 0 {
		return ""
	}
	return sep + strings.Join(parts, " ")
}

// plural says n things: "1 job", "2 jobs", "0 jobs".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// writeHelp writes the HELP answer: the table of verbs.
func writeHelp(w io.Writer, verbs []verb) {
	fmt.Fprintf(w, "OK %d verbs\n", len(verbs))
	for _, v := range verbs {
		fmt.Fprintf(w, "%s%s\t%s\n", v.name, v.args, v.help)
	}
}

// writeError answers ERR for err: the user's words for the errors users
// cause, "internal error" (and the daemon's log) for the others.
func (d *daemon) writeError(w io.Writer, name string, err error) {
	switch {
	case errors.Is(err, jobs.ErrNoJob):
		fmt.Fprintf(w, "ERR no job named %q\n", clip(name))
	case errors.Is(err, jobs.ErrRejected):
		fmt.Fprintf(w, "ERR %s has no running version: %v\n", name, err)
	case errors.As(err, new(*jobs.SpawnError)):
		fmt.Fprintf(w, "ERR %v\n", err)
	case errors.Is(err, jobs.ErrClosed):
		fmt.Fprintf(w, "ERR shutting down\n")
	case errors.Is(err, syscall.ELOOP):
		fmt.Fprintf(w, "ERR %v: overseer follows no symbolic link in its data dir; remove it\n", err)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(w, "ERR %v\n", err) // e.g. the config dir is gone
	default:
		d.log.Error("request failed", "job", name, "err", err)
		fmt.Fprintf(w, "ERR internal error\n")
	}
}

// oneLine returns v for an answer line: as it is, or, when v holds a
// control character or bytes that are not UTF-8 (a value from a job file
// may), double-quoted with Go's escapes ("a\nb"), so that no value splits
// or forges a line. protocol.md (STATUS NAME) documents it.
func oneLine(v string) string {
	if utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return v
	}
	return strconv.Quote(v)
}

// historyLine formats one run: ID JOB PID STARTED ENDED FOR HOW REASON.
func historyLine(r sqlstore.Run) string {
	ended, dur, how, reason := "-", "-", "running", "-"
	if !r.Running() {
		how = "unknown" // and no end time, when nobody saw it end
	}
	if r.EndedAt != nil {
		ended = r.EndedAt.UTC().Format("2006-01-02T15:04:05.000Z")
		dur = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		switch {
		case r.Signal != "":
			how = "signal=" + r.Signal
		case r.ExitCode != nil:
			how = fmt.Sprintf("exit=%d", *r.ExitCode)
		default:
			how = "unknown"
		}
	}
	if r.Reason != "" {
		reason = r.Reason
	}
	return fmt.Sprintf("%d %s %d %s %s %s %s %s", r.ID, r.Job, r.Pid,
		r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"), ended, dur, how, reason)
}

// statusLine formats one STATUS line: NAME STATE PID FOR RESTARTS LAST [NOTE].
func statusLine(st jobs.Status, now time.Time) string {
	return string(appendStatusLine(nil, st, now))
}

// appendStatusLine appends statusLine's text to b: STATUS of thousands of
// jobs writes them into one buffer, without a Sprintf each.
func appendStatusLine(b []byte, st jobs.Status, now time.Time) []byte {
	b = append(b, st.Name...)
	b = append(b, ' ')
	b = append(b, st.State...)
	b = append(b, ' ')
	if st.Pid > 0 {
		b = strconv.AppendInt(b, int64(st.Pid), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	if !st.Since.IsZero() {
		b = append(b, now.Sub(st.Since).Round(time.Second).String()...)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(st.Restarts), 10)
	b = append(b, ' ')
	if st.LastExit != nil {
		b = append(b, st.LastExit.String()...)
	} else {
		b = append(b, '-')
	}
	note := oneLine(st.Reason)
	if st.Ephemeral != nil {
		// A marker at the note's start, never quoted: field 7 is the word
		// "ephemeral".
		note = "ephemeral" + ephemeralNote(*st.Ephemeral, now, " ")
		if st.Reason != "" {
			note += "; " + oneLine(st.Reason)
		}
	}
	if note != "" {
		b = append(b, ' ')
		b = append(b, note...)
	}
	return b
}

// writeReport writes a RELOAD answer: a summary, then one line per change
// (and, verbose, one per unchanged job); asJSON: one object.
func writeReport(w io.Writer, rep jobs.Report, verbose, asJSON bool) {
	fmt.Fprintf(w, "OK %s: %d started, %d restarted, %d stopped, %d skipped, %d failed, %d rejected\n",
		plural(rep.Jobs, "job"), rep.Count(jobs.Started), rep.Count(jobs.Restarted), rep.Count(jobs.StoppedIt),
		rep.Count(jobs.SkippedIt), rep.Count(jobs.FailedIt), rep.Count(jobs.RejectedIt))
	if asJSON {
		writeJSON(w, reportJSON(rep, verbose))
		return
	}
	for _, c := range rep.Changes {
		switch {
		case c.Verb == jobs.Unchanged && !verbose:
		case c.Verb == jobs.RejectedIt:
			// The detail names the file first: quoted if it must be.
			if detail, ok := strings.CutPrefix(c.Detail, c.Name); ok {
				fmt.Fprintf(w, "rejected %s%s\n", quoteName(c.Name), detail)
			} else {
				fmt.Fprintf(w, "rejected %s\n", c.Detail)
			}
		case c.Detail != "":
			fmt.Fprintf(w, "%s %s: %s\n", c.Verb, quoteName(c.Name), oneLine(c.Detail))
		default:
			fmt.Fprintf(w, "%s %s\n", c.Verb, quoteName(c.Name))
		}
	}
}

// quoteName returns a file name as it is, or Go-quoted ("\xff.env") if it
// is not valid UTF-8 or holds a space or control character: an answer is
// text, one item per line, and its names must not break it.
func quoteName(name string) string {
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' }) {
		return strconv.Quote(name)
	}
	return name
}

// eventLine formats one EVENTS line: TIME JOB OLD NEW PID REASON.
func eventLine(e jobs.Event) string {
	pid := "-"
	if e.Pid > 0 {
		pid = strconv.Itoa(e.Pid)
	}
	reason := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' ' // one event, one line
		}
		return r
	}, e.Reason)
	if reason == "" {
		reason = "-"
	}
	return fmt.Sprintf("%s %s %s %s %s %s", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.Job, e.Old, e.New, pid, reason)
}

// JSON answers (protocol.md, "JSON answers"): the body of an answer to a
// request with the word JSON, after the same OK line as the text answer.
// Each type below is the JSON form of a text line or answer above, built
// from the same values by the function beside it, so the two never
// disagree. Absent values are null, never "-".

// writeJSON writes v as one line of compact JSON. encoding/json escapes
// control characters (and U+2028, U+2029) and replaces bytes that are not
// UTF-8, so no value can split or forge a line.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// It fails only for a float JSON cannot hold (NaN), which no type
	// below holds, or as w does (a connection's error shows at Flush).
	enc.Encode(v)
}

// timeLayout is how answers write times: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

// jsonTime returns t in timeLayout, or nil (null) for the zero time.
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeLayout)
	return &s
}

// seconds returns d in seconds, to the millisecond.
func seconds(d time.Duration) *float64 {
	s := math.Round(d.Seconds()*1000) / 1000
	return &s
}

// orNull returns s, or nil (null) when it is empty.
func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// pidOrNull returns pid, or nil (null) when it is not one (0).
func pidOrNull(pid int) *int {
	if pid <= 0 {
		return nil
	}
	return &pid
}

// jsonExit is how a process ended: exit_code, or the signal that killed it.
type jsonExit struct {
	ExitCode *int    `json:"exit_code"`
	Signal   *string `json:"signal"`
}

// exitJSON is the JSON form of STATUS's LAST field: nil (null) for "-",
// both fields null for "unknown".
func exitJSON(e *jobs.Exit) *jsonExit {
	if e == nil {
		return nil
	}
	if e.Unknown {
		return &jsonExit{}
	}
	if e.Signal != "" {
		return &jsonExit{Signal: orNull(e.Signal)}
	}
	code := e.Code
	return &jsonExit{ExitCode: &code}
}

// jsonEphemeral is what STATUS tells of an ephemeral job.
type jsonEphemeral struct {
	Expires  *string  `json:"expires"`
	TTLLeftS *float64 `json:"ttl_left_s"`
	TiedTo   *int     `json:"tied_to"`
}

// jsonJob is one job of STATUS: a statusLine.
type jsonJob struct {
	Name      string         `json:"name"`
	State     jobs.State     `json:"state"`
	Pid       *int           `json:"pid"`
	Since     *string        `json:"since"`
	ForS      *float64       `json:"for_s"`
	Restarts  int            `json:"restarts"`
	LastExit  *jsonExit      `json:"last_exit"`
	Note      *string        `json:"note"`
	Ephemeral *jsonEphemeral `json:"ephemeral"`
}

// statusJSON is the JSON form of statusLine.
func statusJSON(st jobs.Status, now time.Time) jsonJob {
	j := jsonJob{Name: st.Name, State: st.State, Pid: pidOrNull(st.Pid), Since: jsonTime(st.Since),
		Restarts: st.Restarts, LastExit: exitJSON(st.LastExit), Note: orNull(st.Reason)}
	if !st.Since.IsZero() {
		j.ForS = seconds(now.Sub(st.Since))
	}
	if e := st.Ephemeral; e != nil {
		j.Ephemeral = &jsonEphemeral{Expires: jsonTime(e.Expires), TiedTo: pidOrNull(e.TiedTo)}
		if !e.Expires.IsZero() {
			j.Ephemeral.TTLLeftS = seconds(max(e.Expires.Sub(now), 0))
		}
	}
	return j
}

// statusListJSON is the JSON form of STATUS's lines: an array, [] for none.
func statusListJSON(all []jobs.Status, now time.Time) []jsonJob {
	out := make([]jsonJob, 0, len(all))
	for _, st := range all {
		out = append(out, statusJSON(st, now))
	}
	return out
}

// jsonDetail is STATUS NAME's answer: the job as STATUS lists it, then
// the facts of its detail. Like the text, it never holds a value from the
// job file other than COMMAND, TEST, DIR, USER, GROUP and RESTART: of the
// environment, only the keys.
type jsonDetail struct {
	jsonJob
	Held         bool      `json:"held"`
	ReadyS       *float64  `json:"ready_s"`
	ReadyBy      *string   `json:"ready_by"`
	After        []string  `json:"after"`
	RestartWith  []string  `json:"restart_with"`
	StartLimit   *string   `json:"start_limit"`
	MemoryMax    *int64    `json:"memory_max"`
	File         *string   `json:"file"`
	FileRejected *string   `json:"file_rejected"`
	ConfigHash   *string   `json:"config_hash"`
	Command      []string  `json:"command"`
	Test         []string  `json:"test"`
	Dir          *string   `json:"dir"`
	User         *string   `json:"user"`
	Group        *string   `json:"group"`
	Restart      *string   `json:"restart"`
	EnvKeys      []string  `json:"env_keys"`
	Cleanup      *string   `json:"cleanup"`
	Runs         []jsonRun `json:"runs"`
}

// detailJSON is the JSON form of STATUS NAME's lines (statusOne).
func detailJSON(dt jobs.Detail, runs []sqlstore.Run, cleanup string, now time.Time) jsonDetail {
	out := jsonDetail{jsonJob: statusJSON(dt.Status, now), Held: dt.Held, FileRejected: orNull(dt.Rejected),
		Cleanup: orNull(cleanup), EnvKeys: []string{}, Runs: historyJSON(runs)}
	if dt.Ephemeral == nil {
		out.File = orNull(dt.Name + ".env")
		if dt.Job != nil {
			out.File = orNull(dt.Job.File())
		}
	}
	if j := dt.Job; j != nil {
		out.ConfigHash, out.Dir, out.User = orNull(j.Hash), orNull(j.Dir), orNull(j.User)
		out.Group, out.Restart = orNull(j.Group), orNull(j.Restart)
		out.Command, out.Test = j.Command, j.Test
		out.ReadyBy = orNull(readyBy(j))
		out.After, out.RestartWith = j.After, j.RestartWith
		out.StartLimit = orNull(startLimit(j))
		if j.MemoryMax > 0 {
			out.MemoryMax = &j.MemoryMax
		}
		for _, kv := range j.Env {
			k, _, _ := strings.Cut(kv, "=")
			out.EnvKeys = append(out.EnvKeys, k)
		}
	}
	if len(out.Test) == 0 {
		out.Test = nil
	}
	if dt.Ready > 0 {
		out.ReadyS = seconds(dt.Ready)
	}
	return out
}

// jsonRun is one run of HISTORY: a historyLine.
type jsonRun struct {
	ID        int64    `json:"id"`
	Job       string   `json:"job"`
	Pid       *int     `json:"pid"`
	Started   *string  `json:"started"`
	Ended     *string  `json:"ended"`
	DurationS *float64 `json:"duration_s"`
	Ready     *string  `json:"ready"`
	ExitCode  *int     `json:"exit_code"`
	Signal    *string  `json:"signal"`
	Reason    *string  `json:"reason"`
}

// historyJSON is the JSON form of HISTORY's lines: an array, [] for none.
func historyJSON(runs []sqlstore.Run) []jsonRun {
	out := make([]jsonRun, 0, len(runs))
	for _, r := range runs {
		j := jsonRun{ID: r.ID, Job: r.Job, Pid: pidOrNull(r.Pid), Started: jsonTime(r.StartedAt), Reason: orNull(r.Reason)}
		if r.ReadyAt != nil {
			j.Ready = jsonTime(*r.ReadyAt)
		}
		if r.EndedAt != nil {
			j.Ended = jsonTime(*r.EndedAt)
			j.DurationS = seconds(r.EndedAt.Sub(r.StartedAt))
			switch {
			case r.Signal != "":
				j.Signal = orNull(r.Signal)
			case r.ExitCode != nil:
				code := *r.ExitCode
				j.ExitCode = &code
			}
		}
		out = append(out, j)
	}
	return out
}

// metricsOff says why a job is not sampled, in INSPECT's words, or ""
// when it is (every dt.MetricsInterval).
func metricsOff(dt jobs.Detail) string {
	switch {
	case dt.MetricsInterval > 0:
		return ""
	case dt.Ephemeral != nil:
		return "an ephemeral job is sampled only when overseerd runs with -metrics-interval"
	case dt.Job != nil && dt.Job.MetricsIntervalSet:
		return dt.Name + ".env sets METRICS_INTERVAL=0"
	}
	return "set METRICS_INTERVAL in " + dt.Name + ".env, or run overseerd with -metrics-interval"
}

// jsonSample is one resource sample of INSPECT: a sampleLine.
type jsonSample struct {
	Time       *string `json:"time"`
	Pid        *int    `json:"pid"`
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   int64   `json:"rss_bytes"`
	Threads    int     `json:"threads"`
	Files      int     `json:"files"`
	Procs      int     `json:"procs"`
}

// sampleLine formats one INSPECT sample line.
func sampleLine(s jobs.Sample) string {
	return fmt.Sprintf("sample: %s cpu=%.1f%% rss=%d threads=%d files=%d procs=%d pid=%d",
		s.At.UTC().Format(timeLayout), s.CPU, s.RSS, s.Threads, s.Files, s.Procs, s.Pid)
}

// viewSampleLine formats one SAMPLES line: TIME JOB, then as INSPECT's
// sample line.
func viewSampleLine(s jobs.Sample) string {
	return fmt.Sprintf("%s %s cpu=%.1f%% rss=%d threads=%d files=%d procs=%d pid=%d",
		s.At.UTC().Format(timeLayout), s.Job, s.CPU, s.RSS, s.Threads, s.Files, s.Procs, s.Pid)
}

// jsonViewSample is one SAMPLES JSON line: INSPECT's sample object and
// its job.
type jsonViewSample struct {
	Job string `json:"job"`
	jsonSample
}

// viewSampleJSON is the JSON form of a SAMPLES line.
func viewSampleJSON(s jobs.Sample) jsonViewSample {
	cpu := math.Round(s.CPU*10) / 10 // as the text's %.1f
	if math.IsNaN(cpu) || math.IsInf(cpu, 0) {
		cpu = 0
	}
	return jsonViewSample{Job: s.Job, jsonSample: jsonSample{Time: jsonTime(s.At), Pid: pidOrNull(s.Pid), CPUPercent: cpu,
		RSSBytes: s.RSS, Threads: s.Threads, Files: s.Files, Procs: s.Procs}}
}

// jsonInspect is INSPECT's answer: STATUS NAME's, how the job is
// sampled, and its samples, newest first.
type jsonInspect struct {
	jsonDetail
	MetricsIntervalS *float64     `json:"metrics_interval_s"`
	MetricsOff       *string      `json:"metrics_off"`
	Samples          []jsonSample `json:"samples"`
}

// inspectJSON is the JSON form of INSPECT's lines.
func inspectJSON(detail jsonDetail, dt jobs.Detail, samples []jobs.Sample) jsonInspect {
	out := jsonInspect{jsonDetail: detail, MetricsOff: orNull(metricsOff(dt)), Samples: make([]jsonSample, 0, len(samples))}
	if dt.MetricsInterval > 0 {
		out.MetricsIntervalS = seconds(dt.MetricsInterval)
	}
	for _, s := range samples {
		cpu := math.Round(s.CPU*10) / 10 // as the text's %.1f
		if math.IsNaN(cpu) || math.IsInf(cpu, 0) {
			cpu = 0
		}
		out.Samples = append(out.Samples, jsonSample{Time: jsonTime(s.At), Pid: pidOrNull(s.Pid), CPUPercent: cpu,
			RSSBytes: s.RSS, Threads: s.Threads, Files: s.Files, Procs: s.Procs})
	}
	return out
}

// jsonLogLine is one line of LOGS: "[JOB ]TIME STREAM TEXT". Time and
// stream are null for a line of the file that is not in that form.
type jsonLogLine struct {
	Job    string  `json:"job"`
	Time   *string `json:"time"`
	Stream *string `json:"stream"`
	Text   string  `json:"text"`
}

// logJSON is the JSON form of a LOGS line of job; job "" when the line
// starts with its job's name (LOGS GLOB).
func logJSON(job, line string) jsonLogLine {
	if job == "" {
		job, line, _ = strings.Cut(line, " ")
	}
	out := jsonLogLine{Job: job, Text: line}
	at, rest, ok1 := strings.Cut(line, " ")
	stream, text, ok2 := strings.Cut(rest, " ")
	if _, err := time.Parse(timeLayout, at); ok1 && ok2 && err == nil {
		out.Time, out.Stream, out.Text = &at, &stream, text
	}
	return out
}

// jsonDropped stands for a DROPPED line of EVENTS, or the "-- N lines
// dropped --" line of LOGS FOLLOW: N events or lines were lost.
type jsonDropped struct {
	Dropped int64 `json:"dropped"`
}

// jsonEvent is one line of EVENTS: an eventLine.
type jsonEvent struct {
	Time   *string `json:"time"`
	Job    string  `json:"job"`
	Old    *string `json:"old"`
	New    string  `json:"new"`
	Pid    *int    `json:"pid"`
	Reason *string `json:"reason"`
}

// eventJSON is the JSON form of eventLine.
func eventJSON(e jobs.Event) jsonEvent {
	out := jsonEvent{Time: jsonTime(e.At), Job: e.Job, New: string(e.New), Pid: pidOrNull(e.Pid), Reason: orNull(e.Reason)}
	if e.Old != jobs.NoState {
		out.Old = orNull(string(e.Old))
	}
	return out
}

// jsonReload is RELOAD's answer, or RELOAD DRY's (Dry): what the summary
// counts, one change per body line other than a warning, and the
// warnings.
type jsonReload struct {
	Dry      bool           `json:"dry"`
	Jobs     *int           `json:"jobs"`
	Counts   map[string]int `json:"counts"`
	Changes  []jsonChange   `json:"changes"`
	Warnings []jsonWarning  `json:"warnings"`
}

// jsonChange is one body line of RELOAD (RELOAD DRY): ACTION NAME: DETAIL.
type jsonChange struct {
	Action string  `json:"action"`
	Name   string  `json:"name"`
	Detail *string `json:"detail"`
}

// jsonWarning is a warning line of RELOAD: FILE:LINE: MESSAGE.
type jsonWarning struct {
	File    string `json:"file"`
	Line    *int   `json:"line"`
	Message string `json:"message"`
}

// reportJSON is the JSON form of writeReport's answer.
func reportJSON(rep jobs.Report, verbose bool) jsonReload {
	jobsN := rep.Jobs
	out := jsonReload{Jobs: &jobsN, Changes: []jsonChange{}, Warnings: []jsonWarning{}, Counts: map[string]int{}}
	for _, v := range []jobs.Verb{jobs.Started, jobs.Restarted, jobs.StoppedIt, jobs.SkippedIt, jobs.FailedIt, jobs.RejectedIt} {
		out.Counts[v.String()] = rep.Count(v)
	}
	for _, c := range rep.Changes {
		switch {
		case c.Verb == jobs.Unchanged && !verbose:
		case c.Verb == jobs.Warned:
			// Name is the warning's FILE:LINE (jobs.Warning.Where).
			w := jsonWarning{File: c.Name, Message: c.Detail}
			if file, line, ok := strings.Cut(c.Name, ":"); ok {
				if n, err := strconv.Atoi(line); err == nil {
					w.File, w.Line = file, &n
				}
			}
			out.Warnings = append(out.Warnings, w)
		default:
			out.Changes = append(out.Changes, jsonChange{Action: c.Verb.String(), Name: c.Name, Detail: orNull(c.Detail)})
		}
	}
	return out
}

// planWords are the first words of RELOAD DRY's lines (jobs.Action.String).
var planWords = map[jobs.Verb]string{jobs.Started: "start", jobs.Restarted: "restart", jobs.Updated: "update",
	jobs.StoppedIt: "stop", jobs.SkippedIt: "skip", jobs.FailedIt: "fail", jobs.RejectedIt: "reject", jobs.Unchanged: "keep"}

// planCounted are the verbs RELOAD DRY's summary counts, in its order.
var planCounted = []jobs.Verb{jobs.Started, jobs.Restarted, jobs.Updated, jobs.StoppedIt, jobs.SkippedIt, jobs.RejectedIt, jobs.Unchanged}

// planJSON is the JSON form of RELOAD DRY's answer (plan).
func planJSON(actions []jobs.Action, verbose bool) jsonReload {
	out := jsonReload{Dry: true, Changes: []jsonChange{}, Warnings: []jsonWarning{}, Counts: map[string]int{}}
	for _, v := range planCounted {
		out.Counts[planWords[v]] = 0
	}
	for _, a := range actions {
		switch {
		case a.Act == jobs.Warn:
			line := a.Warning.Line
			w := jsonWarning{File: a.Warning.File, Message: a.Why.String()}
			if line > 0 {
				w.Line = &line
			}
			out.Warnings = append(out.Warnings, w)
			continue
		case a.Act == jobs.Reject:
			out.Changes = append(out.Changes, jsonChange{Action: planWords[jobs.RejectedIt], Name: a.File, Detail: orNull(a.Why.Err)})
		case a.Verb != jobs.Unchanged || verbose:
			out.Changes = append(out.Changes, jsonChange{Action: planWords[a.Verb], Name: a.Name, Detail: orNull(a.Why.String())})
		}
		if slices.Contains(planCounted, a.Verb) {
			out.Counts[planWords[a.Verb]]++
		}
	}
	return out
}

// whyAnswer is WHY's answer, made by whyOf from what the daemon and the
// database know; write and json render it (protocol.md, WHY).
type whyAnswer struct {
	dt      jobs.Detail
	runs    []sqlstore.Run // the last whyRuns runs, newest first
	changes []defChange    // newest first
	failed  *sqlstore.Run  // the last failed run, or nil
}

// defChange says which keys differ between the definition a run (or, with
// run 0, the job now) has and the one of the run before it.
type defChange struct {
	run, from int64    // run 0: the definition in force, not yet run
	keys      []string // "COMMAND", "PORT (added)", "OLD (removed)", sorted
	// changed, added and removed are the same keys by kind, names only.
	changed, added, removed []string
}

// whyOf makes WHY's answer: runs are the job's last runs, newest first
// (whyLook of them); defs the keys of the definitions known, by hash.
func whyOf(dt jobs.Detail, runs []sqlstore.Run, defs map[string]map[string]string) whyAnswer {
	y := whyAnswer{dt: dt, runs: runs[:min(len(runs), whyRuns)]}
	for i := range runs {
		if failedRun(runs[i]) {
			y.failed = &runs[i]
			break
		}
	}
	newer, newerRun := "", int64(0) // the definition after each run's
	if dt.Job != nil && (len(y.runs) == 0 || !y.runs[0].Running()) {
		newer = dt.Job.Hash
	}
	for _, r := range y.runs {
		if newer != "" && r.ConfigHash != "" && newer != r.ConfigHash {
			if c := keysChanged(defs[r.ConfigHash], defs[newer]); len(c.keys) > 0 {
				c.run, c.from = newerRun, r.ID
				y.changes = append(y.changes, c)
			}
		}
		newer, newerRun = r.ConfigHash, r.ID
	}
	return y
}

// failedRun says whether r failed: its process ended by itself with an
// exit status other than 0 or by a signal, or overseer ended it for going
// over MEMORY_MAX or not getting ready in time.
func failedRun(r sqlstore.Run) bool {
	if r.EndedAt == nil {
		return false
	}
	bad := r.Signal != "" || r.ExitCode != nil && *r.ExitCode != 0
	return r.Reason == "" && bad || r.Reason == jobs.ReasonMemory || r.Reason == jobs.ReasonNotReady
}

// keysChanged returns the keys whose digests differ between old and new:
// keys sorted, those only in one marked (added) or (removed), and each
// kind apart (names only, sorted); no keys when either is unknown.
func keysChanged(old, new map[string]string) defChange {
	var c defChange
	if old == nil || new == nil {
		return c
	}
	for k, v := range new {
		switch o, ok := old[k]; {
		case !ok:
			c.keys = append(c.keys, k+" (added)")
			c.added = append(c.added, k)
		case o != v:
			c.keys = append(c.keys, k)
			c.changed = append(c.changed, k)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			c.keys = append(c.keys, k+" (removed)")
			c.removed = append(c.removed, k)
		}
	}
	for _, l := range [][]string{c.keys, c.changed, c.added, c.removed} {
		slices.Sort(l)
	}
	return c
}

// outcome is how r ended in run_outcomes' words: exit=3, signal=KILL,
// unknown; "running" while it runs.
func outcome(r sqlstore.Run) string {
	switch {
	case r.Running():
		return "running"
	case r.EndedAt == nil:
		return "unknown"
	case r.Signal != "":
		return "signal=" + r.Signal
	case r.ExitCode != nil:
		return fmt.Sprintf("exit=%d", *r.ExitCode)
	}
	return "unknown"
}

// runWhy is why overseer ended r, "reload: COMMAND changed", or "-".
func runWhy(r sqlstore.Run) string {
	switch {
	case r.Reason == "":
		return "-"
	case r.Detail != "":
		return r.Reason + ": " + r.Detail
	}
	return r.Reason
}

// write writes the answer's lines after the OK line.
func (y whyAnswer) write(w io.Writer) {
	dt := y.dt
	state := string(dt.State)
	if dt.Reason != "" {
		state += ": " + dt.Reason
	}
	fmt.Fprintf(w, "state: %s\n", oneLine(state))
	fmt.Fprintf(w, "held: %s\n", map[bool]string{true: "yes", false: "no"}[dt.Held])
	fmt.Fprintf(w, "since: %s\n", dt.Since.UTC().Format("2006-01-02T15:04:05.000Z"))
	if dt.LastExit != nil {
		fmt.Fprintf(w, "last-exit: %s\n", dt.LastExit)
	}
	for _, r := range y.runs {
		dur := "-"
		if r.EndedAt != nil {
			dur = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "run: %d %s %s %s %s\n", r.ID, r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			dur, outcome(r), oneLine(runWhy(r)))
	}
	for _, c := range y.changes {
		to := "now"
		if c.run != 0 {
			to = "run " + strconv.FormatInt(c.run, 10)
		}
		fmt.Fprintf(w, "changed: %s since run %d: %s\n", to, c.from, strings.Join(c.keys, ", "))
	}
	if f := y.failed; f != nil {
		fmt.Fprintf(w, "failed: run %d %s\n", f.ID, outcome(*f))
		if f.Tail != "" {
			for _, l := range strings.Split(f.Tail, "\n") {
				stream, text, _ := strings.Cut(l, " ")
				fmt.Fprintf(w, "tail: %s %s\n", stream, oneLine(text))
			}
		}
	}
}

// jsonWhy is WHY's JSON answer.
type jsonWhy struct {
	Name    string          `json:"name"`
	State   string          `json:"state"`
	Note    *string         `json:"note"`
	Since   *string         `json:"since"`
	Held    bool            `json:"held"`
	Runs    []jsonWhyRun    `json:"runs"`
	Changes []jsonDefChange `json:"changes"`
	Failed  *jsonWhyRun     `json:"failed"`
}

type jsonWhyRun struct {
	ID         int64      `json:"id"`
	Started    *string    `json:"started"`
	Ended      *string    `json:"ended"`
	DurationS  *float64   `json:"duration_s"`
	Outcome    string     `json:"outcome"`
	Reason     *string    `json:"reason"`
	Detail     *string    `json:"detail"`
	ConfigHash *string    `json:"config_hash"`
	Tail       []jsonLine `json:"tail"`
}

type jsonLine struct {
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

type jsonDefChange struct {
	Run     *int64   `json:"run"` // null: the definition in force, not yet run
	From    int64    `json:"from"`
	Keys    []string `json:"keys"`    // whose values changed
	Added   []string `json:"added"`   // only in the newer definition
	Removed []string `json:"removed"` // only in the older one
}

func whyRunJSON(r sqlstore.Run) jsonWhyRun {
	j := jsonWhyRun{ID: r.ID, Started: jsonTime(r.StartedAt), Outcome: outcome(r),
		Reason: orNull(r.Reason), Detail: orNull(r.Detail), ConfigHash: orNull(r.ConfigHash), Tail: []jsonLine{}}
	if r.EndedAt != nil {
		j.Ended = jsonTime(*r.EndedAt)
		j.DurationS = seconds(r.EndedAt.Sub(r.StartedAt))
	}
	if r.Tail != "" {
		for _, l := range strings.Split(r.Tail, "\n") {
			stream, text, _ := strings.Cut(l, " ")
			j.Tail = append(j.Tail, jsonLine{stream, text})
		}
	}
	return j
}

func (y whyAnswer) json() jsonWhy {
	j := jsonWhy{Name: y.dt.Name, State: string(y.dt.State), Note: orNull(y.dt.Reason), Since: jsonTime(y.dt.Since),
		Held: y.dt.Held, Runs: []jsonWhyRun{}, Changes: []jsonDefChange{}}
	for _, r := range y.runs {
		j.Runs = append(j.Runs, whyRunJSON(r))
	}
	for _, c := range y.changes {
		jc := jsonDefChange{From: c.from, Keys: nonNil(c.changed), Added: nonNil(c.added), Removed: nonNil(c.removed)}
		if c.run != 0 {
			run := c.run
			jc.Run = &run
		}
		j.Changes = append(j.Changes, jc)
	}
	if y.failed != nil {
		f := whyRunJSON(*y.failed)
		j.Failed = &f
	}
	return j
}

// nonNil is l, or an empty list for none: JSON's [] rather than null.
func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
