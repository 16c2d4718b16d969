-- overseer's database, schema version 3 (PRAGMA user_version = 3): what
-- changed since version 2 (schema_v2.sql), which changed version 1
-- (schema.sql); read those first. overseerd applies this file once, in the
-- same transaction as any earlier step.

-- runs.proc_start identifies a process beyond its pid, which the system
-- reuses: a new overseerd stops the processes a dead one left running only
-- if pid and proc_start both still match, so it never signals a stranger.
ALTER TABLE runs ADD COLUMN
	proc_start TEXT; -- when the process started, as the system counts it: on Linux "BOOT_ID/TICKS"
	                 -- (/proc/sys/kernel/random/boot_id, then field 22 of /proc/PID/stat);
	                 -- on macOS "SECONDS.MICROSECONDS" (kinfo_proc p_starttime); NULL if unknown
