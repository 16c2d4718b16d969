package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errWentAway says the daemon's end of the connection closed before the
// answer was complete: it was killed, crashed or stopped (DIE, SIGTERM).
var errWentAway = errors.New("overseerd went away")

// wentAway reports whether err, from a read or write on the daemon's
// connection, means that the daemon's end is gone.
func wentAway(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// stopping reports whether msg, an ERR answer to a request of v, says
// that the daemon stops (DIE, SIGTERM) while we wait on it: for a WAIT,
// EVENTS or LOGS FOLLOW, that is the daemon going away too.
func stopping(v *verb, msg string) bool {
	switch v.name {
	case "WAIT", "EVENTS", "LOGS":
		return msg == "shutting down\n"
	}
	return false
}

// checkServes asks the running daemon, if one answers, which config dir it
// serves, and refuses (exit 1) when it is not opts.configDir: a RELOAD
// would make it load another directory's jobs in place of its own. Only
// RELOAD (overseer, reload, plan) is checked. A
// daemon that does not say (an older one) or does not answer is let be:
// the request that follows says what is wrong, or launches one.
func checkServes(opts options, req request, stderr io.Writer) (int, bool) {
	if req.verb != "RELOAD" {
		return 0, false
	}
	pid, dir, ok := pingDirs(opts)
	if !ok || sameDir(dir, opts.configDir) {
		return 0, false
	}
	fmt.Fprintf(stderr, "overseer: overseerd (pid %s) serves %s, not %s: use -data-dir for a second daemon\n", pid, tilde(dir), tilde(opts.configDir))
	return exitFailed, true
}

// pingDirs sends PING and returns the daemon's pid and config dir, or
// false when no daemon answers or its answer does not name its config dir.
func pingDirs(opts options) (pid, configDir string, ok bool) {
	conn, err := dial(opts.socket)
	if err != nil {
		return "", "", false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(opts.timeout))
	if _, err := io.WriteString(conn, "PING\n"); err != nil {
		return "", "", false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", "", false
	}
	words, err := pingWords(strings.TrimSuffix(line, "\n"))
	if err != nil || len(words) < 5 || words[0] != "OK" || words[1] != "overseer" || words[3] != "pid" {
		return "", "", false
	}
	for _, w := range words[5:] {
		if dir, found := strings.CutPrefix(w, "config-dir="); found {
			return words[4], dir, dir != ""
		}
	}
	return "", "", false
}

// pingWords splits a PING answer into its words, unquoting those Go-quoted
// ("a b", config-dir="/tmp/a b") as protocol.md (PING) says.
func pingWords(line string) ([]string, error) {
	var words []string
	for line = strings.TrimLeft(line, " "); line != ""; line = strings.TrimLeft(line, " ") {
		key := ""
		if i := strings.IndexAny(line, "= \""); i >= 0 && line[i] == '=' && i+1 < len(line) && line[i+1] == '"' {
			key, line = line[:i+1], line[i+1:]
		}
		if line[0] != '"' {
			word, rest, _ := strings.Cut(line, " ")
			words, line = append(words, key+word), rest
			continue
		}
		quoted, err := strconv.QuotedPrefix(line)
		if err != nil {
			return nil, err
		}
		word, _ := strconv.Unquote(quoted)
		words, line = append(words, key+word), line[len(quoted):]
	}
	return words, nil
}

// sameDir reports whether a and b name the same directory: the same
// file when both exist (a symlink, /tmp and /private/tmp on macOS, a
// trailing slash), else the same path once symlinks are resolved.
func sameDir(a, b string) bool {
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(ia, ib)
	}
	return resolve(a) == resolve(b)
}

// resolve returns path with the symlinks of the part of it that exists
// resolved.
func resolve(path string) string {
	path = filepath.Clean(path)
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	parent := filepath.Dir(path)
	if parent == path {
		return path
	}
	return filepath.Join(resolve(parent), filepath.Base(path))
}
