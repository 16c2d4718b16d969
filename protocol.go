package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
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
		go debug.FreeOSMemory()
	}
}

// freeAfterStreams is how many streaming clients must have left before
// their memory is handed back (a forced GC costs a few milliseconds).
const freeAfterStreams = 32

// streamWriteBuffer is the size of a streaming answer's buffer: lines are
// flushed as they come, so a small one costs a stalled client little.
const streamWriteBuffer = 1 << 10

// awaitGone reads what the client sends until it leaves (or half-closes,
// as nc -N does): a streaming client sends nothing more after its request.
// Its buffer is small, unlike io.Copy's, since thousands may wait here.
func awaitGone(c net.Conn) {
	c.SetReadDeadline(time.Time{})
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
	c.SetDeadline(time.Now().Add(writeTimeout))
	// Only our own user: the socket's modes say so too, but they can be
	// loosened by mistake; the kernel's word on the peer cannot.
	if uid, err := peerUID(c.(*net.UnixConn)); err != nil || uid != os.Getuid() {
		d.log.Warn("refused a connection from another user", "uid", uid, "err", err)
		fmt.Fprintf(c, "ERR permission denied: this overseerd serves only uid %d\n", os.Getuid())
		drain(c)
		return
	}
	c.SetReadDeadline(time.Now().Add(readTimeout))
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
	c.SetDeadline(time.Time{})
	r, err := parseRequest(line)
	if err == nil && r.tied {
		// The kernel's word on who asked: a pid in the request is never trusted.
		if r.peerPid, err = peerPID(c.(*net.UnixConn)); err != nil {
			d.log.Warn("read the peer's pid", "err", err)
			err = fmt.Errorf("SPAWN: TIED: cannot tell which process asked: %v", err)
		}
	}
	if err == nil && r.verb == "WAIT" && d.already(r) {
		d.wait(c, r) // answers at once: no stream to count
		return
	}
	if err == nil && (r.follow || r.verb == "EVENTS" || r.verb == "WAIT") {
		if !d.enterStream() {
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			fmt.Fprintf(c, "ERR too many streaming clients: %d EVENTS, LOGS FOLLOW and WAIT are served at once; try again later\n", maxStreams)
			return
		}
		defer d.leaveStream()
		switch {
		case r.follow:
			d.follow(c, r)
		case r.verb == "EVENTS":
			d.events(c, r)
		default:
			d.wait(c, r)
		}
		return
	}
	var b bytes.Buffer
	if err != nil {
		fmt.Fprintf(&b, "ERR %v\n", err)
	} else {
		d.answer(&b, r)
		if changes[r.verb] {
			d.flush() // what the answer tells is in the database
		}
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.Write(b.Bytes())
	if r.verb == "DIE" && err == nil {
		// The answer waits until every job is gone.
		<-d.dead
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		fmt.Fprintf(c, "OK overseerd stopped\n")
	}
}

// drain reads what the client sent and we did not (bounded in size and
// time) before we hang up, so that it reads our answer rather than a reset
// connection.
func drain(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// readRequest reads one line of at most maxRequest bytes. A last line
// without its newline counts (printf STATUS | nc -U).
func readRequest(r io.Reader) (string, error) {
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

// verbs lists the verbs with their arguments, for HELP; protocol.md is the contract.
var verbs = []struct{ name, args, help string }{
	{"STATUS", " [NAME]", "every job: NAME STATE PID FOR RESTARTS LAST [NOTE]; with NAME, that job in detail"},
	{"RELOAD", " [VERBOSE]", "re-read the config dir and converge; lists what changed (VERBOSE: unchanged jobs too)"},
	{"START", " NAME", "start a job (its TEST first), releasing a STOP hold"},
	{"STOP", " NAME", "stop a job and hold it stopped until START"},
	{"RESTART", " NAME", "stop a job if it runs, then start it"},
	{"SIGNAL", " NAME SIG", "send SIG (HUP, USR1, ...) to a job's process group"},
	{"LOGS", " NAME [N] [stdout|stderr|test] [FOLLOW]", "the last N (50) lines of a job's log, or of one stream; FOLLOW: then new lines as they come"},
	{"HISTORY", " [NAME] [N]", "the last N (20) runs, newest first: ID JOB PID STARTED ENDED FOR HOW REASON"},
	{"EVENTS", " [NAME]", "stream every state change (of NAME): TIME JOB OLD NEW PID REASON, until the client leaves"},
	{"WAIT", " NAME STATE [TIMEOUT]", "answer OK once the job is in STATE (running, stopped, exited, failed, ...), ERR timeout after TIMEOUT (30s)"},
	{"INSPECT", " NAME [N]", "a job in detail, as STATUS NAME, and its last N (10) resource samples, newest first"},
	{"SPAWN", " NAME [TTL] [TIED [PARENT]] -- COMMAND...", "start an ephemeral job (no file), forgotten once stopped, its TTL passed or (TIED) the asking process or its PARENT exited"},
	{"DIE", "", "stop every job and the daemon"},
	{"PING", "", "OK with the daemon's version and pid"},
	{"HELP", "", "this list"},
}

const (
	defaultLogLines = 50
	defaultHistory  = 20
	defaultSamples  = 10
	maxLines        = 10000 // for LOGS, HISTORY and INSPECT
)

// request is one parsed request line.
type request struct {
	verb    string         // upper case
	name    string         // the job, for verbs that name one
	lines   int            // LOGS, HISTORY, INSPECT: how many
	follow  bool           // LOGS FOLLOW
	stream  string         // LOGS: the stream's name in the log (jobs.StreamOut, ...), or "" for all
	verbose bool           // RELOAD VERBOSE
	sig     syscall.Signal // SIGNAL
	state   jobs.State     // WAIT
	timeout time.Duration  // WAIT
	// SPAWN
	command    []string      // after " -- ", split as a job file's COMMAND
	ttl        time.Duration // 0: none
	tied       bool          // TIED: to the requesting process
	tiedParent bool          // TIED PARENT: to its parent
	peerPid    int           // the requesting process, from the socket (not the request)
}

// parseRequest parses and checks a request line.
func parseRequest(line string) (request, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return request{}, errors.New("empty request: send a verb such as STATUS (HELP lists them)")
	}
	r := request{verb: strings.ToUpper(fields[0])}
	args := fields[1:]
	usage := func() error {
		for _, v := range verbs {
			if v.name == r.verb {
				return fmt.Errorf("usage: %s%s", v.name, v.args)
			}
		}
		return nil
	}
	count := func(a string) (int, error) {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 || n > maxLines {
			return 0, fmt.Errorf("%s: a count must be a number from 0 to %d, not %q", r.verb, maxLines, clip(a))
		}
		return n, nil
	}
	switch r.verb {
	case "DIE", "PING", "HELP":
		if len(args) > 0 {
			return request{}, fmt.Errorf("%s takes no arguments", r.verb)
		}
	case "STATUS":
		if len(args) > 1 {
			return request{}, usage()
		}
		if len(args) == 1 {
			r.name = args[0]
		}
	case "RELOAD":
		if len(args) > 1 || len(args) == 1 && !strings.EqualFold(args[0], "VERBOSE") {
			return request{}, usage()
		}
		r.verbose = len(args) == 1
	case "START", "STOP", "RESTART":
		if len(args) != 1 {
			return request{}, usage()
		}
		r.name = args[0]
	case "SIGNAL":
		if len(args) != 2 {
			return request{}, usage()
		}
		r.name = args[0]
		if r.sig = jobs.ParseSignal(args[1]); r.sig == 0 {
			return request{}, fmt.Errorf("SIGNAL: unknown signal %q: use a name such as HUP, USR1 or TERM", clip(args[1]))
		}
	case "INSPECT":
		if len(args) == 0 || len(args) > 2 {
			return request{}, usage()
		}
		r.name, r.lines = args[0], defaultSamples
		if len(args) == 2 {
			n, err := count(args[1])
			if err != nil {
				return request{}, err
			}
			r.lines = n
		}
	case "LOGS":
		if len(args) == 0 || len(args) > 4 {
			return request{}, usage()
		}
		r.name, r.lines = args[0], defaultLogLines
		seenN := false
		for _, a := range args[1:] {
			stream, isStream := logStream(a)
			switch {
			case strings.EqualFold(a, "FOLLOW"):
				if r.follow {
					return request{}, usage()
				}
				r.follow = true
			case isStream:
				if r.stream != "" {
					return request{}, usage()
				}
				r.stream = stream
			case seenN:
				return request{}, usage()
			case strings.ContainsFunc(a, unicode.IsLetter):
				return request{}, fmt.Errorf("LOGS: %q is not a count (0 to %d), a stream (stdout, stderr, test) or FOLLOW", clip(a), maxLines)
			default:
				n, err := count(a)
				if err != nil {
					return request{}, err
				}
				r.lines, seenN = n, true
			}
		}
	case "HISTORY":
		if len(args) > 2 {
			return request{}, usage()
		}
		r.lines = defaultHistory
		if len(args) == 2 {
			r.name = args[0]
			n, err := count(args[1])
			if err != nil {
				return request{}, err
			}
			r.lines = n
		} else if len(args) == 1 {
			// One argument: a count if it is a number, else a job. (A job
			// named by digits alone needs the count too: HISTORY 42 20.)
			if strings.Trim(args[0], "0123456789") != "" {
				r.name = args[0]
			} else {
				n, err := count(args[0])
				if err != nil {
					return request{}, err
				}
				r.lines = n
			}
		}
	case "EVENTS":
		if len(args) > 1 {
			return request{}, usage()
		}
		if len(args) == 1 {
			r.name = args[0]
		}
	case "WAIT":
		if len(args) < 2 || len(args) > 3 {
			return request{}, usage()
		}
		r.name, r.timeout = args[0], defaultWait
		r.state = jobs.State(strings.ToLower(args[1]))
		if !waitStates[r.state] {
			return request{}, fmt.Errorf("WAIT: unknown state %q: use running, stopped, exited or failed (or starting, backoff, stopping, skipped)", clip(args[1]))
		}
		if len(args) == 3 {
			t, err := time.ParseDuration(args[2])
			if err != nil || t < 0 || t > maxWait {
				return request{}, fmt.Errorf("WAIT: a timeout must be a duration from 0s to %v such as 10s or 2m, not %q", maxWait, clip(args[2]))
			}
			r.timeout = t
		}
	case "SPAWN":
		return parseSpawn(r, line, usage)
	default:
		return request{}, fmt.Errorf("unknown verb %q: HELP lists the verbs", clip(fields[0]))
	}
	return r, nil
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
	jobs.Starting: true, jobs.Backoff: true, jobs.Stopping: true, jobs.Skipped: true,
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
func parseSpawn(r request, line string, usage func() error) (request, error) {
	head, cmd, ok := cutDashes(line)
	args := strings.Fields(head)[1:]
	if !ok || len(args) == 0 {
		return request{}, usage()
	}
	r.name = args[0]
	if p := jobs.NameProblem(r.name); p != "" {
		return request{}, fmt.Errorf("SPAWN: invalid job name %q: %s", clip(r.name), p)
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
				return request{}, fmt.Errorf("SPAWN: a TTL must be a duration such as 90s or 1h, not %q", clip(a))
			}
			r.ttl = d
		default:
			return request{}, usage()
		}
	}
	argv, err := jobs.SplitCommand(cmd)
	if err != nil {
		return request{}, fmt.Errorf("SPAWN: the command after --: %v", err)
	}
	r.command = argv
	return r, nil
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
