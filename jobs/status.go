package jobs

import (
	"context"
	"fmt"
	"time"
)

// State is a job's state word, as STATUS shows it and the jobs table stores it.
// protocol.md defines each one.
type State string

// The states a job can be in.
const (
	Starting State = "starting" // its TEST is running before a start, or its process is not ready yet (READY)
	Running  State = "running"  // a process is alive
	Waiting  State = "waiting"  // it waits for the jobs it starts after (AFTER) to be ready
	Backoff  State = "backoff"  // its process died; a restart is due after a delay
	Stopping State = "stopping" // its stop signal was sent; waiting for the process to go
	Stopped  State = "stopped"  // not running, by request (STOP, DIE, a removed file)
	Exited   State = "exited"   // its process ended and RESTART says not to start it again
	Skipped  State = "skipped"  // its TEST said it should not run
	Failed   State = "failed"   // it cannot be started (for example the program is missing)
	Rejected State = "rejected" // its file cannot be used and no earlier version of it runs
	Removed  State = "removed"  // its file is gone; kept only in the database
)

// Exit is how one process of a job ended.
type Exit struct {
	Pid    int
	Code   int    // exit status, or -1 when killed by a signal
	Signal string // signal name without SIG ("KILL"), or "" when it exited
	At     time.Time
	Reason string // why overseer ended it ("stopped", "removed", "die", "test-failed"), or ""
	// Detail says why in words when a RELOAD ended it ("COMMAND changed",
	// "file removed", "test exited 1"), or "".
	Detail string
	// Unknown is set when nobody saw how it ended: a daemon that died
	// started it, and the next one found it gone or stopped it (Config.Lost).
	Unknown bool
	// Tail returns the last lines the process wrote on stdout and stderr,
	// as runs.tail holds them (schema_v9.sql); nil: none are kept. The
	// store calls it when it writes the exit, off the restart path, so
	// that lines the daemon reads just after the exit count too. (A func,
	// which the handover's encoding skips: an upgrade hands exits over
	// without it.)
	Tail func() string
}

// String says how the process ended, in the words STATUS uses: "exit=3",
// "signal=KILL", or "unknown".
func (e Exit) String() string {
	if e.Unknown {
		return "unknown"
	}
	if e.Signal != "" {
		return "signal=" + e.Signal
	}
	return fmt.Sprintf("exit=%d", e.Code)
}

// Status is a snapshot of one job, published by its supervisor on every transition.
type Status struct {
	Name     string
	State    State
	Pid      int       // 0 when no process runs
	Since    time.Time // when State was entered
	Restarts int       // automatic restarts since the job was last (re)defined
	LastExit *Exit     // nil until a process of this job has ended
	Reason   string    // why the job is in State, when that needs saying
	Hash     string    // identity of the definition (see Job.Hash)
	Keys     string    // the definition's keys, each with a digest of its value (see Job.KeyDigests)
	Held     bool      // stopped by a STOP request; stays stopped until START
	// Ephemeral is set for a job started by SPAWN, which has no file.
	Ephemeral *Ephemeral
	// ProcStart identifies the running process beyond its pid (ProcStart), so
	// that a later daemon never mistakes a recycled pid for it.
	ProcStart string
	// Ready is how long the live process took to get ready (READY), once
	// it is; 0 while it is not, and for a job without READY.
	Ready time.Duration
	// NotifyStatus is the last STATUS= text the live process sent over
	// sd_notify (READY=notify), or ""; while it runs it is the note.
	NotifyStatus string
}

// Recorder is what supervision needs from storage. *sqlstore.DB implements it.
// Each call is one short transaction; a failed call is logged, never fatal.
type Recorder interface {
	// RecordStart inserts a run for the process st.Pid started at `at`,
	// saves st as the job's row, and returns the run's id.
	RecordStart(ctx context.Context, st Status, at time.Time) (run int64, err error)
	// RecordReady saves that run got ready at `at`, and st as the job's row.
	RecordReady(ctx context.Context, run int64, at time.Time, st Status) error
	// RecordExit closes run with e and saves st as the job's row.
	RecordExit(ctx context.Context, run int64, e Exit, st Status) error
	// RecordState saves st as the job's row.
	RecordState(ctx context.Context, st Status) error
	// SetHeld saves whether the job is held stopped by a STOP request.
	SetHeld(ctx context.Context, job string, held bool) error
}
