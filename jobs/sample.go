package jobs

import (
	"context"
	"time"
)

// Sample is one measurement of a running job: the processes of its session
// (its main process, whose pid is the session's and process group's id, and
// every descendant that stayed in the session), added up.
type Sample struct {
	Job     string
	Pid     int // the job's main process
	At      time.Time
	CPU     float64 // percent of one CPU used since the previous sample (the first: since the process started); 200 is two CPUs busy
	RSS     int64   // resident memory in bytes
	Threads int
	Files   int // open file descriptors
	Procs   int // processes counted
}

// SampleRecorder stores resource samples. *sqlstore.DB implements it.
type SampleRecorder interface {
	// RecordSamples stores samples, in one short transaction.
	RecordSamples(ctx context.Context, samples []Sample) error
}
