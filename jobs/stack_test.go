package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

type nopRecorder struct{}

func (nopRecorder) RecordStart(context.Context, Status, time.Time) (int64, error) { return 1, nil }
func (nopRecorder) RecordExit(context.Context, int64, Exit, Status) error         { return nil }
func (nopRecorder) RecordReady(context.Context, int64, time.Time, Status) error   { return nil }
func (nopRecorder) RecordState(context.Context, Status) error                     { return nil }
func (nopRecorder) SetHeld(context.Context, string, bool) error                   { return nil }

// TestParkedSupervisorStack: a supervisor whose process runs keeps a
// small stack. Its start (fork and exec, the log) grows its stack to
// 8 KB; parked, it must use under a quarter of that, so that the GC halves
// it (4 KB). At 5000 jobs the difference was 20 MB (BENCHMARKS.md, issue 16).
func TestParkedSupervisorStack(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep on PATH")
	}
	if raceOn {
		t.Skip("the race detector changes frames and stacks")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := NewReaper()
	go reaper.Run(ctx)
	m := NewManager(Config{Recorder: nopRecorder{}, Reaper: reaper, LogDir: t.TempDir(),
		Instance: t.TempDir(), Home: t.TempDir(), Environ: os.Environ(), Logger: slog.New(slog.DiscardHandler)})
	defer m.Shutdown()
	stacks := func() (uint64, int) {
		for range 4 { // each GC halves a stack at most once
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse, runtime.NumGoroutine()
	}
	const n = 200
	stack0, g0 := stacks()
	for i := range n {
		name := fmt.Sprintf("j%d", i)
		if o, _, err := m.Spawn(Spawn{Name: name, Command: []string{"sleep", "60"}}); err != nil || o.Verb != Started {
			t.Fatalf("spawn %s: %v, %v", name, o, err)
		}
	}
	stack1, g1 := stacks()
	per := float64(stack1-stack0) / n
	t.Logf("%d jobs: %d goroutines more, stacks %d KB more, %.0f bytes per job", n, g1-g0, (stack1-stack0)>>10, per)
	if per > 6<<10 {
		t.Errorf("a parked supervisor keeps a stack of %.0f bytes; want it halved to 4 KB (see step)", per)
	}
}
