package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"overseer/jobs"
	"overseer/sqlstore"
)

// removedWhy says why a job WAIT waited for went away, from the error
// Manager.Wait returned.
func removedWhy(err error) string {
	var re *jobs.RemovedError
	if !errors.As(err, &re) || re.Reason == "reload: file removed" {
		return "its file is gone"
	}
	return re.Reason
}

// flush waits, a little at most, until the store has committed every
// write queued so far: what STATUS shows is then in the database too, so a
// user who sees a job running finds its run with sqlite3. It returns why
// not, if not; the writes stay queued and are retried until they commit.
func (d *daemon) flush() error {
	err := d.store.Settle(context.Background())
	if err != nil {
		d.log.Warn("store is slow to write: answering anyway", "err", err)
	}
	return err
}

// already reports whether the job a WAIT names is in its state now, so
// that the WAIT answers at once: stalled streams never deny such a look.
func (d *daemon) already(r request) bool {
	dt, err := d.mgr.Job(r.name)
	return err == nil && dt.State == r.state
}

// held reports whether STOP holds the named job now: only then has START
// or RESTART a hold's end to save, and an answer to wait for it.
func (d *daemon) held(name string) bool {
	dt, err := d.mgr.Job(name)
	return err == nil && dt.Held
}

// saved waits, as flush does, for the hold (or its release) that the
// answer ok promises, and writes it when it is committed. Else it writes an
// ERR that says what was done, that what is not saved and why, what holds
// meanwhile, and what to do once the database can be written (again).
func (d *daemon) saved(w io.Writer, ok, done, what, holds, again string) {
	if err := d.flush(); err != nil {
		fmt.Fprintf(w, "ERR %s, but %s is not saved: %v: %s; %s once the database can be written\n", done, what, err, holds, again)
		return
	}
	fmt.Fprintf(w, "OK %s\n", ok)
}

// status answers STATUS [NAME].
func (d *daemon) status(w io.Writer, r request) {
	var instances []string
	if r.name != "" {
		instances = d.mgr.Expand(r.name)
	}
	if r.name != "" && !jobs.IsGlob(r.name) && instances == nil {
		d.statusOne(w, r.name, r.json)
		return
	}
	all := d.mgr.Status()
	if r.name != "" {
		all = slices.DeleteFunc(all, func(st jobs.Status) bool {
			if instances != nil {
				return !slices.Contains(instances, st.Name)
			}
			ok, _ := path.Match(r.name, st.Name)
			return !ok
		})
		if len(all) == 0 {
			fmt.Fprintf(w, "ERR no job matches %q\n", clip(r.name))
			return
		}
	}
	// No flush: STATUS answers from the supervisors' state at once, never
	// behind queued writes (a crash storm); the database catches up within
	// the writer's next commit, and HISTORY and INSPECT wait for it.
	fmt.Fprintf(w, "OK %s\n", plural(len(all), "job"))
	now := time.Now()
	if r.json {
		writeJSON(w, statusListJSON(all, now))
		return
	}
	var b []byte
	for _, st := range all {
		b = append(appendStatusLine(b, st, now), '\n')
		if len(b) >= 64<<10 {
			w.Write(b)
			b = b[:0]
		}
	}
	w.Write(b)
}

// reloadAndReport answers RELOAD [DRY] [VERBOSE] [NOWAIT].
func (d *daemon) reloadAndReport(w io.Writer, r request) {
	if r.dry {
		d.plan(w, r.verbose, r.json)
		return
	}
	d.firstReloadOnce.Do(func() { close(d.firstReload) })
	rep, err := d.reload(r.nowait)
	if err != nil {
		d.writeError(w, "", err)
		return
	}
	writeReport(w, rep, r.verbose, r.json)
}

// start answers START NAME.
func (d *daemon) start(w io.Writer, r request) {
	held := d.held(r.name)
	o, err := d.mgr.Start(r.name, r.nowait)
	switch {
	case err != nil:
		d.writeError(w, r.name, err)
	case o.Verb == jobs.Started && !held:
		d.flush() // nothing to save but what the answer shows
		fmt.Fprintf(w, "OK started %s\n", r.name)
	case o.Verb == jobs.Started:
		d.saved(w, "started "+r.name, "started "+r.name, "the end of its hold",
			"if STOP held it, a restarted overseerd may hold it again", "START "+r.name+" again")
	case o.Verb == jobs.Unchanged:
		fmt.Fprintf(w, "OK %s is already running\n", r.name)
	case o.Verb == jobs.Waited:
		writeWaiting(w, r.name, o)
	default: // skipped, failed
		d.flush() // what ended meanwhile is in the database
		fmt.Fprintf(w, "ERR %s not started: %s\n", r.name, oneLine(o.Detail))
	}
}

// writeWaiting answers a START or RESTART that left the job waiting for
// the jobs it starts after (AFTER): o.Detail is "for db", or "for db: db
// failed" when one will not come by itself (o.Stuck), which makes it an
// ERR. Either way the job starts once they are ready.
func writeWaiting(w io.Writer, name string, o jobs.Outcome) {
	if o.Stuck {
		fmt.Fprintf(w, "ERR %s not started: waiting %s; it starts once they are ready\n", name, oneLine(o.Detail))
		return
	}
	fmt.Fprintf(w, "OK %s is waiting %s\n", name, oneLine(o.Detail))
}

// stop answers STOP NAME.
func (d *daemon) stop(w io.Writer, r request) {
	o, err := d.mgr.Stop(r.name)
	switch {
	case err != nil:
		d.writeError(w, r.name, err)
	case o.Detail == jobs.Forgotten && o.Verb == jobs.StoppedIt:
		fmt.Fprintf(w, "OK stopped %s and forgot it: it was ephemeral\n", r.name)
	case o.Detail == jobs.Forgotten:
		fmt.Fprintf(w, "OK %s was not running; forgot it: it was ephemeral\n", r.name)
	case o.Verb == jobs.StoppedIt:
		d.saved(w, fmt.Sprintf("stopped %s; it stays stopped until START", r.name), "stopped "+r.name, "the hold",
			"it stays stopped while this overseerd runs, but a restarted one may start it", "STOP "+r.name+" again")
	default:
		d.saved(w, fmt.Sprintf("%s was not running; it stays stopped until START", r.name), r.name+" was not running", "the hold",
			"it stays stopped while this overseerd runs, but a restarted one may start it", "STOP "+r.name+" again")
	}
}

// restart answers RESTART NAME.
func (d *daemon) restart(w io.Writer, r request) {
	held := d.held(r.name)
	o, err := d.mgr.Restart(r.name, r.nowait)
	switch {
	case err != nil:
		d.writeError(w, r.name, err)
	case (o.Verb == jobs.Restarted || o.Verb == jobs.Started) && !held:
		d.flush() // nothing to save but what the answer shows
		fmt.Fprintf(w, "OK %s %s\n", o.Verb, r.name)
	case o.Verb == jobs.Restarted || o.Verb == jobs.Started:
		d.saved(w, o.Verb.String()+" "+r.name, o.Verb.String()+" "+r.name, "the end of its hold",
			"if STOP held it, a restarted overseerd may hold it again", "RESTART "+r.name+" again")
	case o.Verb == jobs.Unchanged:
		fmt.Fprintf(w, "OK %s is running\n", r.name)
	case o.Verb == jobs.Waited:
		writeWaiting(w, r.name, o)
	default:
		d.flush() // the run it stopped is in the database
		fmt.Fprintf(w, "ERR %s not started: %s\n", r.name, oneLine(o.Detail))
	}
}

// signal answers SIGNAL NAME SIG.
func (d *daemon) signal(w io.Writer, r request) {
	o, err := d.mgr.Signal(r.name, r.sig)
	switch {
	case err != nil:
		d.writeError(w, r.name, err)
	case o.Verb == jobs.Unchanged:
		fmt.Fprintf(w, "ERR %s is not running\n", r.name)
	default:
		fmt.Fprintf(w, "OK sent %s to %s (process group %s)\n", jobs.SignalName(r.sig), r.name, o.Detail)
	}
}

// logs answers LOGS NAME [N] [STREAM] (FOLLOW: see follow).
func (d *daemon) logs(w io.Writer, r request) {
	var lines []string
	var err error
	names, ok := d.match(w, r.name)
	if !ok {
		return
	} else if names != nil {
		lines, err = d.mgr.LogsOf(names, r.lines, r.stream)
	} else {
		lines, err = d.mgr.Logs(r.name, r.lines, r.stream)
	}
	if err != nil {
		d.writeError(w, r.name, err)
		return
	}
	fmt.Fprintf(w, "OK %s\n", plural(len(lines), "line"))
	for _, l := range lines {
		writeLogLine(w, r, names != nil, l)
	}
}

// history answers HISTORY [NAME] [N].
func (d *daemon) history(w io.Writer, r request) {
	var runs []sqlstore.Run
	var err error
	if names := d.mgr.Expand(r.name); names != nil {
		// A file's instances: each one's runs, newest first.
		for _, name := range names {
			some, e := d.store.Runs(context.Background(), name, r.lines)
			runs, err = append(runs, some...), cmp.Or(err, e)
		}
		slices.SortFunc(runs, func(a, b sqlstore.Run) int { return cmp.Compare(b.ID, a.ID) })
		if r.lines > 0 && len(runs) > r.lines {
			runs = runs[:r.lines]
		}
	} else if jobs.IsGlob(r.name) {
		// Removed jobs' runs too: the glob is matched in the database.
		runs, err = d.store.RunsMatching(context.Background(), r.name, max(r.lines, 1))
		if names, _ := d.mgr.Match(r.name); err == nil && len(runs) == 0 && len(names) == 0 {
			fmt.Fprintf(w, "ERR no job matches %q\n", clip(r.name))
			return
		}
	} else {
		runs, err = d.store.Runs(context.Background(), r.name, r.lines)
	}
	if err != nil {
		d.writeError(w, r.name, err)
		return
	}
	if r.lines == 0 {
		runs = nil
	}
	fmt.Fprintf(w, "OK %s\n", plural(len(runs), "run"))
	if r.json {
		writeJSON(w, historyJSON(runs))
		return
	}
	for _, run := range runs {
		fmt.Fprintln(w, historyLine(run))
	}
}

// quit answers DIE: once every job is gone.
func (d *daemon) quit(c net.Conn, _ request) {
	d.dieOnce.Do(func() { close(d.die) })
	<-d.dead
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	fmt.Fprintf(c, "OK overseerd stopped\n")
}

// ping answers PING: the version -version prints, the pid, the cleanup
// mode, the dirs served, each a word (Go-quoted if it must be), and how
// long the daemon has been up (upgrades do not count as restarts).
func (d *daemon) ping(w io.Writer, _ request) {
	fmt.Fprintf(w, "OK overseer %s pid %d cleanup=%s config-dir=%s data-dir=%s up=%v viewers=%d\n", quoteName(buildVersion()), os.Getpid(), d.mgr.Cleanup(), quoteName(d.opts.configDir), quoteName(d.opts.dataDir), time.Since(d.started).Truncate(time.Second), d.mgr.Viewers())
}

// help answers HELP: the table of verbs.
func (d *daemon) help(w io.Writer, _ request) {
	writeHelp(w, d.verbs)
}

// spawn answers SPAWN: an ephemeral job, unless a job file has its name
// (loaded or not yet) or it cannot start.
func (d *daemon) spawn(w io.Writer, r request) {
	if _, err := os.Lstat(filepath.Join(d.opts.configDir, r.name+".env")); err == nil {
		fmt.Fprintf(w, "ERR SPAWN: the name %s belongs to the job file %s.env: pick another name\n", r.name, r.name)
		return
	}
	sp := jobs.Spawn{Name: r.name, Command: r.command, TTL: r.ttl, TiedParent: r.tiedParent}
	if r.tied {
		sp.TiedPid = r.peerPid
	}
	o, info, err := d.mgr.Spawn(sp)
	switch {
	case err != nil:
		d.writeError(w, r.name, err)
	case o.Verb == jobs.FailedIt:
		fmt.Fprintf(w, "ERR %s not started: %s\n", r.name, oneLine(o.Detail))
	default:
		fmt.Fprintf(w, "OK spawned %s%s\n", r.name, ephemeralNote(info, time.Now(), ": "))
	}
}

// startLimit says the job's START_LIMIT, for STATUS NAME: "10 in 1m0s",
// or "off".
func startLimit(j *jobs.Job) string {
	if j.StartLimit <= 0 {
		return "off"
	}
	return fmt.Sprintf("%d in %v", j.StartLimit, j.StartLimitInterval)
}

// readyBy says how the job shows it is ready (READY), for STATUS NAME.
func readyBy(j *jobs.Job) string {
	switch {
	case j.ReadyFd > 0:
		return fmt.Sprintf("fd:%d (a newline), within %v", j.ReadyFd, j.ReadyTimeout)
	case j.ReadyNotify:
		return fmt.Sprintf("notify (READY=1), within %v", j.ReadyTimeout)
	case j.ReadyCommand != nil:
		return fmt.Sprintf("%s, every %v, within %v", jobs.ShellJoin(j.ReadyCommand), j.ReadyInterval, j.ReadyTimeout)
	}
	return ""
}

// detail returns what STATUS NAME tells of the named job: the job and
// its last runs.
func (d *daemon) detail(name string) (jobs.Detail, []sqlstore.Run, error) {
	dt, err := d.mgr.Job(name)
	if err != nil {
		return dt, nil, err
	}
	runs, err := d.store.Runs(context.Background(), name, 5)
	return dt, runs, err
}

// statusOne answers STATUS NAME: one "key: value" line per fact (asJSON:
// one object). Values from the job file other than COMMAND, TEST and DIR
// are never shown: only the names of its environment keys.
func (d *daemon) statusOne(w io.Writer, name string, asJSON bool) {
	dt, runs, err := d.detail(name)
	if err != nil {
		d.writeError(w, name, err)
		return
	}
	if asJSON {
		fmt.Fprintf(w, "OK %s %s\n", name, dt.State)
		writeJSON(w, detailJSON(dt, runs, d.mgr.CleanupOf(name), time.Now()))
		return
	}
	j := dt.Job
	show := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "%s: %s\n", k, oneLine(v))
	}
	fmt.Fprintf(w, "OK %s %s\n", name, dt.State)
	show("name", name)
	show("state", string(dt.State))
	show("note", dt.Reason)
	if dt.Pid > 0 {
		show("pid", strconv.Itoa(dt.Pid))
	} else {
		show("pid", "")
	}
	show("since", dt.Since.UTC().Format("2006-01-02T15:04:05.000Z"))
	show("for", time.Since(dt.Since).Round(time.Second).String())
	show("restarts", strconv.Itoa(dt.Restarts))
	if dt.LastExit != nil {
		show("last-exit", dt.LastExit.String())
	} else {
		show("last-exit", "")
	}
	if dt.Ready > 0 {
		show("ready", "after "+dt.Ready.Round(time.Millisecond).String())
	} else {
		show("ready", "")
	}
	show("held", map[bool]string{true: "yes: STOP holds it stopped until START", false: "no"}[dt.Held])
	if e := dt.Ephemeral; e != nil {
		show("ephemeral", "yes: started by SPAWN; STOP forgets it")
		if !e.Expires.IsZero() {
			show("expires", e.Expires.UTC().Format("2006-01-02T15:04:05.000Z"))
		} else {
			show("expires", "")
		}
		if e.TiedTo > 0 {
			show("tied-to", "pid "+strconv.Itoa(e.TiedTo))
		} else {
			show("tied-to", "")
		}
		show("file", "")
	} else {
		show("ephemeral", "no")
		show("file", j.File())
	}
	show("file-rejected", dt.Rejected)
	show("config-hash", j.Hash)
	show("command", jobs.ShellJoin(j.Command))
	show("test", jobs.ShellJoin(j.Test))
	show("ready-by", readyBy(j))
	dir := j.Dir
	if dir == "" && j.User != "" {
		dir = "the USER's home (default)"
	} else if dir == "" {
		dir = "$HOME (default)"
	}
	show("dir", dir)
	user := j.User
	if j.Group != "" {
		user += ":" + j.Group
	}
	show("user", user)
	show("restart", j.Restart)
	show("after", strings.Join(j.After, " "))
	show("restart-with", strings.Join(j.RestartWith, " "))
	show("start-limit", startLimit(j))
	if j.MemoryMax > 0 {
		show("memory-max", jobs.FormatSize(j.MemoryMax))
	} else {
		show("memory-max", "")
	}
	var keys []string
	for _, kv := range j.Env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	show("env-keys", strings.Join(keys, " "))
	show("cleanup", d.mgr.CleanupOf(name))
	for _, run := range runs {
		show("run", historyLine(run))
	}
}

// inspect answers INSPECT NAME N: STATUS NAME's answer, then how the job
// is sampled and its last n samples, newest first.
func (d *daemon) inspect(w io.Writer, r request) {
	name, n := r.name, r.lines
	if r.json {
		d.inspectJSON(w, name, n)
		return
	}
	var b bytes.Buffer
	d.statusOne(&b, name, false)
	if !bytes.HasPrefix(b.Bytes(), []byte("OK ")) {
		w.Write(b.Bytes()) // the error
		return
	}
	dt, err := d.mgr.Job(name)
	if err != nil {
		d.writeError(w, name, err)
		return
	}
	samples, err := d.samples(name, n)
	if err != nil {
		d.writeError(w, name, err)
		return
	}
	w.Write(b.Bytes())
	if off := metricsOff(dt); off != "" {
		fmt.Fprintf(w, "metrics-interval: off: %s\n", off)
	} else {
		fmt.Fprintf(w, "metrics-interval: %v\n", dt.MetricsInterval)
	}
	fmt.Fprintf(w, "samples: %d\n", len(samples))
	for _, s := range samples {
		fmt.Fprintln(w, sampleLine(s))
	}
}

// samples returns the last n resource samples of name, newest first.
func (d *daemon) samples(name string, n int) ([]jobs.Sample, error) {
	if n <= 0 {
		return nil, nil
	}
	return d.store.Samples(context.Background(), name, n)
}

// inspectJSON answers INSPECT JSON NAME N: STATUS JSON NAME's object, how
// the job is sampled and its last n samples, in one object.
func (d *daemon) inspectJSON(w io.Writer, name string, n int) {
	dt, runs, err := d.detail(name)
	if err != nil {
		d.writeError(w, name, err)
		return
	}
	samples, err := d.samples(name, n)
	if err != nil {
		d.writeError(w, name, err)
		return
	}
	fmt.Fprintf(w, "OK %s %s\n", name, dt.State)
	writeJSON(w, inspectJSON(detailJSON(dt, runs, d.mgr.CleanupOf(name), time.Now()), dt, samples))
}

// writeLogLine writes one line of a LOGS answer for r: as it is, or in
// JSON; prefixed: it starts with its job's name (a glob's answer).
func writeLogLine(w io.Writer, r request, prefixed bool, line string) {
	if !r.json {
		fmt.Fprintln(w, line)
		return
	}
	job := r.name
	if prefixed {
		job = ""
	}
	writeJSON(w, logJSON(job, line))
}

// follow answers LOGS NAME [N] [STREAM] FOLLOW: the last lines, then every new line
// until the client goes away, the job is removed or the daemon stops.
func (d *daemon) follow(c net.Conn, r request) {
	// The backlog may be megabytes: it is read and sent in a big answer's
	// slot, within writeTimeout, and let go before the following starts.
	d.enterBig()
	size := 0
	var b bytes.Buffer
	names, ok := d.match(&b, r.name)
	var last []string
	var f *jobs.Follower
	var stop func()
	var err error
	switch {
	case !ok:
		err = errNoMatch
	case names != nil:
		last, f, stop, err = d.mgr.FollowOf(names, r.lines, r.stream)
	default:
		last, f, stop, err = d.mgr.Follow(r.name, r.lines, r.stream)
	}
	if err != nil {
		d.leaveBig(0)
		if ok {
			d.writeError(&b, r.name, err)
		}
		c.Write(b.Bytes())
		return
	}
	defer stop()
	gone := make(chan struct{})
	defer whenGone(c, func() { close(gone) })()
	w := bufio.NewWriterSize(c, streamWriteBuffer)
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if names != nil {
		fmt.Fprintf(w, "OK following %s\n", plural(len(names), "job"))
	} else {
		fmt.Fprintf(w, "OK following %s\n", r.name)
	}
	for _, l := range last {
		writeLogLine(w, r, names != nil, l)
		size += len(l) + 1
	}
	last = nil
	err = w.Flush()
	d.leaveBig(size)
	if err != nil {
		return
	}
	for {
		if len(f.Lines()) == 0 {
			if n := f.Dropped(); n > 0 && r.json {
				writeJSON(w, jsonDropped{Dropped: n})
			} else if n > 0 {
				fmt.Fprintf(w, "-- %s dropped: this reader was too slow --\n", plural(int(n), "line"))
			}
		}
		// A reader too slow to take a line in writeTimeout is dropped;
		// no deadline is left armed while nothing is written.
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if w.Flush() != nil {
			return
		}
		c.SetWriteDeadline(time.Time{})
		select {
		case l, ok := <-f.Lines():
			if !ok {
				d.endFollow(c, w) // the jobs are gone, or the daemon stops
				return
			}
			writeLogLine(w, r, names != nil, l)
		case <-gone:
			return
		}
	}
}

// eventsWriteBuffer is the kernel's send buffer for an EVENTS connection:
// small, so that a subscriber that stops reading holds little memory and
// learns soon, by a DROPPED line, that it missed events.
const eventsWriteBuffer = 16 << 10

// events answers EVENTS [NAME]: a line per state transition, from now
// until the client leaves or the daemon stops. A subscriber that falls
// behind loses events, never slows supervision, and is told how many it
// lost once it has caught up.
func (d *daemon) events(c net.Conn, r request) {
	sub, err := d.mgr.Subscribe(r.name)
	if err != nil {
		var b bytes.Buffer
		d.writeError(&b, r.name, err)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.Write(b.Bytes())
		return
	}
	defer sub.Close()
	c.(*net.UnixConn).SetWriteBuffer(eventsWriteBuffer)
	gone := make(chan struct{})
	defer whenGone(c, func() { close(gone) })()
	// A write blocked on a subscriber that does not read ends when it
	// leaves, soon after the daemon has stopped its jobs, or after
	// writeTimeout: then it is dropped, as a LOGS FOLLOW reader is.
	finished := make(chan struct{})
	var watcher sync.WaitGroup
	defer func() {
		close(finished)
		watcher.Wait()
	}()
	var deadlineMu sync.Mutex
	ending := false // a deadline set by the watcher below is the last word
	deadline := func(t time.Time, last bool) {
		deadlineMu.Lock()
		defer deadlineMu.Unlock()
		if !ending {
			ending = last
			c.SetWriteDeadline(t)
		}
	}
	watcher.Go(func() {
		select {
		case <-gone:
			deadline(time.Now(), true)
		case <-d.dead:
			deadline(time.Now().Add(time.Second), true)
		case <-finished:
		}
	})
	flush := func(w *bufio.Writer) error {
		deadline(time.Now().Add(writeTimeout), false)
		if err := w.Flush(); err != nil {
			return err
		}
		deadline(time.Time{}, false) // no timer armed while idle
		return nil
	}
	w := bufio.NewWriterSize(c, streamWriteBuffer)
	if r.name == "" {
		fmt.Fprintf(w, "OK following events of every job\n")
	} else {
		fmt.Fprintf(w, "OK following events of %s\n", r.name)
	}
	for {
		if len(sub.Events()) == 0 {
			if n := sub.Dropped(); n > 0 && r.json {
				writeJSON(w, jsonDropped{Dropped: n})
			} else if n > 0 {
				fmt.Fprintf(w, "DROPPED %d\n", n)
			}
			if flush(w) != nil {
				return
			}
		}
		select {
		case e, ok := <-sub.Events():
			if !ok {
				w.Flush()
				return
			}
			if r.json {
				writeJSON(w, eventJSON(e))
			} else {
				fmt.Fprintln(w, eventLine(e))
			}
		case <-gone:
			return
		}
	}
}

// wait answers WAIT NAME STATE [TIMEOUT]: OK once the job is in STATE,
// ERR timeout if TIMEOUT passes first; nothing if the client leaves.
func (d *daemon) wait(c net.Conn, r request) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	// When the client leaves (or half-closes) nobody waits for the answer.
	defer whenGone(c, cancel)()
	var b bytes.Buffer
	names, ok := d.match(&b, r.name)
	switch {
	case !ok:
	case names == nil:
		if !d.waitOne(ctx, &b, r) {
			return // the client left
		}
	default:
		// One after the other, within the one TIMEOUT: each job has
		// been in STATE at some moment, not necessarily all at once.
		fmt.Fprintf(&b, "OK %s\n", plural(len(names), "job"))
		for _, name := range names {
			one, line := r, bytes.Buffer{}
			one.name = name
			if !d.waitOne(ctx, &line, one) {
				return
			}
			b.WriteString(strings.TrimPrefix(line.String(), "OK "))
		}
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.Write(b.Bytes())
}

// waitOne writes WAIT's answer for the one job r names, once it is in
// r.state or ctx ends; false: the client left, there is nothing to say.
func (d *daemon) waitOne(ctx context.Context, b *bytes.Buffer, r request) bool {
	last, err := d.mgr.Wait(ctx, r.name, r.state)
	switch {
	case err == nil:
		d.flush() // what it reports is in the database
		fmt.Fprintf(b, "OK %s is %s\n", r.name, last)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(b, "ERR timeout after %v: %s is %s, not %s\n", r.timeout, r.name, last, r.state)
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, jobs.ErrRemoved):
		fmt.Fprintf(b, "ERR %s was removed: %s\n", r.name, removedWhy(err))
	default:
		d.writeError(b, r.name, err)
	}
	return true
}

// plan answers RELOAD DRY: what a RELOAD would do now and why, one line
// per job (keeps only when verbose), touching nothing; asJSON: in one
// object.
func (d *daemon) plan(w io.Writer, verbose, asJSON bool) {
	actions, err := d.mgr.Plan(d.opts.configDir)
	if err != nil {
		d.writeError(w, "", err)
		return
	}
	count := make(map[jobs.Verb]int)
	for _, a := range actions {
		count[a.Verb]++
	}
	fmt.Fprintf(w, "OK plan: %d start, %d restart, %d update, %d stop, %d skip, %d reject, %d keep\n",
		count[jobs.Started], count[jobs.Restarted], count[jobs.Updated], count[jobs.StoppedIt],
		count[jobs.SkippedIt], count[jobs.RejectedIt], count[jobs.Unchanged])
	if asJSON {
		writeJSON(w, planJSON(actions, verbose))
		return
	}
	for _, a := range actions {
		if a.Verb != jobs.Unchanged || verbose {
			fmt.Fprintln(w, oneLine(a.String()))
		}
	}
}

// errNoMatch: a glob matched no job; its ERR is written.
var errNoMatch = errors.New("no job matches")

// match returns the jobs the glob r names, sorted, or nil when the name is
// no glob. A glob that matches none writes its ERR to w and says false.
func (d *daemon) match(w io.Writer, name string) ([]string, bool) {
	if !jobs.IsGlob(name) {
		return d.mgr.Expand(name), true // a file's instances, or nil
	}
	names, err := d.mgr.Match(name)
	switch {
	case err != nil:
		d.writeError(w, name, err)
		return nil, false
	case len(names) == 0:
		fmt.Fprintf(w, "ERR no job matches %q\n", clip(name))
		return nil, false
	}
	return names, true
}

// manyAtOnce bounds the jobs a glob's request acts on at once: each holds
// a goroutine waiting for its job's loop.
const manyAtOnce = 64

// globbed extends answer, the handler of a verb whose answer for one job
// is one line, to a glob (protocol.md, "Many jobs at once"): OK N jobs,
// then for each job matched, in name order, the line its own request would
// answer, without the "OK " (an "ERR " stays). The jobs are acted on at
// once, manyAtOnce at a time.
func globbed(answer func(*daemon, io.Writer, request)) func(*daemon, io.Writer, request) {
	return func(d *daemon, w io.Writer, r request) {
		names, ok := d.match(w, r.name)
		if !ok || names == nil {
			if ok {
				answer(d, w, r)
			}
			return
		}
		out := make([]bytes.Buffer, len(names))
		slots := make(chan struct{}, manyAtOnce)
		var wg sync.WaitGroup
		for i, name := range names {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				one := r
				one.name = name
				answer(d, &out[i], one)
			})
		}
		wg.Wait()
		fmt.Fprintf(w, "OK %s\n", plural(len(names), "job"))
		for i := range out {
			io.WriteString(w, strings.TrimPrefix(out[i].String(), "OK "))
		}
	}
}

// rolled extends answer, RESTART's, to the base name of a file with
// INSTANCES: its instances are restarted one at a time, in index order,
// each once the one before is ready (whatever NOWAIT says), so copies
// that share a port keep answering. The answer is a glob's; an instance
// that is not restarted ready stops the roll, and those after it are not
// touched (protocol.md, "Instances").
func rolled(answer func(*daemon, io.Writer, request)) func(*daemon, io.Writer, request) {
	return func(d *daemon, w io.Writer, r request) {
		names := d.mgr.Expand(r.name)
		if jobs.IsGlob(r.name) || names == nil {
			answer(d, w, r)
			return
		}
		fmt.Fprintf(w, "OK %s\n", plural(len(names), "job"))
		d.mgr.Rolling(names, true)
		defer d.mgr.Rolling(names, false)
		stopped := ""
		for _, name := range names {
			if stopped != "" {
				fmt.Fprintf(w, "ERR %s not restarted: the roll stopped at %s\n", name, stopped)
				continue
			}
			one, b := r, bytes.Buffer{}
			one.name, one.nowait = name, false
			d.restart(&b, one)
			d.mgr.Rolling([]string{name}, false)
			line := b.String()
			if !strings.HasPrefix(line, "OK restarted ") && !strings.HasPrefix(line, "OK started ") {
				stopped = name
			}
			io.WriteString(w, strings.TrimPrefix(line, "OK "))
		}
	}
}

// viewSamples answers SAMPLES: while the client is connected, a sample
// of every running job every jobs.ViewInterval, and the daemon samples
// them only while at least one such client is (protocol.md, SAMPLES).
func (d *daemon) viewSamples(c net.Conn, r request) {
	feed, err := d.mgr.ViewSamples()
	if err != nil {
		var b bytes.Buffer
		d.writeError(&b, "", err)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.Write(b.Bytes())
		return
	}
	defer feed.Close()
	gone := make(chan struct{})
	defer whenGone(c, func() { close(gone) })()
	w := bufio.NewWriterSize(c, streamWriteBuffer)
	fmt.Fprintf(w, "OK sampling every running job every %v\n", jobs.ViewInterval)
	for {
		// A viewer too slow to take a batch in writeTimeout is dropped;
		// no deadline is left armed while nothing is written.
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if w.Flush() != nil {
			return
		}
		c.SetWriteDeadline(time.Time{})
		select {
		case batch, ok := <-feed.Samples():
			if !ok {
				return
			}
			slices.SortFunc(batch, func(a, b jobs.Sample) int { return strings.Compare(a.Job, b.Job) })
			for _, s := range batch {
				if r.json {
					writeJSON(w, viewSampleJSON(s))
				} else {
					fmt.Fprintln(w, viewSampleLine(s))
				}
			}
		case <-gone:
			return
		}
	}
}

// whyRuns is how many runs WHY shows; whyLook how many it looks through
// for the last failed one.
const (
	whyRuns = 5
	whyLook = 50
)

// why answers WHY NAME: the job's state and why, its last runs, which keys
// changed between their definitions, and the last lines of its last
// failed run (render.go, whyOf).
func (d *daemon) why(w io.Writer, r request) {
	dt, err := d.mgr.Job(r.name)
	if err != nil {
		d.writeError(w, r.name, err)
		return
	}
	runs, err := d.store.Runs(context.Background(), r.name, whyLook)
	if err != nil {
		d.writeError(w, r.name, err)
		return
	}
	var hashes []string
	for _, run := range runs[:min(len(runs), whyRuns)] {
		if run.ConfigHash != "" {
			hashes = append(hashes, run.ConfigHash)
		}
	}
	defs, err := d.store.Definitions(context.Background(), hashes)
	if err != nil {
		d.writeError(w, r.name, err)
		return
	}
	if dt.Job != nil && dt.Job.KeyDigests != "" {
		var keys map[string]string
		if json.Unmarshal([]byte(dt.Job.KeyDigests), &keys) == nil {
			defs[dt.Job.Hash] = keys // the definition in force, perhaps never started
		}
	}
	y := whyOf(dt, runs, defs)
	fmt.Fprintf(w, "OK %s %s\n", r.name, dt.State)
	if r.json {
		writeJSON(w, y.json())
		return
	}
	y.write(w)
}
