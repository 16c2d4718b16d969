package jobs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupTree is the daemon's cgroup on the unified hierarchy (cgroup2),
// made under the one it was started in, with a leaf per job inside. Why
// a cgroup of its own rather than leaves beside the daemon: cgroup v2
// lets a cgroup with processes (the daemon's) have children only while
// it enables no controller, and the daemon's own cgroup is not its to
// arrange; this one holds no process, only the jobs' leaves.
type cgroupTree struct {
	dir string // HERE/overseer-HASH
}

// openCgroups returns the daemon's cgroup, if it may make it (root, or a
// cgroup delegated to the user, as systemd does for user@UID.service).
// One that a daemon of the same data dir left when it died is emptied and
// removed: it returns how many processes it killed there.
func openCgroups(instance string) (*cgroupTree, int, error) {
	return cgroupsOf(instance, false, nil)
}

// cgroupsOf is openCgroups; with keep, the jobs in a cgroup left by the
// process's earlier image (overseer upgrade) are kept: they are adopted.
func cgroupsOf(instance string, keep bool, spare []string) (*cgroupTree, int, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, 0, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, 0, err
	}
	here, err := cgroupDir(string(mi), string(self))
	if err != nil {
		return nil, 0, err
	}
	// A child starts in the daemon's cgroup and moves to its job's:
	// moving it takes write access to the cgroup.procs of both.
	if err := unix.Access(filepath.Join(here, "cgroup.procs"), unix.W_OK); err != nil {
		return nil, 0, fmt.Errorf("%s: cannot move processes out of it: %w", here, err)
	}
	t := &cgroupTree{dir: filepath.Join(here, cgroupName(instance))}
	n := 0
	err = os.Mkdir(t.dir, 0o755)
	switch {
	case errors.Is(err, fs.ErrExist) && keep:
		return t, 0, nil
	case errors.Is(err, fs.ErrExist) && len(spare) > 0:
		return t, t.clear(spare), nil // the cgroups of adopted jobs stay
	case errors.Is(err, fs.ErrExist):
		n = t.clear(nil)
	case err != nil:
		return nil, 0, err
	}
	// Made again by the first start: a daemon that stops before it starts
	// a job (its socket taken) leaves nothing behind.
	removeCgroup(t.dir)
	return t, n, nil
}

// cgroupDir returns the directory of the daemon's cgroup on the unified
// hierarchy, from the texts of /proc/self/mountinfo and /proc/self/cgroup:
// the cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a
// hybrid setup) joined with the path of the "0::" line.
func cgroupDir(mountinfo, self string) (string, error) {
	path := ""
	for _, l := range strings.Split(self, "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			path = p
		}
	}
	if !strings.HasPrefix(path, "/") {
		return "", errors.New("not in a cgroup of the unified hierarchy (no 0:: line in /proc/self/cgroup)")
	}
	sc := bufio.NewScanner(strings.NewReader(mountinfo))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, pf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(pf) < 1 || pf[0] != "cgroup2" {
			continue
		}
		root, mnt := unescapeMount(f[3]), unescapeMount(f[4])
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(root, "/"))
		if !ok || rel != "" && !strings.HasPrefix(rel, "/") {
			continue // this mount shows another part of the hierarchy
		}
		return filepath.Join(mnt, rel), nil
	}
	return "", errors.New("no cgroup2 mount shows the daemon's cgroup")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// leaf returns the directory of the named job's cgroup.
func (t *cgroupTree) leaf(job string) string {
	return filepath.Join(t.dir, leafName(job))
}

// open makes the job's cgroup if need be and returns a descriptor of it,
// for clone3's CLONE_INTO_CGROUP. The caller closes it.
func (t *cgroupTree) open(job string) (int, error) {
	dir := t.leaf(job)
	// Mkdir first: the parent is there but at the daemon's first start,
	// and MkdirAll would look both up (two path walks of a deep cgroupfs
	// path a start) before making it.
	if err := unix.Mkdir(dir, 0o755); err != nil && err != unix.EEXIST {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// end kills every process in the job's cgroup, waits, at most wait, for
// it to be empty, and removes it. It returns how many processes it killed.
//
// Why removed, when the job may start again at once: each start gets a
// cgroup never killed. On kernels with kill_seq (2025), clone3 into a
// cgroup compares the count of kills of the parent's cgroup with the
// target's, and kills the child when they differ: a reused cgroup would
// kill every process started in it after its first cgroup.kill.
func (t *cgroupTree) end(job string, wait time.Duration) (int, error) {
	n, err := t.kill(job, wait)
	if err != nil {
		return n, err
	}
	return n, removeCgroup(t.leaf(job))
}

// kill is end without the removal: 0 killed (and no error) means nothing
// was left and the cgroup was never killed, so that the job may start in
// it again (see end).
func (t *cgroupTree) kill(job string, wait time.Duration) (int, error) {
	return killCgroup(t.leaf(job), wait)
}

// remove removes the job's cgroup, if it is empty.
func (t *cgroupTree) remove(job string) error {
	return removeCgroup(t.leaf(job))
}

// close empties and removes the daemon's cgroup, for its exit. It returns
// how many processes it killed.
func (t *cgroupTree) close() int {
	n := t.clear(nil)
	removeCgroup(t.dir)
	return n
}

// clear kills what each job's cgroup holds and removes them.
func (t *cgroupTree) clear(spare []string) int {
	n := 0
	ents, _ := os.ReadDir(t.dir)
	for _, e := range ents {
		if e.IsDir() && !slices.ContainsFunc(spare, func(job string) bool { return leafName(job) == e.Name() }) {
			dir := filepath.Join(t.dir, e.Name())
			k, _ := killCgroup(dir, 5*time.Second)
			n += k
			removeCgroup(dir)
		}
	}
	return n
}

// killCgroup kills every process in the cgroup at dir and below: with
// cgroup.kill (Linux 5.14), else by freezing it, killing each process it
// lists and thawing it, so that none forks meanwhile. It waits, at most
// wait, for the cgroup to be empty, and returns how many it killed.
func killCgroup(dir string, wait time.Duration) (int, error) {
	// Mostly the job's process has exited and left nothing: one read of
	// cgroup.events ("populated" covers the descendants too) says so,
	// without listing the tree (at DIE of 5000 jobs, that listing and
	// removeCgroup's were a quarter of the daemon's CPU).
	if b, err := readSmall(filepath.Join(dir, "cgroup.events")); err == nil && bytes.Contains(b, []byte("populated 0\n")) {
		return 0, nil
	}
	pids := cgroupProcs(dir)
	if len(pids) == 0 {
		return 0, nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		if err := freezeKill(dir); err != nil {
			return 0, err
		}
	}
	if !waitEvent(dir, "populated 0", wait) {
		return len(pids), fmt.Errorf("%s still holds processes %v after %v", dir, wait, cgroupProcs(dir))
	}
	return len(pids), nil
}

// readSmall returns the start, up to 256 bytes, of the file at path (a
// cgroup's cgroup.events, which fits), read with one open, one read and
// one close: os.ReadFile adds a stat and the poller's registration, which
// cost six more system calls between a job's exit and its restart.
func readSmall(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 256)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		return buf[:n], nil
	}
}

// freezeKill kills what the cgroup at dir holds where cgroup.kill does
// not exist: frozen, no process can fork a new one the list misses.
func freezeKill(dir string) error {
	freeze := filepath.Join(dir, "cgroup.freeze")
	if err := os.WriteFile(freeze, []byte("1"), 0); err != nil {
		return err
	}
	defer os.WriteFile(freeze, []byte("0"), 0) // the killed die once thawed
	waitEvent(dir, "frozen 1", time.Second)
	for _, pid := range cgroupProcs(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

// cgroupProcs lists the processes in the cgroup at dir and its descendants.
func cgroupProcs(dir string) []int {
	var pids []int
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		for _, f := range bytes.Fields(b) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// waitEvent waits, at most d, until the cgroup's cgroup.events has the
// line want ("populated 0"). The kernel notifies a change of that file
// as a modification, so the wait sleeps on inotify, not in a loop.
func waitEvent(dir, want string, d time.Duration) bool {
	events := filepath.Join(dir, "cgroup.events")
	has := func() bool {
		b, err := os.ReadFile(events)
		return err != nil || bytes.Contains(append([]byte{'\n'}, b...), []byte("\n"+want+"\n"))
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		fd = -1
	} else {
		defer unix.Close(fd)
		if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
			return has() // gone: nothing left to wait for
		}
	}
	deadline := time.Now().Add(d)
	buf := make([]byte, 4096)
	for !has() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		if fd < 0 {
			time.Sleep(min(left, 10*time.Millisecond)) // no inotify: a bounded wait during a stop
			continue
		}
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left/time.Millisecond)+1)
		for {
			if n, _ := unix.Read(fd, buf); n <= 0 {
				break
			}
		}
	}
	return true
}

// removeCgroup removes the cgroup at dir and its descendants, deepest
// first; one that holds a process stays.
func removeCgroup(dir string) error {
	// Mostly it has no child cgroup: removed at once, without a listing.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, e := range ents {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: dir, Err: err}
	}
	return nil
}

// intoCgroup makes cmd start in the cgroup fd refers to.
func intoCgroup(attr *syscall.SysProcAttr, fd int) {
	attr.UseCgroupFD = true
	attr.CgroupFD = fd
}

// cgroupFD returns the cgroup cmd is to start in, or -1.
func cgroupFD(cmd *exec.Cmd) int {
	if a := cmd.SysProcAttr; a != nil && a.UseCgroupFD {
		return a.CgroupFD
	}
	return -1
}

// withoutCgroup returns a copy of cmd, not yet started, that starts in
// the daemon's cgroup: for when clone3 is refused (a seccomp filter, a
// kernel before 5.7).
func withoutCgroup(cmd *exec.Cmd) *exec.Cmd {
	attr := *cmd.SysProcAttr
	attr.UseCgroupFD, attr.CgroupFD = false, 0
	return &exec.Cmd{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir,
		Stdin: cmd.Stdin, Stdout: cmd.Stdout, Stderr: cmd.Stderr, ExtraFiles: cmd.ExtraFiles, SysProcAttr: &attr}
}

// moveToCgroup moves process pid into the cgroup fd refers to.
func moveToCgroup(fd, pid int) error {
	f, err := unix.Openat(fd, "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(f)
	_, err = unix.Write(f, []byte(strconv.Itoa(pid)))
	return err
}

// limitMemory makes the job's cgroup, if need be, and sets its memory.max
// to max bytes, so that the kernel enforces it. It reports false, with no
// error, when the daemon's cgroup cannot give its jobs the memory
// controller (its own cgroup does not delegate it: a hybrid setup, or a
// cgroup that enables no controller for its children). Besides
// memory.max: memory.swap.max 0, where swap is accounted, so that going
// over the limit restarts the job rather than slowing it in swap (what
// MEMORY_MAX counts is the memory the job holds, as the sampler's RSS
// does); memory.oom.group 1, so that the kernel kills the whole job, not
// one of its processes, and its main process's death says so.
func (t *cgroupTree) limitMemory(job string, max int64) (bool, error) {
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return false, err
	}
	b, err := os.ReadFile(filepath.Join(t.dir, "cgroup.controllers"))
	if err != nil {
		return false, err
	}
	if !slices.Contains(strings.Fields(string(b)), "memory") {
		return false, nil
	}
	// The daemon's cgroup holds no process, only the jobs' leaves: it may
	// enable the controller for them.
	if err := writeCgroup(t.dir, "cgroup.subtree_control", "+memory"); err != nil {
		return false, err
	}
	dir := t.leaf(job)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if err := writeCgroup(dir, "memory.max", strconv.FormatInt(max, 10)); err != nil {
		return false, err
	}
	if err := writeCgroup(dir, "memory.swap.max", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := writeCgroup(dir, "memory.oom.group", "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// oomKills returns how many processes the kernel's OOM killer killed in
// the job's cgroup (memory.events' oom_kill): each start gets a new
// cgroup, so any is of the live process's run.
func (t *cgroupTree) oomKills(job string) (int, error) {
	b, err := os.ReadFile(filepath.Join(t.leaf(job), "memory.events"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, nil
}

// writeCgroup writes val to the file name of the cgroup at dir, which
// must exist: a cgroup's files cannot be created.
func writeCgroup(dir, name, val string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
