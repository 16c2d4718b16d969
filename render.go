package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	pid, age, last := "-", "-", "-"
	if st.Pid > 0 {
		pid = strconv.Itoa(st.Pid)
	}
	if !st.Since.IsZero() {
		age = now.Sub(st.Since).Round(time.Second).String()
	}
	if st.LastExit != nil {
		last = st.LastExit.String()
	}
	line := fmt.Sprintf("%s %s %s %s %d %s", st.Name, st.State, pid, age, st.Restarts, last)
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
		line += " " + note
	}
	return line
}

// writeReport writes a RELOAD answer: a summary, then one line per change
// (and, verbose, one per unchanged job).
func writeReport(w io.Writer, rep jobs.Report, verbose bool) {
	fmt.Fprintf(w, "OK %s: %d started, %d restarted, %d stopped, %d skipped, %d failed, %d rejected\n",
		plural(rep.Jobs, "job"), rep.Count(jobs.Started), rep.Count(jobs.Restarted), rep.Count(jobs.StoppedIt),
		rep.Count(jobs.SkippedIt), rep.Count(jobs.FailedIt), rep.Count(jobs.RejectedIt))
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
