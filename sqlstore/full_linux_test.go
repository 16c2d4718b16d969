package sqlstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"overseer/internal/testdisk"
	"overseer/jobs"
)

// smallDisk mounts a tmpfs of size (e.g. "1m") on a new directory, which it
// returns; the test is skipped unless it runs as root.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root: run as root to test a full disk")
	}
	dir := t.TempDir()
	if err := testdisk.Mount(dir, size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { testdisk.Unmount(dir) })
	return dir
}

// fillBehind empties the WAL of the database at path (an empty WAL must
// grow to take the next write: on a full disk it cannot), then fills the
// disk it is on with a file beside it, whose path it returns.
func fillBehind(t *testing.T, path string) string {
	t.Helper()
	if _, err := openPlain(t, path).Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(filepath.Dir(path), "filler")
	if err := testdisk.Fill(filler); err != nil {
		t.Fatal(err)
	}
	return filler
}

// On a full disk, writes are not dropped: they stay queued, in order
// (an exit after its start), the writer says why once, a hold's Settle
// says "disk full", and all are saved once space returns.
func TestFullDiskRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := smallDisk(t, "1m")
	path := filepath.Join(dir, "overseer.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	warned := make(chan string, 100)
	db.SetWarn(func(err error) { warned <- err.Error() })
	now := time.Now()
	st := jobs.Status{Name: "web", State: jobs.Running, Pid: 100, Since: now}
	first, err := db.RecordStart(ctx, st, now)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, db)
	filler := fillBehind(t, path)

	var ids []int64
	for i := range 5 {
		st.Pid = 200 + i
		run, err := db.RecordStart(ctx, st, now)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run)
		if err := db.RecordExit(ctx, run, jobs.Exit{Code: i, At: now}, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetHeld(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	if err := db.Settle(ctx); err == nil || err.Error() != "disk full" {
		t.Fatalf("Settle on a full disk = %v, want disk full", err)
	}
	select {
	case w := <-warned:
		if !strings.HasPrefix(w, "disk full: ") || !strings.Contains(w, "tried again until they are saved") {
			t.Errorf("warning %q", w)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no warning on a full disk")
	}
	if runs, err := db.Runs(ctx, "web", 0); err != nil || len(runs) != 1 || runs[0].ID != first {
		t.Fatalf("on a full disk: %+v, %v; want the first run only", runs, err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := db.Flush(fctx); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	runs, err := db.Runs(ctx, "web", 0)
	if err != nil || len(runs) != 6 {
		t.Fatalf("after space returned: %d runs, %v; want 6", len(runs), err)
	}
	for i, id := range ids {
		r := runs[4-i] // newest first
		if r.ID != id || r.Pid != 200+i || r.EndedAt == nil || r.ExitCode == nil || *r.ExitCode != i {
			t.Errorf("run %d: %+v, want id %d, pid %d, ended with %d", i, r, id, 200+i, i)
		}
	}
	if j, _, err := db.Job(ctx, "web"); err != nil || !j.Held {
		t.Errorf("web: %+v, %v; want held", j, err)
	}
	select {
	case w := <-warned:
		if !strings.HasPrefix(w, "the database can be written again") {
			t.Errorf("warning %q, want the end of the trouble", w)
		}
	default:
		t.Error("no word that the database can be written again")
	}
}

// A database that exists on a disk that is full opens all the same (a
// daemon SIGKILLed on a full disk can be relaunched to supervise its
// jobs); its writes queue, and are saved once space returns.
func TestOpenOnFullDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := smallDisk(t, "1m")
	path := filepath.Join(dir, "overseer.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	filler := fillBehind(t, path)

	db, err = Open(path)
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Now()
	st := jobs.Status{Name: "web", State: jobs.Running, Pid: 100, Since: now}
	if _, err := db.RecordStart(ctx, st, now); err != nil {
		t.Fatal(err)
	}
	if err := db.Settle(ctx); err == nil || err.Error() != "disk full" {
		t.Fatalf("Settle on a full disk = %v, want disk full", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := db.Flush(fctx); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	if runs, err := db.Runs(ctx, "web", 0); err != nil || len(runs) != 1 {
		t.Fatalf("after space returned: %+v, %v; want the run", runs, err)
	}
}
