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
	"sync"
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

// schemaV5 brings version 4 to version 5 (runs.detail), and documents it.
//
//go:embed schema_v5.sql
var schemaV5 string

// schemaV6 brings version 5 to version 6 (runs.ready_at), and documents it.
//
//go:embed schema_v6.sql
var schemaV6 string

// schemaV7 brings version 6 to version 7 (no end time for a run whose end
// nobody saw), and documents it.
//
//go:embed schema_v7.sql
var schemaV7 string

// schemaV8 brings version 7 to version 8 (runs.adopted_at: a run whose
// process a new daemon adopted after a crash), and documents it.
//
//go:embed schema_v8.sql
var schemaV8 string

// schemaV9 brings version 8 to version 9 (runs.config_hash, runs.tail, the
// definitions table, the run_outcomes and job_summary views), and
// documents it.
//
//go:embed schema_v9.sql
var schemaV9 string

// migrations returns the schema's steps in order: step i (from 0) brings a
// database from user_version i to i+1. Only ever append to it: databases
// out there already ran the earlier steps, so editing one changes nothing
// for them.
func migrations() []string {
	return []string{schema, schemaV2, schemaV3, schemaV4, schemaV5, schemaV6, schemaV7, schemaV8, schemaV9}
}

// SchemaVersion is the schema version (PRAGMA user_version) this overseer
// reads and writes: it opens a database of an older one by migrating it,
// and refuses a newer one.
func SchemaVersion() int { return len(migrations()) }

// pragmas are applied by the driver to every connection of the writer, so
// they hold even if database/sql replaces the connection. busy_timeout
// makes the writer wait for a sqlite3 shell that briefly holds the write
// lock instead of failing; it is shorter than settleWait, so that an answer
// waiting for a write learns within its time that the database is locked,
// and can say so (the write stays queued, see writeBatch). WAL lets that
// shell, and our readers, read while we write; synchronous=NORMAL is
// durable enough in WAL mode (a power loss may lose the last transactions,
// never corrupt the file) and saves an fsync per commit.
const pragmas = "_pragma=busy_timeout(1000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)"

// readPragmas are those of the readers' connections: they may not write
// (query_only), and they leave the journal mode to the writer, which set
// it before any reader opens. A reader waits for no writer in WAL mode;
// busy_timeout only covers the rare moments SQLite itself needs (recovery
// of the WAL index after another program crashed).
const readPragmas = "_pragma=busy_timeout(1000)&_pragma=query_only(1)"

// readers bounds the readers' connections: answers that read (STATUS NAME,
// HISTORY, INSPECT) run side by side, never behind the writer.
const readers = 4

// timeFormat is how every time is stored: ISO-8601 UTC with milliseconds,
// fixed width so that text order is time order.
const timeFormat = "2006-01-02T15:04:05.000Z"

// sqliteMagic opens every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// DB is overseer's database. Its methods are safe for concurrent use.
//
// Every write goes through one writer goroutine, which commits whatever
// has queued up meanwhile in one transaction (a group commit; a write
// that fails is then tried again alone, so each stays atomic; one that
// fails because the database cannot be written now waits, in order, and
// is tried again until it commits: see writeBatch). So the
// Record methods, which supervision calls on every start and exit, only
// queue their write and return at once: a restart never waits for SQLite,
// and a thousand starts cost a few commits, not a thousand. The other
// methods wait for their write, or, reading, for every write queued
// before them, so each sees what came before it.
type DB struct {
	db  *sql.DB // the writer's one connection
	rdb *sql.DB // the readers' connections, query_only
	// keepRuns is how many runs per job RecordStart keeps; 0 keeps all.
	// Atomic, so SetKeepRuns may be called at any time.
	keepRuns atomic.Int64
	// keepSamples is how many samples per job RecordSamples keeps; 0
	// keeps all.
	keepSamples atomic.Int64
	// lastRun is the id of the newest run: RecordStart takes the next one
	// itself, so it need not wait for the insert to learn it.
	lastRun atomic.Int64

	stmt statements // the writes that happen on every start and exit

	mu       sync.Mutex
	pending  []write       // queued for the writer, oldest first
	queued   int64         // writes queued since Open
	written  int64         // writes the writer has finished since Open
	progress chan struct{} // closed, and replaced, when written grows
	closed   bool          // Close was called: no more writes
	warn     func(error)   // reports a failed write nobody waits for
	stuck    error         // why the last try of the oldest queued write failed; nil when it did not
	retry    time.Duration // how long the writer waits before it tries a stuck write again
	since    time.Time     // when the writer got stuck
	refused  int64         // writes refused at maxQueued since the writer got stuck

	gathering *time.Timer   // fires when the first queued write has waited gather
	urgent    chan struct{} // someone waits for the writer (buffered 1)
	quit      chan struct{} // closed by Close
	done      chan struct{} // closed when the writer has ended
}

// statements are the frequent writes, parsed once.
type statements struct {
	insertRun, pruneRuns, endRun, readyRun, saveJob, saveDefinition *sql.Stmt
}

func prepareStatements(ctx context.Context, sdb *sql.DB) (statements, error) {
	var st statements
	for _, p := range []struct {
		s   **sql.Stmt
		sql string
	}{
		{&st.insertRun, `INSERT INTO runs (id, job, pid, started_at, proc_start, config_hash) VALUES (?, ?, ?, ?, ?, ?)`},
		{&st.saveDefinition, `INSERT INTO definitions (hash, job, keys, first_seen) VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`},
		// The subquery finds the newest run beyond the keep newest by
		// walking the runs_job index backwards; it is NULL, and nothing
		// goes, while the job has keep runs or fewer.
		{&st.pruneRuns, `DELETE FROM runs WHERE job = ?1 AND id <= (
			SELECT id FROM runs WHERE job = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`},
		{&st.endRun, `UPDATE runs SET ended_at = ?, exit_code = ?, signal = ?, reason = ?, detail = ?, tail = ? WHERE id = ?`},
		{&st.readyRun, `UPDATE runs SET ready_at = ? WHERE id = ?`},
		{&st.saveJob, `
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
				updated_at = excluded.updated_at`},
	} {
		var err error
		if *p.s, err = sdb.PrepareContext(ctx, p.sql); err != nil {
			return st, err
		}
	}
	return st, nil
}

// write is one queued change. reply, when not nil, receives its outcome.
// A kept write is queued even beyond maxQueued: it is one a request asked
// for (a hold), or one of the few of start-up, never one per start or exit.
type write struct {
	what  string
	f     func(ctx context.Context, tx *sql.Tx) error
	reply chan error
	kept  bool
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
	// other fail with SQLITE_BUSY, and concurrent writes simply queue.
	// Readers, ours (rdb, below) and others (the sqlite3 shell), read
	// alongside it thanks to WAL, and never wait for it.
	sdb.SetMaxOpenConns(1)

	ctx := context.Background()
	if err := prepare(ctx, sdb); err != nil {
		sdb.Close()
		return nil, err
	}
	var last int64
	if err := sdb.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM runs`).Scan(&last); err != nil {
		sdb.Close()
		return nil, sqliteError(err)
	}
	st, err := prepareStatements(ctx, sdb)
	if err != nil {
		sdb.Close()
		return nil, sqliteError(err)
	}
	// The readers open only now, the database being in WAL mode.
	rdb, err := sql.Open("sqlite", strings.Replace(dsn, pragmas, readPragmas, 1))
	if err != nil {
		sdb.Close()
		return nil, err
	}
	rdb.SetMaxOpenConns(readers)
	db := &DB{
		db:        sdb,
		rdb:       rdb,
		stmt:      st,
		progress:  make(chan struct{}),
		warn:      func(err error) { fmt.Fprintf(os.Stderr, "overseerd: store: %v\n", err) },
		gathering: stoppedTimer(),
		urgent:    make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	db.lastRun.Store(last)
	go db.writer()
	return db, nil
}

// SetWarn sets how a failed write that nobody waits for (those of the
// Record methods) is reported; by default on standard error.
func (db *DB) SetWarn(warn func(error)) {
	db.mu.Lock()
	db.warn = warn
	db.mu.Unlock()
}

// errClosed is the outcome of a write queued after Close.
var errClosed = errors.New("store closed")

// ErrQueueFull is the outcome of a write refused because maxQueued writes
// wait already for a database that cannot be written.
var ErrQueueFull = errors.New("too many writes wait for the database: this one is dropped")

// maxQueued bounds the writes waiting for a database that cannot be written
// (disk full, locked for long): each is a few hundred bytes, so the queue
// stays within some tens of MB. Beyond it, a write of a start, an exit or
// a sample is refused (and counted, and logged once); kept writes are not.
const maxQueued = 100_000

// queue hands w to the writer.
func (db *DB) queue(w write) error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return fmt.Errorf("%s: %w", w.what, errClosed)
	}
	if !w.kept && db.queued-db.written >= maxQueued {
		db.refused++
		first, why, warn := db.refused == 1, db.why(), db.warn
		db.mu.Unlock()
		if first {
			warn(fmt.Errorf("%d writes wait for the database (%s): from now on, until it can be written, the writes of starts, exits and samples are dropped", maxQueued, why))
		}
		return fmt.Errorf("%s: %w", w.what, ErrQueueFull)
	}
	if len(db.pending) == 0 {
		// The first of a batch: the writer commits it when the gathering
		// time is up. Arming a timer wakes nobody now, so the exit of a
		// job and its restart are not slowed by the writer waking up.
		db.gathering.Reset(gather)
	}
	db.pending = append(db.pending, w)
	db.queued++
	db.mu.Unlock()
	return nil
}

// hurry tells the writer that someone waits: it commits without gathering.
func (db *DB) hurry() {
	select {
	case db.urgent <- struct{}{}:
	default:
	}
}

// exec queues f as a write named what and waits for its outcome.
func (db *DB) exec(ctx context.Context, what string, f func(context.Context, *sql.Tx) error) error {
	reply := make(chan error, 1)
	if err := db.queue(write{what: what, f: f, reply: reply}); err != nil {
		return err
	}
	db.hurry()
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// Flush waits until every write queued before it is committed (or has
// failed for good, as a write that breaks a constraint does). When ctx ends
// first, it returns an error whose text says why the writes wait, in words
// for users: "disk full", "database locked by another program", ...
func (db *DB) Flush(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	target := db.queued
	if db.written < target {
		db.hurry() // and a stuck write is tried again now
	}
	for db.written < target {
		ch := db.progress
		db.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			db.mu.Lock()
			return errors.New(db.why())
		}
		db.mu.Lock()
	}
	return nil
}

// why says why the queued writes are not written yet. Called with mu held.
func (db *DB) why() string {
	if db.stuck == nil {
		return "the database is slow to write"
	}
	return describe(db.stuck)
}

// describe says in words for users what keeps a write from the database.
func describe(err error) string {
	switch primaryCode(err) {
	case sqlite3.SQLITE_FULL:
		return "disk full"
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return "database locked by another program"
	case sqlite3.SQLITE_READONLY:
		return "database is read-only"
	case sqlite3.SQLITE_IOERR:
		return "I/O error"
	case sqlite3.SQLITE_CANTOPEN:
		return "cannot open the database's files"
	}
	return err.Error()
}

// gather is how long the writer lets writes gather after the first of a
// batch, unless someone waits for them. A job's exit and its restart then
// land in one commit, and SQLite's work comes after the fork and exec of
// the restart instead of competing with them for the CPU.
const gather = 2 * time.Millisecond

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// Settle waits, at most settleWait, for the writes queued before it: it
// returns nil once they are committed, else an error saying why they are
// not (see Flush); they stay queued. Readers call it so that they see those
// writes; when the database cannot be written, they go on with what is
// committed rather than wait.
func (db *DB) Settle(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, settleWait)
	defer cancel()
	return db.Flush(c)
}

// settle is Settle for the read methods: it fails only when ctx has ended.
// While the writes are stuck (the last try failed: disk full, locked by
// another program) it does not wait for them: the read shows what is
// committed at once, so that an answer made of several reads (INSPECT)
// waits settleWait at most once, not once per read. It still makes the
// writer try again now, as Flush does, for the answers that follow.
func (db *DB) settle(ctx context.Context) error {
	db.mu.Lock()
	stuck := db.stuck != nil
	db.mu.Unlock()
	if stuck {
		db.hurry()
	} else {
		db.Settle(ctx)
	}
	return ctx.Err()
}

// settleWait bounds how long a reader waits for the writes before it.
const settleWait = 2 * time.Second

// writer commits the queued writes, in batches, until Close.
func (db *DB) writer() {
	defer close(db.done)
	for {
		select {
		case <-db.gathering.C:
		case <-db.urgent:
		case <-db.quit:
			db.gathering.Stop()
			db.writeBatch() // what came before Close: one more try
			return
		}
		db.writeBatch()
	}
}

// writeBatch commits every queued write in one transaction. When one
// fails, the batch is rolled back and each write is tried again alone, so
// that it fails alone. A write that fails because the database cannot be
// written now (locked by another program, disk full, I/O error) is not
// dropped: it and every write after it stay queued, in order, and are
// tried again after a while (see stall).
func (db *DB) writeBatch() {
	db.mu.Lock()
	batch := db.pending
	db.pending = nil
	warn := db.warn
	db.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	errs := make([]error, len(batch))
	done := len(batch) // the writes finished, from the first
	err := db.apply(batch)
	switch {
	case err == nil:
	case transient(err):
		done = 0
	case len(batch) == 1:
		errs[0] = err
	default: // one write failed the batch: try each alone, so it fails alone
		for i := range batch {
			if errs[i] = db.apply(batch[i : i+1]); transient(errs[i]) {
				err, done = errs[i], i
				break
			}
		}
	}
	for i, w := range batch[:done] {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("%s: %w", w.what, errs[i])
		}
		if w.reply != nil {
			w.reply <- errs[i]
		} else if errs[i] != nil {
			warn(errs[i])
		}
	}
	db.mu.Lock()
	if done > 0 {
		db.written += int64(done)
		close(db.progress)
		db.progress = make(chan struct{})
	}
	var report error
	if done < len(batch) {
		report = db.stall(batch[done:], err)
	} else if db.stuck != nil || db.refused > 0 {
		report = db.recovered()
	}
	db.mu.Unlock()
	if report != nil {
		warn(report)
	}
}

// recovered says that the writes that waited are saved, and forgets that
// they waited. Called with mu held.
func (db *DB) recovered() error {
	msg := "the database can be written again"
	if db.stuck != nil {
		msg += fmt.Sprintf(" after %v", time.Since(db.since).Round(time.Second))
	}
	msg += ": the writes that waited are saved"
	if db.refused > 0 {
		msg += fmt.Sprintf(", but %d that found the queue full were dropped", db.refused)
	}
	db.stuck, db.retry, db.refused = nil, 0, 0
	return errors.New(msg)
}

// stall puts back rest, whose first write failed with err, at the head of
// the queue, and arms the writer's timer to try again: after busyRetry when
// another program holds the lock (busy_timeout has waited already), else
// after a delay that doubles from busyRetry up to maxRetry. The timer runs
// only while writes wait like this: an idle writer has none. While closing
// there is no next try: the writes waiting get err. It returns what to
// report, if anything. Called with mu held.
func (db *DB) stall(rest []write, err error) error {
	if db.closed {
		for _, w := range rest {
			if w.reply != nil {
				w.reply <- fmt.Errorf("%s: %w", w.what, err)
			}
		}
		db.pending = append(rest, db.pending...) // for the count only
		return fmt.Errorf("%d writes not saved: %s", len(db.pending), describe(err))
	}
	db.pending = append(rest, db.pending...)
	first := db.stuck == nil
	if first {
		db.since = time.Now()
	}
	db.stuck = err
	switch {
	case isBusy(err):
		db.retry = busyRetry
	case db.retry == 0:
		db.retry = busyRetry
	default:
		db.retry = min(2*db.retry, maxRetry)
	}
	db.gathering.Reset(db.retry)
	if first {
		return fmt.Errorf("%s: %d writes wait, in order, and are tried again until they are saved (%w)", describe(err), len(db.pending), err)
	}
	return nil
}

// busyRetry is how soon writes are tried again after the database was
// found locked by another program for longer than busy_timeout, and the
// first delay after another failure that may pass (disk full).
const busyRetry = time.Second

// maxRetry bounds the delay between tries of a write that fails, so that
// writes resume within seconds of space returning; a try that fails costs
// little (a transaction rolled back). A request that waits for the writer
// (Flush) makes it try at once.
const maxRetry = 5 * time.Second

// transient reports whether err may go away by itself, so that the write
// that got it must wait and be tried again, rather than be dropped: the
// database is locked, the disk full, the file read-only or unreadable for
// now. Any other error (a broken constraint, a missing run) comes again on
// every try.
func transient(err error) bool {
	switch primaryCode(err) {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return true
	}
	return false
}

// isBusy reports whether err says another connection holds the lock.
func isBusy(err error) bool {
	c := primaryCode(err)
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

// primaryCode returns SQLite's primary result code in err (extended codes
// add high bits), or 0 when err is not SQLite's.
func primaryCode(err error) int {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return 0
	}
	return se.Code() & 0xff
}

// apply runs the writes of batch in one transaction, all or none.
func (db *DB) apply(batch []write) error {
	ctx := context.Background()
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	for _, w := range batch {
		if err := w.f(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
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
	// It takes the write lock: if another program holds it (a sqlite3 shell
	// in a transaction), the writes wait for it, as they do when the lock is
	// taken later, and supervision starts now (so this try does not wait).
	// The same on a full disk (see isFull).
	conn, err := sdb.Conn(ctx)
	if err != nil {
		return sqliteError(err)
	}
	defer conn.Close()
	var v, timeout int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return sqliteError(err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout); err != nil {
		return sqliteError(err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return sqliteError(err)
	}
	_, err = conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", timeout)); err != nil {
		return sqliteError(err)
	}
	if err != nil && !isBusy(err) && !isFull(err) {
		return fmt.Errorf("cannot write to it: %w", sqliteError(err))
	}
	return nil
}

// isFull reports whether err says the disk is full. A daemon that finds
// its database on a full disk starts all the same: its writes queue and
// are saved once space returns, and its jobs are supervised meanwhile
// rather than left running without a daemon.
func isFull(err error) bool { return primaryCode(err) == sqlite3.SQLITE_FULL }

// sqliteError turns SQLite's "not a database" and "corrupt" errors into
// plain words; it returns other errors as they are.
func sqliteError(err error) error {
	switch primaryCode(err) {
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
	case version < 0:
		// No overseer writes one: another program did, or the file is damaged.
		return fmt.Errorf("not written by overseer (schema version %d; this overseer knows 0 to %d)", version, len(steps))
	case version == len(steps):
		return nil
	}
	// The steps need the write lock. If another program holds it past
	// busy_timeout, the daemon does not start: supervising needs the new
	// schema (its statements name the new columns), and a migration only
	// follows an upgrade of overseer, when someone is there to read why.
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			if isBusy(err) {
				return fmt.Errorf("migrate to schema version %d: another program holds the database's write lock (a sqlite3 shell in a transaction?)\nhint: end its transaction, then start overseerd again", i+1)
			}
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
	db.mu.Lock()
	closed := db.closed
	db.closed = true
	db.mu.Unlock()
	if !closed {
		close(db.quit)
	}
	<-db.done // every queued write is committed, or reported lost
	db.rdb.Close()
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

// RecordStart queues the insert of a run for the process st.Pid of job
// st.Name started at at, and the save of st as the job's row, and returns
// the run's id. When SetKeepRuns set a bound n, the same write deletes the
// job's runs older than its newest n. A failure is reported through the
// SetWarn function.
func (db *DB) RecordStart(ctx context.Context, st jobs.Status, at time.Time) (int64, error) {
	keep := db.keepRuns.Load()
	run := db.lastRun.Add(1)
	return run, db.queue(write{what: "record start", f: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.stmt.insertRun).ExecContext(ctx,
			run, st.Name, st.Pid, timeText(at), nullText(st.ProcStart), nullText(st.Hash)); err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if st.Hash != "" && st.Keys != "" {
			if _, err := tx.StmtContext(ctx, db.stmt.saveDefinition).ExecContext(ctx,
				st.Hash, st.Name, st.Keys, timeText(at)); err != nil {
				return fmt.Errorf("save definition: %w", err)
			}
		}
		if keep > 0 {
			if _, err := tx.StmtContext(ctx, db.stmt.pruneRuns).ExecContext(ctx, st.Name, keep); err != nil {
				return fmt.Errorf("delete old runs: %w", err)
			}
		}
		return db.saveJob(ctx, tx, st)
	}})
}

// RecordExit queues the closing of run with e and the save of st as the
// job's row. The write fails, and is reported through the SetWarn function,
// if there is no such run.
func (db *DB) RecordExit(ctx context.Context, run int64, e jobs.Exit, st jobs.Status) error {
	return db.queue(write{what: "record exit", f: func(ctx context.Context, tx *sql.Tx) error {
		var code any // NULL when a signal killed it, or nobody knows (an adopted process)
		if e.Signal == "" && !e.Unknown {
			code = e.Code
		}
		var tail string // the process's last lines, read now: off the restart path
		if e.Tail != nil {
			tail = e.Tail()
		}
		res, err := tx.StmtContext(ctx, db.stmt.endRun).ExecContext(ctx,
			timeText(e.At), code, nullText(e.Signal), nullText(e.Reason), nullText(e.Detail), nullText(tail), run)
		if err != nil {
			return fmt.Errorf("update run %d: %w", run, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update run %d: %w", run, err)
		}
		if n == 0 {
			return fmt.Errorf("no run %d", run)
		}
		return db.saveJob(ctx, tx, st)
	}})
}

// RecordReady queues the save of when run got ready (runs.ready_at) and
// of st as the job's row.
func (db *DB) RecordReady(ctx context.Context, run int64, at time.Time, st jobs.Status) error {
	return db.queue(write{what: "record ready", f: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, db.stmt.readyRun).ExecContext(ctx, timeText(at), run); err != nil {
			return fmt.Errorf("update run %d: %w", run, err)
		}
		return db.saveJob(ctx, tx, st)
	}})
}

// RecordState queues the save of st as the job's row.
func (db *DB) RecordState(ctx context.Context, st jobs.Status) error {
	return db.queue(write{what: "record state", f: func(ctx context.Context, tx *sql.Tx) error {
		return db.saveJob(ctx, tx, st)
	}})
}

// saveJob inserts or updates the jobs row of st.Name. It names the columns
// it writes, so it leaves held alone: a hold outlives any change of state.
func (db *DB) saveJob(ctx context.Context, tx *sql.Tx, st jobs.Status) error {
	var pid any // NULL when no process runs
	if st.Pid != 0 {
		pid = st.Pid
	}
	var lastExit any // NULL until a process has ended
	if st.LastExit != nil {
		lastExit = st.LastExit.String()
	}
	_, err := tx.StmtContext(ctx, db.stmt.saveJob).ExecContext(ctx,
		st.Name, string(st.State), pid, timeText(st.Since), st.Restarts,
		lastExit, nullText(st.Reason), nullText(st.Hash), timeText(time.Now()))
	if err != nil {
		return fmt.Errorf("save job %q: %w", st.Name, err)
	}
	return nil
}

// RemovedAtStart is the reason MarkRemoved gives: the job was gone when
// the daemon started (its file removed while no daemon ran, or an ephemeral
// job of a daemon that died).
const RemovedAtStart = "no job file when overseerd started"

// MarkRemoved marks as removed, since at and without a pid, every job whose
// name is not in known and that is not removed already, and clears the hold
// of every job whose name is not in known: a hold does not outlive its job.
// It is meant for after a reload, with known the names of every job file.
// Like the Record methods it only queues its write.
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
	return db.queue(write{what: "mark removed", kept: true, f: func(ctx context.Context, tx *sql.Tx) error {
		now := timeText(time.Now())
		// A job removed already keeps its since and reason, but loses a
		// hold it may have been given since.
		_, err := tx.ExecContext(ctx, `
			UPDATE jobs SET
				since = CASE WHEN state = ?1 THEN since ELSE ?2 END,
				reason = CASE WHEN state = ?1 THEN reason ELSE ?5 END,
				state = ?1, pid = NULL, held = 0, updated_at = ?3
			WHERE (state != ?1 OR held != 0) AND name NOT IN (SELECT value FROM json_each(?4))`,
			string(jobs.Removed), timeText(at), now, string(names), RemovedAtStart)
		return err
	}})
}

// Run is one process overseer started: a row of the runs table.
type Run struct {
	ID        int64
	Job       string
	Pid       int
	StartedAt time.Time
	EndedAt   *time.Time // nil while it runs, and when its end is unknown (see Running)
	ExitCode  *int       // nil while it runs or when a signal killed it
	Signal    string     // signal name without SIG, or ""
	Reason    string     // why overseer ended it, or ""
	ProcStart string     // the process's start as the system counts it, or "" (see schema_v3.sql)
	ReadyAt   *time.Time // when it got ready (READY); nil: not (yet) ready, or no READY (see schema_v6.sql)
	AdoptedAt *time.Time // when a daemon adopted its process after a crash; nil: never (see schema_v8.sql)
	Detail    string     // why overseer ended it, in words (runs.detail), or ""
	// ConfigHash names the definition it ran, or "" (runs.config_hash).
	ConfigHash string
	// Tail is its last lines, "out TEXT" or "err TEXT" apart by newlines,
	// or "" (runs.tail, schema_v9.sql).
	Tail string
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

// RunsMatching returns the last n runs (all when n <= 0), newest first, of
// the jobs whose names glob matches: SQLite's GLOB, which for job names
// (letters, digits, _-.) and globs without a backslash means what
// path.Match does.
func (db *DB) RunsMatching(ctx context.Context, glob string, n int) ([]Run, error) {
	if n <= 0 {
		n = -1
	}
	return db.queryRuns(ctx, `WHERE job GLOB ? ORDER BY id DESC LIMIT ?`, glob, n)
}

// Running says whether r's process runs, as far as the database knows: a
// run whose end is unknown (reason "unknown", see schema_v7.sql) has no
// end time either, but a reason.
func (r Run) Running() bool { return r.EndedAt == nil && r.Reason == "" }

// OpenRuns returns the runs that have no end, oldest first: at daemon start,
// the processes an overseerd that died left behind.
func (db *DB) OpenRuns(ctx context.Context) ([]Run, error) {
	return db.queryRuns(ctx, `WHERE ended_at IS NULL AND reason IS NULL ORDER BY id`)
}

// queryRuns reads the runs that the SQL after FROM runs selects.
func (db *DB) queryRuns(ctx context.Context, tail string, args ...any) ([]Run, error) {
	if err := db.settle(ctx); err != nil {
		return nil, err
	}
	tx, err := db.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read runs: begin: %w", err)
	}
	defer tx.Rollback()

	rows, err := tx.QueryContext(ctx, `SELECT id, job, pid, started_at, ended_at, exit_code, signal, reason, proc_start, ready_at, adopted_at, detail, config_hash, tail FROM runs `+tail, args...)
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
			ready, adopted, detail, hash     sql.NullString
			tail                             sql.NullString
			code                             sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Job, &r.Pid, &started, &ended, &code, &signal, &reason, &procStart, &ready, &adopted, &detail, &hash, &tail); err != nil {
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
		if ready.Valid {
			t, err := parseTime(ready.String)
			if err != nil {
				return nil, fmt.Errorf("read runs: run %d: ready_at: %w", r.ID, err)
			}
			r.ReadyAt = &t
		}
		if adopted.Valid {
			t, err := parseTime(adopted.String)
			if err != nil {
				return nil, fmt.Errorf("read runs: run %d: adopted_at: %w", r.ID, err)
			}
			r.AdoptedAt = &t
		}
		if code.Valid {
			c := int(code.Int64)
			r.ExitCode = &c
		}
		r.Signal, r.Reason, r.ProcStart = signal.String, reason.String, procStart.String
		r.Detail, r.ConfigHash, r.Tail = detail.String, hash.String, tail.String
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

// CloseRun queues the end of the open run id at time at with reason, its
// outcome unknown (no exit status or signal); a zero at leaves ended_at
// NULL: nobody saw the process end (reason "unknown", schema_v7.sql). A
// run already closed is left alone. Like the Record methods it does not wait: a daemon starting while
// another program holds the write lock supervises at once, and its writes
// follow when the lock is released.
func (db *DB) CloseRun(ctx context.Context, id int64, at time.Time, reason string) error {
	var ended any // NULL
	if !at.IsZero() {
		ended = timeText(at)
	}
	return db.queue(write{what: fmt.Sprintf("close run %d", id), kept: true, f: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`UPDATE runs SET ended_at = ?, reason = ? WHERE id = ? AND ended_at IS NULL AND reason IS NULL`,
			ended, reason, id)
		return err
	}})
}

// MarkAdopted queues the note that a new daemon adopted the process of
// the open run id at time at (runs.adopted_at, schema_v8.sql): the run
// goes on. Like the Record methods it does not wait.
func (db *DB) MarkAdopted(ctx context.Context, id int64, at time.Time) error {
	return db.queue(write{what: fmt.Sprintf("mark run %d adopted", id), kept: true, f: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET adopted_at = ? WHERE id = ?`, timeText(at), id)
		return err
	}})
}

// Definitions returns the keys of each definition of hashes that the
// definitions table holds: key name to a digest of its value (never the
// value). A hash it does not hold is left out.
func (db *DB) Definitions(ctx context.Context, hashes []string) (map[string]map[string]string, error) {
	if err := db.settle(ctx); err != nil {
		return nil, err
	}
	list, err := json.Marshal(hashes)
	if err != nil {
		return nil, fmt.Errorf("read definitions: %w", err)
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT hash, keys FROM definitions WHERE hash IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, fmt.Errorf("read definitions: %w", err)
	}
	defer rows.Close()
	defs := make(map[string]map[string]string)
	for rows.Next() {
		var hash, keys string
		if err := rows.Scan(&hash, &keys); err != nil {
			return nil, fmt.Errorf("read definitions: %w", err)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(keys), &m); err != nil {
			return nil, fmt.Errorf("read definitions: %s: %w", hash, err)
		}
		defs[hash] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read definitions: %w", err)
	}
	return defs, nil
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
	if err := db.settle(ctx); err != nil {
		return JobRow{}, false, err
	}
	tx, err := db.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
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

// SetHeld queues the record of whether job name is held: stopped by an
// explicit STOP and to stay stopped, across reloads and daemon restarts,
// until START. A job without a row gets one, stopped since now. Like the
// Record methods it does not wait: a STOP is never held up by SQLite; the
// daemon's answer then waits for it with Settle. It is queued even when
// maxQueued writes wait already.
func (db *DB) SetHeld(ctx context.Context, name string, held bool) error {
	return db.queue(write{what: fmt.Sprintf("set held %q", name), kept: true, f: func(ctx context.Context, tx *sql.Tx) error {
		now := timeText(time.Now())
		_, err := tx.ExecContext(ctx, `
			INSERT INTO jobs (name, state, since, held, updated_at) VALUES (?1, ?2, ?3, ?4, ?3)
			ON CONFLICT (name) DO UPDATE SET held = excluded.held, updated_at = excluded.updated_at`,
			name, string(jobs.Stopped), now, held)
		return err
	}})
}

// Held returns the names of the held jobs, each mapped to true.
func (db *DB) Held(ctx context.Context) (map[string]bool, error) {
	if err := db.settle(ctx); err != nil {
		return nil, err
	}
	tx, err := db.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
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
// write, and waits for it.
func (db *DB) RecordSamples(ctx context.Context, samples []jobs.Sample) error {
	keep := db.keepSamples.Load()
	return db.exec(ctx, "record samples", func(ctx context.Context, tx *sql.Tx) error {
		return recordSamples(ctx, tx, samples, keep)
	})
}

func recordSamples(ctx context.Context, tx *sql.Tx, samples []jobs.Sample, keep int64) error {
	pruned := make(map[string]bool)
	for _, s := range samples {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO samples (job, pid, at, cpu, rss, threads, files, procs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			s.Job, s.Pid, timeText(s.At), s.CPU, s.RSS, s.Threads, s.Files, s.Procs); err != nil {
			return fmt.Errorf("insert: %w", err)
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
			return fmt.Errorf("delete old samples: %w", err)
		}
	}
	return nil
}

// Samples returns the last n samples of job, newest first; all of them
// when n <= 0.
func (db *DB) Samples(ctx context.Context, job string, n int) ([]jobs.Sample, error) {
	if err := db.settle(ctx); err != nil {
		return nil, err
	}
	if n <= 0 {
		n = -1 // no LIMIT in SQLite's words
	}
	tx, err := db.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
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
