package jobs

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// A child that exits while the reaper is paused (an upgrade's exec) stays
// a zombie, and the reaper's first pass after Adopt and Resume hands its
// true status to whoever adopted it.
func TestReaperAdoptsZombie(t *testing.T) {
	r := NewReaper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	r.Pause()
	cmd := exec.Command("sh", "-c", "exit 7")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	start := ""
	for deadline := time.Now().Add(10 * time.Second); ; {
		s, zombie, err := procStart(pid)
		if err != nil {
			t.Fatalf("child %d gone before it was adopted: %v", pid, err)
		}
		if zombie {
			start = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d not a zombie after 10s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if start == "" {
		t.Fatal("no start time")
	}
	exited := r.Adopt(pid)
	r.Resume()
	select {
	case e := <-exited:
		if e.Pid != pid || e.Code != 7 || e.Signal != "" {
			t.Fatalf("exit = %+v, want pid %d exit 7", e, pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the adopted zombie's exit did not come")
	}
}
