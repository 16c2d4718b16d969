-- overseer's database, schema version 2 (PRAGMA user_version = 2): what
-- changed since version 1, which schema.sql describes; read that file first.
-- overseerd applies this file once, in the same transaction as any earlier
-- step, to bring a version 1 database to version 2.

-- jobs.held keeps an explicit STOP in force across reloads and overseerd
-- restarts. (.schema in the sqlite3 shell shows it, without these comments,
-- at the end of jobs.)
ALTER TABLE jobs ADD COLUMN
	held INTEGER NOT NULL DEFAULT 0; -- 1 when an explicit STOP stopped the job, which then stays stopped,
	                                 -- across reloads and overseerd restarts, until START; else 0.
	                                 -- A removed job is never held.
