// Package sqlstore keeps overseer's state in a SQLite database: one row per
// job and one per process started. The file is a public interface that users
// query with the sqlite3 shell while overseerd runs; schema.sql documents it.
package sqlstore

import (
	"context"
	"database/sql"
	_ "embed" // for the schema files
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"overseer/jobs"

	sqlite "modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// schema is version 1 of the schema, and its documentation.
//
//go:embed schema.sql
var schema string

// schemaV2 brings version 1 to version 2 (jobs.held), and documents it.
//
//go:embed schema_v2.sql
var schemaV2 string

// schemaV3 brings version 2 to version 3 (runs.proc_start), and documents it.
//
//go:embed schema_v3.sql
var schemaV3 string

// schemaV4 brings version 3 to version 4 (the samples table), and documents it.
//
//go:embed schema_v4.sql
var schemaV4 string

// migrations returns the schema's steps in order: step i (from 0) brings a
// database from user_version i to i+1. Only ever append to it: databases
// out there already ran the earlier steps, so editing one changes nothing
// for them.
func migrations() []string {
	return []string{schema, schemaV2, schemaV3, schemaV4}
}

// pragmas are applied by the driver to every connection it opens, so they
// hold even if database/sql replaces the connection. busy_timeout makes us
// wait for a sqlite3 shell that briefly holds a lock instead of failing;
// WAL lets that shell read while we write; synchronous=NORMAL is durable
// enough in WAL mode (a power loss may lose the last transactions, never
// corrupt the file) and saves an fsync per commit.
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)"

// timeFormat is how every time is stored: ISO-8601 UTC with milliseconds,
// fixed width so that text order is time order.
const timeFormat = "2006-01-02T15:04:05.000Z"

// sqliteMagic opens every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// DB is overseer's database. Its methods are safe for concurrent use; each
// is one transaction.
type DB struct {
	db *sql.DB
	// keepRuns is how many runs per job RecordStart keeps; 0 keeps all.
	// Atomic, so SetKeepRuns may be called at any time.
	keepRuns atomic.Int64
	// keepSamples is how many samples per job RecordSamples keeps; 0
	// keeps all.
	keepSamples atomic.Int64
}

var (
	_ jobs.Recorder       = (*DB)(nil)
	_ jobs.SampleRecorder = (*DB)(nil)
)

// Open opens the database at path, creating it (mode 0600) if it is missing,
// and brings its schema up to date. It refuses, without changing it, a file
// that is not a SQLite database, a corrupt database, and a database written
// by a newer overseer.
func Open(path string) (*DB, error) {
	db, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %s: %w", path, err)
	}
	return db, nil
}

func open(path string) (*DB, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	dsn, err := dataSource(path)
	if err != nil {
		return nil, err
	}
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One connection, so one writer: our own connections can never make each
	// other fail with SQLITE_BUSY, and concurrent methods simply queue.
	// Readers outside overseerd (the sqlite3 shell) read alongside it
	// thanks to WAL.
	sdb.SetMaxOpenConns(1)

	ctx := context.Background()
	if err := prepare(ctx, sdb); err != nil {
		sdb.Close()
		return nil, err
	}
	return &DB{db: sdb}, nil
}

// checkFile creates path with mode 0600 if it is missing (SQLite would use
// 0644, and job names and exits are nobody else's business), and refuses a
// file that does not start like a SQLite database before SQLite touches it.
// An empty file is an empty database.
func checkFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return pathError(err)
	}
	defer f.Close()
	var head [len(sqliteMagic)]byte
	switch _, err := io.ReadFull(f, head[:]); {
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("file is not a database")
	case err != nil:
		return pathError(err)
	case string(head[:]) != sqliteMagic:
		return errors.New("file is not a database")
	}
	return nil
}

// pathError drops the path from err, since Open's error already names it.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// dataSource returns the driver's name for the database at path. A name
// starting with "file:" is a SQLite URI, in which SQLite decodes %XX and
// where a raw '?' or '#' would silently cut the file name short (and drop
// the pragmas), so the path is escaped.
func dataSource(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs}
	return u.String() + "?" + pragmas, nil
}

// prepare checks the database cheaply and migrates it. Connecting applies the
// pragmas; journal_mode(WAL) is the only one that writes, and only to a
// database that was not in WAL mode already (one overseer did not create).
func prepare(ctx context.Context, sdb *sql.DB) error {
	if err := sdb.PingContext(ctx); err != nil {
		return sqliteError(err)
	}
	var check string
	if err := sdb.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check); err != nil {
		return sqliteError(err)
	}
	if check != "ok" {
		return fmt.Errorf("database is corrupt: %s", strings.Join(strings.Fields(check), " "))
	}
	if err := migrate(ctx, sdb); err != nil {
		return err
	}
	// A database we cannot write would lose every start and exit: refuse it
	// now. Writing user_version as it is writes the header and nothing else.
	var v int
	if err := sdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return sqliteError(err)
	}
	if _, err := sdb.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return fmt.Errorf("cannot write to it: %w", sqliteError(err))
	}
	return nil
}

// sqliteError turns SQLite's "not a database" and "corrupt" errors into
// plain words; it returns other errors as they are.
func sqliteError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff { // the primary code; extended codes add high bits
	case sqlite3.SQLITE_NOTADB:
		return errors.New("file is not a database")
	case sqlite3.SQLITE_CORRUPT:
		return errors.New("database is corrupt")
	}
	return err
}

// migrate brings the schema to the newest version in one transaction, so a
// failure leaves the database as it was.
func migrate(ctx context.Context, sdb *sql.DB) error {
	steps := migrations()
	tx, err := sdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", sqliteError(err))
	}
	defer tx.Rollback()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", sqliteError(err))
	}
	switch {
	case version > len(steps):
		return fmt.Errorf("written by a newer overseer (schema version %d; this overseer knows up to %d)", version, len(steps))
	case version == len(steps):
		return nil
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", i+1, sqliteError(err))
		}
	}
	// PRAGMA takes no parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(steps))); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Close closes the database. SQLite folds the WAL back into the file as the
// last connection closes.
func (db *DB) Close() error {
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// SetKeepRuns bounds the history: from then on, each RecordStart keeps only
// the newest n runs of its job (counting the one it inserts) and deletes the
// older ones. n <= 0 keeps every run, which is the default. It is safe to
// call at any time, concurrently with other methods; a RecordStart already
// under way may use the old bound.
func (db *DB) SetKeepRuns(n int) {
	if n < 0 {
		n = 0
	}
	db.keepRuns.Store(int64(n))
}

// RecordStart inserts a run for the process st.Pid of job st.Name started at
// at, saves st as the job's row, and returns the run's id. When SetKeepRuns
// set a bound n, it also deletes the job's runs older than its newest n,
// in the same transaction.
func (db *DB) RecordStart(ctx context.Context, st jobs.Status, at time.Time) (int64, error) {
	keep := db.keepRuns.Load()
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("record start: begin: %w", err)
	}
	defer tx.Rollback()

	res, err := tx.ExecContext(ctx,
		`INSERT INTO runs (job, pid, started_at, proc_start) VALUES (?, ?, ?, ?)`,
		st.Name, st.Pid, timeText(at), nullText(st.ProcStart))
	if err != nil {
		return 0, fmt.Errorf("record start: insert run: %w", err)
	}
	run, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("record start: run id: %w", err)
	}
	if keep > 0 {
		// The subquery finds the newest run beyond the keep newest by
		// walking the runs_job index backwards; it is NULL, and nothing
		// goes, while the job has keep runs or fewer.
		_, err := tx.ExecContext(ctx, `
			DELETE FROM runs WHERE job = ? AND id <= (
				SELECT id FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
			st.Name, st.Name, keep)
		if err != nil {
			return 0, fmt.Errorf("record start: delete old runs: %w", err)
		}
	}
	if err := saveJob(ctx, tx, st); err != nil {
		return 0, fmt.Errorf("record start: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("record start: commit: %w", err)
	}
	return run, nil
}

// RecordExit closes run with e and saves st as the job's row. It fails if
// there is no such run.
func (db *DB) RecordExit(ctx context.Context, run int64, e jobs.Exit, st jobs.Status) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record exit: begin: %w", err)
	}
	defer tx.Rollback()

	var code any // NULL when a signal killed it
	if e.Signal == "" {
		code = e.Code
	}
	res, err := tx.ExecContext(ctx,
		`UPDATE runs SET ended_at = ?, exit_code = ?, signal = ?, reason = ? WHERE id = ?`,
		timeText(e.At), code, nullText(e.Signal), nullText(e.Reason), run)
	if err != nil {
		return fmt.Errorf("record exit: update run %d: %w", run, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("record exit: update run %d: %w", run, err)
	}
	if n == 0 {
		return fmt.Errorf("record exit: no run %d", run)
	}
	if err := saveJob(ctx, tx, st); err != nil {
		return fmt.Errorf("record exit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record exit: commit: %w", err)
	}
	return nil
}

// RecordState saves st as the job's row.
func (db *DB) RecordState(ctx context.Context, st jobs.Status) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record state: begin: %w", err)
	}
	defer tx.Rollback()

	if err := saveJob(ctx, tx, st); err != nil {
		return fmt.Errorf("record state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record state: commit: %w", err)
	}
	return nil
}

// saveJob inserts or updates the jobs row of st.Name. It names the columns
// it writes, so it leaves held alone: a hold outlives any change of state.
func saveJob(ctx context.Context, tx *sql.Tx, st jobs.Status) error {
	var pid any // NULL when no process runs
	if st.Pid != 0 {
		pid = st.Pid
	}
	var lastExit any // NULL until a process has ended
	if st.LastExit != nil {
		lastExit = st.LastExit.String()
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO jobs (name, state, pid, since, restarts, last_exit, reason, config_hash, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			state = excluded.state,
			pid = excluded.pid,
			since = excluded.since,
			restarts = excluded.restarts,
			last_exit = excluded.last_exit,
			reason = excluded.reason,
			config_hash = excluded.config_hash,
			updated_at = excluded.updated_at`,
		st.Name, string(st.State), pid, timeText(st.Since), st.Restarts,
		lastExit, nullText(st.Reason), nullText(st.Hash), timeText(time.Now()))
	if err != nil {
		return fmt.Errorf("save job %q: %w", st.Name, err)
	}
	return nil
}

// MarkRemoved marks as removed, since at and without a pid, every job whose
// name is not in known and that is not removed already, and clears the hold
// of every job whose name is not in known: a hold does not outlive its job.
// It is meant for after a reload, with known the names of every job file.
func (db *DB) MarkRemoved(ctx context.Context, known []string, at time.Time) error {
	if known == nil {
		known = []string{} // "null" would make json_each yield a NULL, and NOT IN with NULL matches nothing
	}
	// The names go in as one JSON array, so thousands of them are one
	// parameter and one statement.
	names, err := json.Marshal(known)
	if err != nil {
		return fmt.Errorf("mark removed: %w", err)
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark removed: begin: %w", err)
	}
	defer tx.Rollback()

	now := timeText(time.Now())
	// A job removed already keeps its since, but loses a hold it may have
	// been given since.
	_, err = tx.ExecContext(ctx, `
		UPDATE jobs SET
			since = CASE WHEN state = ?1 THEN since ELSE ?2 END,
			state = ?1, pid = NULL, held = 0, updated_at = ?3
		WHERE (state != ?1 OR held != 0) AND name NOT IN (SELECT value FROM json_each(?4))`,
		string(jobs.Removed), timeText(at), now, string(names))
	if err != nil {
		return fmt.Errorf("mark removed: update: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mark removed: commit: %w", err)
	}
	return nil
}

// Run is one process overseer started: a row of the runs table.
type Run struct {
	ID        int64
	Job       string
	Pid       int
	StartedAt time.Time
	EndedAt   *time.Time // nil while it runs
	ExitCode  *int       // nil while it runs or when a signal killed it
	Signal    string     // signal name without SIG, or ""
	Reason    string     // why overseer ended it, or ""
	ProcStart string     // the process's start as the system counts it, or "" (see schema_v3.sql)
}

// Runs returns the last n runs of job, newest first; all of them when n <= 0.
// An empty job means every job.
func (db *DB) Runs(ctx context.Context, job string, n int) ([]Run, error) {
	if n <= 0 {
		n = -1 // no LIMIT in SQLite's words
	}
	if job == "" {
		return db.queryRuns(ctx, `ORDER BY id DESC LIMIT ?`, n)
	}
	return db.queryRuns(ctx, `WHERE job = ? ORDER BY id DESC LIMIT ?`, job, n)
}

// OpenRuns returns the runs that have no end, oldest first: at daemon start,
// the processes an overseerd that died left behind.
func (db *DB) OpenRuns(ctx context.Context) ([]Run, error) {
	return db.queryRuns(ctx, `WHERE ended_at IS NULL ORDER BY id`)
}

// queryRuns reads the runs that the SQL after FROM runs selects.
func (db *DB) queryRuns(ctx context.Context, tail string, args ...any) ([]Run, error) {
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read runs: begin: %w", err)
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, `SELECT id, job, pid, started_at, ended_at, exit_code, signal, reason, proc_start FROM runs `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()

	var runs []Run
	for rows.Next() {
		var (
			r                                Run
			started                          string
			ended, signal, reason, procStart sql.NullString
			code                             sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Job, &r.Pid, &started, &ended, &code, &signal, &reason, &procStart); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		if r.StartedAt, err = parseTime(started); err != nil {
			return nil, fmt.Errorf("read runs: run %d: started_at: %w", r.ID, err)
		}
		if ended.Valid {
			t, err := parseTime(ended.String)
			if err != nil {
				return nil, fmt.Errorf("read runs: run %d: ended_at: %w", r.ID, err)
			}
			r.EndedAt = &t
		}
		if code.Valid {
			c := int(code.Int64)
			r.ExitCode = &c
		}
		r.Signal, r.Reason, r.ProcStart = signal.String, reason.String, procStart.String
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("read runs: commit: %w", err)
	}
	return runs, nil
}

// CloseRun ends the open run id at time at with reason, its outcome
// unknown (no exit status or signal). A run already closed is left alone.
func (db *DB) CloseRun(ctx context.Context, id int64, at time.Time, reason string) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("close run: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		`UPDATE runs SET ended_at = ?, reason = ? WHERE id = ? AND ended_at IS NULL`,
		timeText(at), reason, id); err != nil {
		return fmt.Errorf("close run %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("close run: commit: %w", err)
	}
	return nil
}

// JobRow is a row of the jobs table. NULL columns read as zero values.
type JobRow struct {
	Name       string
	State      jobs.State
	Pid        int // 0 when no process runs
	Since      time.Time
	Restarts   int
	LastExit   string // "exit=3", "signal=KILL", or ""
	Reason     string
	ConfigHash string
	Held       bool // stopped by an explicit STOP, and to stay stopped until START
	UpdatedAt  time.Time
}

// Job returns the jobs row of name, and whether there is one.
func (db *DB) Job(ctx context.Context, name string) (JobRow, bool, error) {
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return JobRow{}, false, fmt.Errorf("read job: begin: %w", err)
	}
	defer tx.Rollback()

	var (
		j                      JobRow
		pid                    sql.NullInt64
		since, updated         string
		lastExit, reason, hash sql.NullString
	)
	err = tx.QueryRowContext(ctx, `
		SELECT name, state, pid, since, restarts, last_exit, reason, config_hash, held != 0, updated_at
		FROM jobs WHERE name = ?`, name).
		Scan(&j.Name, &j.State, &pid, &since, &j.Restarts, &lastExit, &reason, &hash, &j.Held, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return JobRow{}, false, nil
	}
	if err != nil {
		return JobRow{}, false, fmt.Errorf("read job %q: %w", name, err)
	}
	j.Pid = int(pid.Int64)
	j.LastExit, j.Reason, j.ConfigHash = lastExit.String, reason.String, hash.String
	if j.Since, err = parseTime(since); err != nil {
		return JobRow{}, false, fmt.Errorf("read job %q: since: %w", name, err)
	}
	if j.UpdatedAt, err = parseTime(updated); err != nil {
		return JobRow{}, false, fmt.Errorf("read job %q: updated_at: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return JobRow{}, false, fmt.Errorf("read job %q: commit: %w", name, err)
	}
	return j, true, nil
}

// SetHeld records whether job name is held: stopped by an explicit STOP and
// to stay stopped, across reloads and daemon restarts, until START. A job
// without a row gets one, stopped since now.
func (db *DB) SetHeld(ctx context.Context, name string, held bool) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set held: begin: %w", err)
	}
	defer tx.Rollback()

	now := timeText(time.Now())
	_, err = tx.ExecContext(ctx, `
		INSERT INTO jobs (name, state, since, held, updated_at) VALUES (?1, ?2, ?3, ?4, ?3)
		ON CONFLICT (name) DO UPDATE SET held = excluded.held, updated_at = excluded.updated_at`,
		name, string(jobs.Stopped), now, held)
	if err != nil {
		return fmt.Errorf("set held: save job %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set held: commit: %w", err)
	}
	return nil
}

// Held returns the names of the held jobs, each mapped to true.
func (db *DB) Held(ctx context.Context) (map[string]bool, error) {
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read held jobs: begin: %w", err)
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, `SELECT name FROM jobs WHERE held != 0`)
	if err != nil {
		return nil, fmt.Errorf("read held jobs: %w", err)
	}
	defer rows.Close()
	held := make(map[string]bool)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read held jobs: %w", err)
		}
		held[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read held jobs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("read held jobs: commit: %w", err)
	}
	return held, nil
}

// timeText is how t is stored: UTC, milliseconds, e.g. 2024-05-01T12:34:56.789Z.
func timeText(t time.Time) string {
	return t.UTC().Format(timeFormat)
}

// parseTime reads a time written by timeText.
func parseTime(s string) (time.Time, error) {
	return time.Parse(timeFormat, s)
}

// nullText is s, or NULL when s is empty.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// SetKeepSamples bounds the samples kept: from then on, RecordSamples keeps
// only the newest n samples of each job it writes to and deletes the older
// ones. n <= 0 keeps every sample, which is the default.
func (db *DB) SetKeepSamples(n int) {
	if n < 0 {
		n = 0
	}
	db.keepSamples.Store(int64(n))
}

// RecordSamples inserts samples and, when SetKeepSamples set a bound n,
// deletes the samples of their jobs older than the newest n, all in one
// transaction.
func (db *DB) RecordSamples(ctx context.Context, samples []jobs.Sample) error {
	keep := db.keepSamples.Load()
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record samples: begin: %w", err)
	}
	defer tx.Rollback()

	pruned := make(map[string]bool)
	for _, s := range samples {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO samples (job, pid, at, cpu, rss, threads, files, procs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			s.Job, s.Pid, timeText(s.At), s.CPU, s.RSS, s.Threads, s.Files, s.Procs); err != nil {
			return fmt.Errorf("record samples: insert: %w", err)
		}
		if keep <= 0 || pruned[s.Job] {
			continue
		}
		pruned[s.Job] = true
		// As for runs: the subquery walks the samples_job index backwards
		// to the newest sample beyond the keep newest, if there is one.
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM samples WHERE job = ? AND id <= (
				SELECT id FROM samples WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
			s.Job, s.Job, keep); err != nil {
			return fmt.Errorf("record samples: delete old samples: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record samples: commit: %w", err)
	}
	return nil
}

// Samples returns the last n samples of job, newest first; all of them
// when n <= 0.
func (db *DB) Samples(ctx context.Context, job string, n int) ([]jobs.Sample, error) {
	if n <= 0 {
		n = -1 // no LIMIT in SQLite's words
	}
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read samples: begin: %w", err)
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, `
		SELECT pid, at, cpu, rss, threads, files, procs FROM samples
		WHERE job = ? ORDER BY id DESC LIMIT ?`, job, n)
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	defer rows.Close()
	var out []jobs.Sample
	for rows.Next() {
		s := jobs.Sample{Job: job}
		var at string
		if err := rows.Scan(&s.Pid, &at, &s.CPU, &s.RSS, &s.Threads, &s.Files, &s.Procs); err != nil {
			return nil, fmt.Errorf("read samples: %w", err)
		}
		if s.At, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("read samples: at: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("read samples: commit: %w", err)
	}
	return out, nil
}
