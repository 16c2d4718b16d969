package jobs

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
)

// slowRecorder records nothing, but takes its time to record that a job
// was removed, saying when it begins and when it is done.
type slowRecorder struct {
	removing chan string // the job, when recording its removal begins
	done     atomic.Int32
}

func (*slowRecorder) RecordStart(context.Context, Status, time.Time) (int64, error) { return 1, nil }
func (*slowRecorder) RecordExit(context.Context, int64, Exit, Status) error         { return nil }
func (*slowRecorder) RecordReady(context.Context, int64, time.Time, Status) error   { return nil }
func (*slowRecorder) SetHeld(context.Context, string, bool) error                   { return nil }
func (r *slowRecorder) RecordState(_ context.Context, st Status) error {
	if st.State == Removed {
		r.removing <- st.Name
		time.Sleep(300 * time.Millisecond)
		r.done.Add(1)
	}
	return nil
}

// Shutdown waits for the goroutines of ephemeral jobs' TTLs and ties,
// even one busy forgetting its job: none outlives the manager.
func TestShutdownWaitsForTies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := NewReaper()
	go reaper.Run(ctx)
	tied := exec.Command("sleep", "60")
	if err := tied.Start(); err != nil {
		t.Fatal(err)
	}
	rec := &slowRecorder{removing: make(chan string, 4)}
	m := NewManager(Config{Recorder: rec, Reaper: reaper, LogDir: t.TempDir(),
		Instance: t.TempDir(), Home: t.TempDir(), Environ: os.Environ(), Logger: slog.New(slog.DiscardHandler)})
	for _, sp := range []Spawn{
		{Name: "ttl", Command: []string{"sleep", "60"}, TTL: time.Hour},
		{Name: "tied", Command: []string{"sleep", "60"}, TiedPid: tied.Process.Pid},
	} {
		if o, _, err := m.Spawn(sp); err != nil || o.Verb != Started {
			t.Fatalf("spawn %s: %v, %v", sp.Name, o, err)
		}
	}
	// The tied process exits: its watcher forgets the job, and is still
	// recording that when Shutdown comes.
	tied.Process.Kill()
	tied.Wait()
	select {
	case name := <-rec.removing:
		if name != "tied" {
			t.Fatalf("%s removed, want tied", name)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the tied job was not forgotten when its process exited")
	}
	m.Shutdown()
	if rec.done.Load() != 1 {
		t.Fatal("Shutdown returned while a tie's goroutine was still forgetting its job")
	}
}
