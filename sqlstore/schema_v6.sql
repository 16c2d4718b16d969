-- overseer's database, schema version 6 (PRAGMA user_version = 6): what
-- changed since version 5 (schema_v5.sql) and the earlier versions
-- (schema_v4.sql ... schema.sql); read those first. overseerd applies this
-- file once, in the same transaction as any earlier step.

-- runs.ready_at is when the run's process got ready, for a job with READY
-- (README, Jobs): ready_at - started_at is its time to ready. NULL for a
-- job without READY (ready as soon as started), and for a run that ended
-- before it was ready (reason = 'not-ready' when overseer stopped it for
-- not getting ready within READY_TIMEOUT).
ALTER TABLE runs ADD COLUMN
	ready_at TEXT; -- RFC 3339 UTC with milliseconds, as started_at; NULL: not (yet) ready, or no READY
