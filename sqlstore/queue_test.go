package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"overseer/jobs"
)

// A schema version below 0 is none that overseer writes: it is refused,
// like a newer one, with the file left as it was (it used to panic).
func TestNegativeVersionRefused(t *testing.T) {
	for _, v := range []int{-1, -5} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			db, path := openTest(t)
			db.Close()
			plain := openPlain(t, path)
			if _, err := plain.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
				t.Fatal(err)
			}
			plain.Close()
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, err = Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			want := fmt.Sprintf("open store: %s: not written by overseer (schema version %d; this overseer knows 0 to %d)", path, v, len(migrations()))
			if err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("file changed")
			}
		})
	}
}

// lockDB takes the write lock of the database at path as another program
// would (a sqlite3 shell after BEGIN EXCLUSIVE), and returns its release.
func lockDB(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := openPlain(t, path).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
	t.Cleanup(release)
	return release
}

// Reads never wait for the writer: with the writer stuck in a write that
// does not end, every read method still answers, with what is committed.
func TestReadsBesideTheWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := openTest(t)
	now := time.Now()
	if _, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 100, Since: now}, now); err != nil {
		t.Fatal(err)
	}
	if err := db.SetHeld(ctx, "db", true); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordSamples(ctx, []jobs.Sample{{Job: "web", Pid: 100, At: now}}); err != nil {
		t.Fatal(err)
	}
	// The writer holds its connection until unblock is closed: as it did
	// in busy_timeout while another program held the lock.
	unblock, inside := make(chan struct{}), make(chan struct{})
	if err := db.queue(write{what: "stuck", f: func(context.Context, *sql.Tx) error {
		close(inside)
		<-unblock
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	defer close(unblock)
	db.hurry()
	<-inside

	answered := make(chan string)
	go func() {
		var out []string
		runs, err := db.Runs(ctx, "web", 0)
		out = append(out, fmt.Sprintf("runs %d %v", len(runs), err))
		j, ok, err := db.Job(ctx, "web")
		out = append(out, fmt.Sprintf("job %s %v %v", j.State, ok, err))
		held, err := db.Held(ctx)
		out = append(out, fmt.Sprintf("held %v %v", held, err))
		s, err := db.Samples(ctx, "web", 0)
		out = append(out, fmt.Sprintf("samples %d %v", len(s), err))
		open, err := db.OpenRuns(ctx)
		out = append(out, fmt.Sprintf("open %d %v", len(open), err))
		answered <- strings.Join(out, "; ")
	}()
	select {
	case got := <-answered:
		if want := "runs 1 <nil>; job running true <nil>; held map[db:true] <nil>; samples 1 <nil>; open 1 <nil>"; got != want {
			t.Errorf("reads while the writer is busy: %s, want %s", got, want)
		}
	case <-time.After(60 * time.Second): // the writer is released only after
		t.Fatal("reads wait for the writer")
	}
}

// While the writes wait for a database that cannot be written, a read does
// not wait for them again: it answers at once with what is committed, so
// that an answer made of several reads (INSPECT: runs, then samples) comes
// within the one wait that protocol.md allows, not one wait per read.
func TestReadsDoNotWaitForStuckWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, path := openTest(t)
	now := time.Now()
	if _, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 100, Since: now}, now); err != nil {
		t.Fatal(err)
	}
	flush(t, db)
	lockDB(t, path)
	if _, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 101, Since: now}, now); err != nil {
		t.Fatal(err)
	}
	// The writer's first try waits busy_timeout, then the writes are stuck.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := db.Settle(ctx)
		if err != nil && err.Error() == "database locked by another program" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Settle while locked = %v, want database locked by another program", err)
		}
	}
	// Each read has less than settleWait: one that waits for the queue
	// runs out of time.
	rctx, cancel := context.WithTimeout(ctx, settleWait*3/4)
	defer cancel()
	runs, err := db.Runs(rctx, "web", 0)
	if err != nil || len(runs) != 1 {
		t.Errorf("Runs while the writes are stuck: %d runs, %v; want 1 (what is committed), nil", len(runs), err)
	}
	rctx, cancel = context.WithTimeout(ctx, settleWait*3/4)
	defer cancel()
	if _, err := db.Samples(rctx, "web", 0); err != nil {
		t.Errorf("Samples while the writes are stuck: %v", err)
	}
	rctx, cancel = context.WithTimeout(ctx, settleWait*3/4)
	defer cancel()
	if _, ok, err := db.Job(rctx, "web"); err != nil || !ok {
		t.Errorf("Job while the writes are stuck: %v, %v; want true, nil", ok, err)
	}
}

// A daemon starting while another program holds the write lock opens the
// store: its start-up writes (closing runs) queue up and are saved, in
// order, once the lock is released.
func TestOpenWhileLocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, path := openTest(t)
	now := time.Now()
	run, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 100, Since: now}, now)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	release := lockDB(t, path)
	db, err = Open(path)
	if err != nil {
		t.Fatalf("Open while locked: %v", err)
	}
	defer db.Close()
	open, err := db.OpenRuns(ctx)
	if err != nil || len(open) != 1 || open[0].ID != run {
		t.Fatalf("OpenRuns while locked = %+v, %v", open, err)
	}
	if err := db.CloseRun(ctx, run, now, "orphaned"); err != nil {
		t.Fatal(err)
	}
	next, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 101, Since: now}, now)
	if err != nil || next != run+1 {
		t.Fatalf("RecordStart while locked = %d, %v; want %d", next, err, run+1)
	}
	if err := db.MarkRemoved(ctx, []string{"web"}, now); err != nil {
		t.Fatal(err)
	}
	if err := db.Settle(ctx); err == nil || err.Error() != "database locked by another program" {
		t.Errorf("Settle while locked = %v, want database locked by another program", err)
	}
	release()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	runs, err := db.Runs(ctx, "web", 0)
	if err != nil || len(runs) != 2 || runs[1].Reason != "orphaned" || runs[0].EndedAt != nil || runs[0].Pid != 101 {
		t.Errorf("after the lock: runs %+v, %v", runs, err)
	}
}

// A migration needs the write lock: while another program holds it, Open
// refuses, saying so and what to do, and changes nothing.
func TestMigrateWhileLocked(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/overseer.db"
	old := openPlain(t, path)
	for _, q := range []string{"PRAGMA journal_mode = WAL", migrations()[0], "PRAGMA user_version = 1"} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	lockDB(t, path)
	db, err := Open(path)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded")
	}
	if !strings.Contains(err.Error(), "migrate to schema version 2: another program holds the database's write lock") ||
		!strings.Contains(err.Error(), "\nhint: ") {
		t.Errorf("err = %q", err)
	}
}

// Beyond maxQueued waiting writes, starts and exits are refused (and
// reported once), while holds still queue; nothing queued is lost.
func TestQueueBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, path := openTest(t)
	warned := make(chan string, 100)
	db.SetWarn(func(err error) { warned <- err.Error() })
	release := lockDB(t, path)
	now := time.Now()
	st := jobs.Status{Name: "web", State: jobs.Running, Pid: 100, Since: now}
	for range maxQueued {
		if _, err := db.RecordStart(ctx, st, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RecordStart(ctx, st, now); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("RecordStart beyond the bound: %v, want ErrQueueFull", err)
	}
	if err := db.SetHeld(ctx, "web", true); err != nil {
		t.Fatalf("SetHeld beyond the bound: %v", err)
	}
	release()
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := db.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	close(warned)
	var all []string
	for w := range warned {
		all = append(all, w)
	}
	if s := strings.Join(all, "\n"); !strings.Contains(s, "writes of starts, exits and samples are dropped") ||
		!strings.Contains(s, "but 1 that found the queue full were dropped") {
		t.Errorf("warnings:\n%s", s)
	}
	if n := queryString(t, openPlain(t, path), "SELECT count(*) FROM runs"); n != fmt.Sprint(maxQueued) {
		t.Errorf("%s runs saved, want %d", n, maxQueued)
	}
	if j, _, err := db.Job(ctx, "web"); err != nil || !j.Held {
		t.Errorf("web: %+v, %v; want held", j, err)
	}
}
