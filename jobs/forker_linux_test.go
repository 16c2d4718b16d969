package jobs

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestForkFromSmallTable: children fork from a thread whose descriptor
// table holds a few entries, however many the process has open (two
// pipe ends a job in the daemon: each fork copied them all, and each
// exec closed them one by one), and still get the descriptors they are
// given: stdout, stderr, an extra one.
func TestForkFromSmallTable(t *testing.T) {
	if forkers() == nil {
		t.Skip("no forker threads here (pidfd_getfd or unshare refused): children fork in place")
	}
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for range forkerAbove {
		r, w, err := os.Pipe()
		if errors.Is(err, syscall.EMFILE) {
			t.Skipf("needs %d open files: %v", 2*forkerAbove+20, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r, w)
	}
	reaper := NewReaper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reaper.Run(ctx)

	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	extraR, extraW, _ := os.Pipe()
	defer outR.Close()
	defer errR.Close()
	defer extraR.Close()
	cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"sh", "-c", "ls /proc/self/fd | wc -l; echo err >&2; echo extra >&3"},
		Stdout: outW, Stderr: errW, ExtraFiles: []*os.File{extraW}}
	_, exited, err := reaper.Start(cmd)
	outW.Close()
	errW.Close()
	extraW.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exited:
		if e.Code != 0 {
			t.Fatalf("exit %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit in 10s")
	}
	out, _ := io.ReadAll(outR)
	stderr, _ := io.ReadAll(errR)
	extra, _ := io.ReadAll(extraR)
	// ls's own directory descriptor is one more than 0-3.
	if strings.TrimSpace(string(out)) != "5" || string(stderr) != "err\n" || string(extra) != "extra\n" {
		t.Fatalf("child: %q descriptors, stderr %q, fd 3 %q; want 5, err, extra", out, stderr, extra)
	}

	// The forkers' tables: a few entries, against the process's 2000 and more.
	ents, _ := os.ReadDir("/proc/self/fd")
	tasks, _ := os.ReadDir("/proc/self/task")
	small := 0
	for _, task := range tasks {
		fds, err := os.ReadDir("/proc/self/task/" + task.Name() + "/fd")
		if err == nil && len(fds) < 20 {
			small++
		}
	}
	if len(ents) < 2*forkerAbove || small < maxForks {
		t.Fatalf("%d descriptors open, %d threads with fewer than 20: want at least %d, and %d", len(ents), small, 2*forkerAbove, maxForks)
	}
}
