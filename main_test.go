package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"overseer/internal/testdisk"
)

// waitFor bounds every polling command in the scripts. Polling stops as
// soon as the condition holds; the bound only decides when to give up.
const waitFor = 20 * time.Second

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"overseer":  main,
		"overseerd": main,
		"testjob":   testjob,
	})
}

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testscripts",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			home := filepath.Join(env.WorkDir, "home")
			env.Setenv("HOME", home)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, "data"))
			env.Setenv("CONF", filepath.Join(env.WorkDir, "config", "overseer"))
			env.Setenv("DATA", filepath.Join(env.WorkDir, "data", "overseer"))
			examples, err := filepath.Abs("examples")
			if err != nil {
				return err
			}
			env.Setenv("EXAMPLES", examples)
			if err := os.MkdirAll(filepath.Join(env.WorkDir, "config", "overseer"), 0o700); err != nil {
				return err
			}
			env.Defer(func() { killDaemon(filepath.Join(env.WorkDir, "data", "overseer")) })
			return os.MkdirAll(home, 0o700)
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			case "cgroupmemory":
				return cgroupMemory(), nil
			case "migratereq":
				return canMigrateReq(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitstatus":  cmdWaitStatus,
			"waitnote":    cmdWaitNote,
			"waitping":    cmdWaitPing,
			"pid":         cmdPid,
			"sig":         cmdSig,
			"gone":        cmdGone,
			"sqlite":      cmdSQLite,
			"hmac8":       cmdHMAC8,
			"waitsqlite":  cmdWaitSQLite,
			"waitfile":    cmdWaitFile,
			"waitlines":   cmdWaitLines,
			"follow":      cmdFollow,
			"changedpids": cmdChangedPids,
			"countprocs":  cmdCountProcs,
			"request":     cmdRequest,
			"stallevents": cmdStallEvents,
			"fds":         cmdFds,
			"waitfds":     cmdWaitFds,
			"sharedbin":   cmdSharedBin,
			"quiet":       cmdQuiet,
			"sqlwrite":    cmdSQLWrite,
			"holdlock":    cmdHoldLock,
			"smalldisk":   cmdSmallDisk,
			"filldisk":    cmdFillDisk,
			"stall":       cmdStall,
			"flockdir":    cmdFlockDir,
			"fulltmpfs":   cmdFullTmpfs,
			"json":        cmdJSON,
			"freeport":    cmdFreePort,
			"httpwatch":   cmdHTTPWatch,
			"migratereq":  cmdMigrateReq,
			"rebuild":     cmdRebuild,
		},
	})
}

// cgroupMemory reports whether a daemon started by the tests, as root,
// can give its jobs' cgroups the memory controller: the cgroup2 cgroup the
// tests run in enables it for its children (cgroup.subtree_control).
func cgroupMemory() bool {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil || os.Geteuid() != 0 {
		return false
	}
	for _, l := range strings.Split(string(self), "\n") {
		if path, ok := strings.CutPrefix(l, "0::"); ok {
			for _, mnt := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				b, err := os.ReadFile(filepath.Join(mnt, path, "cgroup.subtree_control"))
				if err == nil && slices.Contains(strings.Fields(string(b)), "memory") {
					return true
				}
			}
		}
	}
	return false
}

// killDaemon makes sure no daemon outlives its script: DIE if it answers,
// else SIGKILL the pid in its lock file.
func killDaemon(data string) {
	if _, err := sendLine(filepath.Join(data, "overseer.sock"), "DIE"); err == nil {
		return
	}
	b, err := os.ReadFile(filepath.Join(data, "overseer.lock"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Its jobs outlive it in their own sessions: kill their groups too.
	out, _ := query(data, "select pid from jobs where pid is not null")
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// sendLine sends one protocol line to the socket and returns the answer.
func sendLine(socket, line string) (string, error) {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, line); err != nil {
		return "", err
	}
	c.(*net.UnixConn).CloseWrite() // like nc -N: the daemon sees EOF
	b, err := io.ReadAll(c)
	return string(b), err
}

func socketOf(ts *testscript.TestScript) string {
	return filepath.Join(ts.Getenv("DATA"), "overseer.sock")
}

// request LINE: sends LINE (a trailing \n is added unless LINE ends in
// \c) straight to the socket, like nc -U, and puts the answer on stdout.
func cmdRequest(ts *testscript.TestScript, neg bool, args []string) {
	line := strings.Join(args, " ")
	if s, ok := strings.CutSuffix(line, `\c`); ok {
		line = s
	} else {
		line += "\n"
	}
	out, err := sendLine(socketOf(ts), line)
	if neg {
		if err == nil {
			ts.Fatalf("request succeeded: %s", out)
		}
		return
	}
	ts.Check(err)
	fmt.Fprint(ts.Stdout(), out)
}

// statusOf returns the STATUS fields of job, or nil, and the whole answer.
func statusOf(ts *testscript.TestScript, job string) ([]string, string) {
	out, err := sendLine(socketOf(ts), "STATUS\n")
	if err != nil {
		return nil, err.Error()
	}
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == job {
			return f, out
		}
	}
	return nil, out
}

// waitstatus JOB STATE [PID|!PID]: polls STATUS until JOB is in STATE (and
// its process is PID, or is not PID).
func cmdWaitStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitstatus JOB STATE [PID|!PID]")
	}
	pidOK := func(string) bool { return true }
	if len(args) == 3 {
		if not, ok := strings.CutPrefix(args[2], "!"); ok {
			pidOK = func(pid string) bool { return pid != not }
		} else {
			pidOK = func(pid string) bool { return pid == args[2] }
		}
	}
	poll(ts, func() (bool, string) {
		f, out := statusOf(ts, args[0])
		return f != nil && f[1] == args[1] && pidOK(f[2]), fmt.Sprintf("job %s not %s; last STATUS:\n%s", args[0], args[1], out)
	})
	settled(ts, args[0])
}

// settled waits until what STATUS showed of job is in the database too:
// STATUS answers from the supervisors' state without waiting for queued
// writes, STATUS NAME (a read of the job's runs) waits for them, so that
// a sqlite check after waitstatus or pid sees them.
func settled(ts *testscript.TestScript, job string) {
	sendLine(socketOf(ts), "STATUS "+job+"\n")
}

// waitnote JOB REGEXP: polls STATUS JOB until its note: line matches REGEXP.
func cmdWaitNote(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitnote JOB REGEXP")
	}
	re := regexp.MustCompile(args[1])
	poll(ts, func() (bool, string) {
		out, err := sendLine(socketOf(ts), "STATUS "+args[0]+"\n")
		if err != nil {
			return false, err.Error()
		}
		for _, line := range strings.Split(out, "\n") {
			if note, ok := strings.CutPrefix(line, "note: "); ok && re.MatchString(note) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no note of %s matching %s; last STATUS:\n%s", args[0], args[1], out)
	})
}

// poll calls check every 20ms until it says done, and fails the script
// with check's last words if that takes longer than waitFor.
func poll(ts *testscript.TestScript, check func() (done bool, last string)) {
	deadline := time.Now().Add(waitFor)
	for {
		done, last := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %v: %s", waitFor, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitping REGEXP: polls PING until its answer matches REGEXP.
func cmdWaitPing(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitping REGEXP")
	}
	re := regexp.MustCompile(args[0])
	poll(ts, func() (bool, string) {
		out, err := sendLine(socketOf(ts), "PING\n")
		if err != nil {
			return false, err.Error()
		}
		return re.MatchString(strings.TrimSpace(out)), "last PING: " + out
	})
}

// waitfile FILE REGEXP: polls until FILE exists and has a line matching REGEXP.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitfile FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	poll(ts, func() (bool, string) {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		return re.Match(b), fmt.Sprintf("no line matching %s in %s; it holds:\n%s", args[1], args[0], b)
	})
}

// waitlines FILE N: polls until FILE has at least N lines.
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitlines FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	poll(ts, func() (bool, string) {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		got := bytes.Count(b, []byte("\n"))
		return got >= n, fmt.Sprintf("%s has %d lines, want %d", args[0], got, n)
	})
}

// follow JOB N: LOGS JOB 0 FOLLOW straight on the socket; prints what
// arrives until N lines besides the OK line came, then hangs up.
func cmdFollow(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: follow JOB N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	c, err := net.Dial("unix", socketOf(ts))
	ts.Check(err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	fmt.Fprintf(c, "LOGS %s 0 FOLLOW\n", args[0])
	r := bufio.NewReader(c)
	for i := 0; i <= n; i++ {
		line, err := r.ReadString('\n')
		fmt.Fprint(ts.Stdout(), line)
		if err != nil {
			ts.Fatalf("after %d lines: %v", i, err)
		}
	}
}

// stallevents [-then LINE] JOB FILE N [REQUEST...]: subscribes to EVENTS
// JOB (or sends REQUEST), sends LINE on another connection once it is
// answered, and reads nothing until FILE (another subscriber's output, a
// log) has N lines; then reads, printing what arrives, until a line
// saying what was dropped comes (DROPPED N, "-- N lines dropped", or in
// JSON {"dropped":N}), and hangs up.
func cmdStallEvents(ts *testscript.TestScript, neg bool, args []string) {
	then := ""
	if len(args) > 1 && args[0] == "-then" {
		then, args = args[1], args[2:]
	}
	if neg || len(args) < 3 {
		ts.Fatalf("usage: stallevents [-then LINE] JOB FILE N [REQUEST...]")
	}
	request := "EVENTS " + args[0]
	if len(args) > 3 {
		request = strings.Join(args[3:], " ")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	c, err := net.Dial("unix", socketOf(ts))
	ts.Check(err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	fmt.Fprintf(c, "%s\n", request)
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	fmt.Fprint(ts.Stdout(), line)
	ts.Check(err)
	if then != "" {
		out, err := sendLine(socketOf(ts), then+"\n")
		if err != nil || !strings.HasPrefix(out, "OK ") {
			ts.Fatalf("%s: %s %v", then, out, err)
		}
	}
	poll(ts, func() (bool, string) {
		b, _ := os.ReadFile(ts.MkAbs(args[1]))
		got := bytes.Count(b, []byte("\n"))
		return got >= n, fmt.Sprintf("%s has %d lines, want %d", args[1], got, n)
	})
	for {
		line, err := r.ReadString('\n')
		fmt.Fprint(ts.Stdout(), line)
		if err != nil {
			ts.Fatalf("no DROPPED line: %v", err)
		}
		if strings.HasPrefix(line, "DROPPED ") || strings.HasPrefix(line, "-- ") || strings.HasPrefix(line, `{"dropped":`) {
			return
		}
	}
}

// stall LINE: sends LINE to the daemon and reads nothing of the answer,
// keeping the connection open until the script ends.
func cmdStall(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: stall LINE")
	}
	c, err := net.Dial("unix", socketOf(ts))
	ts.Check(err)
	ts.Defer(func() { c.Close() })
	_, err = fmt.Fprintf(c, "%s\n", strings.Join(args, " "))
	ts.Check(err)
}

// flockdir DIR: takes an exclusive flock on DIR, as a daemon does on its
// data dir, and holds it until the script ends.
func cmdFlockDir(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: flockdir DIR")
	}
	d, err := os.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Defer(func() { d.Close() })
	ts.Check(syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
}

// daemonPid returns the pid the running daemon wrote in its lock file.
func daemonPid(ts *testscript.TestScript) string {
	b, err := os.ReadFile(filepath.Join(ts.Getenv("DATA"), "overseer.lock"))
	ts.Check(err)
	return strings.TrimSpace(string(b))
}

// daemonFds counts the daemon's open file descriptors (Linux).
func daemonFds(ts *testscript.TestScript) int {
	fds, err := os.ReadDir("/proc/" + daemonPid(ts) + "/fd")
	ts.Check(err)
	return len(fds)
}

// quiet WINDOW MAX: waits (up to 30 s) for a WINDOW-long stretch in which
// the daemon's threads are switched to at most MAX times in all: each
// switch is a wake-up. A daemon with a timer that fires without cause
// never has such a stretch. Linux only (/proc/PID/task/*/status).
func cmdQuiet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: quiet WINDOW MAX")
	}
	window, err := time.ParseDuration(args[0])
	ts.Check(err)
	max, err := strconv.Atoi(args[1])
	ts.Check(err)
	pid := daemonPid(ts)
	switches := func() int {
		n := 0
		tasks, _ := filepath.Glob("/proc/" + pid + "/task/*/status")
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "voluntary_ctxt_switches") {
					c, _ := strconv.Atoi(strings.TrimSpace(v))
					n += c
				}
			}
		}
		return n
	}
	var seen []int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		before := switches()
		time.Sleep(window) // the stretch measured, not a wait for something
		n := switches() - before
		if n <= max {
			return
		}
		seen = append(seen, n)
	}
	ts.Fatalf("the daemon never stayed quiet for %v: its threads woke %v times in successive stretches (at most %d wanted)", window, seen, max)
}

// fds VAR: sets $VAR to the number of the daemon's open descriptors. Linux only.
func cmdFds(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: fds VAR")
	}
	ts.Setenv(args[0], strconv.Itoa(daemonFds(ts)))
}

// waitfds N [DELTA]: waits until the daemon has N+DELTA open descriptors
// (a connection it holds counts one). Linux only.
func cmdWaitFds(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitfds N [DELTA]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	if len(args) == 2 {
		delta, err := strconv.Atoi(args[1])
		ts.Check(err)
		want += delta
	}
	poll(ts, func() (bool, string) {
		got := daemonFds(ts)
		return got == want, fmt.Sprintf("the daemon has %d open descriptors, want %d", got, want)
	})
}

// changedpids BEFORE AFTER: prints, one per line, the jobs whose PID differs
// between two saved STATUS answers (a job in only one of them counts).
func cmdChangedPids(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: changedpids BEFORE AFTER")
	}
	pids := func(file string) map[string]string {
		m := make(map[string]string)
		for _, line := range strings.Split(ts.ReadFile(file), "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 3 {
				m[f[0]] = f[2]
			}
		}
		return m
	}
	before, after := pids(args[0]), pids(args[1])
	var changed []string
	for name, pid := range before {
		if after[name] != pid || pid == "-" {
			changed = append(changed, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	for _, name := range changed {
		fmt.Fprintln(ts.Stdout(), name)
	}
}

// countprocs REGEXP N: waits until exactly N live processes (zombies
// aside) have a command line matching REGEXP (arguments joined by spaces),
// and fails with the ones it saw if that does not happen. Linux only.
func cmdCountProcs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: countprocs REGEXP N")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	poll(ts, func() (bool, string) {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		var found []string
		for _, d := range dirs {
			stat, err := os.ReadFile(d + "/stat")
			if err != nil || strings.Contains(string(stat), ") Z ") {
				continue
			}
			b, err := os.ReadFile(d + "/cmdline")
			if err != nil {
				continue
			}
			cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
			if re.MatchString(cmd) {
				found = append(found, filepath.Base(d)+": "+cmd)
			}
		}
		return len(found) == want, fmt.Sprintf("%d processes match %s, want %d:\n%s", len(found), args[0], want, strings.Join(found, "\n"))
	})
}

// rebuild VAR VERSION: builds this module's overseer anew, as `go build
// -ldflags "-X main.version=VERSION"` (the packages come from the build
// cache; linking takes a second or two), into a directory of its own, and
// sets $VAR to the binary: a rebuilt overseer, not a copy of the test
// binary. It is overseer and overseerd, not testjob.
func cmdRebuild(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: rebuild VAR VERSION")
	}
	bin := filepath.Join(ts.Getenv("WORK"), "rebuilt", "overseer")
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version="+args[1], ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		ts.Fatalf("go build: %v\n%s", err, out)
	}
	ts.Setenv(args[0], bin)
}

// sharedbin VAR: copies testjob into a new directory every user may enter
// and run programs from, and sets $VAR to that directory: the test binary's
// own directories are private to the user running the tests, so a job
// running as another USER could not run it there.
func cmdSharedBin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sharedbin VAR")
	}
	exe, err := os.Executable()
	ts.Check(err)
	b, err := os.ReadFile(exe)
	ts.Check(err)
	dir, err := os.MkdirTemp("", "overseer-bin-")
	ts.Check(err)
	ts.Defer(func() { os.RemoveAll(dir) })
	ts.Check(os.Chmod(dir, 0o755))
	ts.Check(os.WriteFile(filepath.Join(dir, "testjob"), b, 0o755))
	ts.Setenv(args[0], dir)
}

// pid JOB VAR: sets $VAR to the pid of JOB's running process.
func cmdPid(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: pid JOB VAR")
	}
	f, out := statusOf(ts, args[0])
	if f == nil || f[2] == "-" {
		ts.Fatalf("job %s has no process; STATUS:\n%s", args[0], out)
	}
	settled(ts, args[0])
	ts.Setenv(args[1], f[2])
}

// sig SIGNAL PID: sends SIGNAL (KILL, TERM, ...) to PID.
func cmdSig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sig SIGNAL PID")
	}
	sig := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP}[args[0]]
	pid, err := strconv.Atoi(args[1])
	if sig == 0 || err != nil {
		ts.Fatalf("usage: sig SIGNAL PID")
	}
	ts.Check(syscall.Kill(pid, sig))
}

// gone PID...: waits until no process PID exists (reaped, not a zombie,
// unless it is init's zombie: init in a container may never reap).
// @FILE stands for the pid written in FILE.
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: gone PID...")
	}
	for _, a := range args {
		if file, ok := strings.CutPrefix(a, "@"); ok {
			b, err := os.ReadFile(ts.MkAbs(file))
			ts.Check(err)
			a = strings.TrimSpace(string(b))
		}
		pid, err := strconv.Atoi(a)
		ts.Check(err)
		poll(ts, func() (bool, string) {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			return syscall.Kill(pid, 0) != nil || initsZombie(pid), fmt.Sprintf("process %d still exists: %s", pid, stat)
		})
	}
}

// sqlite [-db @FILE] QUERY: runs QUERY on the daemon's database through a
// connection of its own, as the sqlite3 shell would, and prints rows
// tab-separated. With -db, on the database whose path FILE holds (the
// output of overseer path db).
func cmdSQLite(ts *testscript.TestScript, neg bool, args []string) {
	path := filepath.Join(ts.Getenv("DATA"), "overseer.db")
	if len(args) == 3 && args[0] == "-db" && strings.HasPrefix(args[1], "@") {
		b, err := os.ReadFile(ts.MkAbs(args[1][1:]))
		ts.Check(err)
		path, args = strings.TrimSpace(string(b)), args[2:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sqlite [-db @FILE] QUERY")
	}
	out, err := queryFile(path, args[0])
	ts.Check(err)
	fmt.Fprint(ts.Stdout(), out)
}

// waitsqlite QUERY WANT: polls until QUERY prints exactly WANT (one line).
func cmdWaitSQLite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitsqlite QUERY WANT")
	}
	poll(ts, func() (bool, string) {
		out, err := query(ts.Getenv("DATA"), args[0])
		return err == nil && out == args[1]+"\n", fmt.Sprintf("%s: got %q (%v), want %q", args[0], out, err, args[1])
	})
}

func query(data, q string) (string, error) {
	return queryFile(filepath.Join(data, "overseer.db"), q)
}

func queryFile(path, q string) (string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var b strings.Builder
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		out := make([]string, len(cols))
		for i, v := range vals {
			out[i] = v.String
			if !v.Valid {
				out[i] = "NULL"
			}
		}
		fmt.Fprintln(&b, strings.Join(out, "\t"))
	}
	return b.String(), rows.Err()
}

// testjob is a job program for the scripts, so they need no host tools:
//
//	testjob [-print TEXT] [-stderr TEXT] [-env VAR] [-pwd] [-whoami] [-spam N]
//	        [-no-newline N] [-tick D [-warn]] [-ready FILE] [-exit N] [-after D]
//	        [-ignore-term] [-alloc MIB] [-send LINE -socket PATH]
//	        [-ready-fd N [-when FILE]] [-close-fd N] [-notify MSG] [-mailbox FILE]
//	testjob -exists FILE
//	testjob -serve PATH
//
// With -send it first sends LINE to the daemon at PATH and prints the
// answer, so that it is the requesting process (SPAWN TIED). It prints, writes its pid to FILE, then exits with N after D, or waits
// for SIGTERM (exit 0) when -exit is not given; with -ignore-term only KILL
// ends it. With -exists it is a TEST: exit 0 if FILE exists, else 1.
// -ready-fd writes "ready\n" to descriptor N (READY=fd:N), once FILE
// exists with -when; -close-fd closes descriptor N, writing nothing.
// -notify sends MSG to $NOTIFY_SOCKET (sd_notify) at start; -mailbox sends
// the content of FILE whenever it appears, then removes it and writes 1
// to FILE.sent.
func testjob() {
	fs := flag.NewFlagSet("testjob", flag.ExitOnError)
	print := fs.String("print", "", "line to write to stdout")
	stderr := fs.String("stderr", "", "line to write to stderr")
	code := fs.Int("exit", -1, "exit with this code after -after")
	after := fs.Duration("after", 0, "how long to run before -exit")
	ready := fs.String("ready", "", "write the pid to this file when ready")
	exists := fs.String("exists", "", "exit 0 at once if this file exists, else 1")
	env := fs.String("env", "", "print NAME=value for this variable")
	pwd := fs.Bool("pwd", false, "print the working directory")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM")
	spam := fs.Int("spam", 0, "write this many 1000-byte lines to stdout at start")
	noNewline := fs.Int("no-newline", 0, "write this many bytes to stdout without a newline at start")
	tick := fs.Duration("tick", 0, "print \"tick N\" this often")
	warn := fs.Bool("warn", false, "with -tick, also print \"warn N\" to stderr each time")
	whoami := fs.Bool("whoami", false, "print uid, gid, groups, HOME, USER, LOGNAME and the working directory")
	alloc := fs.Int("alloc", 0, "hold this many MiB of memory, touched, from the start")
	send := fs.String("send", "", "send this request line to -socket first and print the answer")
	socket := fs.String("socket", "", "the daemon's socket, for -send and -stream")
	stream := fs.String("stream", "", "send this request line to -socket, keep the connection open and copy the answer to stdout, line by line, until it ends or TERM comes")
	serve := fs.String("serve", "", "listen on this socket and answer every request with \"OK overseerd stopped\", as a fake daemon")
	readyFd := fs.Int("ready-fd", 0, "write a newline to this descriptor (READY=fd:N)")
	when := fs.String("when", "", "with -ready-fd: once this file exists")
	closeFd := fs.Int("close-fd", 0, "close this descriptor at once, writing nothing")
	notify := fs.String("notify", "", "send this datagram to $NOTIFY_SOCKET at start")
	mailbox := fs.String("mailbox", "", "send the content of this file to $NOTIFY_SOCKET whenever it appears, then remove it")
	httpAddr := fs.String("http", "", "serve HTTP on this address with SO_REUSEPORT, answering with the pid (with -ready-fd: ready once listening)")
	fs.Parse(os.Args[1:])
	if *serve != "" {
		ln, err := net.Listen("unix", *serve)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(100)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(100)
			}
			bufio.NewReader(c).ReadString('\n') // the request, read: closing with it unread resets the connection
			io.WriteString(c, "OK overseerd stopped\n")
			c.Close()
		}
	}
	if *send != "" {
		out, err := sendLine(*socket, *send+"\n")
		fmt.Print(out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(100)
		}
	}
	if *stream != "" {
		streamAnswer(*socket, *stream)
	}
	if *exists != "" {
		if _, err := os.Stat(*exists); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *env != "" {
		fmt.Printf("%s=%s\n", *env, os.Getenv(*env))
	}
	if *pwd {
		wd, _ := os.Getwd()
		fmt.Printf("pwd=%s\n", wd)
	}
	if *whoami {
		groups, _ := os.Getgroups()
		sort.Ints(groups)
		g := make([]string, len(groups))
		for i, id := range groups {
			g[i] = strconv.Itoa(id)
		}
		wd, _ := os.Getwd()
		fmt.Printf("uid=%d gid=%d groups=%s HOME=%s USER=%s LOGNAME=%s pwd=%s\n", os.Getuid(), os.Getgid(),
			strings.Join(g, ","), os.Getenv("HOME"), os.Getenv("USER"), os.Getenv("LOGNAME"), wd)
	}
	for i := range *spam {
		fmt.Printf("%07d %s\n", i, strings.Repeat("x", 991))
	}
	if *noNewline > 0 {
		os.Stdout.Write(bytes.Repeat([]byte("y"), *noNewline))
	}
	if *alloc > 0 {
		mem := make([]byte, *alloc<<20)
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 1 // resident only once written
		}
		go func() { // keeps mem alive until the process ends
			<-make(chan struct{})
			runtime.KeepAlive(mem)
		}()
	}
	if *tick > 0 {
		go func() {
			for i := 1; ; i++ {
				time.Sleep(*tick)
				fmt.Printf("tick %d\n", i)
				if *warn {
					fmt.Fprintf(os.Stderr, "warn %d\n", i)
				}
			}
		}()
	}
	if *closeFd > 0 {
		syscall.Close(*closeFd)
	}
	if *notify != "" {
		if err := sdNotify(*notify); err != nil {
			fmt.Fprintln(os.Stderr, "notify:", err)
			os.Exit(100)
		}
	}
	if *mailbox != "" {
		go func() {
			for {
				if b, err := os.ReadFile(*mailbox); err == nil && len(b) > 0 {
					os.Remove(*mailbox)
					if err := sdNotify(string(b)); err != nil {
						fmt.Fprintln(os.Stderr, "notify:", err)
					}
					os.WriteFile(*mailbox+".sent", []byte("1\n"), 0o600)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	if *httpAddr != "" {
		serveHTTP(*httpAddr, *readyFd, term)
	}
	if *readyFd > 0 {
		go func() {
			for *when != "" {
				if _, err := os.Stat(*when); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := syscall.Write(*readyFd, []byte("ready\n")); err != nil {
				fmt.Fprintln(os.Stderr, "ready-fd:", err)
			}
		}()
	}
	if *print != "" {
		fmt.Println(*print)
	}
	if *stderr != "" {
		fmt.Fprintln(os.Stderr, *stderr)
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(100)
		}
	}
	if *code >= 0 {
		select {
		case <-time.After(*after):
			os.Exit(*code)
		case <-term:
			os.Exit(0)
		}
	}
	<-term
	os.Exit(0)
}

// sdNotify sends msg as one datagram to $NOTIFY_SOCKET, as sd_notify(3) does.
func sdNotify(msg string) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// TestClientExitCodes checks the codes README.md documents, in process.
func TestClientExitCodes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("OVERSEER_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("OVERSEER_CONFIG_DIR", filepath.Join(dir, "config"))
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"overseer", "status"}, exitNoDaemon, "overseer: cannot reach overseerd at " + filepath.Join(dir, "data", "overseer.sock") + ": no such file or directory\nhint: run overseer (no arguments) to start it\n"},
		{[]string{"overseer", "-no-such-flag"}, exitUsage, "overseer: flag provided but not defined: -no-such-flag\nhint: overseer -help lists the flags\n"},
		{[]string{"overseer", "-timeout", "soon", "status"}, exitUsage, ""},
		{[]string{"overseer", "-timeout", "0s", "status"}, exitUsage, "overseer: -timeout must be more than 0, not 0s\n"},
		{[]string{"overseer", "frob"}, exitUsage, "overseer: unknown verb \"frob\": overseer help lists them\n"},
		{[]string{"overseer", "restrat", "web"}, exitUsage, "overseer: unknown verb \"restrat\": did you mean RESTART?\n"},
		{[]string{"overseer", "-timout", "1s", "status"}, exitUsage, "overseer: flag provided but not defined: -timout: did you mean -timeout?\nhint: overseer -help lists the flags\n"},
		{[]string{"overseer", "completion"}, exitUsage, "overseer: usage: overseer completion bash|zsh|fish\n"},
		{[]string{"overseer", "stop"}, exitUsage, "overseer: usage: overseer stop NAME\n"},
		{[]string{"overseer", "logs", "-x", "web"}, exitUsage, "overseer: logs: flag provided but not defined: -x: did you mean -f?\nhint: overseer logs -h lists its flags\n"},
		{[]string{"overseer", "status", "-x"}, exitUsage, "overseer: status: flag provided but not defined: -x\nhint: overseer status -h lists its flags\n"},
		{[]string{"overseer", "ping", "now"}, exitUsage, "overseer: usage: overseer ping\n"},
		{[]string{"overseer", "logs", "-stream", "stdrr", "web"}, exitUsage, "overseer: logs: -stream must be stdout, stderr or test, not \"stdrr\"\n"},
		{[]string{"overseer", "logs", "web", "stdout", "stderr"}, exitUsage, "overseer: usage: overseer logs [-f] [-n N] [-stream stdout|stderr|test] [-json] [NAME]\n"},
		{[]string{"overseer", "help"}, exitOK, ""},
		{[]string{"overseer", "help", "logs"}, exitOK, ""},
		{[]string{"overseer", "logs", "-h"}, exitOK, ""},
		{[]string{"overseerd", "extra"}, exitUsage, "overseerd: the daemon takes no arguments, got \"extra\"\n"},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%q: exit code %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
		}
		if tc.stderr != "" && !strings.HasSuffix(stderr.String(), tc.stderr) {
			t.Errorf("%q: stderr\n got %q\nwant %q", tc.args, stderr.String(), tc.stderr)
		}
	}
}

// initsZombie reports whether pid is a zombie whose parent is init (Linux).
func initsZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:]) // state ppid ...
	if len(f) < 2 || string(f[0]) != "Z" || string(f[1]) != "1" {
		return false
	}
	// A process's first thread is a zombie as soon as it has exited, while
	// its other threads may still be exiting and its files (a listening
	// socket) still open: it is gone when it has no thread left.
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, t := range tasks {
		if t.Name() != strconv.Itoa(pid) {
			return false
		}
	}
	return true
}

// sqlwrite QUERY: runs QUERY, which may write, on the daemon's database, as
// a user with the sqlite3 shell would.
func cmdSQLWrite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sqlwrite QUERY")
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Getenv("DATA"), "overseer.db"))
	ts.Check(err)
	defer db.Close()
	_, err = db.Exec(args[0])
	ts.Check(err)
}

// holdlock RELEASE: takes the write lock of the daemon's database, as a
// sqlite3 shell does with BEGIN EXCLUSIVE, and holds it until the file
// RELEASE exists (or the script ends); it returns once the lock is held.
func cmdHoldLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdlock RELEASE")
	}
	release := ts.MkAbs(args[0])
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Getenv("DATA"), "overseer.db")+"?_pragma=busy_timeout(5000)")
	ts.Check(err)
	conn, err := db.Conn(context.Background())
	ts.Check(err)
	_, err = conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE")
	ts.Check(err)
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		defer db.Close()
		defer conn.Close()
		defer conn.ExecContext(context.Background(), "ROLLBACK")
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(10 * waitFor); time.Now().Before(deadline); {
			if _, err := os.Stat(release); err == nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	ts.Defer(func() {
		close(stop)
		<-done
	})
}

// smalldisk SIZE: mounts a tmpfs of SIZE (e.g. 2m) on $DATA, for a disk
// that fills; root only. When the script ends, the daemon is stopped first.
func cmdSmallDisk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: smalldisk SIZE")
	}
	data := ts.Getenv("DATA")
	ts.Check(os.MkdirAll(data, 0o700))
	ts.Check(testdisk.Mount(data, args[0]))
	ts.Defer(func() {
		killDaemon(data)
		testdisk.Unmount(data)
	})
}

// filldisk FILE: empties the WAL of the daemon's database (so that its next
// write must grow it), then writes zeros to FILE until the disk is full.
func cmdFillDisk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: filldisk FILE")
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Getenv("DATA"), "overseer.db")+"?_pragma=busy_timeout(5000)")
	ts.Check(err)
	defer db.Close()
	var busy, logged, done int
	ts.Check(db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &done))
	if busy != 0 {
		ts.Fatalf("the WAL could not be emptied")
	}
	ts.Check(testdisk.Fill(ts.MkAbs(args[0])))
}

// streamAnswer sends line to socket and copies the answer to stdout as it
// comes, a line at a time, until it ends (exit 0), or TERM or INT (exit
// 0). Unlike -send it keeps its sending side open: a streaming answer
// (EVENTS, LOGS FOLLOW) goes on until the client leaves.
func streamAnswer(socket, line string) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(100)
	}
	var writing sync.Mutex // a line is written whole before a signal ends it
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		writing.Lock()
		os.Exit(0)
	}()
	fmt.Fprintf(c, "%s\n", line)
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		writing.Lock()
		os.Stdout.WriteString(l)
		writing.Unlock()
		if err != nil {
			os.Exit(0)
		}
	}
}

// json FILE [PATH WANT]: FILE (stdout: the last command's) is an answer
// whose first line is OK and whose every other line is one compact JSON
// document; fails naming the first line that is not. With PATH, the value
// it names must encode (compact, as the daemon writes it) to text the
// regexp WANT matches whole. PATH is dotted: its first part counts the
// JSON lines from 0, the others are an object's keys or an array's
// indexes, and len is the length of the array or object (len alone: of
// the JSON lines). ! json: the value does not match, or there is none.
//
// json -client FILE [PATH WANT]: the same for what overseer -json printed,
// which has no OK line: every line is JSON.
func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	client := len(args) > 0 && args[0] == "-client"
	if client {
		args = args[1:]
	}
	if len(args) != 1 && len(args) != 3 || neg && len(args) == 1 {
		ts.Fatalf("usage: json [-client] FILE [PATH WANT]")
	}
	text := ts.ReadFile(args[0])
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	switch {
	case !strings.HasSuffix(text, "\n"):
		ts.Fatalf("not ended by a newline:\n%s", text)
	case client:
		lines = append([]string{""}, lines...) // no OK line to skip
	case !strings.HasPrefix(lines[0], "OK "):
		ts.Fatalf("not an OK answer:\n%s", text)
	}
	var docs []json.RawMessage
	for i, line := range lines[1:] {
		if line == "" {
			break // no body: "OK 0 lines\n"
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(line)); err != nil {
			ts.Fatalf("JSON line %d: %v:\n%s", i, err, line)
		}
		if compact.String() != line {
			ts.Fatalf("JSON line %d is not compact:\n%s", i, line)
		}
		docs = append(docs, json.RawMessage(line))
	}
	if len(args) == 1 {
		return
	}
	got, found := jsonPath(docs, args[1])
	re, err := regexp.Compile("^(?:" + args[2] + ")$")
	ts.Check(err)
	switch {
	case neg && found && re.MatchString(got):
		ts.Fatalf("%s is %s, want anything else; the answer:\n%s", args[1], got, text)
	case neg:
	case !found:
		ts.Fatalf("no %s in the answer:\n%s", args[1], text)
	case !re.MatchString(got):
		ts.Fatalf("%s is %s, want %s; the answer:\n%s", args[1], got, args[2], text)
	}
}

// jsonPath returns the JSON of the value path names in docs (see
// cmdJSON), as written, and whether there is one.
func jsonPath(docs []json.RawMessage, path string) (string, bool) {
	v, _ := json.Marshal(docs)
	for _, key := range strings.Split(path, ".") {
		var array []json.RawMessage
		var object map[string]json.RawMessage
		switch {
		case json.Unmarshal(v, &array) == nil && key == "len":
			v = []byte(strconv.Itoa(len(array)))
		case array != nil:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(array) {
				return "", false
			}
			v = array[i]
		case json.Unmarshal(v, &object) == nil && key == "len":
			v = []byte(strconv.Itoa(len(object)))
		case object != nil:
			var ok bool
			if v, ok = object[key]; !ok {
				return "", false
			}
		default:
			return "", false
		}
	}
	return string(v), true
}

// cmdHMAC8 prints the first 8 hex digits of the HMAC-SHA-256 of TEXT keyed
// by KEYFILE's bytes: hmac8 KEYFILE TEXT (the definitions table's digests).
func cmdHMAC8(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: hmac8 KEYFILE TEXT")
	}
	key, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(args[1]))
	fmt.Fprintln(ts.Stdout(), hex.EncodeToString(m.Sum(nil)[:4]))
}
