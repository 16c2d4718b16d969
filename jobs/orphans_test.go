package jobs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// startGroup starts sh in a session of its own with a child of its own.
func startGroup(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 60 & exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

func TestStopOrphans(t *testing.T) {
	match := startGroup(t)
	stranger := startGroup(t)
	start, _, err := procStart(match.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- match.Wait() }()

	stopped := StopOrphans([]Orphan{
		{Run: 1, Pid: match.Process.Pid, Start: start},
		{Run: 2, Pid: stranger.Process.Pid, Start: start + "0"}, // a recycled pid
		{Run: 3, Pid: stranger.Process.Pid},                     // no start recorded
	}, 5*time.Second)
	if !stopped[1] || stopped[2] || stopped[3] || len(stopped) != 1 {
		t.Errorf("stopped = %v, want only run 1", stopped)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the orphan still runs")
	}
	// Its whole group is gone, its child too (zombies aside: in a container
	// init may never reap them).
	// The KILL is sent to the group as StopOrphans returns; a member's
	// death follows it by moments, so it is awaited, to a deadline.
	if runtime.GOOS == "linux" {
		n := liveInGroup(t, match.Process.Pid)
		for deadline := time.Now().Add(5 * time.Second); n > 0 && time.Now().Before(deadline); n = liveInGroup(t, match.Process.Pid) {
			time.Sleep(10 * time.Millisecond)
		}
		if n > 0 {
			t.Errorf("the orphan's group still has %d live members", n)
		}
	}
	// The stranger was not touched.
	if err := syscall.Kill(stranger.Process.Pid, 0); err != nil {
		t.Errorf("the stranger was signalled: %v", err)
	}
}

// liveInGroup counts the processes of group pgid that are not zombies.
func liveInGroup(t *testing.T, pgid int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:]) // state ppid pgrp ...
		if len(f) > 2 && string(f[0]) != "Z" && string(f[2]) == strconv.Itoa(pgid) {
			n++
		}
	}
	return n
}
