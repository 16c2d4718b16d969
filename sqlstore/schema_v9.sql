-- overseer's database, schema version 9 (PRAGMA user_version = 9): what
-- changed since version 8 (schema_v8.sql) and the earlier versions
-- (schema_v7.sql ... schema.sql); read those first. overseerd applies this
-- file once, in the same transaction as any earlier step.

-- runs.config_hash ties a run to the definition it ran: jobs.config_hash
-- when it started (a change that needs no restart, such as RESTART_DELAY,
-- leaves it as it was). The definitions table says which keys it had.
ALTER TABLE runs ADD COLUMN
	config_hash TEXT; -- as jobs.config_hash; NULL for runs of version 7 and before

-- runs.tail keeps a run's last words: the last lines its process wrote on
-- stdout and stderr, as overseerd read them on their way to the log, saved
-- when the run ends. At most -tail-lines lines (20) and -tail-bytes bytes
-- of text (4096; a longer line is cut there); -tail-lines 0 keeps none.
-- Job output may hold secrets, as the logs may: the database is 0600.
ALTER TABLE runs ADD COLUMN
	tail TEXT; -- oldest line first, lines apart by a newline, each "out TEXT" (stdout) or "err TEXT" (stderr);
	           -- NULL while the run runs, when it wrote nothing, when no tail is kept, and for a run
	           -- whose daemon died before it ended and that the next one did not adopt (reason
	           -- unknown, orphaned); a run adopted after a crash keeps the lines read since then

-- definitions holds each job definition overseer started a process of,
-- by its hash, once: the names of its keys, each with a digest of its
-- value, never a value. Comparing two rows' keys says which keys changed.
CREATE TABLE definitions (
	hash       TEXT PRIMARY KEY, -- as jobs.config_hash and runs.config_hash
	job        TEXT NOT NULL,    -- the job it was first seen for (instances of a file share one)
	keys       TEXT NOT NULL,    -- a JSON object: each key of the file (but INSTANCES) to the first 8 hex
	                             -- digits of HMAC-SHA-256("KEY=VALUE") keyed by DATA-DIR/digest.key (not in
	                             -- the database, so a short value cannot be guessed from it):
	                             -- {"COMMAND":"1f2e3d4c","PORT":"9a8b7c6d"}
	first_seen TEXT NOT NULL     -- when a process of it first started
);

-- Views: read-only, computed when read, nothing at write time. Every time
-- is text (2024-05-01T12:34:56.789Z), which julianday() reads: durations
-- are (julianday(b) - julianday(a)) * 86400000 milliseconds.

-- run_outcomes is runs with the arithmetic done: each run's duration and
-- how it ended in one word.
CREATE VIEW run_outcomes AS
SELECT
	id, job, pid, config_hash, started_at, ended_at,
	-- milliseconds from start to end; NULL while it runs or when its end is unknown
	CAST(round((julianday(ended_at) - julianday(started_at)) * 86400000) AS INTEGER) AS duration_ms,
	-- exit=3, signal=KILL; unknown when nobody saw it end; NULL while it runs
	CASE
		WHEN signal IS NOT NULL THEN 'signal=' || signal
		WHEN exit_code IS NOT NULL THEN 'exit=' || exit_code
		WHEN ended_at IS NULL AND reason IS NULL THEN NULL
		ELSE 'unknown'
	END AS outcome,
	reason, -- why overseer ended it (runs.reason), NULL if the process ended by itself
	detail, -- and in words (runs.detail): "COMMAND changed" for a reload
	tail,   -- its last lines (runs.tail)
	ready_at,
	adopted_at -- when a daemon adopted its process after a crash (schema_v8.sql), else NULL
FROM runs;

-- job_summary is one row per job of the jobs table: its state, how long
-- its process has run, how often it restarted lately and how its last
-- run ended, with that run's last lines. A restart is a run that started
-- after an earlier run of the job (in the runs -keep-runs keeps).
CREATE VIEW job_summary AS
SELECT
	j.name AS job, j.state, j.since, j.reason, j.held, j.config_hash,
	-- seconds its process has run: NULL unless starting or running
	CASE WHEN j.state IN ('starting', 'running')
		THEN CAST(round((julianday('now') - julianday(j.since)) * 86400) AS INTEGER) END AS uptime_s,
	(SELECT count(*) FROM runs r WHERE r.job = j.name
		AND r.started_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')
		AND r.id > (SELECT min(id) FROM runs f WHERE f.job = j.name)) AS restarts_1h,
	(SELECT count(*) FROM runs r WHERE r.job = j.name
		AND r.started_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')
		AND r.id > (SELECT min(id) FROM runs f WHERE f.job = j.name)) AS restarts_1d,
	l.id AS last_run,          -- the last run that ended (NULL: none has)
	l.outcome AS last_outcome, -- as run_outcomes.outcome
	l.duration_ms AS last_duration_ms,
	l.reason AS last_reason,
	l.tail AS last_tail
FROM jobs j
LEFT JOIN run_outcomes l ON l.id = (
	SELECT max(id) FROM runs e WHERE e.job = j.name AND (e.ended_at IS NOT NULL OR e.reason IS NOT NULL));
