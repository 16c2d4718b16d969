package jobs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// KillChildren sends KILL to every process still a child of the daemon
// (descendants of jobs that left their process group, reparented to the
// daemon as subreaper) and waits, at most wait, for the reaper to collect
// them. It returns how many it killed. Call it once every job is stopped.
func KillChildren(wait time.Duration) int {
	kids := children()
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(wait)
	for len(children()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // shutdown only: never while idle
	}
	return len(kids)
}

// proc is what /proc/PID/stat says of one process.
type proc struct {
	pid, ppid, pgrp, session int
	zombie                   bool
}

// procs lists every process in /proc.
func procs() []proc {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := make([]proc, 0, len(stats))
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...: comm may hold spaces
		// and parentheses, so count from the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 4 {
			continue
		}
		p := proc{zombie: string(f[0]) == "Z"}
		p.pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(path)))
		p.ppid, _ = strconv.Atoi(string(f[1]))
		p.pgrp, _ = strconv.Atoi(string(f[2]))
		p.session, _ = strconv.Atoi(string(f[3]))
		out = append(out, p)
	}
	return out
}

// children lists the pids whose parent is this process.
func children() []int {
	self := os.Getpid()
	var kids []int
	for _, p := range procs() {
		if p.ppid == self {
			kids = append(kids, p.pid)
		}
	}
	return kids
}

// killSession sends KILL to every process left in session sid: descendants
// of a job that moved to a process group of their own (setpgid) are still
// in the session the job's process started. A process that made a session
// of its own (setsid) is not: KillChildren catches those at DIE.
func killSession(sid int) {
	for _, p := range procs() {
		if p.session == sid && !p.zombie {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
}

// Sweep stops every process, but this one, whose environment carries
// InstanceEnv=instance: what a daemon of the same data dir that died left
// behind, recorded or not (a process started just before the death, a
// TEST, a descendant that left its group or session). TERM, then KILL
// after timeout. It returns how many processes it found.
func Sweep(instance string, timeout time.Duration) int {
	mark := []byte(InstanceEnv + "=" + instance + "\x00")
	find := func() []int {
		self := os.Getpid()
		envs, _ := filepath.Glob("/proc/[0-9]*/environ")
		var pids []int
		for _, path := range envs {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			if err != nil || pid == self {
				continue
			}
			env, err := os.ReadFile(path)
			if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, mark...)) {
				continue
			}
			if _, zombie, err := procStart(pid); err == nil && !zombie {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	found := find()
	for _, pid := range found {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(timeout)
	for len(find()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // start-up only: never while idle
	}
	for _, pid := range find() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for end := time.Now().Add(2 * time.Second); len(find()) > 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	return len(found)
}
