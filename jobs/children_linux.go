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

// procStat reads /proc/PID/stat.
func procStat(pid int) (proc, error) {
	f, err := statFields(pid, 4) // state ppid pgrp session
	if err != nil {
		return proc{}, err
	}
	p := proc{pid: pid, zombie: string(f[0]) == "Z"}
	p.ppid, _ = strconv.Atoi(string(f[1]))
	p.pgrp, _ = strconv.Atoi(string(f[2]))
	p.session, _ = strconv.Atoi(string(f[3]))
	return p, nil
}

// children lists the pids whose parent is this process, from each thread's
// children file: cheap, where a scan of /proc reads a file per process.
func children() []int {
	files, _ := filepath.Glob("/proc/self/task/*/children")
	var kids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(s)); err == nil {
				kids = append(kids, pid)
			}
		}
	}
	return kids
}

// stopLeftovers stops what a job's process left once its process group
// is gone, where no cgroup holds the job: the daemon's children (orphans
// are reparented to it, the subreaper) that are still in session sid,
// moved to a process group of their own (setpgid), or that carry the
// job's marks in their environment (instance and job: see marked), which
// a new session (setsid) and double forks keep. TERM, then KILL after
// timeout; a child orphaned meanwhile, as a leftover dies, is stopped
// too. Children the reaper waits for (jobs' processes, TESTs) are left
// alone: known says which. It returns how many processes it stopped.
func stopLeftovers(sid int, instance, job string, known func(pid int) bool, timeout time.Duration) int {
	find := func() []int {
		var pids []int
		for _, pid := range children() {
			if known(pid) {
				continue
			}
			p, err := procStat(pid)
			if err != nil || p.zombie {
				continue
			}
			if p.session != sid {
				env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
				if err != nil || !marked(env, instance, job) {
					continue
				}
			}
			pids = append(pids, pid)
		}
		return pids
	}
	// The group first: its members' children are orphaned, and so ours,
	// only once their parents are gone.
	for end := time.Now().Add(time.Second); syscall.Kill(-sid, 0) == nil && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	seen := make(map[int]bool)
	kill := time.Now().Add(timeout)
	giveUp := kill.Add(2 * time.Second)
	for {
		pids := find()
		now := time.Now()
		if len(pids) == 0 || now.After(giveUp) {
			return len(seen)
		}
		for _, pid := range pids {
			switch {
			case now.After(kill):
				syscall.Kill(pid, syscall.SIGKILL)
			case !seen[pid]:
				syscall.Kill(pid, syscall.SIGTERM)
			}
			seen[pid] = true
		}
		time.Sleep(10 * time.Millisecond) // after a process ended only: never while idle
	}
}

// Sweep stops every process, but this one, whose environment carries
// InstanceEnv=instance: what a daemon of the same data dir that died left
// behind, recorded or not (a process started just before the death, a
// TEST, a descendant that left its group or session). TERM, then KILL
// after timeout. The processes marked as one of the jobs spare (adopted
// survivors, and what they started) are left alone. It returns how many
// processes it found.
func Sweep(instance string, spare []string, timeout time.Duration) int {
	mark := []byte(InstanceEnv + "=" + instance + "\x00")
	spared := make(map[string]bool, len(spare)) // a set: thousands of jobs, thousands of processes
	for _, job := range spare {
		spared[job] = true
	}
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
			if spared[jobOf(env)] {
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

// jobOf returns the value of JobEnv in environ (NUL-separated, as in
// /proc/PID/environ), or "".
func jobOf(environ []byte) string {
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(JobEnv+"=")); ok {
			return string(v)
		}
	}
	return ""
}
