package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"overseer/jobs"
)

// timeRE is the one format every stored time must have.
var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "overseer.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// flush waits until db has committed what was queued.
func flush(t *testing.T, db *DB) {
	t.Helper()
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// openPlain opens path as another program would (the sqlite3 shell), with no
// help from this package.
func openPlain(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryString(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

// ms is a time with a millisecond part, in a zone other than UTC, so that
// round trips check both the conversion and the precision.
func ms(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestOpenMigrateReopen(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if err := db.RecordState(ctx, jobs.Status{Name: "web", State: jobs.Stopped, Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	flush(t, db)

	plain := openPlain(t, path)
	if v, want := queryString(t, plain, "PRAGMA user_version"), fmt.Sprint(len(migrations())); v != want {
		t.Errorf("user_version = %s, want %s", v, want)
	}
	if m := queryString(t, plain, "PRAGMA journal_mode"); m != "wal" {
		t.Errorf("journal_mode = %s, want wal", m)
	}
	if n := queryString(t, plain, "SELECT count(*) FROM sqlite_schema WHERE name IN ('jobs', 'runs', 'runs_job')"); n != "3" {
		t.Errorf("found %s of jobs, runs, runs_job; want 3", n)
	}
}

func TestPragmasApplied(t *testing.T) {
	db, _ := openTest(t)
	for pragma, want := range map[string]string{
		"busy_timeout": "1000",
		"journal_mode": "wal",
		"synchronous":  "1", // NORMAL
		"foreign_keys": "1",
	} {
		var got string
		if err := db.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func TestOddPath(t *testing.T) {
	// A SQLite URI would cut the name at '?' or '#' and decode '%41'.
	dir := filepath.Join(t.TempDir(), "a b?c#d%41")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "over seer.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var file string
	if err := db.db.QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	if file != path {
		t.Errorf("SQLite opened %q, want %q", file, path)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	t0 := ms(t, "2024-05-01T14:34:56.789+02:00")
	t1 := ms(t, "2024-05-01T14:35:00.5+02:00")
	t2 := ms(t, "2024-05-01T14:36:00.001+02:00")
	t3 := ms(t, "2024-05-01T14:37:00+02:00")

	st := jobs.Status{Name: "web", State: jobs.Running, Pid: 4242, Since: t0, Hash: "h1"}
	run1, err := db.RecordStart(ctx, st, t0)
	if err != nil {
		t.Fatal(err)
	}
	j, ok, err := db.Job(ctx, "web")
	if err != nil || !ok {
		t.Fatalf("Job = %v, %v", ok, err)
	}
	if j.State != jobs.Running || j.Pid != 4242 || !j.Since.Equal(t0) || j.ConfigHash != "h1" || j.LastExit != "" {
		t.Errorf("after start: %+v", j)
	}

	// It exits with status 3 and is restarted.
	exit1 := jobs.Exit{Pid: 4242, Code: 3, At: t1}
	st = jobs.Status{Name: "web", State: jobs.Backoff, Since: t1, LastExit: &exit1, Reason: "exited too soon", Hash: "h1"}
	if err := db.RecordExit(ctx, run1, exit1, st); err != nil {
		t.Fatal(err)
	}
	st = jobs.Status{Name: "web", State: jobs.Running, Pid: 4343, Since: t2, Restarts: 1, LastExit: &exit1, Hash: "h1"}
	run2, err := db.RecordStart(ctx, st, t2)
	if err != nil {
		t.Fatal(err)
	}
	if run2 <= run1 {
		t.Errorf("run ids %d then %d, want increasing", run1, run2)
	}

	// It is stopped, and dies of KILL.
	exit2 := jobs.Exit{Pid: 4343, Code: -1, Signal: "KILL", At: t3, Reason: "stopped"}
	st = jobs.Status{Name: "web", State: jobs.Stopped, Since: t3, Restarts: 1, LastExit: &exit2, Hash: "h1"}
	if err := db.RecordExit(ctx, run2, exit2, st); err != nil {
		t.Fatal(err)
	}

	runs, err := db.Runs(ctx, "web", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("Runs = %+v, want 2", runs)
	}
	r2, r1 := runs[0], runs[1]
	if r2.ID != run2 || r2.Pid != 4343 || !r2.StartedAt.Equal(t2) || r2.EndedAt == nil || !r2.EndedAt.Equal(t3) ||
		r2.ExitCode != nil || r2.Signal != "KILL" || r2.Reason != "stopped" {
		t.Errorf("second run: %+v", r2)
	}
	if r1.ID != run1 || r1.Pid != 4242 || !r1.StartedAt.Equal(t0) || r1.EndedAt == nil || !r1.EndedAt.Equal(t1) ||
		r1.ExitCode == nil || *r1.ExitCode != 3 || r1.Signal != "" || r1.Reason != "" {
		t.Errorf("first run: %+v", r1)
	}
	if runs, err := db.Runs(ctx, "web", 1); err != nil || len(runs) != 1 || runs[0].ID != run2 {
		t.Errorf("Runs(web, 1) = %+v, %v; want the second run", runs, err)
	}
	if runs, err := db.Runs(ctx, "", 0); err != nil || len(runs) != 2 {
		t.Errorf("Runs(\"\", 0) = %+v, %v; want both runs", runs, err)
	}
	if runs, err := db.Runs(ctx, "other", 0); err != nil || len(runs) != 0 {
		t.Errorf("Runs(other, 0) = %+v, %v; want none", runs, err)
	}

	// What a user of the sqlite3 shell sees.
	flush(t, db)
	plain := openPlain(t, path)
	for _, c := range []struct{ query, want string }{
		{"SELECT exit_code FROM runs WHERE id = ?", "3"},
		{"SELECT signal FROM runs WHERE id = ?", "NULL"},
		{"SELECT reason FROM runs WHERE id = ?", "NULL"},
		{"SELECT started_at FROM runs WHERE id = ?", "2024-05-01T12:34:56.789Z"},
		{"SELECT ended_at FROM runs WHERE id = ?", "2024-05-01T12:35:00.500Z"},
	} {
		if got := queryString(t, plain, c.query, run1); got != c.want {
			t.Errorf("run %d: %s: got %s, want %s", run1, c.query, got, c.want)
		}
	}
	for _, c := range []struct{ query, want string }{
		{"SELECT exit_code FROM runs WHERE id = ?", "NULL"},
		{"SELECT signal FROM runs WHERE id = ?", "KILL"},
		{"SELECT reason FROM runs WHERE id = ?", "stopped"},
		{"SELECT ended_at FROM runs WHERE id = ?", "2024-05-01T12:37:00.000Z"},
	} {
		if got := queryString(t, plain, c.query, run2); got != c.want {
			t.Errorf("run %d: %s: got %s, want %s", run2, c.query, got, c.want)
		}
	}
	for _, c := range []struct{ query, want string }{
		{"SELECT state FROM jobs WHERE name = 'web'", "stopped"},
		{"SELECT pid FROM jobs WHERE name = 'web'", "NULL"},
		{"SELECT since FROM jobs WHERE name = 'web'", "2024-05-01T12:37:00.000Z"},
		{"SELECT restarts FROM jobs WHERE name = 'web'", "1"},
		{"SELECT last_exit FROM jobs WHERE name = 'web'", "signal=KILL"},
		{"SELECT reason FROM jobs WHERE name = 'web'", "NULL"},
		{"SELECT config_hash FROM jobs WHERE name = 'web'", "h1"},
	} {
		if got := queryString(t, plain, c.query); got != c.want {
			t.Errorf("%s: got %s, want %s", c.query, got, c.want)
		}
	}
	rows, err := plain.Query(`
		SELECT started_at FROM runs UNION ALL SELECT ended_at FROM runs
		UNION ALL SELECT since FROM jobs UNION ALL SELECT updated_at FROM jobs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		if !timeRE.MatchString(s) {
			t.Errorf("stored time %q does not match %s", s, timeRE)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordStateNulls(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	since := ms(t, "2024-05-01T12:00:00.123Z")
	if err := db.RecordState(ctx, jobs.Status{Name: "cron", State: jobs.Failed, Since: since, Reason: "no such program"}); err != nil {
		t.Fatal(err)
	}
	flush(t, db)
	plain := openPlain(t, path)
	got := queryString(t, plain, `SELECT state || '|' || ifnull(pid, 'NULL') || '|' || since || '|' || restarts || '|' ||
		ifnull(last_exit, 'NULL') || '|' || reason || '|' || ifnull(config_hash, 'NULL') FROM jobs WHERE name = 'cron'`)
	if want := "failed|NULL|2024-05-01T12:00:00.123Z|0|NULL|no such program|NULL"; got != want {
		t.Errorf("jobs row = %s, want %s", got, want)
	}
	if _, ok, err := db.Job(ctx, "nope"); ok || err != nil {
		t.Errorf("Job(nope) = %v, %v; want not found", ok, err)
	}
}

func TestRecordExitUnknownRun(t *testing.T) {
	db, _ := openTest(t)
	var warned []string
	db.SetWarn(func(err error) { warned = append(warned, err.Error()) })
	err := db.RecordExit(context.Background(), 99, jobs.Exit{At: time.Now()}, jobs.Status{Name: "web", State: jobs.Exited, Since: time.Now()})
	if err != nil {
		t.Fatalf("queueing: %v", err)
	}
	flush(t, db)
	if len(warned) != 1 || warned[0] != "record exit: no run 99" {
		t.Fatalf("warnings = %q, want record exit: no run 99", warned)
	}
	// The write was rolled back: no jobs row either.
	if _, ok, err := db.Job(context.Background(), "web"); ok || err != nil {
		t.Errorf("Job(web) = %v, %v; want no row", ok, err)
	}
}

func TestOpenRunsProcStartCloseRun(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	start := ms(t, "2024-05-01T12:00:00Z")
	a, err := db.RecordStart(ctx, jobs.Status{Name: "a", State: jobs.Running, Pid: 100, Since: start, ProcStart: "boot/123"}, start)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.RecordStart(ctx, jobs.Status{Name: "b", State: jobs.Running, Pid: 101, Since: start}, start)
	if err != nil {
		t.Fatal(err)
	}
	open, err := db.OpenRuns(ctx)
	if err != nil || len(open) != 2 || open[0].ID != a || open[0].ProcStart != "boot/123" || open[1].ID != b || open[1].ProcStart != "" {
		t.Fatalf("OpenRuns = %+v, %v", open, err)
	}
	at := ms(t, "2024-05-01T13:00:00Z")
	if err := db.CloseRun(ctx, a, at, "orphaned"); err != nil {
		t.Fatal(err)
	}
	open, err = db.OpenRuns(ctx)
	if err != nil || len(open) != 1 || open[0].ID != b {
		t.Fatalf("OpenRuns after CloseRun = %+v, %v", open, err)
	}
	runs, _ := db.Runs(ctx, "a", 1)
	if r := runs[0]; r.Reason != "orphaned" || r.EndedAt == nil || !r.EndedAt.Equal(at) || r.ExitCode != nil || r.Signal != "" {
		t.Errorf("closed run = %+v", r)
	}
	// Closing again changes nothing.
	if err := db.CloseRun(ctx, a, at.Add(time.Hour), "unknown"); err != nil {
		t.Fatal(err)
	}
	if runs, _ := db.Runs(ctx, "a", 1); runs[0].Reason != "orphaned" || !runs[0].EndedAt.Equal(at) {
		t.Errorf("closed run changed: %+v", runs[0])
	}
	// A run whose end nobody saw: no end time, reason unknown, not
	// running, and no longer open.
	if err := db.CloseRun(ctx, b, time.Time{}, "unknown"); err != nil {
		t.Fatal(err)
	}
	if open, err := db.OpenRuns(ctx); err != nil || len(open) != 0 {
		t.Fatalf("OpenRuns after the unknown end = %+v, %v", open, err)
	}
	runs, _ = db.Runs(ctx, "b", 1)
	if r := runs[0]; r.Reason != "unknown" || r.EndedAt != nil || r.Running() {
		t.Errorf("run of unknown end = %+v (running %v)", r, r.Running())
	}
	// And it stays so.
	if err := db.CloseRun(ctx, b, at, "orphaned"); err != nil {
		t.Fatal(err)
	}
	if runs, _ := db.Runs(ctx, "b", 1); runs[0].Reason != "unknown" || runs[0].EndedAt != nil {
		t.Errorf("run of unknown end changed: %+v", runs[0])
	}
}

func TestMarkRemoved(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	t0 := ms(t, "2024-05-01T12:00:00Z")
	t1 := ms(t, "2024-05-01T13:00:00Z")
	at := ms(t, "2024-05-01T14:00:00Z")
	for _, st := range []jobs.Status{
		{Name: "keep", State: jobs.Running, Pid: 10, Since: t0},
		{Name: "gone", State: jobs.Running, Pid: 11, Since: t0},
		{Name: "old", State: jobs.Removed, Since: t1},
	} {
		if err := db.RecordState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	// Thousands of known names, most of them without a row.
	known := []string{"keep"}
	for i := range 5000 {
		known = append(known, fmt.Sprintf("job%d", i))
	}
	if err := db.MarkRemoved(ctx, known, at); err != nil {
		t.Fatal(err)
	}
	check := func(name string, state jobs.State, pid int, since time.Time) {
		t.Helper()
		j, ok, err := db.Job(ctx, name)
		if err != nil || !ok {
			t.Fatalf("Job(%s) = %v, %v", name, ok, err)
		}
		if j.State != state || j.Pid != pid || !j.Since.Equal(since) {
			t.Errorf("%s: state %s pid %d since %s; want %s %d %s", name, j.State, j.Pid, j.Since, state, pid, since)
		}
	}
	check("keep", jobs.Running, 10, t0)
	check("gone", jobs.Removed, 0, at)
	check("old", jobs.Removed, 0, t1) // already removed: its since stays
	if j, _, _ := db.Job(ctx, "gone"); j.Reason != RemovedAtStart {
		t.Errorf("gone: reason %q, want %q", j.Reason, RemovedAtStart)
	}

	// No names known at all: every job is removed.
	if err := db.MarkRemoved(ctx, nil, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("keep", jobs.Removed, 0, at.Add(time.Hour))
	check("gone", jobs.Removed, 0, at)
}

func TestMarkRemovedClearsHeld(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	t0 := ms(t, "2024-05-01T12:00:00Z")
	at := ms(t, "2024-05-01T14:00:00Z")
	for _, st := range []jobs.Status{
		{Name: "keep", State: jobs.Stopped, Since: t0},
		{Name: "gone", State: jobs.Stopped, Since: t0},
		{Name: "old", State: jobs.Removed, Since: t0},
	} {
		if err := db.RecordState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"keep", "gone", "old"} {
		if err := db.SetHeld(ctx, name, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MarkRemoved(ctx, []string{"keep"}, at); err != nil {
		t.Fatal(err)
	}
	held, err := db.Held(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || !held["keep"] {
		t.Errorf("Held = %v, want only keep", held)
	}
	for name, want := range map[string]JobRow{
		"keep": {State: jobs.Stopped, Since: t0, Held: true},
		"gone": {State: jobs.Removed, Since: at},
		"old":  {State: jobs.Removed, Since: t0}, // removed already: its since stays
	} {
		j, ok, err := db.Job(ctx, name)
		if err != nil || !ok {
			t.Fatalf("Job(%s) = %v, %v", name, ok, err)
		}
		if j.State != want.State || !j.Since.Equal(want.Since) || j.Held != want.Held {
			t.Errorf("%s: state %s since %s held %v; want %s %s %v", name, j.State, j.Since, j.Held, want.State, want.Since, want.Held)
		}
	}
}

func TestSetHeld(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	t0 := ms(t, "2024-05-01T12:00:00.5Z")

	// A job without a row gets one, stopped since now.
	before := time.Now().Truncate(time.Millisecond)
	if err := db.SetHeld(ctx, "new", true); err != nil {
		t.Fatal(err)
	}
	j, ok, err := db.Job(ctx, "new")
	if err != nil || !ok {
		t.Fatalf("Job(new) = %v, %v", ok, err)
	}
	if j.State != jobs.Stopped || !j.Held || j.Pid != 0 || j.Since.Before(before) || !j.Since.Equal(j.UpdatedAt) {
		t.Errorf("new held job: %+v", j)
	}

	// A hold survives every save of the job's state.
	st := jobs.Status{Name: "web", State: jobs.Running, Pid: 42, Since: t0, Hash: "h1"}
	run, err := db.RecordStart(ctx, st, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetHeld(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	exit := jobs.Exit{Pid: 42, Code: -1, Signal: "TERM", At: t0.Add(time.Second), Reason: "stopped"}
	st = jobs.Status{Name: "web", State: jobs.Stopped, Since: exit.At, LastExit: &exit, Hash: "h1"}
	if err := db.RecordExit(ctx, run, exit, st); err != nil {
		t.Fatal(err)
	}
	st.Since = exit.At.Add(time.Minute) // as after a daemon restart
	if err := db.RecordState(ctx, st); err != nil {
		t.Fatal(err)
	}
	j, _, err = db.Job(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !j.Held || j.State != jobs.Stopped || !j.Since.Equal(st.Since) || j.ConfigHash != "h1" || j.LastExit != "signal=TERM" {
		t.Errorf("web after RecordState: %+v; want held, stopped since %s", j, st.Since)
	}
	plain := openPlain(t, path)
	if got := queryString(t, plain, "SELECT held FROM jobs WHERE name = 'web'"); got != "1" {
		t.Errorf("held column = %s, want 1", got)
	}
	held, err := db.Held(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || !held["web"] || !held["new"] {
		t.Errorf("Held = %v, want new and web", held)
	}

	// START releases it, and changes nothing else.
	if err := db.SetHeld(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	j2, _, err := db.Job(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if j2.Held || j2.State != j.State || !j2.Since.Equal(j.Since) || j2.LastExit != j.LastExit || j2.UpdatedAt.Before(j.UpdatedAt) {
		t.Errorf("web after SetHeld(false): %+v; was %+v", j2, j)
	}
	if got := queryString(t, plain, "SELECT held FROM jobs WHERE name = 'web'"); got != "0" {
		t.Errorf("held column = %s, want 0", got)
	}
	if held, err := db.Held(ctx); err != nil || len(held) != 1 || !held["new"] {
		t.Errorf("Held = %v, %v; want only new", held, err)
	}
	// A job saved without SetHeld is not held.
	if err := db.RecordState(ctx, jobs.Status{Name: "other", State: jobs.Running, Pid: 7, Since: t0}); err != nil {
		t.Fatal(err)
	}
	if j, _, err := db.Job(ctx, "other"); err != nil || j.Held {
		t.Errorf("Job(other) = %+v, %v; want not held", j, err)
	}
}

func TestKeepRuns(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	t0 := ms(t, "2024-05-01T12:00:00Z")
	cycle := func(name string, i int) int64 {
		t.Helper()
		at := t0.Add(time.Duration(i) * time.Minute)
		st := jobs.Status{Name: name, State: jobs.Running, Pid: 100 + i, Since: at}
		run, err := db.RecordStart(ctx, st, at)
		if err != nil {
			t.Fatal(err)
		}
		exit := jobs.Exit{Pid: st.Pid, Code: i, At: at.Add(time.Second)}
		st = jobs.Status{Name: name, State: jobs.Backoff, Since: exit.At, LastExit: &exit}
		if err := db.RecordExit(ctx, run, exit, st); err != nil {
			t.Fatal(err)
		}
		return run
	}
	ids := func(runs []Run) []int64 {
		var ids []int64
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		return ids
	}

	// Another job's runs, made while every run is kept.
	var other []int64
	for i := range 5 {
		other = append([]int64{cycle("other", i)}, other...)
	}
	db.SetKeepRuns(3)
	var web []int64
	for i := range 5 {
		web = append([]int64{cycle("web", i)}, web...)
		runs, err := db.Runs(ctx, "web", 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := web[:min(len(web), 3)]; fmt.Sprint(ids(runs)) != fmt.Sprint(want) {
			t.Errorf("after %d starts: web runs %v, want %v", i+1, ids(runs), want)
		}
	}
	runs, err := db.Runs(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range runs { // newest first: the 5th, 4th and 3rd
		if code := 4 - i; r.ExitCode == nil || *r.ExitCode != code || r.Pid != 100+code {
			t.Errorf("web run %d: %+v, want exit %d", r.ID, r, code)
		}
	}
	runs, err = db.Runs(ctx, "other", 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids(runs)) != fmt.Sprint(other) {
		t.Errorf("other runs %v, want all of %v", ids(runs), other)
	}

	// Back to keeping every run.
	db.SetKeepRuns(0)
	cycle("web", 5)
	if runs, err := db.Runs(ctx, "web", 0); err != nil || len(runs) != 4 {
		t.Errorf("with no bound: %d web runs, %v; want 4", len(runs), err)
	}
}

// TestMigrateFromV1 opens a database that an overseer knowing only schema
// version 1 made and used.
func TestMigrateFromV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "overseer.db")
	old := openPlain(t, path)
	if _, err := old.Exec(migrations()[0]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"PRAGMA user_version = 1",
		`INSERT INTO jobs (name, state, pid, since, restarts, last_exit, reason, config_hash, updated_at)
		VALUES ('web', 'running', 4242, '2024-05-01T12:00:00.123Z', 2, 'exit=3', NULL, 'h1', '2024-05-01T12:00:00.456Z')`,
		`INSERT INTO runs (job, pid, started_at) VALUES ('web', 4242, '2024-05-01T12:00:00.123Z')`,
		// Closed by a daemon after a crash, before version 7: the end of
		// the first was the time that daemon looked.
		`INSERT INTO runs (job, pid, started_at, ended_at, reason) VALUES ('db', 7, '2024-05-01T11:00:00.000Z', '2024-05-01T11:30:00.000Z', 'unknown')`,
		`INSERT INTO runs (job, pid, started_at, ended_at, reason) VALUES ('db', 8, '2024-05-01T11:40:00.000Z', '2024-05-01T11:50:00.000Z', 'orphaned')`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plain := openPlain(t, path)
	if v, want := queryString(t, plain, "PRAGMA user_version"), fmt.Sprint(len(migrations())); v != want {
		t.Errorf("user_version = %s, want %s", v, want)
	}
	got := queryString(t, plain, `SELECT state || '|' || pid || '|' || since || '|' || restarts || '|' ||
		last_exit || '|' || ifnull(reason, 'NULL') || '|' || config_hash || '|' || updated_at || '|' || held
		FROM jobs WHERE name = 'web'`)
	if want := "running|4242|2024-05-01T12:00:00.123Z|2|exit=3|NULL|h1|2024-05-01T12:00:00.456Z|0"; got != want {
		t.Errorf("jobs row = %s, want %s", got, want)
	}
	j, ok, err := db.Job(ctx, "web")
	if err != nil || !ok || j.Held || j.Pid != 4242 || j.Restarts != 2 {
		t.Errorf("Job(web) = %+v, %v, %v", j, ok, err)
	}
	if runs, err := db.Runs(ctx, "web", 0); err != nil || len(runs) != 1 || runs[0].Pid != 4242 || runs[0].EndedAt != nil {
		t.Errorf("Runs(web) = %+v, %v; want the open run", runs, err)
	}
	// Version 7 forgets the end time of a run nobody saw end, and keeps
	// that of a run the next daemon stopped.
	if got := queryString(t, plain, `SELECT group_concat(pid || '|' || ifnull(ended_at, 'NULL') || '|' || reason, ' ') FROM runs WHERE job = 'db'`); got != "7|NULL|unknown 8|2024-05-01T11:50:00.000Z|orphaned" {
		t.Errorf("db runs after migration: %s", got)
	}
	if open, err := db.OpenRuns(ctx); err != nil || len(open) != 1 || open[0].Pid != 4242 {
		t.Errorf("OpenRuns = %+v, %v; want web's only", open, err)
	}
	// The new column works on the old row.
	if err := db.SetHeld(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	if held, err := db.Held(ctx); err != nil || !held["web"] {
		t.Errorf("Held = %v, %v; want web", held, err)
	}
	// A migrated database ends up with the schema a new one starts with.
	fresh, freshPath := openTest(t)
	fresh.Close()
	schemaOf := func(path string) string {
		return queryString(t, openPlain(t, path), "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)")
	}
	if a, b := schemaOf(path), schemaOf(freshPath); a != b {
		t.Errorf("migrated schema:\n%s\nnew schema:\n%s", a, b)
	}
}

func TestGarbageRefused(t *testing.T) {
	for _, c := range []struct {
		name    string
		content []byte
	}{
		{"text", []byte("this is not sqlite")},
		{"short", []byte("SQLite")},
		{"bad header", append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xff}, 4080)...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "overseer.db")
			if err := os.WriteFile(path, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if want := "open store: " + path + ": file is not a database"; err.Error() != want &&
				err.Error() != "open store: "+path+": database is corrupt" {
				t.Errorf("err = %q, want %q", err, want)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.content) {
				t.Errorf("file changed to %q", got)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("directory holds %v, want only the file", ents)
			}
		})
	}
}

func TestNewerVersionRefused(t *testing.T) {
	db, path := openTest(t)
	db.Close()
	known := len(migrations())
	plain := openPlain(t, path)
	if _, err := plain.Exec(fmt.Sprintf("PRAGMA user_version = %d", known+1)); err != nil {
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
	want := fmt.Sprintf("open store: %s: written by a newer overseer (schema version %d; this overseer knows up to %d)", path, known+1, known)
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("file changed")
	}
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "overseer.db")
	_, err := Open(path)
	if want := "open store: " + path + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestFileMode(t *testing.T) {
	db, path := openTest(t)
	// A write makes SQLite create the WAL, which holds recent data until a
	// checkpoint and so must be as private as the database.
	if err := db.RecordState(context.Background(), jobs.Status{Name: "web", State: jobs.Stopped, Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
}

func TestConcurrentReader(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	now := time.Now()
	if _, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 1, Since: now}, now); err != nil {
		t.Fatal(err)
	}

	flush(t, db)

	// Like a sqlite3 shell in the middle of a long read.
	reader := openPlain(t, "file:"+path+"?mode=ro")
	rtx, err := reader.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	var n int
	if err := rtx.QueryRow("SELECT count(*) FROM runs").Scan(&n); err != nil || n != 1 {
		t.Fatalf("reader sees %d runs, %v; want 1", n, err)
	}

	// The writer is not held up by the reader (WAL), well within busy_timeout.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := db.RecordStart(wctx, jobs.Status{Name: "db", State: jobs.Running, Pid: 2, Since: now}, now); err != nil {
		t.Fatalf("write during a read: %v", err)
	}

	// The reader keeps its snapshot, then sees the write.
	flush(t, db)
	if err := rtx.QueryRow("SELECT count(*) FROM runs").Scan(&n); err != nil || n != 1 {
		t.Errorf("reader's snapshot has %d runs, %v; want 1", n, err)
	}
	rtx.Rollback()
	if err := reader.QueryRow("SELECT count(*) FROM runs").Scan(&n); err != nil || n != 2 {
		t.Errorf("reader sees %d runs after its read, %v; want 2", n, err)
	}
	if got := queryString(t, reader, "SELECT group_concat(name) FROM (SELECT name FROM jobs ORDER BY name)"); !strings.Contains(got, "db,web") {
		t.Errorf("reader sees jobs %s, want db,web", got)
	}
}

func TestReadOnlyRefused(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root writes a read-only file anyway: run as another user to test this")
	}
	_, path := openTest(t)
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "cannot write to it") {
		t.Fatalf("Open(read-only) = %v, want a refusal", err)
	}
}

// Record methods only queue their writes: Close commits what is queued, a
// failing write in a batch fails alone, and run ids go on increasing after
// a reopen.
func TestQueuedWrites(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	var warned []string
	db.SetWarn(func(err error) { warned = append(warned, err.Error()) })
	now := time.Now()
	var last int64
	for i := range 500 {
		st := jobs.Status{Name: fmt.Sprintf("j%d", i%50), State: jobs.Running, Pid: 1000 + i, Since: now}
		run, err := db.RecordStart(ctx, st, now)
		if err != nil {
			t.Fatal(err)
		}
		if run <= last {
			t.Fatalf("run id %d after %d", run, last)
		}
		last = run
		if i == 250 { // fails, among writes that do not
			db.RecordExit(ctx, 99999, jobs.Exit{At: now}, st)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || warned[0] != "record exit: no run 99999" {
		t.Errorf("warnings = %q, want one for run 99999", warned)
	}
	if err := db.RecordState(ctx, jobs.Status{Name: "late", State: jobs.Stopped, Since: now}); err == nil || !strings.Contains(err.Error(), "store closed") {
		t.Errorf("write after Close: %v, want store closed", err)
	}
	if n := queryString(t, openPlain(t, path), "SELECT count(*) || ' ' || max(id) FROM runs"); n != fmt.Sprintf("500 %d", last) {
		t.Errorf("runs: count and max id = %s, want 500 %d", n, last)
	}
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	run, err := db2.RecordStart(ctx, jobs.Status{Name: "j0", State: jobs.Running, Pid: 1, Since: now}, now)
	if err != nil || run != last+1 {
		t.Errorf("first run after reopen: %d, %v; want %d", run, err, last+1)
	}
}

// TestSamples checks that samples read back as written, newest first, and
// that SetKeepSamples bounds each job's samples without touching others'.
func TestSamples(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	at := ms(t, "2024-05-01T14:34:56.789+02:00")
	sample := func(job string, i int) jobs.Sample {
		return jobs.Sample{Job: job, Pid: 100, At: at.Add(time.Duration(i) * time.Second),
			CPU: 12.5 + float64(i), RSS: 1<<30 + int64(i), Threads: 3, Files: 7, Procs: 2}
	}
	if err := db.RecordSamples(ctx, []jobs.Sample{sample("other", 0), sample("other", 1)}); err != nil {
		t.Fatal(err)
	}
	db.SetKeepSamples(3)
	for i := range 5 {
		if err := db.RecordSamples(ctx, []jobs.Sample{sample("web", i), sample("other", 2+i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Samples(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("web has %d samples, want 3: %+v", len(got), got)
	}
	for i, s := range got { // newest first: the 5th, 4th and 3rd
		if want := sample("web", 4-i); !s.At.Equal(want.At) || s.CPU != want.CPU || s.RSS != want.RSS ||
			s.Threads != 3 || s.Files != 7 || s.Procs != 2 || s.Pid != 100 || s.Job != "web" {
			t.Errorf("web sample %d: %+v, want %+v", i, s, want)
		}
	}
	if got, err := db.Samples(ctx, "web", 1); err != nil || len(got) != 1 || !got[0].At.Equal(sample("web", 4).At) {
		t.Errorf("the last web sample: %+v, %v", got, err)
	}
	if got, err := db.Samples(ctx, "other", 0); err != nil || len(got) != 3 {
		t.Errorf("other has %d samples (%v), want 3", len(got), err)
	}
	if got, err := db.Samples(ctx, "nobody", 10); err != nil || len(got) != 0 {
		t.Errorf("samples of an unknown job: %+v, %v", got, err)
	}
	plain := openPlain(t, path)
	if at := queryString(t, plain, "SELECT at FROM samples ORDER BY id DESC LIMIT 1"); !timeRE.MatchString(at) {
		t.Errorf("samples.at = %q, not in the stored time format", at)
	}
}

// A program that holds the write lock longer than busy_timeout (a sqlite3
// shell in the middle of a transaction) delays the writes, in order, and
// loses none; meanwhile nothing that queues waits, and reads go on with
// what is committed.
func TestLockedByAnotherProgram(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, path := openTest(t)
	warned := make(chan string, 10)
	db.SetWarn(func(err error) { warned <- err.Error() })
	other := openPlain(t, path)
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 3 {
		if _, err := db.RecordStart(ctx, jobs.Status{Name: "web", State: jobs.Running, Pid: 100 + i, Since: now}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetHeld(ctx, "web", true); err != nil { // queues, does not wait
		t.Fatal(err)
	}
	select {
	case w := <-warned: // after busy_timeout
		if !strings.Contains(w, "locked") && !strings.Contains(w, "busy") {
			t.Fatalf("warning %q, want one about the lock", w)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no warning while the database stayed locked")
	}
	if runs, err := db.Runs(ctx, "web", 0); err != nil || len(runs) != 0 {
		t.Fatalf("while locked: Runs = %d runs, %v; want what is committed: none", len(runs), err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if runs, err := db.Runs(ctx, "web", 0); err != nil || len(runs) != 3 {
		t.Fatalf("after the lock: Runs = %d runs, %v; want 3", len(runs), err)
	}
	if j, _, err := db.Job(ctx, "web"); err != nil || !j.Held {
		t.Fatalf("after the lock: web %+v, %v; want held", j, err)
	}
}

// An adopted run stays open with adopted_at set; its end, its status
// unknown, has ended_at but no exit_code nor signal.
func TestMarkAdoptedUnknownExit(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	start := ms(t, "2024-05-01T12:00:00Z")
	id, err := db.RecordStart(ctx, jobs.Status{Name: "a", State: jobs.Running, Pid: 100, Since: start, ProcStart: "boot/1"}, start)
	if err != nil {
		t.Fatal(err)
	}
	at := ms(t, "2024-05-01T12:30:00Z")
	if err := db.MarkAdopted(ctx, id, at); err != nil {
		t.Fatal(err)
	}
	open, err := db.OpenRuns(ctx)
	if err != nil || len(open) != 1 || open[0].ID != id || open[0].AdoptedAt == nil || !open[0].AdoptedAt.Equal(at) || !open[0].StartedAt.Equal(start) {
		t.Fatalf("OpenRuns = %+v, %v", open, err)
	}
	end := ms(t, "2024-05-01T13:00:00Z")
	e := jobs.Exit{Pid: 100, Code: -1, At: end, Unknown: true, Reason: jobs.ReasonExitUnknown}
	if err := db.RecordExit(ctx, id, e, jobs.Status{Name: "a", State: jobs.Backoff, Since: end, LastExit: &e}); err != nil {
		t.Fatal(err)
	}
	runs, err := db.Runs(ctx, "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := runs[0]; r.Running() || r.EndedAt == nil || !r.EndedAt.Equal(end) || r.ExitCode != nil || r.Signal != "" || r.Reason != "exit-unknown" || r.AdoptedAt == nil {
		t.Errorf("ended adopted run = %+v", r)
	}
}

// TestMigrateFromV7 opens a database of schema version 7 (the chain run
// partway) with runs in it: they stay, the views read them, and new runs
// keep their definition and last lines.
func TestMigrateFromV7(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "overseer.db")
	old := openPlain(t, path)
	for _, step := range migrations()[:7] {
		if _, err := old.Exec(step); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"PRAGMA user_version = 7",
		`INSERT INTO jobs (name, state, since, restarts, config_hash, updated_at) VALUES ('web', 'backoff', '2024-05-01T12:00:01.500Z', 1, 'h1', '2024-05-01T12:00:01.500Z')`,
		`INSERT INTO runs (id, job, pid, started_at, ended_at, exit_code) VALUES (1, 'web', 10, '2024-05-01T12:00:00.000Z', '2024-05-01T12:00:01.250Z', 3)`,
		`INSERT INTO runs (id, job, pid, started_at, ended_at, signal, reason, detail) VALUES (2, 'web', 11, '2024-05-01T12:00:02.000Z', '2024-05-01T12:00:02.500Z', 'TERM', 'reload', 'COMMAND changed')`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plain := openPlain(t, path)
	if got := queryString(t, plain, `SELECT group_concat(id || '|' || duration_ms || '|' || outcome || '|' || ifnull(reason, '-') || '|' || ifnull(detail, '-'), ' ') FROM run_outcomes`); got != "1|1250|exit=3|-|- 2|500|signal=TERM|reload|COMMAND changed" {
		t.Errorf("run_outcomes after migration: %s", got)
	}
	if got := queryString(t, plain, `SELECT job || '|' || state || '|' || last_run || '|' || last_outcome FROM job_summary`); got != "web|backoff|2|signal=TERM" {
		t.Errorf("job_summary after migration: %s", got)
	}

	st := jobs.Status{Name: "web", State: jobs.Running, Pid: 12, Since: time.Now(), Hash: "h2", Keys: `{"COMMAND":"0a0b0c0d"}`}
	run, err := db.RecordStart(ctx, st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := jobs.Exit{Pid: 12, Code: 1, At: time.Now(), Tail: func() string { return "out hello\nerr boom" }}
	if err := db.RecordExit(ctx, run, e, st); err != nil {
		t.Fatal(err)
	}
	runs, err := db.Runs(ctx, "web", 1)
	if err != nil || len(runs) != 1 || runs[0].ConfigHash != "h2" || runs[0].Tail != "out hello\nerr boom" {
		t.Fatalf("Runs(web, 1) = %+v, %v", runs, err)
	}
	defs, err := db.Definitions(ctx, []string{"h1", "h2"})
	if err != nil || len(defs) != 1 || defs["h2"]["COMMAND"] != "0a0b0c0d" {
		t.Errorf("Definitions = %v, %v; want h2's only", defs, err)
	}
	if got := queryString(t, plain, `SELECT last_outcome || '|' || last_tail FROM job_summary`); got != "exit=1|out hello\nerr boom" {
		t.Errorf("job_summary after a new run: %q", got)
	}
}
