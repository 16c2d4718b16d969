package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
	"unsafe"
)

// TestPerJobSizes: a supervisor and a Job stay within the size classes
// they were brought into (BENCHMARKS.md, issue 16: 5000 jobs hold 5000 of
// each). An object over 512 bytes that holds pointers takes an 8-byte
// header besides: a supervisor of 569 bytes takes 640, not 576; a Job of
// 513 takes 576, not 512. Flags side by side, fields few jobs use at a
// time behind a pointer (underway).
func TestPerJobSizes(t *testing.T) {
	if n := unsafe.Sizeof(supervisor{}); n > 576-8 {
		t.Errorf("a supervisor is %d bytes: with its header, over its 576-byte size class", n)
	}
	if n := unsafe.Sizeof(Job{}); n > 512 {
		t.Errorf("a Job is %d bytes: over its 512-byte size class", n)
	}
	// A job's log sink (its failures behind a pointer), slot and start
	// order entry (flags side by side).
	for _, c := range []struct {
		what       string
		size, want uintptr
	}{
		{"log sink", unsafe.Sizeof(logSink{}), 160},
		{"slot", unsafe.Sizeof(slot{}), 96},
		{"start order entry", unsafe.Sizeof(depState{}), 48},
	} {
		if c.size > c.want {
			t.Errorf("a %s is %d bytes: over its %d-byte size class", c.what, c.size, c.want)
		}
	}
}

// TestIdleSupervisorHoldsNothingUnderway: once a job's process runs and
// nothing else is under way, its supervisor lets go of its underway (a
// third of a supervisor's size) and has made no done channel (nobody
// waits for its end); a job stopped and started again, too. The reaper
// hands its process's exit to the supervisor itself (no channel).
func TestIdleSupervisorHoldsNothingUnderway(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep on PATH")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := NewReaper()
	go reaper.Run(ctx)
	dir := t.TempDir()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("j%d.env", i)), []byte("COMMAND=sleep 60\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rec := &slowRecorder{removing: make(chan string, 4)}
	m := NewManager(Config{Recorder: rec, Reaper: reaper, LogDir: t.TempDir(),
		Instance: t.TempDir(), Home: t.TempDir(), Environ: os.Environ(), Logger: slog.New(slog.DiscardHandler)})
	defer m.Shutdown()
	if rep, err := m.Reload(ctx, dir, false); err != nil || rep.Count(Started) != 3 {
		t.Fatalf("reload: %+v, %v", rep, err)
	}
	if o, err := m.Restart("j1", false); err != nil || o.Verb != Restarted {
		t.Fatalf("restart j1: %+v, %v", o, err)
	}
	m.mu.Lock()
	var sups []*supervisor
	for _, sl := range m.slots {
		sups = append(sups, sl.sup)
	}
	m.mu.Unlock()
	for _, s := range sups {
		var held bool
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			s.evMu.Lock()
			busy := s.busy
			held = s.underway != nil || s.done != nil
			s.evMu.Unlock()
			if !busy && !held || time.Now().After(deadline) {
				break
			}
		}
		if held {
			t.Errorf("%s: idle, running, and still holds its underway or a done channel", s.sink.job())
		}
		// Its process's exit comes to it, not through a channel of its
		// own (262 bytes a process).
		reaper.mu.Lock()
		take := reaper.waiting[s.Status().Pid]
		reaper.mu.Unlock()
		if take != s {
			t.Errorf("%s: the reaper hands its exit to %T, not to the supervisor", s.sink.job(), take)
		}
	}
}
