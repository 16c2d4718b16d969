-- overseer's database, schema version 5 (PRAGMA user_version = 5): what
-- changed since version 4 (schema_v4.sql), which changed version 3
-- (schema_v3.sql), 2 (schema_v2.sql) and 1 (schema.sql); read those
-- first. overseerd applies this file once, in the same transaction as any
-- earlier step.

-- runs.detail says, for a run a RELOAD or a failed TEST ended, why in
-- words: runs.reason stays the short word ("reload", "removed",
-- "test-failed"), so that sqlite3 can answer "why was this restarted"
-- without parsing anything.
ALTER TABLE runs ADD COLUMN
	detail TEXT; -- reason = reload: what changed ("COMMAND changed", "STOP_TIMEOUT, /usr/bin/api changed");
	             -- removed: "file removed"; test-failed: the TEST's answer ("test exited 1"); NULL otherwise
