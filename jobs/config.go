package jobs

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/shlex"
	"github.com/joho/godotenv"
	"golang.org/x/sys/unix"
)

// minTestInterval keeps a TEST_INTERVAL from turning into a busy loop.
const minTestInterval = 100 * time.Millisecond

// MinMetricsInterval keeps resource sampling (METRICS_INTERVAL, and the
// daemon's -metrics-interval) from becoming a load of its own.
const MinMetricsInterval = time.Second

// MaxFileSize is the largest job file overseer reads. A job file is a few
// lines; a bigger one is a mistake (or an attack) and is rejected, not read.
const MaxFileSize = 1 << 20

// Restart policies, the values of RESTART.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Job is one parsed job file.
type Job struct {
	Name    string
	Command []string // argv; Command[0] is looked up on the job's PATH
	Test    []string // nil when the file has no TEST
	// Shell, when the file sets SHELL, runs COMMAND and TEST as one string
	// each: Command is then {Shell, "-c", COMMAND}, and Test likewise.
	Shell string
	// User and Group, when the file sets USER (and GROUP), are who the job
	// and its TEST run as: names or numeric ids, resolved at each start.
	// Only a daemon running as root can honour them.
	User, Group string
	Dir         string   // working directory; "" means the daemon's $HOME
	Restart     string   // RestartAlways, RestartOnFailure or RestartNever
	Env         []string // the file's other keys as KEY=VALUE, sorted by key

	StopSignal   syscall.Signal // sent to the job's process group to stop it
	StopTimeout  time.Duration  // then KILL after this long
	TestTimeout  time.Duration  // a TEST running longer is killed and counts as "should not run"
	TestInterval time.Duration  // re-run TEST this often; 0: only before starts and at RELOAD
	// A process that dies after StartSecs (the start-up grace) is
	// restarted at once. One that dies sooner waits RestartDelay, doubling
	// with each such death up to RestartMaxDelay, until a process stays up
	// RestartReset. StartRetries deaths in a row within StartSecs make the
	// job failed (0: never give up).
	RestartDelay    time.Duration
	RestartMaxDelay time.Duration
	RestartReset    time.Duration
	StartSecs       time.Duration
	StartRetries    int
	// More than StartLimit starts within StartLimitInterval make the job
	// failed, whatever each process's uptime (0: no limit).
	StartLimit         int
	StartLimitInterval time.Duration
	// MemoryMax is the most memory the job's processes may use, in bytes
	// (0: no limit): over it, the job is restarted.
	MemoryMax int64
	// RestartOnBinaryChange (RESTART_ON_BINARY_CHANGE, default yes) makes
	// a RELOAD restart the job when the program it runs was replaced.
	RestartOnBinaryChange bool
	// MetricsInterval is how often the job's processes are sampled while it
	// runs (0: never), when MetricsIntervalSet says the file sets it;
	// otherwise the daemon's default applies.
	MetricsInterval    time.Duration
	MetricsIntervalSet bool
	// Ready is how the job shows it is ready (READY): by a command that
	// exits 0 (ReadyCommand), a newline on a descriptor (ReadyFd) or an
	// sd_notify READY=1 (ReadyNotify); a job without READY is ready once
	// its process is started. A check runs every ReadyInterval, doubling
	// up to a second (or ReadyInterval if longer); one not ready within
	// ReadyTimeout is stopped, and that counts as a failed start.
	ReadyCommand  []string // READY=COMMAND, split as COMMAND; nil otherwise
	ReadyFd       int      // READY=fd:N: N; 0 otherwise
	ReadyNotify   bool     // READY=notify
	ReadyInterval time.Duration
	ReadyTimeout  time.Duration
	// After names the jobs this one starts after (AFTER): each ready, or
	// a one-shot that exited 0 (see mayStart). RestartWith names the jobs
	// whose restart restarts this one (RESTART_WITH); they are waited for
	// as After's are. Both in file order, without repeats.
	After       []string
	RestartWith []string
	// AFTER's and RESTART_WITH's lines, for the errors of checkOrder
	// (int32: a Job of 512 bytes, not 520, takes a size class less).
	afterLine, withLine int32
	// Hash identifies the definition: a digest of the parsed keys and values,
	// so comments, ordering and quoting do not count as changes.
	Hash string
	// KeyDigests names the definition's keys, each with a short digest of
	// its value, as a JSON object ({"COMMAND":"1f2e3d4c",...}): enough to
	// tell which keys changed between two definitions without keeping a
	// value (the definitions table, schema_v9.sql).
	KeyDigests string
	// Warnings are the file's keys that look like misspelt known keys
	// (suggestKey), in line order; they still went to Env.
	Warnings []Warning
	// Instances is the file's INSTANCES (0 when it has none): LoadDir
	// makes that many jobs of it, NAME.1 to NAME.N (see instances.go).
	// Base is then the file's name and Index the instance's number, from
	// 1; a job of a file without INSTANCES has Base "" and Index 0.
	Instances int
	Base      string
	Index     int
	// Keys are the keys the file sets, sorted (overseer export names those
	// with no equivalent elsewhere).
	Keys []string
}

// FileError says why a job file cannot be used. Its message names the file
// and, where it can, the line, but never a value from the file.
type FileError struct {
	File string // base name, e.g. "web.env"
	Line int    // 0 when unknown
	Err  error
}

func (e *FileError) Error() string {
	file := e.File
	if !utf8.ValidString(file) || strings.ContainsFunc(file, func(r rune) bool { return !unicode.IsPrint(r) }) {
		// A newline, an escape or bytes that are not UTF-8 in a name must
		// not reach an answer line raw.
		file = strconv.Quote(file)
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", file, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", file, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]+$`) })

// MaxNameLen is the longest job name, in characters (a name's characters
// are ASCII, one byte each). Every file the daemon names after a job must
// fit in the 255 bytes a file name may have on Linux and macOS: NAME.env,
// and NAME.log.N for N up to MaxLogFiles (9 bytes past the name).
const MaxNameLen = 200

// MaxLogFiles is the most rotated files a job's log may keep
// (-log-max-files): NAME.log.MaxLogFiles must fit in a file name with a
// name of MaxNameLen, and a rotation renames that many files.
const MaxLogFiles = 1000

// ValidName reports whether name can name a job: letters, digits, '_', '-'
// and '.', not starting with '.', at most MaxNameLen of them.
func ValidName(name string) bool { return NameProblem(name) == "" }

// NameProblem says why name cannot name a job, or returns "".
func NameProblem(name string) string {
	if !validName().MatchString(name) || name[0] == '.' {
		return "use only letters, digits, '_', '-' and '.'"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("it has %d characters, over the limit of %d (its log's files, NAME.log.N, must fit in a file name)", len(name), MaxNameLen)
	}
	return ""
}

// Parse reads one job file. name is the job's name (the file name without
// .env); environ is the environment ${VAR} may refer to besides the file's
// own earlier keys (the daemon passes os.Environ()). Parse has no side
// effects. Its errors are *FileError.
func Parse(name string, r io.Reader, environ []string) (*Job, error) {
	file := name + ".env"
	fail := func(line int, format string, args ...any) error {
		return &FileError{File: file, Line: line, Err: fmt.Errorf(format, args...)}
	}
	if p := NameProblem(name); p != "" {
		return nil, fail(0, "invalid job name: %s", p)
	}
	src, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fail(0, "read: %v", err)
	}
	if len(src) > MaxFileSize {
		return nil, fail(0, "larger than %d bytes", MaxFileSize)
	}
	src = bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if bytes.IndexByte(src, 0) >= 0 {
		return nil, fail(lineAt(src, bytes.IndexByte(src, 0)), "a NUL byte: a job file is text")
	}
	if line, ok := expansionFits(src, environ); !ok {
		return nil, fail(line, "${VAR} references make the values larger than %d bytes", MaxFileSize)
	}

	// The file alone decides which keys exist and where errors are.
	own, err := godotenv.UnmarshalBytes(src)
	if err != nil {
		line, msg := describeSyntaxError(src, err)
		return nil, fail(line, "%s", msg)
	}
	if _, ok := own[""]; ok {
		return nil, fail(lineWithoutKey(src), "expected KEY=value")
	}
	for k := range own {
		if !fileKey().MatchString(k) {
			// godotenv reads "a b=1" as the key "a b": not what was meant.
			return nil, fail(0, "a key has a space or other character a variable name cannot have: expected KEY=value, with a key of letters, digits, '_' and '.'")
		}
	}
	// godotenv expands ${VAR} only from keys defined earlier in the same
	// file. Parse again behind the variables of the daemon's environment
	// the file refers to, written as single-quoted (never expanded)
	// statements, so ${HOME} and ${PATH} mean what they mean in a shell;
	// keep only the file's own keys.
	values := own
	if prelude := environPrelude(referenced(environ, src)); len(prelude) > 0 {
		if v, err := godotenv.UnmarshalBytes(append(prelude, src...)); err == nil {
			values = v
		}
	}

	j := defaultJob(name)
	durations := map[string]*time.Duration{
		"STOP_TIMEOUT":      &j.StopTimeout,
		"TEST_TIMEOUT":      &j.TestTimeout,
		"TEST_INTERVAL":     &j.TestInterval,
		"RESTART_DELAY":     &j.RestartDelay,
		"RESTART_MAX_DELAY": &j.RestartMaxDelay,
		"RESTART_RESET":     &j.RestartReset,
		"START_SECS":        &j.StartSecs,
		"METRICS_INTERVAL":  &j.MetricsInterval,

		"START_LIMIT_INTERVAL": &j.StartLimitInterval,
		"READY_INTERVAL":       &j.ReadyInterval,
		"READY_TIMEOUT":        &j.ReadyTimeout,
	}
	var env []string
	var command, test, ready string // COMMAND, TEST and READY, split once SHELL is known
	for k := range own {
		v := values[k]
		if d, ok := durations[k]; ok {
			if *d, err = time.ParseDuration(v); err != nil || *d < 0 {
				if k == "METRICS_INTERVAL" {
					return nil, fail(keyLine(src, k), "METRICS_INTERVAL must be a duration of at least 1s such as 10s or 1m30s, or 0 for no sampling")
				}
				return nil, fail(keyLine(src, k), "%s must be a duration such as 500ms, 10s or 1m30s", k)
			}
			continue
		}
		switch k {
		case "COMMAND":
			command = v
		case "TEST":
			test = v
		case "READY":
			ready = v
		case "AFTER", "RESTART_WITH":
			names, err := parseNames(name, v)
			if err != nil {
				return nil, fail(keyLine(src, k), "%s: %v", k, err)
			}
			if k == "AFTER" {
				j.After, j.afterLine = names, int32(keyLine(src, k))
			} else {
				j.RestartWith, j.withLine = names, int32(keyLine(src, k))
			}
		case "SHELL":
			switch {
			case strings.TrimSpace(v) == "":
				return nil, fail(keyLine(src, k), "SHELL is empty: name a shell such as /bin/sh, or remove the key")
			case strings.ContainsAny(v, " \t\n"):
				return nil, fail(keyLine(src, k), "SHELL must be one program, without arguments: put options in COMMAND")
			case strings.Contains(v, "/") && !filepath.IsAbs(v):
				return nil, fail(keyLine(src, k), "SHELL must be an absolute path or a program name looked up on PATH")
			}
			j.Shell = v
			env = append(env, k+"="+v) // and the job's $SHELL, as before SHELL was a key
		case "USER", "GROUP":
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\n:") {
				return nil, fail(keyLine(src, k), "%s must be a name or a numeric id", k)
			}
			if k == "USER" {
				j.User = v
			} else {
				j.Group = v
			}
		case "DIR":
			if v != "" && !filepath.IsAbs(v) {
				return nil, fail(keyLine(src, k), "DIR must be an absolute path")
			}
			if v != "" {
				j.Dir = filepath.Clean(v)
			}
		case "STOP_SIGNAL":
			if j.StopSignal = ParseSignal(v); j.StopSignal == 0 {
				return nil, fail(keyLine(src, k), "STOP_SIGNAL must be a signal name such as TERM, INT, HUP, QUIT or USR1")
			}
		case "RESTART_ON_BINARY_CHANGE":
			switch v {
			case "yes":
				j.RestartOnBinaryChange = true
			case "no":
				j.RestartOnBinaryChange = false
			default:
				return nil, fail(keyLine(src, k), "RESTART_ON_BINARY_CHANGE must be yes or no")
			}
		case "START_RETRIES":
			if j.StartRetries, err = strconv.Atoi(v); err != nil || j.StartRetries < 0 {
				return nil, fail(keyLine(src, k), "START_RETRIES must be a whole number, 0 for no limit")
			}
		case "INSTANCES":
			if j.Instances, err = strconv.Atoi(v); err != nil || j.Instances < 1 || j.Instances > MaxInstances {
				return nil, fail(keyLine(src, k), "INSTANCES must be a whole number from 1 to %d", MaxInstances)
			}
			if n := len(name) + 1 + len(strconv.Itoa(j.Instances)); n > MaxNameLen {
				return nil, fail(keyLine(src, k), "INSTANCES makes names of %d characters (NAME.N), over the limit of %d: use a shorter file name", n, MaxNameLen)
			}
		case "START_LIMIT":
			if j.StartLimit, err = strconv.Atoi(v); err != nil || j.StartLimit < 0 {
				return nil, fail(keyLine(src, k), "START_LIMIT must be a whole number, 0 for no limit")
			}
		case "MEMORY_MAX":
			if j.MemoryMax, err = ParseSize(v); err != nil {
				return nil, fail(keyLine(src, k), "MEMORY_MAX must be a size such as 512MiB, 2GiB or 1048576 (bytes), 0 for no limit")
			}
		case "RESTART":
			switch v {
			case RestartAlways, RestartOnFailure, RestartNever:
				j.Restart = v
			default:
				return nil, fail(keyLine(src, k), "RESTART must be always, on-failure or never")
			}
		default:
			env = append(env, k+"="+v)
		}
	}
	if _, ok := own["COMMAND"]; !ok {
		return nil, fail(0, "COMMAND is missing")
	}
	if j.Command, err = j.split(command); err != nil {
		return nil, fail(keyLine(src, "COMMAND"), "COMMAND: %v", err)
	}
	if _, ok := own["TEST"]; ok {
		if j.Test, err = j.split(test); err != nil {
			return nil, fail(keyLine(src, "TEST"), "TEST: %v", err)
		}
	}
	if _, ok := own["READY"]; ok {
		if err := j.parseReady(ready); err != nil {
			return nil, fail(keyLine(src, "READY"), "READY: %v", err)
		}
	}
	for _, k := range []string{"READY_INTERVAL", "READY_TIMEOUT"} {
		if _, ok := own[k]; ok && !j.HasReady() {
			return nil, fail(keyLine(src, k), "%s needs a READY", k)
		}
	}
	if _, ok := own["READY_INTERVAL"]; ok && j.ReadyCommand == nil && j.HasReady() {
		return nil, fail(keyLine(src, "READY_INTERVAL"), "READY_INTERVAL applies only to a READY command, not to READY=fd:N or READY=notify")
	}
	if j.ReadyInterval <= 0 {
		return nil, fail(keyLine(src, "READY_INTERVAL"), "READY_INTERVAL must be more than 0")
	}
	if j.ReadyTimeout <= 0 {
		return nil, fail(keyLine(src, "READY_TIMEOUT"), "READY_TIMEOUT must be more than 0")
	}
	if j.Group != "" && j.User == "" {
		return nil, fail(keyLine(src, "GROUP"), "GROUP needs USER: name the user the job runs as")
	}
	if j.TestInterval > 0 && j.Test == nil {
		return nil, fail(keyLine(src, "TEST_INTERVAL"), "TEST_INTERVAL needs a TEST")
	}
	if j.TestInterval > 0 && j.TestInterval < minTestInterval {
		return nil, fail(keyLine(src, "TEST_INTERVAL"), "TEST_INTERVAL must be at least %v", minTestInterval)
	}
	if _, ok := own["METRICS_INTERVAL"]; ok {
		j.MetricsIntervalSet = true
		if j.MetricsInterval > 0 && j.MetricsInterval < MinMetricsInterval {
			return nil, fail(keyLine(src, "METRICS_INTERVAL"), "METRICS_INTERVAL must be at least %v, or 0 for no sampling", MinMetricsInterval)
		}
	}
	if _, ok := own["START_LIMIT_INTERVAL"]; ok {
		if _, set := own["START_LIMIT"]; !set || j.StartLimit == 0 {
			return nil, fail(keyLine(src, "START_LIMIT_INTERVAL"), "START_LIMIT_INTERVAL needs START_LIMIT: set how many starts it allows, more than 0")
		}
		if j.StartLimitInterval == 0 {
			return nil, fail(keyLine(src, "START_LIMIT_INTERVAL"), "START_LIMIT_INTERVAL must be more than 0")
		}
	}
	if j.TestTimeout == 0 {
		return nil, fail(keyLine(src, "TEST_TIMEOUT"), "TEST_TIMEOUT must be more than 0")
	}
	if j.RestartMaxDelay < j.RestartDelay {
		j.RestartMaxDelay = j.RestartDelay
	}
	sort.Strings(env)
	j.Env = env
	for k := range own {
		j.Keys = append(j.Keys, k)
	}
	sort.Strings(j.Keys)
	j.Hash = hashOf(values, own)
	j.KeyDigests = keyDigests(values, own)
	j.Warnings = keyWarnings(file, src, own)
	return j, nil
}

// defaultJob returns a job named name with every default a file may override.
func defaultJob(name string) *Job {
	return &Job{
		Name:            name,
		Restart:         RestartAlways,
		StopSignal:      syscall.SIGTERM,
		StopTimeout:     10 * time.Second,
		TestTimeout:     10 * time.Second,
		RestartDelay:    500 * time.Millisecond,
		RestartMaxDelay: 30 * time.Second,
		RestartReset:    60 * time.Second,
		StartSecs:       time.Second,
		StartRetries:    5,
		// Ten starts a minute: a healthy service restarts far less often;
		// one that dies just past START_SECS restarts about once a second
		// and is stopped within a quarter of a minute.
		StartLimit:         10,
		StartLimitInterval: time.Minute,

		ReadyInterval: 100 * time.Millisecond,
		ReadyTimeout:  time.Minute,

		RestartOnBinaryChange: true,
	}
}

// ParseSize reads a size in bytes as -log-max-size takes it: 1048576,
// 1024KiB, 1MiB, 1GiB (or K, KB, M, MB, G, GB: all powers of 1024).
func ParseSize(s string) (int64, error) {
	bad := errors.New("use a size such as 10MiB, 512KiB or 1048576")
	num := strings.TrimRight(s, "KMGiBb")
	mult := int64(1)
	switch strings.ToUpper(strings.TrimPrefix(s, num)) {
	case "":
	case "K", "KB", "KIB":
		mult = 1 << 10
	case "M", "MB", "MIB":
		mult = 1 << 20
	case "G", "GB", "GIB":
		mult = 1 << 30
	default:
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, bad
	}
	return n * mult, nil
}

// FormatSize writes n bytes as ParseSize reads them: 512MiB, 1536KiB, 1000.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprint(n)
}

// maxReadyFd is the highest descriptor READY=fd:N may name.
const maxReadyFd = 1023

// parseReady reads READY's value v: fd:N, notify, or a command (split as
// COMMAND). Its errors quote nothing of v.
func (j *Job) parseReady(v string) error {
	if n, ok := strings.CutPrefix(v, "fd:"); ok {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 3 || fd > maxReadyFd {
			return fmt.Errorf("fd:N needs a descriptor number N from 3 to %d (0, 1 and 2 are stdin, stdout and stderr)", maxReadyFd)
		}
		j.ReadyFd = fd
		return nil
	}
	if v == "notify" {
		if !notifySupported {
			return errors.New("notify (sd_notify) is supported on Linux only: use READY=fd:N or a READY command")
		}
		j.ReadyNotify = true
		return nil
	}
	if misspeltReady().MatchString(v) {
		// notify:x, fd3, fd=3: a misspelt kind rather than a command.
		return errors.New("use fd:N, notify, or a command")
	}
	argv, err := j.split(v)
	if err != nil {
		return err
	}
	j.ReadyCommand = argv
	return nil
}

var misspeltReady = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(fd[0-9=]|notify[:=]|(fd|notify)$)`) })

// HasReady reports whether the job says how it shows it is ready (READY).
func (j *Job) HasReady() bool {
	return j.ReadyCommand != nil || j.ReadyFd > 0 || j.ReadyNotify
}

// ParseSignal returns the signal named name (TERM, SIGTERM, term), or 0.
func ParseSignal(name string) syscall.Signal {
	return unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(name), "SIG"))
}

// ShellJoin writes argv on one line for a person to read and a shell to
// read back: a word of only safe characters as it is, another in single
// quotes, and one holding a control character (newline, tab, DEL, ...) or
// bytes that are not UTF-8 in ANSI-C quotes, $'a\nb', which bash, zsh, ksh
// and POSIX.1-2024 sh read back (dash does not). Answers show COMMAND and
// TEST so; JoinCommand is the form SplitCommand reads back.
func ShellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if needsANSIQuote(a) {
			out[i] = ansiQuote(a)
		} else {
			out[i] = quoteWord(a)
		}
	}
	return strings.Join(out, " ")
}

// JoinCommand writes argv so that SplitCommand gives it back: each word
// as it is or in single quotes, control characters and all.
func JoinCommand(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = quoteWord(a)
	}
	return strings.Join(out, " ")
}

// quoteWord returns a as it is if a shell reads it as one literal word,
// else in single quotes.
func quoteWord(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,@%+-") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// needsANSIQuote reports whether a holds a C0 control character, DEL or
// bytes that are not UTF-8: what must not reach an answer line raw.
func needsANSIQuote(a string) bool {
	return !utf8.ValidString(a) || strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// ansiQuote writes a as $'...': \n, \r, \t, \\, \' and \xHH for the
// other control characters and for each byte that is not UTF-8.
func ansiQuote(a string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(a); {
		r, n := utf8.DecodeRuneInString(a[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, a[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(a[i : i+n])
		}
		i += n
	}
	b.WriteByte('\'')
	return b.String()
}

// split turns a COMMAND or TEST into argv: {Shell, "-c", s} with a SHELL,
// which then does the parsing (pipes, redirections); else s split the way
// a shell splits words, run without a shell.
func (j *Job) split(s string) ([]string, error) {
	if j.Shell == "" {
		return splitCommand(s)
	}
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("is empty")
	}
	return []string{j.Shell, "-c", s}, nil
}

// splitCommand splits s with shlex, refusing what shlex and POSIX sh
// would split differently (shDifference): README (Jobs) states the rules.
func splitCommand(s string) ([]string, error) {
	argv, err := shlex.Split(s)
	if err != nil {
		return nil, err
	}
	if err := shDifference(s); err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, errors.New("is empty")
	}
	return argv, nil
}

// shDifference returns why s would be split into other words by POSIX sh
// than by shlex, or nil if both give the same words. s must be one shlex
// accepts (its quotes closed). Both treat quotes, backslashes outside
// quotes and a # that starts a word alike; they differ on:
//   - a backslash inside double quotes before a character other than
//     $ ` " \: sh keeps it, shlex drops it ("a\tb" is a\tb to sh, atb to shlex);
//   - a backslash before a line break: sh removes both, shlex keeps the break;
//   - a line break between words: sh ends the command there, shlex reads on;
//   - a carriage return outside quotes: a word character to sh, a blank to shlex;
//   - $'...': ANSI-C quoting to bash and POSIX.1-2024 sh, a $ and a quoted word to shlex;
//   - $"...": a translated string to bash (sh on many systems), unspecified
//     by POSIX, a $ and a quoted word to shlex;
//   - bytes that are not UTF-8: sh passes them, shlex turns them into U+FFFD.
//
// Operators (| ; & < > ( )), $VAR, `...`, globs and ~ are not in the list:
// shlex takes them literally, which README says (only SHELL runs a shell).
func shDifference(s string) error {
	const hint = ": use single quotes, or a shell (SHELL= in a job file, sh -c for SPAWN)"
	if !utf8.ValidString(s) {
		return errors.New("holds bytes that are not UTF-8, which overseer's split would replace: use a shell (SHELL= in a job file, sh -c for SPAWN)")
	}
	seen, broken := false, false // a word was seen; a line break came after one
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t':
			inWord = false
			continue
		case '\n':
			inWord = false
			broken = broken || seen
			continue
		case '\r':
			return errors.New("has a carriage return outside quotes, which sh keeps in the word and overseer takes for a blank" + hint)
		case '#':
			if !inWord { // a comment, to the end of the line
				for i+1 < len(s) && s[i+1] != '\n' {
					i++
				}
				continue
			}
		}
		if broken {
			return errors.New("has a line break between words, where sh would end the command and overseer reads on: put the command on one line, or use a shell (SHELL= in a job file)")
		}
		seen, inWord = true, true
		switch c {
		case '\'':
			i += strings.IndexByte(s[i+1:], '\'') + 1
		case '\\':
			if i+1 < len(s) && s[i+1] == '\n' {
				return errors.New("has a backslash before a line break, which sh removes with the break and overseer does not: put the command on one line")
			}
			i++
		case '$':
			if i+1 < len(s) && s[i+1] == '\'' {
				return errors.New("has $'...', which sh reads as ANSI-C quoting and overseer as a $ and a quoted word" + hint)
			}
			if i+1 < len(s) && s[i+1] == '"' {
				return errors.New(`has $"...", which bash reads as a translated string (POSIX leaves it unspecified) and overseer as a $ and a quoted word` + hint)
			}
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] != '\\' || i+1 >= len(s) {
					continue
				}
				i++
				switch s[i] {
				case '$', '`', '"', '\\':
				case '\n':
					return errors.New("has a backslash before a line break inside double quotes, which sh removes with the break and overseer does not: put the command on one line")
				default:
					return errors.New("has a backslash inside double quotes before a character other than $ ` \" \\, which sh keeps and overseer drops" + hint)
				}
			}
		}
	}
	return nil
}

// hashOf digests the file's keys with their expanded values.
func hashOf(values, own map[string]string) string {
	names := make([]string, 0, len(own))
	for k := range own {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		if k == "INSTANCES" {
			continue // how many run is no part of what each runs
		}
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(k), k, len(values[k]), values[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:8]) // not [:16] of all 64: that kept the 64 bytes
}

// keyDigests returns Job.KeyDigests: the keys of own (less INSTANCES, as
// hashOf), each with the first 8 hex digits of the HMAC-SHA-256 of its
// name and value, keyed by SetDigestKey's secret. The digest tells a
// change, not the value: without the key, which is not in the database,
// a value cannot be tried against it.
func keyDigests(values, own map[string]string) string {
	return keyDigestsWith(digestKey, values, own)
}

// digestKey keys the digests of keyDigests (SetDigestKey).
var digestKey []byte

// SetDigestKey sets the secret that keys the digests of Job.KeyDigests:
// without it a digest of a short value (a port, a weak password) could be
// undone by trying every value. The daemon sets it once, before it reads
// a job file, from a file of its data dir (0600); a client that parses
// files stores no digest and needs none.
func SetDigestKey(key []byte) { digestKey = key }

func keyDigestsWith(key []byte, values, own map[string]string) string {
	digests := make(map[string]string, len(own))
	m := hmac.New(sha256.New, key) // its key's pads made once a file
	for k := range own {
		if k == "INSTANCES" {
			continue
		}
		m.Reset()
		m.Write([]byte(k + "=" + values[k]))
		digests[k] = hex.EncodeToString(m.Sum(nil)[:4])
	}
	b, _ := json.Marshal(digests) // sorted by key
	return string(b)
}

var envKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// fileKey is what a key in a job file may be: godotenv's own rule
// (letters, digits, '_', '.'), without the spaces it lets through.
var fileKey = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\pL\pN_.]+$`) })

// referenced returns the variables of environ that src refers to.
func referenced(environ []string, src []byte) []string {
	refs := make(map[string]bool)
	for _, m := range refPattern().FindAllSubmatch(src, -1) {
		refs[string(m[1])] = true
	}
	var out []string
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && refs[k] {
			out = append(out, kv)
		}
	}
	return out
}

// environPrelude writes environ as godotenv statements that define each
// variable without expanding it. Variables godotenv cannot hold in single
// quotes are left out: ${VAR} then expands to "" for them.
func environPrelude(environ []string) []byte {
	var b bytes.Buffer
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envKey().MatchString(k) || strings.ContainsAny(v, "'\\\n\r") {
			continue
		}
		fmt.Fprintf(&b, "%s='%s'\n", k, v)
	}
	return b.Bytes()
}

// refPattern finds ${VAR} and $VAR references as godotenv expands them.
var refPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$\{?([A-Z0-9_]+)\}?`) })

// expansionFits bounds what godotenv's ${VAR} expansion can make of src
// before it runs: each reference can double a value (V2=${V1}${V1}), and
// forty lines of that would take all memory. It estimates, line by line,
// an upper bound of every key's expanded size, and says whether all stay
// within MaxFileSize, or on which line they stop doing so.
func expansionFits(src []byte, environ []string) (line int, ok bool) {
	if bytes.IndexByte(src, '$') < 0 {
		return 0, true // no reference: the file's own size, checked already
	}
	size := make(map[string]int)
	for _, kv := range environ {
		if k, v, found := strings.Cut(kv, "="); found {
			size[k] = len(v)
		}
	}
	total, key := 0, ""
	for i, l := range strings.Split(string(src), "\n") {
		n := len(l)
		for _, m := range refPattern().FindAllStringSubmatch(l, -1) {
			n += size[m[1]]
		}
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "export "))
		if k, _, found := strings.Cut(t, "="); found && !strings.HasPrefix(t, "#") && envKey().MatchString(strings.TrimSpace(k)) {
			key = strings.TrimSpace(k)
			size[key] = n
		} else if key != "" {
			size[key] += n // a line of a multi-line value
		}
		if total += n; total > MaxFileSize || size[key] > MaxFileSize {
			return i + 1, false
		}
	}
	return 0, true
}

// describeSyntaxError turns a godotenv error, which quotes the file's
// text, into a line number and a message that quotes nothing.
func describeSyntaxError(src []byte, err error) (line int, msg string) {
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "unexpected character"):
		// "... near %q" quotes the rest of the file from the statement.
		if i := strings.LastIndex(s, " near "); i >= 0 {
			if rest, uerr := strconv.Unquote(s[i+len(" near "):]); uerr == nil && len(rest) <= len(src) {
				line = lineAt(src, len(src)-len(rest))
			}
		}
		return line, "invalid key name: expected KEY=value, with a key of letters, digits, '_' and '.'"
	case strings.HasPrefix(s, "unterminated quoted value "):
		// The message quotes the value from its opening quote to the end of
		// its line; no closing quote follows it, so its last occurrence is it.
		frag := strings.TrimPrefix(s, "unterminated quoted value ")
		if i := bytes.LastIndex(src, []byte(frag)); i >= 0 {
			line = lineAt(src, i)
		}
		return line, "unterminated quoted value: add the closing quote"
	case s == "zero length string":
		return 0, "a statement has no key: expected KEY=value"
	}
	return 0, "syntax error: expected KEY=value lines"
}

// lineAt returns the 1-based line number of byte offset off in src.
func lineAt(src []byte, off int) int {
	return bytes.Count(src[:off], []byte("\n")) + 1
}

// keyLine returns the line of the last statement that sets key (the one
// godotenv keeps), or 0 when none is found.
func keyLine(src []byte, key string) int {
	re := regexp.MustCompile(`^\s*(?:export\s+)?` + regexp.QuoteMeta(key) + `\s*[=:]`)
	line := 0
	for i, l := range strings.Split(string(src), "\n") {
		if re.MatchString(l) {
			line = i + 1
		}
	}
	return line
}

// lineWithoutKey returns the first line that starts a statement with no
// key ("=value"), or 0.
func lineWithoutKey(src []byte) int {
	for i, l := range strings.Split(string(src), "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "=") || strings.HasPrefix(t, ":") {
			return i + 1
		}
	}
	return 0
}

// LoadDir reads every job file in dir: each regular file (or link to one)
// named NAME.env whose name does not start with '.'. Other files are
// ignored. A file that cannot be used yields a *FileError in errs and does
// not affect the others. jobs is sorted by name.
func LoadDir(dir string, environ []string) (jobs []*Job, errs []error, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read config dir: %w", err)
	}
	last, next := parses(dir, environ)
	defer keep(dir, next)
	var files []string
	for _, e := range entries {
		if file := e.Name(); !strings.HasPrefix(file, ".") && strings.HasSuffix(file, ".env") {
			files = append(files, file)
		}
	}
	// The files are read and parsed on every core: at 5000 jobs this was
	// a bring-up's only serial stretch, before any start.
	type loaded struct {
		j   *Job
		err error
	}
	out := make([]loaded, len(files))
	load := func(i int) {
		out[i].j, out[i].err = loadFile(filepath.Join(dir, files[i]), environ, last, next)
	}
	workers := min(runtime.GOMAXPROCS(0), len(files)/loadPerWorker)
	if workers > 1 {
		var claimed atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(claimed.Add(1) - 1); i < len(files); i = int(claimed.Add(1) - 1) {
					load(i)
				}
			})
		}
		wg.Wait()
	} else {
		for i := range files {
			load(i)
		}
	}
	for _, l := range out {
		if l.err != nil {
			errs = append(errs, l.err)
			continue
		}
		jobs = append(jobs, l.j)
	}
	jobs, errs = expandInstances(jobs, errs)
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Name < jobs[b].Name })
	return jobs, errs, nil
}

// loadPerWorker is the fewest files LoadDir gives each of its goroutines.
const loadPerWorker = 64

func loadFile(path string, environ []string, last, next *dirParses) (*Job, error) {
	file := filepath.Base(path)
	name := strings.TrimSuffix(file, ".env")
	fail := func(err error) error { return &FileError{File: file, Err: err} }
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fail(errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fail(errors.New("not a regular file"))
	}
	j, err, ok := last.unchanged(next, file, fi)
	if !ok {
		j, err = readFile(path, name, fi, environ, last, next)
	}
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(j, os.Geteuid()); err != nil {
		src, _ := os.ReadFile(path)
		var ie *identityError
		errors.As(err, &ie)
		return nil, &FileError{File: file, Line: keyLine(src, ie.key), Err: err}
	}
	if j.Dir != "" {
		if fi, err := os.Stat(j.Dir); err != nil || !fi.IsDir() {
			src, _ := os.ReadFile(path)
			return nil, &FileError{File: file, Line: keyLine(src, "DIR"), Err: errors.New("DIR is not an existing directory")}
		}
	}
	return j, nil
}

// readFile reads and parses the job file at path (stat fi), or takes what
// the last load parsed of the same bytes.
func readFile(path, name string, fi os.FileInfo, environ []string, last, next *dirParses) (*Job, error) {
	file := name + ".env"
	readAt := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, &FileError{File: file, Err: errors.Unwrap(err)}
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &FileError{File: file, Err: fmt.Errorf("read: %v", err)}
	}
	return last.parse(next, file, name, src, environ, fi, readAt)
}
