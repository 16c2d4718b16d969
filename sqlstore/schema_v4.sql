-- overseer's database, schema version 4 (PRAGMA user_version = 4): what
-- changed since version 3 (schema_v3.sql), which changed version 2
-- (schema_v2.sql) and version 1 (schema.sql); read those first. overseerd
-- applies this file once, in the same transaction as any earlier step.

-- samples holds resource samples of running jobs, taken every
-- METRICS_INTERVAL (a job file key) or -metrics-interval (a daemon flag)
-- while a job runs; none when neither is set. Each sample adds up every
-- process in the job's session: its main process and the descendants that
-- did not make a session of their own. Only the newest -keep-samples rows
-- of each job are kept (1000 by default).
CREATE TABLE samples (
	id      INTEGER PRIMARY KEY, -- increases with each sample
	job     TEXT NOT NULL,       -- the job's name, as in jobs.name
	pid     INTEGER NOT NULL,    -- the job's main process, as in runs.pid (job and pid find its run)
	at      TEXT NOT NULL,       -- when the sample was taken
	cpu     REAL NOT NULL,       -- CPU used since the job's previous sample (the first: since its process started),
	                             -- in percent of one CPU: 100 is one CPU busy all along, 200 two
	rss     INTEGER NOT NULL,    -- resident memory in bytes, summed over the processes (shared pages count in each)
	threads INTEGER NOT NULL,    -- threads, summed over the processes
	files   INTEGER NOT NULL,    -- open file descriptors (files, pipes, sockets), summed over the processes
	procs   INTEGER NOT NULL     -- how many processes the sample counts
);

-- samples_job serves "the last samples of one job": WHERE job = ? ORDER BY id DESC.
CREATE INDEX samples_job ON samples(job, id);
