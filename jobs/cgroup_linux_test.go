package jobs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCgroupDir(t *testing.T) {
	hybrid := "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	pure := "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
	bound := "29 23 0:26 /user.slice /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n"
	spaced := `29 23 0:26 / /mnt/cg\040two rw - cgroup2 cgroup2 rw` + "\n"
	for _, c := range []struct {
		name, mountinfo, self, want string
	}{
		{"hybrid, root cgroup", hybrid, "9:name=systemd:/\n4:memory:/a/b\n0::/\n", "/sys/fs/cgroup/unified"},
		{"pure v2, a user's service", pure, "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n",
			"/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope"},
		{"a mount of part of the tree", bound, "0::/user.slice/u.scope\n", "/sys/fs/cgroup/u.scope"},
		{"escaped mount point", spaced, "0::/a\n", "/mnt/cg two/a"},
		{"the cgroup outside the mount", bound, "0::/system.slice/x.service\n", ""},
		{"a name sharing the mount's prefix", bound, "0::/user.slicex/y\n", ""},
		{"no cgroup2 mount", "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "0::/\n", ""},
		{"v1 only", hybrid, "4:memory:/a\n", ""},
	} {
		got, err := cgroupDir(c.mountinfo, c.self)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("%s: cgroupDir = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

// rootCgroups returns a daemon cgroup for the test, removed at its end,
// and its instance; it skips the test where cgroups cannot be made.
func rootCgroups(t *testing.T) (*cgroupTree, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	instance := t.TempDir()
	cg, n, err := openCgroups(instance)
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	if n != 0 {
		t.Fatalf("a new daemon cgroup held %d processes", n)
	}
	t.Cleanup(func() { cg.close() })
	return cg, instance
}

// newTestReaper returns a running Reaper, stopped at the test's end.
func newTestReaper(t *testing.T) *Reaper {
	r := NewReaper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

// startIn starts sh -c script in the job's cgroup, through the reaper.
func startIn(t *testing.T, r *Reaper, cg *cgroupTree, job, script string) (int, <-chan Exit) {
	t.Helper()
	fd, err := cg.open(job)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	attr := &syscall.SysProcAttr{Setsid: true}
	intoCgroup(attr, fd)
	pid, exited, err := r.Start(&exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", script}, SysProcAttr: attr})
	if err != nil {
		t.Fatal(err)
	}
	return pid, exited
}

// waitProcs waits until the job's cgroup holds n processes.
func waitProcs(t *testing.T, cg *cgroupTree, job string, n int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); len(cgroupProcs(cg.leaf(job))) != n; {
		if time.Now().After(end) {
			t.Fatalf("cgroup %s holds %v, want %d processes", cg.leaf(job), cgroupProcs(cg.leaf(job)), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCgroupEnd: a process that left its session, and its children, end
// with the job's cgroup, which is then removed; the next start, in a
// fresh one, is not killed (see end).
func TestCgroupEnd(t *testing.T) {
	cg, _ := rootCgroups(t)
	r := newTestReaper(t)
	pid, exited := startIn(t, r, cg, "web", "setsid sh -c 'sleep 100 & sleep 100' & exec sleep 100")
	waitProcs(t, cg, "web", 4)
	if !slices.Contains(cgroupProcs(cg.leaf("web")), pid) {
		t.Fatalf("the main process %d is not in its cgroup", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	<-exited
	n, err := cg.end("web", 5*time.Second)
	if err != nil || n != 3 {
		t.Fatalf("end = %d, %v; want 3 killed", n, err)
	}
	if _, err := os.Stat(cg.leaf("web")); !os.IsNotExist(err) {
		t.Fatalf("the job's cgroup is still there: %v", err)
	}
	pid, exited = startIn(t, r, cg, "web", "exec sleep 100")
	waitProcs(t, cg, "web", 1)
	syscall.Kill(pid, syscall.SIGKILL)
	if e := <-exited; e.Signal != "KILL" {
		t.Fatalf("exit %v", e)
	}
}

// TestCgroupFreezeKill: where cgroup.kill does not exist, freezing and
// killing each process empties the cgroup all the same.
func TestCgroupFreezeKill(t *testing.T) {
	cg, _ := rootCgroups(t)
	r := newTestReaper(t)
	startIn(t, r, cg, "web", "setsid sleep 100 & sleep 100 & exec sleep 100")
	waitProcs(t, cg, "web", 3)
	if err := freezeKill(cg.leaf("web")); err != nil {
		t.Fatal(err)
	}
	if !waitEvent(cg.leaf("web"), "populated 0", 5*time.Second) {
		t.Fatalf("still populated: %v", cgroupProcs(cg.leaf("web")))
	}
	b, _ := os.ReadFile(filepath.Join(cg.leaf("web"), "cgroup.events"))
	if !strings.Contains(string(b), "frozen 0") {
		t.Fatalf("left frozen: %s", b)
	}
}

// TestCgroupWithoutClone3: where clone3 is refused, the child starts in
// the daemon's cgroup and is moved to its job's at once.
func TestCgroupWithoutClone3(t *testing.T) {
	cg, _ := rootCgroups(t)
	r := newTestReaper(t)
	r.noClone3.Store(true)
	pid, _ := startIn(t, r, cg, "web", "exec sleep 100")
	waitProcs(t, cg, "web", 1)
	if got := cgroupProcs(cg.leaf("web")); got[0] != pid {
		t.Fatalf("cgroup holds %v, want %d", got, pid)
	}
	if _, err := cg.end("web", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestCgroupsLeftByADeadDaemon: a daemon's cgroup found at start is
// emptied; close removes it.
func TestCgroupsLeftByADeadDaemon(t *testing.T) {
	first, instance := rootCgroups(t)
	r := newTestReaper(t)
	startIn(t, r, first, "web", "setsid sleep 100 & exec sleep 100")
	waitProcs(t, first, "web", 2)
	second, n, err := openCgroups(instance)
	if err != nil || n != 2 || second.dir != first.dir {
		t.Fatalf("openCgroups = %v, %d, %v; want the same cgroup, 2 killed", second, n, err)
	}
	second.close()
	if _, err := os.Stat(first.dir); !os.IsNotExist(err) {
		t.Fatalf("the daemon's cgroup is still there: %v", err)
	}
}
