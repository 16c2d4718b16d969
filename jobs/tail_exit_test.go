package jobs

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// exitRecorder hands each exit the store would write, with the status
// saved beside it, to exits.
type exitRecorder struct {
	exits chan recordedExit
}

type recordedExit struct {
	e  Exit
	st Status
}

func (*exitRecorder) RecordStart(context.Context, Status, time.Time) (int64, error) { return 1, nil }
func (*exitRecorder) RecordReady(context.Context, int64, time.Time, Status) error   { return nil }
func (*exitRecorder) RecordState(context.Context, Status) error                     { return nil }
func (*exitRecorder) SetHeld(context.Context, string, bool) error                   { return nil }
func (r *exitRecorder) RecordExit(_ context.Context, _ int64, e Exit, st Status) error {
	select {
	case r.exits <- recordedExit{e, st}:
	default:
	}
	return nil
}

// TestLastExitHoldsNoTail: the store gets the ended run's tail with its
// exit, but the job's status does not keep it: a job holds the tail of
// its live process only, not also its last run's, until the next exit.
func TestLastExitHoldsNoTail(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := NewReaper()
	go reaper.Run(ctx)
	rec := &exitRecorder{exits: make(chan recordedExit, 1)}
	m := NewManager(Config{Recorder: rec, Reaper: reaper, LogDir: t.TempDir(), TailLines: 20, TailBytes: 4096,
		Instance: t.TempDir(), Home: t.TempDir(), Environ: os.Environ(), Logger: slog.New(slog.DiscardHandler)})
	defer m.Shutdown()
	if _, _, err := m.Spawn(Spawn{Name: "words", Command: []string{"sh", "-c", "echo last words; exit 3"}}); err != nil {
		t.Fatal(err)
	}
	var r recordedExit
	select {
	case r = <-rec.exits:
	case <-time.After(30 * time.Second):
		t.Fatal("no exit recorded")
	}
	if r.e.Tail == nil || r.e.Tail() != "out last words" {
		t.Fatal("the store did not get the run's tail")
	}
	if r.st.LastExit == nil || r.st.LastExit.Tail != nil {
		t.Error("the job's status keeps the ended run's tail")
	}
	d, err := m.Job("words")
	if err != nil {
		t.Fatal(err)
	}
	if d.LastExit != nil && d.LastExit.Tail != nil {
		t.Error("STATUS's last exit keeps the ended run's tail")
	}
}
