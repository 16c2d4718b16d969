package jobs

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// samples is a SampleRecorder that keeps what it is given.
type samples struct {
	mu  sync.Mutex
	got []Sample
}

func (r *samples) RecordSamples(ctx context.Context, s []Sample) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s...)
	return nil
}

func (r *samples) all() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sample(nil), r.got...)
}

// TestSampler checks that a watched job's samples add up every process of
// its session, and that a job that is not watched starts nothing.
func TestSampler(t *testing.T) {
	rec := &samples{}
	sp := newSampler(rec, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sp.stop()
	sp.watch("off", 1, time.Now(), 0, memLimit{})
	if sp.started {
		t.Fatal("a job without an interval started the sampler")
	}
	cmd := startGroup(t) // sh and its child sleep, in a session of their own
	pid := cmd.Process.Pid
	sp.watch("web", pid, time.Now(), 20*time.Millisecond, memLimit{})
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.all()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sp.unwatch("web", pid)
	got := rec.all()
	if len(got) < 3 {
		t.Fatalf("%d samples in 10s, want 3", len(got))
	}
	last := got[len(got)-1]
	if last.Job != "web" || last.Pid != pid || last.Procs != 2 || last.RSS <= 0 || last.Threads < 2 || last.Files < 2 || last.CPU < 0 {
		t.Errorf("last sample %+v, want web's 2 processes with memory, threads and files", last)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].At.After(got[i-1].At) {
			t.Errorf("sample %d at %v, not after the previous one at %v", i, got[i].At, got[i-1].At)
		}
	}
	sp.mu.Lock()
	n := len(sp.jobs)
	sp.mu.Unlock()
	if n != 0 {
		t.Errorf("%d jobs still watched after unwatch", n)
	}
}

// TestSamplerMemoryLimit checks that a job watched for a memory limit only
// is measured (every memCheckInterval) and reported once over it, and
// that no sample is stored for it.
func TestSamplerMemoryLimit(t *testing.T) {
	rec := &samples{}
	sp := newSampler(rec, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sp.stop()
	cmd := startGroup(t)
	pid := cmd.Process.Pid
	over, never := make(chan memOver, 1), make(chan memOver, 1)
	sp.watch("big", pid, time.Now(), 0, memLimit{max: 1 << 40, over: never}) // a terabyte
	sp.watch("web", pid, time.Now(), 0, memLimit{max: 1, over: over})
	select {
	case m := <-over:
		if m.pid != pid || m.rss <= 1 {
			t.Errorf("got %+v, want pid %d over 1 byte", m, pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no word of the memory limit in 10s")
	}
	sp.unwatch("web", pid)
	sp.unwatch("big", pid)
	if len(never) != 0 {
		t.Error("a job under its limit was reported over it")
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("%d samples stored for a job without METRICS_INTERVAL", len(got))
	}
}
