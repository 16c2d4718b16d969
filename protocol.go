package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"overseer/jobs"
)

const (
	maxRequest   = 4096             // bytes in a request line, newline included
	readTimeout  = 5 * time.Second  // for the request line
	writeTimeout = 30 * time.Second // for the whole answer
)

// maxStreams bounds the EVENTS, LOGS FOLLOW and WAIT clients served at
// once: each holds a queue, buffers and two goroutines (about 20 KiB when
// it stalls), and the daemon must not grow without bound for clients that
// do not read. protocol.md (Answers) documents it.
const maxStreams = 256

// enterStream admits one more streaming client, or says false when
// maxStreams are being served.
func (d *daemon) enterStream() bool {
	d.streamsMu.Lock()
	defer d.streamsMu.Unlock()
	if d.streams >= maxStreams {
		return false
	}
	d.streams++
	d.peak = max(d.peak, d.streams)
	return true
}

// leaveStream counts a streaming client gone. Once many have left, it
// gives their memory back to the system at once: the runtime would keep
// it for minutes. Only on this event, never on a timer.
func (d *daemon) leaveStream() {
	d.streamsMu.Lock()
	defer d.streamsMu.Unlock()
	d.streams--
	if d.peak-d.streams >= freeAfterStreams && d.streams <= d.peak/2 {
		d.peak = d.streams
		d.running.Go(debug.FreeOSMemory)
	}
}

// freeAfterStreams is how many streaming clients must have left before
// their memory is handed back (a forced GC costs a few milliseconds).
const freeAfterStreams = 32

// streamWriteBuffer is the size of a streaming answer's buffer: lines are
// flushed as they come, so a small one costs a stalled client little.
const streamWriteBuffer = 1 << 10

// whenGone calls gone once the client leaves (or half-closes, as nc -N
// does): a streaming client sends nothing more after its request. The end
// it returns, once the answer is written, stops the reading (gone is then
// called if it was not) and waits for it: the reader never outlives the
// request.
func whenGone(c net.Conn, gone func()) (end func()) {
	c.SetReadDeadline(time.Time{})
	var reader sync.WaitGroup
	reader.Go(func() {
		awaitGone(c)
		gone()
	})
	return func() {
		c.SetReadDeadline(time.Now()) // the pending read fails at once
		reader.Wait()
	}
}

// awaitGone reads what the client sends until it leaves, or a read fails.
// Its buffer is small, unlike io.Copy's, since thousands may wait here.
func awaitGone(c net.Conn) {
	var b [64]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// serve answers one request; protocol.md is the contract.
func (d *daemon) serve(c net.Conn) {
	defer c.Close()
	// Only our own user: the socket's modes say so too, but they can be
	// loosened by mistake; the kernel's word on the peer cannot.
	if uid, err := peerUID(c.(*net.UnixConn)); err != nil || uid != os.Getuid() {
		d.log.Warn("refused a connection from another user", "uid", uid, "err", err)
		c.SetDeadline(time.Now().Add(writeTimeout))
		fmt.Fprintf(c, "ERR permission denied: this overseerd serves only uid %d\n", os.Getuid())
		drain(c)
		return
	}
	line, err := readRequest(c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		fmt.Fprintf(c, "ERR no request line within %v\n", readTimeout)
		return
	case errors.Is(err, io.EOF):
		return // connected and said nothing
	case err != nil:
		fmt.Fprintf(c, "ERR %v\n", err)
		drain(c)
		return
	}
	// An answer may take long to make (a STOP waits out STOP_TIMEOUT, a
	// RELOAD its TESTs); only writing it is bounded.
	r, err := parseRequest(line)
	if err == nil && r.tied {
		// The kernel's word on who asked: a pid in the request is never trusted.
		if r.peerPid, err = peerPID(c.(*net.UnixConn)); err != nil {
			d.log.Warn("read the peer's pid", "err", err)
			err = fmt.Errorf("SPAWN: TIED: cannot tell which process asked: %v", err)
		}
	}
	if err != nil {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		fmt.Fprintf(c, "ERR %v\n", err)
		return
	}
	v := findVerb(r.verb)
	if v.big && (v.serves == nil || !v.serves(r)) {
		d.enterBig()
		size := 0
		defer func() { d.leaveBig(size) }()
		var b bytes.Buffer
		v.answer(d, &b, r)
		size = b.Cap()
		writeAnswer(c, b.Bytes())
		return
	}
	if v.serve != nil && (v.serves == nil || v.serves(r)) {
		if v.stream != nil && v.stream(d, r) {
			if !d.enterStream() {
				c.SetWriteDeadline(time.Now().Add(writeTimeout))
				fmt.Fprintf(c, "ERR too many streaming clients: %d EVENTS, LOGS FOLLOW and WAIT are served at once; try again later\n", maxStreams)
				return
			}
			defer d.leaveStream()
		}
		v.serve(d, c, r)
		return
	}
	var b bytes.Buffer
	v.answer(d, &b, r)
	if v.changes == changesRecords {
		d.flush() // what the answer tells is in the database
	}
	writeAnswer(c, b.Bytes())
	d.giveBack()
}

// giveBack hands the memory a reload that changed jobs left behind back
// to the system, once: after its answer, so that the answer waits for no
// forced collection, and the collection finds the garbage of the sweep,
// the records' writes and the answer too, not only the reload's (at 5000
// jobs, ~0.8 MB that stayed resident when it ran before them).
func (d *daemon) giveBack() {
	if d.freeAfter.Swap(false) {
		debug.FreeOSMemory()
	}
}

// Reading a request and writing its answer set no deadline when the
// request is there and the answer fits in the socket's buffer, the usual
// case: each deadline is a runtime timer, and arming one wakes the thread
// waiting in epoll to rearm its sleep (netpollBreak), a thread hand-off
// per request that a busy machine (a crash storm) makes wait for a CPU.
// Only a request that is not all there, or an answer the client does not
// read fast enough, waits, bounded by readTimeout and writeTimeout.

// tryRead reads what c has now, without waiting: 0 bytes when nothing.
func tryRead(c net.Conn, b []byte) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, nil
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), b)
		return true // never wait
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// writeAnswer writes b to c: at once when the socket takes it all, else
// the rest within writeTimeout.
func writeAnswer(c net.Conn, b []byte) {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			var werr error
			rc.Write(func(fd uintptr) bool {
				for len(b) > 0 && werr == nil {
					var n int
					n, werr = syscall.Write(int(fd), b)
					if n > 0 {
						b = b[n:]
					}
				}
				return true // never wait
			})
			if werr != nil && werr != syscall.EAGAIN && werr != syscall.EINTR {
				return // the client is gone
			}
		}
	}
	if len(b) > 0 {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.Write(b)
	}
}

// drain reads what the client sent and we did not (bounded in size and
// time) before we hang up, so that it reads our answer rather than a reset
// connection.
func drain(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// readRequest reads one line of at most maxRequest bytes, within
// readTimeout unless it is there already. A last line without its newline
// counts (printf STATUS | nc -U).
func readRequest(c net.Conn) (string, error) {
	var first [maxRequest]byte
	n, err := tryRead(c, first[:])
	if i := bytes.IndexByte(first[:n], '\n'); i >= 0 {
		return strings.TrimRight(string(first[:i]), "\r"), nil
	}
	if err != nil && (!errors.Is(err, io.EOF) || n == 0) {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(readTimeout))
	defer c.SetReadDeadline(time.Time{})
	return readLine(io.MultiReader(bytes.NewReader(first[:n]), c))
}

// readLine reads one line of at most maxRequest bytes from r.
func readLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, maxRequest)
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("request longer than %d bytes", maxRequest)
	case errors.Is(err, io.EOF) && len(line) > 0:
	case err != nil:
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// verb is one verb of the protocol, from its syntax to its answer, on
// both sides of the socket; protocol.md is the contract. Adding a verb
// means an entry in verbs, its handler (handlers.go), its row in
// protocol.md (TestVerbTable checks it) and a test.
type verb struct {
	name string // upper case
	args string // its arguments, for HELP and usage errors: " NAME [N]"
	help string // one line, for HELP

	// parse checks the words after the verb and fills r; line is the
	// whole request (SPAWN's command keeps its spacing). nil: the verb
	// takes no arguments.
	parse func(v *verb, r *request, args []string, line string) error
	// answer writes the answer, sent once it is whole.
	answer func(d *daemon, w io.Writer, r request)
	// serve, for the requests serves selects (nil: every one), writes the
	// answer to the connection itself instead, as it comes: a stream
	// (EVENTS, LOGS FOLLOW) or an answer that waits (WAIT, DIE).
	serve  func(d *daemon, c net.Conn, r request)
	serves func(r request) bool
	// stream says whether serving r holds one of maxStreams (nil: no).
	stream func(d *daemon, r request) bool
	// changes is what the verb changes, and so what its answer waits for.
	changes change
	// big: its answer may be megabytes (a log's last lines, many runs), so
	// it is made and sent in one of maxBigAnswers slots.
	big bool
	// globs: its NAME may be a glob of names (protocol.md, "Many jobs at
	// once"); other verbs refuse one.
	globs bool
	// json: the word JSON right after the verb asks for its answer in
	// JSON (protocol.md, "JSON answers"); other verbs refuse the word.
	json bool

	// The client's side (cli.go, client.go).
	// synopsis is the client's words after the verb and its flags, for
	// help and usage errors: "NAME", "[NAME]"; short says what the verb
	// does, for overseer -h.
	synopsis, short string
	// flags are the client's own flags for the verb, by name, as
	// verbFlagSet (cli.go) defines them, in the order help shows them:
	// "f n stream json".
	flags string
	// cli turns what the client was given (its words and flags) into the
	// request line; nil: the verb and its words, apart by spaces.
	cli func(v *verb, a cliArgs) (string, error)
	// wait is how long the client waits for the answer to r, given
	// -timeout; 0: until it is interrupted (a stream). nil: -timeout.
	wait     func(r request, timeout time.Duration) time.Duration
	launches bool   // with no daemon to answer, the client launches one
	local    bool   // the client answers it itself, from this table
	fails    string // an answer line with this prefix makes the client exit 1
	// failsJSON, for a JSON answer, says whether its line makes the
	// client exit 1, as fails does for text; nil: none does.
	failsJSON func(line string) bool
	// header: the answer's OK line only counts or announces the lines
	// after it (OK 7 jobs, OK following web): the client drops it, or,
	// for a stream, says it on stderr. Else the OK line is the answer (OK
	// started web), printed without "OK ". README.md (Output) documents it.
	header bool
	// human, when a person reads the answer (a terminal), returns what
	// writes its lines to w for them (a table, local times); nil, or a
	// nil result: the lines as they come. output.go holds them.
	human func(r request, d display, w io.Writer) lineSink
}

// change is what a verb changes, and so what its answer waits for.
type change int

const (
	// changesNothing: the verb reads state, or acts on what the store
	// does not record (SIGNAL, DIE); its answer waits for no write.
	changesNothing change = iota
	// changesRecords: the answer tells of changes the store records
	// (RELOAD, SPAWN); it goes once they are committed (flush).
	changesRecords
	// changesHold: the answer promises a STOP hold, or its end, that
	// outlives the daemon (START, STOP, RESTART); the handler waits for it
	// to be saved itself and says ERR when it is not (saved).
	changesHold
)

// verbs is the protocol, in HELP's order.
var verbs = []verb{
	{name: "STATUS", args: " [NAME]", help: "every job: NAME STATE PID FOR RESTARTS LAST [NOTE]; with NAME, that job in detail",
		parse: parseOptionalName, answer: (*daemon).status, globs: true, json: true,
		synopsis: "[NAME]", short: "every job (a table on a terminal), or NAME in detail", flags: "json",
		header: true, human: statusTable},
	{name: "RELOAD", args: " [DRY] [VERBOSE] [NOWAIT]", help: "re-read the config dir and converge; lists what changed, once the jobs it started are ready (DRY: what it would do and why, touching nothing; VERBOSE: unchanged jobs too; NOWAIT: once they are started)",
		parse: parseReload, answer: (*daemon).reloadAndReport, changes: changesRecords, json: true,
		synopsis: "", short: "re-read the config dir and converge (-v: unchanged jobs too)", flags: "v json no-wait",
		cli: reloadRequest, wait: waitReady, launches: true, fails: "rejected ", failsJSON: rejectedJSON},
	{name: "START", args: " NAME [NOWAIT]", help: "start a job (its TEST first), releasing a STOP hold; answer once it is ready (NOWAIT: once started)",
		parse: parseStart, answer: globbed((*daemon).start), changes: changesHold, globs: true, fails: "ERR ",
		synopsis: "NAME", short: "start it (its TEST first), releasing a STOP hold; answer once it is ready", flags: "no-wait",
		cli: startRequest, wait: waitReady},
	{name: "STOP", args: " NAME", help: "stop a job and hold it stopped until START",
		parse: parseName, answer: globbed((*daemon).stop), changes: changesHold, globs: true, fails: "ERR ",
		synopsis: "NAME", short: "stop it and keep it stopped until start, even across restarts"},
	{name: "RESTART", args: " NAME [NOWAIT]", help: "stop a job if it runs, then start it; answer once it is ready (NOWAIT: once started)",
		parse: parseStart, answer: rolled(globbed((*daemon).restart)), changes: changesHold, globs: true, fails: "ERR ",
		synopsis: "NAME", short: "stop it if it runs, then start it; answer once it is ready", flags: "no-wait",
		cli: startRequest, wait: waitReady},
	{name: "SIGNAL", args: " NAME SIG", help: "send SIG (HUP, USR1, ...) to a job's process group",
		parse: parseSignal, answer: globbed((*daemon).signal), globs: true, fails: "ERR ",
		synopsis: "NAME SIG", short: "send SIG (HUP, USR1, 9, ...) to its process group"},
	{name: "LOGS", args: " NAME [N] [stdout|stderr|test] [FOLLOW]", help: "the last N (50) lines of a job's log, or of one stream; FOLLOW: then new lines as they come",
		big: true, parse: parseLogs, answer: (*daemon).logs, globs: true, json: true,
		serve: (*daemon).follow, serves: func(r request) bool { return r.follow }, stream: always,
		synopsis: "[NAME]", short: "its last log lines (-f: then follow them); no NAME: every job's", flags: "f n stream json",
		cli: logsRequest, wait: func(r request, timeout time.Duration) time.Duration {
			if r.follow {
				return 0
			}
			return timeout
		},
		header: true, human: localTimes},
	{name: "HISTORY", args: " [NAME] [N]", help: "the last N (20) runs, newest first: ID JOB PID STARTED ENDED FOR HOW REASON",
		big: true, parse: parseHistory, answer: (*daemon).history, globs: true, json: true,
		synopsis: "[NAME]", short: "its last runs (every job's), newest first", flags: "n json",
		cli: countRequest, header: true, human: historyTable},
	{name: "EVENTS", args: " [NAME]", help: "stream every state change (of NAME): TIME JOB OLD NEW PID REASON, until the client leaves",
		parse: parseOptionalName, serve: (*daemon).events, stream: always, json: true,
		synopsis: "[NAME]", short: "each state change (of NAME) as it happens, until Ctrl-C", flags: "json",
		wait:   func(request, time.Duration) time.Duration { return 0 },
		header: true, human: localTimes},
	{name: "SAMPLES", help: "while connected, a resource sample of every running job every 2s: TIME JOB cpu=% rss= threads= files= procs= pid=; sampling runs only while a client is connected",
		serve: (*daemon).viewSamples, stream: always, json: true,
		short: "every running job's CPU and memory every 2s, until Ctrl-C (what top shows)", flags: "json",
		wait:   func(request, time.Duration) time.Duration { return 0 },
		header: true},
	{name: "WAIT", args: " NAME STATE [TIMEOUT]", help: "answer OK once the job is in STATE (running, stopped, exited, failed, ...), ERR timeout after TIMEOUT (30s)",
		parse: parseWait, serve: (*daemon).wait, globs: true, fails: "ERR ",
		synopsis: "NAME STATE [TIMEOUT]", short: "until NAME is running, stopped, exited, failed, ... (30s)",
		// A WAIT for the state the job is in answers at once: stalled
		// streams never deny such a look.
		stream: func(d *daemon, r request) bool { return !d.already(r) },
		// Its answer may take its whole timeout: -timeout does not cut it.
		wait: func(r request, timeout time.Duration) time.Duration { return max(timeout, r.timeout+waitMargin) }},
	{name: "INSPECT", args: " NAME [N]", help: "a job in detail, as STATUS NAME, and its last N (10) resource samples, newest first",
		big: true, parse: parseInspect, answer: (*daemon).inspect, json: true,
		synopsis: "NAME", short: "NAME in detail, and its last resource samples", flags: "n json",
		cli: countRequest, header: true, human: detailTimes},
	{name: "WHY", args: " NAME", help: "why a job is in its state: its last runs with outcome, duration and reason, the keys changed between their definitions, the last lines of its last failed run",
		parse: parseName, answer: (*daemon).why, json: true,
		synopsis: "NAME", short: "why NAME is in its state: last runs, changed keys, last words of the last failure", flags: "json",
		header: true, human: whyTimes},
	{name: "SPAWN", args: " NAME [TTL] [TIED [PARENT]] -- COMMAND...", help: "start an ephemeral job (no file), forgotten once stopped, its TTL passed or (TIED) the asking process or its PARENT exited",
		parse: parseSpawn, answer: (*daemon).spawn, changes: changesRecords,
		synopsis: "NAME -- COMMAND [ARG...]", short: "an ephemeral job, without a file", flags: "ttl tied",
		cli: spawnRequest},
	{name: "DIE", help: "stop every job and the daemon",
		serve: (*daemon).quit, short: "stop every job and overseerd"},
	{name: "UPGRADE", args: " [BINARY]", help: "re-execute the daemon from BINARY (an absolute path; default: its own, as installed now) in place: same pid, every job running on; OK upgraded overseerd OLD -> NEW",
		parse: parseUpgrade, serve: (*daemon).upgrade, fails: "ERR ",
		synopsis: "", short: "replace overseerd by the installed binary (-binary: another) without stopping a job", flags: "binary",
		cli: upgradeRequest},
	{name: "PING", help: "OK with the daemon's version, pid, cleanup mode, config dir and data dir",
		answer: (*daemon).ping, short: "overseerd's version, pid, config dir and data dir"},
	{name: "HELP", help: "this list",
		answer: (*daemon).help, local: true, header: true,
		synopsis: "[VERB]", short: "this list, or VERB's syntax and flags (as overseer VERB -h)"},
}

// always is a stream for every request of its verb.
func always(*daemon, request) bool { return true }

// findVerb returns the verb named name (upper case), or nil.
func findVerb(name string) *verb {
	for i := range verbs {
		if verbs[i].name == name {
			return &verbs[i]
		}
	}
	return nil
}

// usage is the error for a request whose arguments do not fit v.
func (v *verb) usage() error {
	return fmt.Errorf("%w: %s%s", errUsage, v.name, v.args)
}

// errUsage is what every usage error is: the client shows its own syntax
// in its place.
var errUsage = errors.New("usage")

const (
	defaultLogLines = 50
	defaultHistory  = 20
	defaultSamples  = 10
	maxLines        = 10000 // for LOGS, HISTORY and INSPECT
)

// request is one parsed request line.
type request struct {
	verb    string         // upper case
	json    bool           // JSON: the answer's body in JSON
	name    string         // the job, for verbs that name one
	lines   int            // LOGS, HISTORY, INSPECT: how many
	follow  bool           // LOGS FOLLOW
	stream  string         // LOGS: the stream's name in the log (jobs.StreamOut, ...), or "" for all
	verbose bool           // RELOAD VERBOSE
	dry     bool           // RELOAD DRY
	nowait  bool           // START, RESTART NOWAIT: answer once started, not once ready
	sig     syscall.Signal // SIGNAL
	state   jobs.State     // WAIT
	timeout time.Duration  // WAIT
	// SPAWN
	command    []string      // after " -- ", split as a job file's COMMAND
	ttl        time.Duration // 0: none
	tied       bool          // TIED: to the requesting process
	tiedParent bool          // TIED PARENT: to its parent
	peerPid    int           // the requesting process, from the socket (not the request)
	binary     string        // UPGRADE: the new binary's absolute path; "": the daemon's own
}

// parseRequest parses and checks a request line.
func parseRequest(line string) (request, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return request{}, errors.New("empty request: send a verb such as STATUS (HELP lists them)")
	}
	r := request{verb: strings.ToUpper(fields[0])}
	v := findVerb(r.verb)
	switch {
	case v == nil:
		return request{}, unknownVerb(fields[0], verbNames())
	case len(fields) > 1 && strings.EqualFold(fields[1], "JSON"):
		// The word JSON, right after the verb, is never a job's name:
		// protocol.md ("JSON answers") says how to name a job JSON.
		if !v.json {
			return request{}, noJSON(v)
		}
		r.json, fields = true, slices.Delete(fields, 1, 2)
	}
	switch {
	case v.parse == nil && len(fields) > 1:
		return request{}, fmt.Errorf("%s takes no arguments", r.verb)
	case v.parse == nil:
		return r, nil
	}
	if err := v.parse(v, &r, fields[1:], line); err != nil {
		return request{}, err
	}
	if jobs.IsGlob(r.name) {
		switch p := jobs.GlobProblem(r.name); {
		case !v.globs:
			return request{}, fmt.Errorf("%s takes one job's name, not a glob such as %q", r.verb, clip(r.name))
		case p != "":
			return request{}, fmt.Errorf("%s: bad glob %q: %s", r.verb, clip(r.name), p)
		}
	}
	return r, nil
}

// noJSON is the error for the word JSON after a verb that has no JSON
// answer: it names those that have, and how a job named JSON is written.
func noJSON(v *verb) error {
	var have []string
	for _, w := range verbs {
		if w.json {
			have = append(have, w.name)
		}
	}
	last := len(have) - 1
	err := fmt.Sprintf("%s has no JSON answer: only %s and %s have one", v.name, strings.Join(have[:last], ", "), have[last])
	if v.globs {
		err += "; a job named JSON is written [J]SON"
	}
	return errors.New(err)
}

// verbNames are the names of the protocol's verbs, in HELP's order.
func verbNames() []string {
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	return names
}

// unknownVerb is the error for a verb that is not one of names (upper
// case): it names the nearest, if one is near.
func unknownVerb(word string, names []string) error {
	if near := jobs.Nearest(strings.ToUpper(word), names); near != "" {
		return fmt.Errorf("unknown verb %q: did you mean %s?", clip(word), near)
	}
	return fmt.Errorf("unknown verb %q: HELP lists the verbs", clip(word))
}

// count parses a count of lines, runs or samples for verb.
func count(verb, a string) (int, error) {
	n, err := strconv.Atoi(a)
	if err != nil || n < 0 || n > maxLines {
		return 0, fmt.Errorf("%s: a count must be a number from 0 to %d, not %q", verb, maxLines, clip(a))
	}
	return n, nil
}

// parseOptionalName parses [NAME] (STATUS, EVENTS).
func parseOptionalName(v *verb, r *request, args []string, _ string) error {
	if len(args) > 1 {
		return v.usage()
	}
	if len(args) == 1 {
		r.name = args[0]
	}
	return nil
}

// parseUpgrade parses UPGRADE's optional BINARY: the rest of the line, an
// absolute path (which may hold spaces).
func parseUpgrade(v *verb, r *request, args []string, line string) error {
	if len(args) == 0 {
		return nil
	}
	_, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	r.binary = strings.TrimSpace(rest)
	if !filepath.IsAbs(r.binary) {
		return fmt.Errorf("UPGRADE: BINARY must be an absolute path, not %q", r.binary)
	}
	return nil
}

// parseName parses NAME (START, STOP, RESTART).
func parseName(v *verb, r *request, args []string, _ string) error {
	if len(args) != 1 {
		return v.usage()
	}
	r.name = args[0]
	return nil
}

// parseStart parses START NAME [NOWAIT] and RESTART NAME [NOWAIT].
func parseStart(v *verb, r *request, args []string, _ string) error {
	if len(args) == 2 && strings.EqualFold(args[1], "NOWAIT") {
		r.nowait, args = true, args[:1]
	}
	return parseName(v, r, args, "")
}

// parseReload parses RELOAD [VERBOSE].
func parseReload(v *verb, r *request, args []string, _ string) error {
	if len(args) > 0 && strings.EqualFold(args[0], "DRY") {
		r.dry, args = true, args[1:]
	}
	if len(args) > 0 && strings.EqualFold(args[0], "VERBOSE") {
		r.verbose, args = true, args[1:]
	}
	if len(args) > 0 && strings.EqualFold(args[0], "NOWAIT") && !r.dry {
		r.nowait, args = true, args[1:]
	}
	if len(args) > 0 {
		return v.usage()
	}
	return nil
}

// parseSignal parses SIGNAL NAME SIG.
func parseSignal(v *verb, r *request, args []string, _ string) error {
	if len(args) != 2 {
		return v.usage()
	}
	r.name = args[0]
	if r.sig = parseSig(args[1]); r.sig == 0 {
		if _, err := strconv.Atoi(args[1]); err == nil {
			return fmt.Errorf("SIGNAL: no signal has the number %s here: use a name such as HUP, USR1 or TERM, or a number kill -l lists", clip(args[1]))
		}
		return fmt.Errorf("SIGNAL: unknown signal %q: use a name such as HUP, USR1 or TERM", clip(args[1]))
	}
	return nil
}

// parseSig reads a signal by name (HUP, SIGHUP, any case) or by number
// (9): a number only if this system names its signal, as kill -l does.
// 0: none.
func parseSig(word string) syscall.Signal {
	n, err := strconv.Atoi(word)
	if err != nil {
		return jobs.ParseSignal(word)
	}
	if sig := syscall.Signal(n); n > 0 && jobs.ParseSignal(jobs.SignalName(sig)) == sig {
		return sig
	}
	return 0
}

// parseInspect parses INSPECT NAME [N].
func parseInspect(v *verb, r *request, args []string, _ string) error {
	if len(args) == 0 || len(args) > 2 {
		return v.usage()
	}
	r.name, r.lines = args[0], defaultSamples
	if len(args) == 2 {
		n, err := count(r.verb, args[1])
		if err != nil {
			return err
		}
		r.lines = n
	}
	return nil
}

// parseLogs parses LOGS NAME [N] [stdout|stderr|test] [FOLLOW], the words
// after NAME in any order.
func parseLogs(v *verb, r *request, args []string, _ string) error {
	if len(args) == 0 || len(args) > 4 {
		return v.usage()
	}
	r.name, r.lines = args[0], defaultLogLines
	seenN := false
	for _, a := range args[1:] {
		stream, isStream := logStream(a)
		switch {
		case strings.EqualFold(a, "FOLLOW"):
			if r.follow {
				return v.usage()
			}
			r.follow = true
		case isStream:
			if r.stream != "" {
				return v.usage()
			}
			r.stream = stream
		case seenN:
			return v.usage()
		case strings.ContainsFunc(a, unicode.IsLetter):
			return fmt.Errorf("LOGS: %q is not a count (0 to %d), a stream (stdout, stderr, test) or FOLLOW", clip(a), maxLines)
		default:
			n, err := count(r.verb, a)
			if err != nil {
				return err
			}
			r.lines, seenN = n, true
		}
	}
	return nil
}

// parseHistory parses HISTORY [NAME] [N].
func parseHistory(v *verb, r *request, args []string, _ string) error {
	if len(args) > 2 {
		return v.usage()
	}
	r.lines = defaultHistory
	if len(args) == 2 {
		r.name = args[0]
		n, err := count(r.verb, args[1])
		if err != nil {
			return err
		}
		r.lines = n
	} else if len(args) == 1 {
		// One argument: a count if it is a number, else a job. (A job
		// named by digits alone needs the count too: HISTORY 42 20.)
		if strings.Trim(args[0], "0123456789") != "" {
			r.name = args[0]
		} else {
			n, err := count(r.verb, args[0])
			if err != nil {
				return err
			}
			r.lines = n
		}
	}
	return nil
}

// parseWait parses WAIT NAME STATE [TIMEOUT].
func parseWait(v *verb, r *request, args []string, _ string) error {
	if len(args) < 2 || len(args) > 3 {
		return v.usage()
	}
	r.name, r.timeout = args[0], defaultWait
	r.state = jobs.State(strings.ToLower(args[1]))
	if !waitStates[r.state] {
		return fmt.Errorf("WAIT: unknown state %q: use running, stopped, exited or failed (or starting, waiting, backoff, stopping, skipped)", clip(args[1]))
	}
	if len(args) == 3 {
		t, err := time.ParseDuration(args[2])
		if err != nil || t < 0 || t > maxWait {
			return fmt.Errorf("WAIT: a timeout must be a duration from 0s to 24h such as 10s or 2m, not %q", clip(args[2]))
		}
		r.timeout = t
	}
	return nil
}

// WAIT's timeouts: protocol.md (WAIT) documents them.
const (
	defaultWait = 30 * time.Second
	maxWait     = 24 * time.Hour
)

// waitStates are the states WAIT accepts: those a job with a definition
// can be in. Each means the STATUS state of the same name.
var waitStates = map[jobs.State]bool{
	jobs.Running: true, jobs.Stopped: true, jobs.Exited: true, jobs.Failed: true,
	jobs.Starting: true, jobs.Backoff: true, jobs.Stopping: true, jobs.Skipped: true, jobs.Waiting: true,
}

// logStream returns the stream name the log uses for a LOGS argument
// (stdout, stderr, test; any case), and whether word is one.
func logStream(word string) (string, bool) {
	switch strings.ToLower(word) {
	case "stdout":
		return jobs.StreamOut, true
	case "stderr":
		return jobs.StreamErr, true
	case "test":
		return jobs.StreamTest, true
	}
	return "", false
}

// parseSpawn parses SPAWN NAME [TTL] [TIED [PARENT]] -- COMMAND...: the
// command is the rest of the line after the first "--" word.
func parseSpawn(v *verb, r *request, _ []string, line string) error {
	head, cmd, ok := cutDashes(line)
	args := strings.Fields(head)[1:]
	if !ok || len(args) == 0 {
		return v.usage()
	}
	r.name = args[0]
	if p := jobs.NameProblem(r.name); p != "" {
		return fmt.Errorf("SPAWN: invalid job name %q: %s", clip(r.name), p)
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.EqualFold(a, "TIED") && !r.tied:
			r.tied = true
			if i+1 < len(args) && strings.EqualFold(args[i+1], "PARENT") {
				r.tiedParent = true
				i++
			}
		case r.ttl == 0:
			d, err := time.ParseDuration(a)
			if err != nil || d <= 0 {
				return fmt.Errorf("SPAWN: a TTL must be a duration such as 90s or 1h, not %q", clip(a))
			}
			r.ttl = d
		default:
			return v.usage()
		}
	}
	argv, err := jobs.SplitCommand(cmd)
	if err != nil {
		return fmt.Errorf("SPAWN: the command after --: %v", err)
	}
	r.command = argv
	return nil
}

// cutDashes cuts line around its first word "--".
func cutDashes(line string) (head, rest string, found bool) {
	isSpace := func(b byte) bool { return b == ' ' || b == '\t' }
	for i := 0; i < len(line); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		if line[i:j] == "--" {
			return line[:i], line[j:], true
		}
		i = j
	}
	return line, "", false
}

// clip shortens a piece of a request for an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// maxBigAnswers bounds the answers of megabytes (LOGS, HISTORY, INSPECT,
// and LOGS FOLLOW's backlog) made and sent at once: each holds its lines
// (up to 4 MiB of a log) until its client has read them, at most
// writeTimeout, and clients that do not read must not make the daemon
// grow without bound. A request past the bound waits for a slot.
const maxBigAnswers = 4

// freeAfterBig is the answer size after which its memory goes back to
// the system once no big answer is under way: the runtime would keep it.
const freeAfterBig = 1 << 20

// enterBig waits for a slot for an answer of megabytes.
func (d *daemon) enterBig() { d.big <- struct{}{} }

// leaveBig frees the slot of an answer of size bytes; after a large one,
// and with none other under way, it gives the memory back (on this
// event only, never on a timer).
func (d *daemon) leaveBig(size int) {
	<-d.big
	if size >= freeAfterBig && len(d.big) == 0 {
		debug.FreeOSMemory()
	}
}
