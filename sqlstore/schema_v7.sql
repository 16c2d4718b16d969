-- overseer's database, schema version 7 (PRAGMA user_version = 7): what
-- changed since version 6 (schema_v6.sql) and the earlier versions
-- (schema_v5.sql ... schema.sql); read those first. overseerd applies this
-- file once, in the same transaction as any earlier step.

-- runs.ended_at is NULL, and runs.reason 'unknown', for a run whose
-- process a new overseerd found already gone after the one that started it
-- died (SIGKILL, a crash): nobody saw it end, so its end is not known.
-- Before version 7 such a run's ended_at was the time the new daemon
-- looked, which said nothing about the process; this step forgets those
-- times. A run still going is one with ended_at NULL *and* reason NULL:
--
--     select * from runs where ended_at is null and reason is null  -- running
--     select * from runs where ended_at is null and reason = 'unknown' -- ended, when unknown
--
-- (reason 'orphaned', a process the new daemon stopped, keeps the time it
-- stopped it, which is when it ended.)
UPDATE runs SET ended_at = NULL WHERE reason = 'unknown';
