-- overseer's database, schema version 1 (PRAGMA user_version = 1).
-- Later versions change it: see schema_v2.sql (version 2), schema_v3.sql (version 3)
-- ... schema_v8.sql (version 8: runs.adopted_at, reason exit-unknown).
-- ... schema_v9.sql (version 9: runs.config_hash, runs.tail, the definitions
-- table and the views run_outcomes and job_summary).
--
-- This file is a public interface: read it with the sqlite3 shell while
-- overseerd runs (the database is in WAL mode, so readers never block it).
-- Please do not write to it; overseerd is its only writer.
--
-- Every time is ISO-8601 UTC text with milliseconds, for example
-- 2024-05-01T12:34:56.789Z, so times sort and compare as text.
-- States, exits and reasons use the words STATUS shows (see protocol.md).

-- jobs holds one row per job overseer knows or has known, saved on every
-- change of state.
CREATE TABLE jobs (
	name        TEXT PRIMARY KEY,  -- the job's name: its file's name in the jobs directory
	state       TEXT NOT NULL,     -- starting, running, backoff, stopping, stopped, exited, skipped, failed, rejected or removed
	                               -- (removed: its file is gone, or an ephemeral job was forgotten)
	pid         INTEGER,           -- the running process's pid, or NULL when none runs
	since       TEXT NOT NULL,     -- when the job entered state
	restarts    INTEGER NOT NULL DEFAULT 0, -- automatic restarts since the job was last (re)defined
	last_exit   TEXT,              -- how its last process ended, "exit=3" or "signal=KILL"; NULL if none has
	reason      TEXT,              -- why the job is in state, when that needs saying; else NULL
	config_hash TEXT,              -- identity of the job's definition, changing when its file does; NULL if unknown
	updated_at  TEXT NOT NULL      -- when this row was last written
);

-- runs holds one row per process overseer started, kept after it ends.
CREATE TABLE runs (
	id         INTEGER PRIMARY KEY, -- increases with each start
	job        TEXT NOT NULL,       -- the job's name, as in jobs.name
	pid        INTEGER NOT NULL,    -- the process's pid
	started_at TEXT NOT NULL,       -- when the process was started
	ended_at   TEXT,                -- when it ended, or NULL while it runs (from version 7 also when nobody saw it end: schema_v7.sql)
	exit_code  INTEGER,             -- its exit status; NULL while it runs or when a signal killed it
	signal     TEXT,                -- the signal that killed it, without SIG ("KILL"); else NULL
	reason     TEXT                 -- why overseer ended it: stopped (STOP), restart (RESTART), reload (its file changed), removed, die, test-failed,
	                                -- expired (an ephemeral job's TTL passed), tied (the process an ephemeral job was tied to exited),
	                                -- orphaned (overseerd died and the next one stopped the process), or unknown (overseerd died
	                                -- and the process had ended when the next one looked), or, from version 8,
	                                -- exit-unknown (a process a later overseerd adopted ended on its own: ended_at known, exit
	                                -- status not; schema_v8.sql); NULL if overseer did not end it
);

-- runs_job serves "the last runs of one job": WHERE job = ? ORDER BY id DESC.
CREATE INDEX runs_job ON runs(job, id);
