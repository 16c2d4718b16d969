package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	waitMargin    = 5 * time.Second // beyond a WAIT's own timeout, for its answer to come
	dialTimeout   = 2 * time.Second
	launchTimeout = 15 * time.Second // for a launched daemon's socket to answer (it may stop orphans first)
)

// runClient sends the request c holds (RELOAD when no verb was typed)
// and prints the answer, or answers a local verb itself. Only RELOAD
// launches a daemon when none answers. protocol.md is the contract.
func runClient(opts options, c call, stdout, stderr io.Writer) int {
	// The answer's lines go to stdout through a buffer (a write(2) a line
	// was a third of the client's own time with 100 jobs, most of it at
	// 5000), written out whenever no whole line from the daemon is waiting
	// (a stream's lines are not held back), before anything goes to
	// stderr, and at the end.
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	fail := func(code int, format string, a ...any) int {
		out.Flush()
		fmt.Fprintf(stderr, "overseer: "+format+"\n", a...)
		return code
	}
	if c.v.local {
		return runLocal(opts, c, stdout, stderr)
	}
	// The request was made and checked from the verb's entry in the table
	// (protocol.go): a mistyped verb is a usage error, with or without a
	// daemon.
	req, request := c.r, c.wire()
	v := findVerb(req.verb)
	// A stream (EVENTS, LOGS -f) goes on until we are told to stop.
	timeout, follow := opts.timeout, false
	if v.wait != nil {
		timeout = v.wait(req, timeout)
		follow = timeout == 0
	}

	if code, refused := checkServes(opts, req, stderr); refused {
		return code // client_checks.go
	}
	var interrupted atomic.Bool
	dialer := dialBlocking // client_conn.go
	if follow {
		dialer = dial // a signal ends the stream by closing the connection
	}
	conn, err := dialer(opts.socket)
	if err != nil && v.launches && !req.dry && noDaemon(err) {
		if conn, err = launch(opts, stderr); err != nil {
			return fail(exitNoDaemon, "%v", err)
		}
	}
	if errors.As(err, new(*untrustedError)) {
		return fail(exitFailed, "%v", err)
	}
	if err != nil {
		code := exitFailed
		if noDaemon(err) {
			code = exitNoDaemon
		}
		return fail(code, "cannot reach overseerd at %s: %v\nhint: run overseer (no arguments) to start it", tilde(opts.socket), describeDialError(err))
	}
	defer conn.Close()

	if follow {
		// Following ends when we are told to stop: close the connection
		// and leave cleanly.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		stopped := make(chan struct{})
		defer close(stopped)
		go func() {
			select {
			case <-sig:
				interrupted.Store(true)
				conn.Close()
			case <-stopped:
			}
		}()
	} else {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	// A daemon may answer (ERR) and hang up before reading the request:
	// then the write fails, and the answer is the one to show.
	_, sendErr := io.WriteString(conn, request+"\n")
	r := bufio.NewReader(conn)
	first, err := r.ReadString('\n')
	if err != nil {
		switch {
		case wentAway(err) && !interrupted.Load():
			return fail(exitNoDaemon, "%v", errWentAway)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The request may not even have gone (-timeout 1ns).
			return fail(exitFailed, "no answer from overseerd within %v (-timeout)", timeout)
		case sendErr != nil:
			return fail(exitFailed, "send request: %v", sendErr)
		}
		return fail(exitFailed, "read answer: %v", err)
	}
	if msg, ok := strings.CutPrefix(first, "ERR "); ok || first == "ERR\n" {
		if stopping(v, msg) {
			return fail(exitNoDaemon, "%v", errWentAway) // client_checks.go
		}
		if c.v.name == "LOGS" && len(c.args.words) == 0 && msg == "no job matches \"*\"\n" {
			// overseer logs, every job's, when there is none: as status.
			if newDisplay(opts, c.args.json, stdout).human {
				fmt.Fprintln(stdout, "no jobs")
			}
			return exitOK
		}
		return fail(exitFailed, "%s%s", lowerVerb(req.verb, strings.TrimRight(msg, "\n")), allHint(req, msg))
	}
	// The answer, not the protocol: see output.go.
	answer := newPrintAnswer(out, stderr, v, req, newDisplay(opts, c.args.json, stdout), follow)
	defer answer.end()
	answer.ok(first)
	failed := false
	for {
		if b, _ := r.Peek(r.Buffered()); bytes.IndexByte(b, '\n') < 0 {
			out.Flush() // the next read waits for the daemon
		}
		line, err := r.ReadString('\n')
		if follow && line == logsClosedLine+"\n" {
			out.Flush()
			fmt.Fprintf(stderr, "overseer: %s\n", strings.Trim(logsClosedLine, "- ")) // log closed: the job is gone
			break
		}
		answer.line(line)
		if c.args.json {
			failed = failed || v.failsJSON != nil && v.failsJSON(line)
		} else {
			failed = failed || v.fails != "" && strings.HasPrefix(line, v.fails)
		}
		if err != nil {
			switch {
			case interrupted.Load():
			case follow || !errors.Is(err, io.EOF) && wentAway(err):
				return fail(exitNoDaemon, "%v", errWentAway) // a stream ends by our leave or logsClosedLine
			case !errors.Is(err, io.EOF):
				return fail(exitFailed, "read answer: %v", err)
			}
			break
		}
	}
	if failed {
		return exitFailed
	}
	return exitOK
}

// dial connects to the daemon. A full listen queue (many clients at once)
// makes connect fail at once with EAGAIN: try again until dialTimeout.
// Whoever listens on the socket path answers for overseerd: we trust only
// a daemon of our own user, or root's.
func dial(socket string) (net.Conn, error) {
	deadline := time.Now().Add(dialTimeout)
	for {
		c, err := net.DialTimeout("unix", socket, dialTimeout)
		if err == nil {
			uid, err := peerUID(c.(*net.UnixConn))
			if !trusted(uid, err) {
				c.Close()
				return nil, &untrustedError{socket: socket, uid: uid, err: err}
			}
			return c, nil
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// trusted says whether a daemon whose socket's peer is uid (as the
// kernel says, or err) may be ours: our own user's, or root's.
func trusted(uid int, err error) bool {
	return err == nil && (uid == os.Getuid() || uid == 0)
}

// untrustedError says the process listening on the socket is not one we
// trust to be our overseerd.
type untrustedError struct {
	socket string
	uid    int
	err    error
}

func (e *untrustedError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("cannot tell who listens on %s: %v", tilde(e.socket), e.err)
	}
	return fmt.Sprintf("the process listening on %s runs as uid %d, not as you (uid %d) or root: its answers are not trusted\nhint: another user could write where the socket is; use a private data dir (chmod 700) or -socket", tilde(e.socket), e.uid, os.Getuid())
}

// noDaemon reports whether a dial error means no daemon listens: no socket
// file, or a stale one nobody accepts on.
func noDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

func describeDialError(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// launch starts overseerd detached (its own session, output appended to
// DATA-DIR/overseerd.log) and waits, bounded, until its socket answers.
// A stale socket file is left for the daemon, which removes it once it
// holds the lock, so a live socket is never removed by a racing client.
// Until it listens, the daemon writes why it could not start to a pipe of
// ours (-report-fd), which works when its log cannot be written.
func launch(opts options, stderr io.Writer) (net.Conn, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	if err := checkPrivate(opts.dataDir, true); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	// O_NOFOLLOW, and the checks on what we opened: a link or a file
	// planted here must not make us append elsewhere.
	logPath := filepath.Join(opts.dataDir, "overseerd.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, symlinkError(logPath)
	}
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	defer logf.Close()
	fi, err := logf.Stat()
	if err == nil {
		err = checkInfo(logPath, fi)
	}
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	defer reportR.Close()
	closeOnExec() // descriptors our caller left us are not the daemon's
	cmd := &exec.Cmd{
		Path: exe,
		// argv[0] overseerd selects daemon mode, as the symlink would.
		Args:        []string{"overseerd", "-await-reload", "-report-fd", "3", "-config-dir", opts.configDir, "-data-dir", opts.dataDir, "-socket", opts.socket},
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{reportW}, // fd 3
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	reportW.Close() // the daemon's copy is the one left: EOF when it listens or exits
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	reported := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(reportR, 4096))
		reported <- strings.TrimSpace(string(b))
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// why is what the daemon we launched said when it exited, if it did.
	why := ""
	deadline := time.Now().Add(launchTimeout)
	for {
		conn, err := dial(opts.socket)
		if err == nil {
			// Ours answered, not one another client launched at the same
			// moment: the kernel says who listens.
			if pid, err := peerPID(conn.(*net.UnixConn)); err == nil && pid == cmd.Process.Pid {
				fmt.Fprintf(stderr, "overseer: launched overseerd (pid %d), its log is %s\n", cmd.Process.Pid, tilde(logPath))
			}
			return conn, nil
		}
		if !noDaemon(err) {
			return nil, err
		}
		select {
		case err := <-exited:
			exited = nil
			why = <-reported
			if why == "" {
				why = fmt.Sprintf("%v; see %s", err, tilde(logPath))
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitHeld {
				return nil, fmt.Errorf("overseerd exited at start: %s", why)
			}
			// It lost the race to a daemon another client launched at the
			// same moment, which holds the lock: wait for that one to answer.
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			if why != "" {
				return nil, fmt.Errorf("overseerd did not answer on %s within %v: %s\nhint: if its socket file was removed, kill -HUP that overseerd to make it listen again", tilde(opts.socket), launchTimeout, why)
			}
			return nil, fmt.Errorf("overseerd did not answer on %s within %v; see %s", tilde(opts.socket), launchTimeout, tilde(logPath))
		}
	}
}

// allHint is a hint for the error msg when it is that no job is named
// "all", which people coming from other tools try: the glob '*' is the way.
func allHint(r request, msg string) string {
	if !strings.EqualFold(r.name, "all") || !strings.HasPrefix(msg, "no job named") {
		return ""
	}
	return fmt.Sprintf("\nhint: '*' names every job: overseer %s '*'", strings.ToLower(r.verb))
}

// runLocal answers the verbs the client answers itself: help, completion,
// install and uninstall.
func runLocal(opts options, c call, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintf(stderr, "overseer: usage: overseer %s\n", syntax(c.v))
		return exitUsage
	}
	switch c.v.name {
	case "HELP":
		switch {
		case len(c.args.words) == 0:
			writeUsage(stdout, "overseer")
		case len(c.args.words) > 1:
			return usage()
		case findCommand(c.args.words[0]) == nil:
			fmt.Fprintf(stderr, "overseer: help: %v\n", clientUnknownVerb(c.args.words[0], newFlagSet("overseer", new(options))))
			return exitUsage
		default:
			writeVerbUsage(stdout, findCommand(c.args.words[0]))
		}
		return exitOK
	case "COMPLETION":
		if len(c.args.words) != 1 {
			return usage()
		}
		return runCompletion(c.args.words[0], stdout, stderr)
	case "EXPORT":
		a, err := exportCall(c.args)
		if err != nil {
			fmt.Fprintf(stderr, "overseer: export: %v\n", err)
			return exitUsage
		}
		return runExport(opts, a, stdout, stderr)
	case "TOP":
		return runTop(opts, c, stdout, stderr)
	case "PATH":
		return runPath(opts, c.args.words, stdout, stderr)
	}
	if len(c.args.words) > 0 {
		return usage()
	}
	return runService(opts, strings.ToLower(c.v.name), c.args.dry, c.args.user, stdout, stderr)
}

// runPath prints the paths the client and the daemon it would launch use
// (README, The database): one of them, as it is, so that
// sqlite3 "$(overseer path db)" works; without a word, each after its label.
func runPath(opts options, words []string, stdout, stderr io.Writer) int {
	paths := []struct{ name, path string }{
		{"db", filepath.Join(opts.dataDir, "overseer.db")},
		{"socket", opts.socket},
		{"logs", filepath.Join(opts.dataDir, "logs")},
		{"config", opts.configDir},
	}
	switch len(words) {
	case 0:
		for _, p := range paths {
			fmt.Fprintf(stdout, "%s: %s\n", p.name, p.path)
		}
		return exitOK
	case 1:
		for _, p := range paths {
			if strings.EqualFold(words[0], p.name) {
				fmt.Fprintln(stdout, p.path)
				return exitOK
			}
		}
		fmt.Fprintf(stderr, "overseer: path: no path named %q\nhint: overseer path db, socket, logs or config\n", words[0])
		return exitUsage
	}
	fmt.Fprintf(stderr, "overseer: usage: overseer path [db|socket|logs|config]\n")
	return exitUsage
}

// rejectedJSON says whether a RELOAD JSON answer line tells of a rejected
// file (protocol.md, JSON answers: counts.rejected, or for DRY
// counts.reject).
func rejectedJSON(line string) bool {
	var answer struct {
		Counts map[string]int `json:"counts"`
	}
	return json.Unmarshal([]byte(line), &answer) == nil && answer.Counts["rejected"]+answer.Counts["reject"] > 0
}
