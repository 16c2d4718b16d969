package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"overseer/jobs"
)

// subject is a supervisor under measurement.
type subject interface {
	name() string
	version() string
	// prepare writes n jobs j1..jN running argv, each with BENCH_JOB=id/jK
	// in its environment, into dir; launch then starts the supervisor on
	// them (bring-up is timed from launch).
	prepare(dir, id string, n int, argv []string) error
	launch() error
	runID() string
	supervisorPids() []int // the supervisor's own processes
	status() error         // one status round trip, as a user would type it
	stop()                 // stop the supervisor and its jobs
}

// reloader is a subject that can reload one edited job (overseer).
type reloader interface {
	reloadOneEdit(n int) (time.Duration, int, error)
	runsRows() int
}

// overseerSubject is overseer itself.
type overseerSubject struct {
	bin             string
	dir, id, config string
	env             []string
}

func (o *overseerSubject) name() string  { return "overseer" }
func (o *overseerSubject) runID() string { return o.id }
func (o *overseerSubject) version() string {
	out, _ := exec.Command("go", "version", "-m", o.bin).Output()
	if i := bytes.Index(out, []byte("mod\t")); i >= 0 {
		return strings.Fields(string(out[i:]))[2]
	}
	return "this tree"
}

func (o *overseerSubject) prepare(dir, id string, n int, argv []string) error {
	o.dir, o.id, o.config = dir, id, filepath.Join(dir, "config")
	o.env = append(os.Environ(), "OVERSEER_CONFIG_DIR="+o.config, "OVERSEER_DATA_DIR="+filepath.Join(dir, "data"))
	if err := os.MkdirAll(o.config, 0o700); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if err := o.writeJob(i, argv, ""); err != nil {
			return err
		}
	}
	return nil
}

// launch runs `overseer`, which launches the daemon and reloads.
func (o *overseerSubject) launch() error { return o.cli() }

func (o *overseerSubject) writeJob(i int, argv []string, extra string) error {
	text := fmt.Sprintf("COMMAND=%s\n%s=%s/j%d\nSTART_RETRIES=0\nSTART_LIMIT=0\n%s", jobs.ShellJoin(argv), jobEnv, o.id, i, extra)
	return os.WriteFile(filepath.Join(o.config, fmt.Sprintf("j%d.env", i)), []byte(text), 0o600)
}

func (o *overseerSubject) cli(args ...string) error {
	cmd := exec.Command(o.bin, args...)
	cmd.Env = o.env
	out, err := cmd.CombinedOutput()
	if err != nil && !(len(args) == 0 && bytes.Contains(out, []byte("\nOK "))) {
		return fmt.Errorf("overseer %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (o *overseerSubject) daemonPid() int {
	b, _ := os.ReadFile(filepath.Join(o.dir, "data", "overseer.lock"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func (o *overseerSubject) supervisorPids() []int { return []int{o.daemonPid()} }
func (o *overseerSubject) status() error         { return o.cli("status") }

// stop asks the daemon to stop its jobs and exit. One that does not answer
// (a launch that outlasted the client's wait on a loaded machine) is
// killed once it has taken its lock, so that no daemon outlives its run;
// its jobs go with killMarked.
func (o *overseerSubject) stop() {
	if o.cli("die") == nil {
		return
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if pid := o.daemonPid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
	}
}

// reloadOneEdit edits one job file among n and runs `overseer`: the time
// until the edited job runs a new process, and how many others changed.
func (o *overseerSubject) reloadOneEdit(n int) (time.Duration, int, error) {
	before := marked(o.id)
	edited := fmt.Sprintf("j%d", n/2)
	if err := o.writeJob(n/2, sleeper, "EDITED=1\n"); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := o.cli(); err != nil {
		return 0, 0, err
	}
	// Poll the daemon's children, not all of /proc: with 1000 jobs a scan
	// of /proc takes longer than what is measured.
	found := false
	for deadline := t0.Add(10 * time.Second); !found; {
		for _, pid := range children(o.daemonPid()) {
			if pid != before[edited][0] && jobOf(pid, o.id) == edited {
				found = true
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s not restarted", edited)
		}
	}
	d := time.Since(t0)
	moved := 0
	for job, pids := range marked(o.id) {
		if job != edited && (len(pids) != 1 || len(before[job]) != 1 || pids[0] != before[job][0]) {
			moved++
		}
	}
	return d, moved, nil
}

// runsRows counts the rows of the runs table, as a sqlite3 user would.
func (o *overseerSubject) runsRows() int {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(o.dir, "data", "overseer.db")+"?mode=ro")
	if err != nil {
		return -1
	}
	defer db.Close()
	n := -1
	db.QueryRow("select count(*) from runs").Scan(&n)
	return n
}

// peer is s6, runit or supervisord, driven through its own files and tools.
type peer struct {
	kind string
	dir  string
	id   string
	n    int
	proc *exec.Cmd // the top supervisor process bench started
	cmd  *exec.Cmd // what launch starts
}

func newPeer(name string) (*peer, error) {
	switch name {
	case "s6", "runit", "supervisord":
		return &peer{kind: name}, nil
	}
	return nil, errNoPeer
}

// tools are the commands each peer needs, and the Debian package with them.
func (p *peer) tools() (pkg string, cmds []string) {
	switch p.kind {
	case "s6":
		return "s6", []string{"s6-svscan", "s6-svscanctl", "s6-svstat"}
	case "runit":
		return "runit", []string{"runsvdir", "sv"}
	}
	return "supervisor", []string{"supervisord", "supervisorctl"}
}

func (p *peer) available(install bool, log io.Writer) error {
	pkg, cmds := p.tools()
	missing := func() error {
		for _, c := range cmds {
			if _, err := exec.LookPath(c); err != nil {
				return fmt.Errorf("%s is not installed (Debian package %s)", c, pkg)
			}
		}
		return nil
	}
	if err := missing(); err == nil || !install {
		return err
	}
	fmt.Fprintf(log, "bench: installing %s\n", pkg)
	cmd := exec.Command("apt-get", "install", "-y", "-qq", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", pkg, err, lastLine(out))
	}
	return missing()
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func (p *peer) name() string  { return p.kind }
func (p *peer) runID() string { return p.id }

func (p *peer) version() string {
	switch p.kind {
	case "supervisord":
		out, _ := exec.Command("supervisord", "--version").Output()
		return strings.TrimSpace(string(out))
	}
	pkg, _ := p.tools()
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	return strings.TrimSpace(string(out))
}

func (p *peer) prepare(dir, id string, n int, argv []string) error {
	p.dir, p.id, p.n = dir, id, n
	var cmd *exec.Cmd
	switch p.kind {
	case "s6", "runit":
		// One service directory per job, with a run script.
		for i := 1; i <= n; i++ {
			sd := filepath.Join(dir, fmt.Sprintf("j%d", i))
			if err := os.MkdirAll(sd, 0o755); err != nil {
				return err
			}
			run := fmt.Sprintf("#!/bin/sh\nexec env %s=%s/j%d %s\n", jobEnv, id, i, jobs.ShellJoin(argv))
			if err := os.WriteFile(filepath.Join(sd, "run"), []byte(run), 0o755); err != nil {
				return err
			}
		}
		if p.kind == "s6" {
			// s6-svscan supervises at most 500 services unless told more.
			cmd = exec.Command("s6-svscan", "-c", strconv.Itoa(n+100), dir)
		} else {
			cmd = exec.Command("runsvdir", dir)
		}
	case "supervisord":
		var b strings.Builder
		fmt.Fprintf(&b, "[supervisord]\nnodaemon=true\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\nchildlogdir=%s\n", dir, dir, dir)
		fmt.Fprintf(&b, "[unix_http_server]\nfile=%s/supervisor.sock\n[supervisorctl]\nserverurl=unix://%s/supervisor.sock\n", dir, dir)
		fmt.Fprintf(&b, "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "[program:j%d]\ncommand=%s\nenvironment=%s=\"%s/j%d\"\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n", i, jobs.ShellJoin(argv), jobEnv, id, i)
		}
		if err := os.WriteFile(filepath.Join(dir, "supervisord.conf"), []byte(b.String()), 0o600); err != nil {
			return err
		}
		cmd = exec.Command("supervisord", "-c", filepath.Join(dir, "supervisord.conf"))
	}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	p.cmd = cmd
	return nil
}

func (p *peer) launch() error {
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.proc = p.cmd
	return nil
}

// supervisorPids: the top process and, for s6 and runit, its per-job
// supervisors (s6-supervise, runsv).
func (p *peer) supervisorPids() []int {
	if p.proc == nil {
		return nil
	}
	top := p.proc.Process.Pid
	pids := []int{top}
	if p.kind != "supervisord" {
		pids = append(pids, children(top)...)
	}
	return pids
}

func (p *peer) status() error {
	switch p.kind {
	case "s6":
		return runCmd("s6-svstat", filepath.Join(p.dir, "j1"))
	case "runit":
		return runCmd("sv", "status", filepath.Join(p.dir, "j1"))
	}
	err := runCmd("supervisorctl", "-c", filepath.Join(p.dir, "supervisord.conf"), "status")
	if err != nil && strings.Contains(err.Error(), "exit status 3") {
		return nil // some program is not RUNNING (the crash storm): still an answer
	}
	return err
}

func (p *peer) stop() {
	if p.proc == nil {
		return
	}
	switch p.kind {
	case "s6":
		runCmd("s6-svscanctl", "-t", p.dir) // brings every service down, then exits
	case "runit":
		p.proc.Process.Signal(syscall.SIGHUP) // runsvdir: TERM to each runsv, which stops its service
	case "supervisord":
		p.proc.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { p.proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.proc.Process.Pid, syscall.SIGKILL)
		<-done
	}
	for _, pid := range children(p.proc.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	syscall.Kill(-p.proc.Process.Pid, syscall.SIGKILL) // runsv and s6-supervise left behind
	p.proc = nil
}
