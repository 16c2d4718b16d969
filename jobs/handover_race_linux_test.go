package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// liveSleeps returns the pids of this process's children that run sleep
// and have not ended.
func liveSleeps() map[int]bool {
	out := make(map[int]bool)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		var pid, ppid int
		var comm, state string
		fmt.Sscanf(string(b), "%d %s %s %d", &pid, &comm, &state, &ppid)
		if ppid == os.Getpid() && comm == "(sleep)" && state != "Z" {
			out[pid] = true
		}
	}
	return out
}

// TestDetachedSupervisorDoesNothing: a supervisor that handed its job over
// (upgrade) lives on while its canceled TEST ends; a request that reaches
// it meanwhile (a START that found the job just before Detach closed the
// manager) gets nothing done, as from an ended supervisor. It used to be
// handled as if the supervisor still owned the job: START started a
// second process, which no image supervises, and a START that came while
// a stop was under way waited forever.
func TestDetachedSupervisorDoesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := NewReaper()
	go reaper.Run(ctx)
	dir, tmp := t.TempDir(), t.TempDir()
	flag, mark := filepath.Join(tmp, "flag"), filepath.Join(tmp, "mark")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Its TEST passes while flag exists; then it says so in mark and runs
	// until it is killed.
	job := fmt.Sprintf("COMMAND=sleep 60\nTEST=sh -c 'test -e %s && exit 0; touch %s; exec sleep 60'\nTEST_INTERVAL=100ms\nTEST_TIMEOUT=1m\n", flag, mark)
	if err := os.WriteFile(filepath.Join(dir, "tested.env"), []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Config{Recorder: quietRecorder{}, Reaper: reaper, LogDir: t.TempDir(),
		Instance: t.TempDir(), Home: t.TempDir(), Environ: os.Environ(), Logger: slog.New(slog.DiscardHandler)})
	defer m.Shutdown()
	if rep, err := m.Reload(ctx, dir, false); err != nil || len(rep.Changes) != 1 || rep.Changes[0].Verb != Started {
		t.Fatalf("reload: %v, %v", rep, err)
	}
	s, err := m.lookup("tested")
	if err != nil {
		t.Fatal(err)
	}
	pid := s.Status().Pid
	defer syscall.Kill(-pid, syscall.SIGKILL)
	// A re-test runs, and hangs.
	os.Remove(flag)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job's TEST did not run again")
		}
	}
	// Handed over with the reaper paused, as Detach leaves it: the killed
	// TEST is not reaped, so the supervisor lives on, detached.
	reaper.Pause()
	defer reaper.Resume() // before Shutdown, which waits for the TEST
	if o := s.do(request{op: opHandOver}); o != (Outcome{}) {
		t.Fatalf("hand over: %v", o)
	}
	before := liveSleeps()
	if !before[pid] {
		t.Fatalf("the job's process %d is not running: %v", pid, before)
	}
	// START, as from a request that found the job just before Detach
	// closed the manager: nothing done, at once. (It used to join the
	// canceled TEST, which ends only once reaped, and then start the job.)
	answer := make(chan Outcome, 1)
	go func() { answer <- s.do(request{op: opUp, force: true}) }()
	if err := os.WriteFile(flag, nil, 0o644); err != nil { // a TEST would pass now
		t.Fatal(err)
	}
	select {
	case o := <-answer:
		if o != (Outcome{}) {
			t.Errorf("START of a detached supervisor's job: %v; want nothing done", o)
		}
		reaper.Resume()
	case <-time.After(10 * time.Second):
		reaper.Resume()
		select {
		case o := <-answer:
			t.Errorf("START of a detached supervisor's job waited for its canceled TEST, then: %v", o)
		case <-time.After(30 * time.Second):
			t.Fatal("START of a detached supervisor's job got no answer")
		}
	}
	select {
	case <-s.ended():
	case <-time.After(30 * time.Second):
		t.Fatal("the detached supervisor did not end once its TEST had")
	}
	after := liveSleeps()
	var started []string
	for p := range after {
		if !before[p] {
			started = append(started, fmt.Sprint(p))
			syscall.Kill(-p, syscall.SIGKILL)
		}
	}
	if len(started) > 0 {
		t.Errorf("a detached supervisor started processes: %s", strings.Join(started, ", "))
	}
	if !after[pid] {
		t.Errorf("the process handed over (%d) is gone", pid)
	}
}

// quietRecorder records nothing.
type quietRecorder struct{}

func (quietRecorder) RecordStart(context.Context, Status, time.Time) (int64, error) { return 1, nil }
func (quietRecorder) RecordExit(context.Context, int64, Exit, Status) error         { return nil }
func (quietRecorder) RecordReady(context.Context, int64, time.Time, Status) error   { return nil }
func (quietRecorder) RecordState(context.Context, Status) error                     { return nil }
func (quietRecorder) SetHeld(context.Context, string, bool) error                   { return nil }
