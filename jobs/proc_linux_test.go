package jobs

import (
	"os/exec"
	"testing"
)

// TestChildStartComputed: a child's start computed from the boot clock
// around its fork is the one /proc gives, and it is known without /proc:
// for a child already reaped, whose /proc entry is gone.
func TestChildStartComputed(t *testing.T) {
	for range 20 {
		mark := startMark()
		cmd := exec.Command("sleep", "10")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		got := childStart(cmd.Process.Pid, mark)
		want, _, err := procStart(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("childStart = %q, /proc says %q", got, want)
		}
	}
	if startClock.Load() != 1 {
		t.Fatalf("startClock = %d after 20 starts, want 1 (computed starts checked)", startClock.Load())
	}
	for i := 0; ; i++ {
		mark := startMark()
		cmd := exec.Command("true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if after := startMark(); mark/tickNs != after/tickNs {
			if i < 20 {
				continue // a tick boundary within the fork: /proc's turn
			}
			t.Fatal("20 forks each across a tick")
		}
		if got := childStart(cmd.Process.Pid, mark); got == "" {
			t.Fatal("childStart of a reaped child is empty: it read /proc")
		}
		break
	}
}
