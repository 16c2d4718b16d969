package main

import (
	"bufio"
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

	"overseer/jobs"
)

const (
	waitMargin    = 5 * time.Second // beyond a WAIT's own timeout, for its answer to come
	dialTimeout   = 2 * time.Second
	launchTimeout = 15 * time.Second // for a launched daemon's socket to answer (it may stop orphans first)
)

// runClient sends one request (RELOAD when args is empty) and prints the
// answer. Only RELOAD launches a daemon when none answers. protocol.md is
// the contract.
func runClient(opts options, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"RELOAD"}
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "overseer: "+format+"\n", a...)
		return code
	}
	request, follow := strings.Join(args, " "), false
	if strings.EqualFold(args[0], "RELOAD") && len(args) == 2 && (args[1] == "-v" || args[1] == "--verbose") {
		request = "RELOAD VERBOSE"
	}
	if strings.EqualFold(args[0], "PLAN") && len(args) <= 2 {
		// What a reload would do: RELOAD DRY, which never launches a daemon.
		request = "RELOAD DRY"
		if len(args) == 2 && (args[1] == "-v" || args[1] == "--verbose") {
			request += " VERBOSE"
		} else if len(args) == 2 {
			return fail(exitUsage, "usage: overseer plan [-v]")
		}
	}
	if strings.EqualFold(args[0], "LOGS") {
		var err error
		if request, follow, err = logsRequest(args[1:]); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	if strings.EqualFold(args[0], "SPAWN") {
		var err error
		if request, err = spawnRequest(args[1:]); err != nil {
			return fail(exitUsage, "%v", err)
		}
	}
	// Check the request here too: a mistyped verb is a usage error, with or
	// without a daemon; and HELP needs none.
	req, err := parseRequest(request)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	// EVENTS streams until we are told to stop, as logs -f does.
	follow = follow || req.verb == "EVENTS"
	// WAIT's answer may take its whole timeout: -timeout does not cut it.
	timeout := opts.timeout
	if req.verb == "WAIT" {
		timeout = max(timeout, req.timeout+waitMargin)
	}
	if strings.EqualFold(args[0], "HELP") {
		writeHelp(stdout)
		return exitOK
	}

	var interrupted atomic.Bool
	conn, err := dial(opts.socket)
	if err != nil && strings.EqualFold(args[0], "RELOAD") && noDaemon(err) {
		if conn, err = launch(opts, stderr); err != nil {
			return fail(exitNoDaemon, "%v", err)
		}
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
		case sendErr != nil:
			return fail(exitFailed, "send request: %v", sendErr)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fail(exitFailed, "no answer from overseerd within %v (-timeout)", timeout)
		}
		return fail(exitFailed, "read answer: %v", err)
	}
	if msg, ok := strings.CutPrefix(first, "ERR "); ok || first == "ERR\n" {
		return fail(exitFailed, "%s", strings.TrimRight(msg, "\n"))
	}
	io.WriteString(stdout, first)
	rejected := false
	for {
		line, err := r.ReadString('\n')
		io.WriteString(stdout, line)
		rejected = rejected || strings.HasPrefix(line, "rejected ")
		if err != nil {
			if !errors.Is(err, io.EOF) && !interrupted.Load() {
				return fail(exitFailed, "read answer: %v", err)
			}
			break
		}
	}
	if rejected && strings.EqualFold(args[0], "RELOAD") {
		return exitFailed
	}
	return exitOK
}

// dial connects to the daemon. A full listen queue (many clients at once)
// makes connect fail at once with EAGAIN: try again until dialTimeout.
func dial(socket string) (net.Conn, error) {
	deadline := time.Now().Add(dialTimeout)
	for {
		c, err := net.DialTimeout("unix", socket, dialTimeout)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(5 * time.Millisecond)
	}
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
func launch(opts options, stderr io.Writer) (net.Conn, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	if err := os.MkdirAll(opts.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	logPath := filepath.Join(opts.dataDir, "overseerd.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, io.SeekEnd)
	closeOnExec() // descriptors our caller left us are not the daemon's
	cmd := &exec.Cmd{
		Path: exe,
		// argv[0] overseerd selects daemon mode, as the symlink would.
		Args:        []string{"overseerd", "-await-reload", "-config-dir", opts.configDir, "-data-dir", opts.dataDir, "-socket", opts.socket},
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch overseerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(launchTimeout)
	for {
		conn, err := dial(opts.socket)
		if err == nil {
			if exited != nil { // ours answered, not one another client launched
				fmt.Fprintf(stderr, "overseer: launched overseerd (pid %d), its log is %s\n", cmd.Process.Pid, tilde(logPath))
			}
			return conn, nil
		}
		select {
		case <-exited:
			exited = nil
			// It lost the race to a daemon another client launched at the
			// same moment, which holds the lock: wait for that one to answer.
			if !lockHeld(filepath.Join(opts.dataDir, "overseer.lock")) {
				if conn, err := dial(opts.socket); err == nil {
					return conn, nil
				}
				return nil, fmt.Errorf("overseerd exited at start: %s", lastLine(logPath, logStart))
			}
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("overseerd did not answer on %s within %v; see %s", tilde(opts.socket), launchTimeout, tilde(logPath))
		}
	}
}

// lastLine returns the last line written to path after offset from.
func lastLine(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < from {
		return "see " + tilde(path)
	}
	text := strings.TrimSpace(string(b[from:]))
	if i := strings.LastIndex(text, "overseerd: "); i >= 0 {
		return text[i+len("overseerd: "):]
	}
	return text[strings.LastIndex(text, "\n")+1:]
}

// logsRequest turns the arguments of `overseer logs [-f] [-n N] [-stream
// STREAM] NAME` into the protocol line LOGS NAME [N] [STREAM] [FOLLOW].
// Flags may come before or after the name.
func logsRequest(args []string) (line string, follow bool, err error) {
	usage := errors.New("usage: overseer logs [-f] [-n LINES] [-stream stdout|stderr|test] NAME")
	var name, n, stream string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-f" || a == "--follow" || strings.EqualFold(a, "FOLLOW"):
			follow = true
		case a == "-n" || a == "--lines" || a == "-stream" || a == "--stream":
			if i+1 == len(args) {
				return "", false, usage
			}
			i++
			if strings.HasSuffix(a, "stream") {
				stream = args[i]
			} else {
				n = args[i]
			}
		case strings.HasPrefix(a, "-n="):
			n = a[len("-n="):]
		case strings.HasPrefix(a, "-stream=") || strings.HasPrefix(a, "--stream="):
			_, stream, _ = strings.Cut(a, "=")
		case strings.HasPrefix(a, "-"):
			return "", false, usage
		case name == "":
			name = a
		case stream == "" && isLogStream(a):
			stream = a // the protocol's own form: LOGS NAME stderr
		case n == "":
			n = a // the protocol's own form: LOGS NAME N
		default:
			return "", false, usage
		}
	}
	if name == "" {
		return "", false, usage
	}
	if stream != "" && !isLogStream(stream) {
		return "", false, fmt.Errorf("logs: -stream must be stdout, stderr or test, not %q", stream)
	}
	line = "LOGS " + name
	if n != "" {
		line += " " + n
	}
	if stream != "" {
		line += " " + stream
	}
	if follow {
		line += " FOLLOW"
	}
	return line, follow, nil
}

func isLogStream(word string) bool {
	switch strings.ToLower(word) {
	case "stdout", "stderr", "test":
		return true
	}
	return false
}

// spawnRequest turns the arguments of `overseer spawn [-ttl D] [-tied] NAME
// -- COMMAND [ARG...]` into the protocol line SPAWN NAME [D] [TIED PARENT]
// -- COMMAND..., the arguments quoted so that the daemon's split gives
// them back. -tied ties the job to our parent, the shell or script that
// runs `overseer spawn`: we exit as soon as the answer comes. Words after
// NAME that are not flags (the protocol's own TTL, TIED) go as they are.
func spawnRequest(args []string) (string, error) {
	usage := errors.New("usage: overseer spawn [-ttl DURATION] [-tied] NAME -- COMMAND [ARG...]")
	var words []string
	ttl, tied := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if len(words) == 0 || i+1 == len(args) {
				return "", usage
			}
			for _, c := range args[i+1:] {
				if strings.ContainsAny(c, "\r\n") {
					return "", errors.New("spawn: an argument of the command holds a line break, which a request line cannot carry")
				}
			}
			line := "SPAWN " + strings.Join(words, " ")
			if ttl != "" {
				line += " " + ttl
			}
			if tied {
				line += " TIED PARENT"
			}
			return line + " -- " + jobs.JoinCommand(args[i+1:]), nil
		case a == "-ttl" || a == "--ttl":
			if i+1 == len(args) {
				return "", usage
			}
			i++
			ttl = args[i]
		case strings.HasPrefix(a, "-ttl=") || strings.HasPrefix(a, "--ttl="):
			_, ttl, _ = strings.Cut(a, "=")
		case a == "-tied" || a == "--tied":
			tied = true
		case strings.HasPrefix(a, "-"):
			return "", usage
		default:
			words = append(words, a)
		}
	}
	return "", usage
}

// lockHeld reports whether a daemon holds the data dir's lock.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	return false // we got it, so nobody holds it (closing releases it)
}
